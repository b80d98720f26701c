"""python3 -m bench.peers: set the peer engines up, or run them on one network and input.

    python3 -m bench.peers setup [NAME...]           idempotent: Debian armhf debs, the wheel, peer binaries
    python3 -m bench.peers run --model M.yaml --weights W.npz --input IN.f32 [--reference OUT.f32]
                               [--peers a,b] [--runs N] [--warmup N] [--no-count] [--workdir DIR] [--json]

With --reference (our engine's output for IN.f32) a peer whose output differs by more than 1e-4 is reported as
a mismatch and not measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import peers
from neoncc.errors import UserError

def _setup(args) -> int:
    start = time.monotonic()
    peers.setup(args.names or None)
    print(f"peers: set up {', '.join(args.names or peers.PEERS)} in {time.monotonic() - start:.1f} s",
          file=sys.stderr)
    return 0


def _run(args) -> int:
    names = args.peers.split(",") if args.peers else list(peers.PEERS)
    reference = np.fromfile(args.reference, dtype="<f4") if args.reference else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        workdir = Path(args.workdir or tmp)
        for name in names:
            peer = peers.prepare(name, args.model, args.weights, workdir / name)
            result = peer.run(args.input, runs=args.runs, warmup=args.warmup, count=not args.no_count)
            row = {"peer": name, "instructions_per_inference": result.instructions_per_inference,
                   "instructions": result.instructions, "wall_ms": result.wall_ms, "details": result.details}
            if reference is not None:
                row["max_abs_diff"] = peers.check_agreement(name, result.probabilities, reference)
            rows.append(row)
            if not args.json:
                insns = result.instructions_per_inference
                print(f"{name:12} {insns / 1e6 if insns else float('nan'):10.1f} M insns/inference  "
                      f"{np.median(result.wall_ms):10.1f} ms (median of {len(result.wall_ms)})"
                      + (f"  max |diff| {row['max_abs_diff']:.2g}" if reference is not None else ""))
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.peers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="fetch and build what the peers need (idempotent)")
    setup.add_argument("names", nargs="*", help=f"peers (default: all of {', '.join(peers.PEERS)})")
    run = commands.add_parser("run", help="run peers on one network and input")
    run.add_argument("--model", required=True, help="YAML model description")
    run.add_argument("--weights", required=True, help=".npz weights")
    run.add_argument("--input", required=True, help="one NCHW float32 input tensor")
    run.add_argument("--reference", help="our engine's output for the input: peers must match it to 1e-4")
    run.add_argument("--peers", help=f"comma-separated (default: {','.join(peers.PEERS)})")
    run.add_argument("--runs", type=int, default=3)
    run.add_argument("--warmup", type=int, default=1)
    run.add_argument("--no-count", action="store_true", help="plain emulated times, no instruction counts")
    run.add_argument("--workdir", help="keep the exported models here")
    run.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return _setup(args) if args.command == "setup" else _run(args)
    except (UserError, ImportError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
