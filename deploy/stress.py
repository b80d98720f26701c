"""Concurrent deploys to one board: `python3 -m deploy.stress --board B --pairs 50 [--model M.yaml]`.

Each pair starts two `deploy.py` processes at the same moment against the same board and model, differing in
their trained weights (even pairs) or in their input (odd pairs). Each writes its raw output with --output;
that output is compared with an independent reference (neoncc's PyTorch implementation of the model, run on
the host with that deploy's own weights and input). A deploy may fail with one clear `error:` line (a refusal),
but it must never exit 0 with another deploy's result. Prints the counts; exit status 1 if any result was wrong
or any failure was not one clean error line.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from neoncc import PROJECT_ROOT

DEFAULT_MODEL = PROJECT_ROOT / "tests" / "models" / "tiny_passes.yaml"


def _reference(model: Path, weights: dict, tensor: np.ndarray) -> np.ndarray:
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.reference import torch_graph
    return np.asarray(torch_graph.run(load_yaml_model(model), weights, tensor[None])).reshape(-1)


def make_cases(model: Path, work: Path) -> tuple[list[Path], list[Path], dict]:
    """Two weight files, two inputs, and the reference output of each (weights, input) combination."""
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.weights.pack import random_weights
    from neoncc.weights.state_dict import write_npz
    graph = load_yaml_model(model)
    weights, inputs, sets = [], [], []
    for seed in (1, 2):
        arrays = random_weights(graph, seed)
        path = work / f"weights{seed}.npz"
        write_npz(arrays, path)
        weights.append(path)
        sets.append(arrays)
        tensor = np.random.default_rng(100 + seed).normal(0, 1, graph.input_shape).astype("<f4")
        path = work / f"input{seed}.f32"
        tensor.tofile(path)
        inputs.append((path, tensor))
    references = {(w, i): _reference(model, sets[w], inputs[i][1]) for w in (0, 1) for i in (0, 1)}
    return weights, [p for p, _ in inputs], references


def _deploy(board: str, model: Path, weights: Path, tensor: Path, output: Path, timeout: float):
    command = [sys.executable, str(PROJECT_ROOT / "deploy.py"), "--board", board, "--model", str(model),
               "--weights", str(weights), "--input", str(tensor), "--output", str(output),
               "--runs", "1", "--warmup", "0", "--json"]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def judge(proc: subprocess.CompletedProcess, output: Path, own: np.ndarray, other: np.ndarray,
          tolerance: float = 1e-4) -> str:
    """'own', 'refused' (one error line, non-zero exit, no traceback), or what went wrong."""
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        if len(errors) == 1 and "Traceback" not in proc.stderr:
            return "refused"
        return f"unclean failure (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"
    got = np.fromfile(output, dtype="<f4")
    if got.shape == own.shape and np.max(np.abs(got - own)) <= tolerance:
        return "own"
    if got.shape == other.shape and np.max(np.abs(got - other)) <= tolerance:
        return "WRONG: the other deploy's result"
    return "WRONG: matches neither reference"


def stress(board: str, pairs: int, model: Path = DEFAULT_MODEL, timeout: float = 600, log=print) -> dict:
    counts: dict[str, int] = {}
    problems: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="neoncc-stress-") as tmp:
        work = Path(tmp)
        weights, inputs, refs = make_cases(model, work)
        for pair in range(pairs):
            by_weights = pair % 2 == 0
            combos = [(0, 0), (1, 0)] if by_weights else [(0, 0), (0, 1)]
            outputs = [work / f"out{pair}-{k}.f32" for k in (0, 1)]
            with ThreadPoolExecutor(2) as pool:
                procs = list(pool.map(lambda k: _deploy(board, model, weights[combos[k][0]], inputs[combos[k][1]],
                                                        outputs[k], timeout), (0, 1)))
            for k in (0, 1):
                verdict = judge(procs[k], outputs[k], refs[combos[k]], refs[combos[1 - k]])
                key = verdict.split(":")[0] if verdict.startswith(("WRONG", "unclean")) else verdict
                counts[key] = counts.get(key, 0) + 1
                if verdict not in ("own", "refused"):
                    problems.append(f"pair {pair} deploy {k}: {verdict}")
                elif verdict == "refused":
                    problems.append(f"pair {pair} deploy {k}: refused: "
                                    + next(line for line in procs[k].stderr.splitlines() if line.startswith("error:")))
            log(f"pair {pair + 1}/{pairs} ({'weights' if by_weights else 'inputs'} differ): "
                f"{[judge(procs[k], outputs[k], refs[combos[k]], refs[combos[1 - k]])[:40] for k in (0, 1)]}")
    return {"pairs": pairs, "deploys": 2 * pairs, "counts": counts, "problems": problems,
            "seconds": round(time.monotonic() - started, 1), "model": str(model), "board": board}


def leftovers(board_file: str) -> str:
    """Engine or supervise processes still running on the board (empty: none)."""
    from deploy import boards
    from deploy.errors import DeployError
    from deploy.ssh import Connection
    for _attempt in range(10):  # a busy board may be slow to answer
        try:
            with Connection(boards.load(board_file)) as conn:
                out = conn.run("ps -o pid,args 2>/dev/null || ps", check=False).stdout
            break
        except DeployError:
            time.sleep(3)
    else:
        raise DeployError(f"{board_file}: the board does not answer")
    return "\n".join(line for line in out.splitlines() if "/supervise " in line or "./supervise " in line)


def interrupt_trials(board_file: str, trials: int, model: Path = DEFAULT_MODEL, seed: int = 0,
                     sig: int = signal.SIGINT, log=print) -> list[dict]:
    """deploy.py interrupted (SIGINT by default) at random moments of its upload and run: how long each took
    to exit, its exit status and last line, and whether anything was left running on the board. Each trial
    sends a fresh ~11 MB batch of inputs to a fresh remote_dir, so there is always an upload to interrupt."""
    import random

    import yaml

    from deploy import boards
    from deploy.errors import DeployError
    from deploy.ssh import Connection
    from neoncc.frontend.yaml_model import load_yaml_model
    rng = random.Random(seed)
    shape = load_yaml_model(model).input_shape
    spec = yaml.safe_load(Path(board_file).read_text())
    results = []
    with tempfile.TemporaryDirectory(prefix="neoncc-interrupt-") as tmp:
        for trial in range(trials):
            variant = dict(spec, remote_dir=f"/data/interrupt{trial}")
            path = Path(tmp) / f"board{trial}.yaml"
            path.write_text(yaml.safe_dump(variant))
            tensor = Path(tmp) / f"in{trial}.f32"
            np.random.default_rng(seed * 1000 + trial).normal(0, 1, (2000, *shape)).astype("<f4").tofile(tensor)
            delay = rng.uniform(0.0, 5.0)
            proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "deploy.py"), "--board", str(path),
                                     "--model", str(model), "--input", str(tensor), "--runs", "20",
                                     "--warmup", "0", "--random-weights"], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    # as from a terminal, even when this runs in the background (SIGINT ignored)
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
            reader.start()
            deadline = time.monotonic() + 180
            while not any(line.startswith("bundle ") for line in lines) and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)  # the build is done: somewhere in connect, upload, install or run
            stage = "run" if any(line.startswith("run:") for line in lines) else "connect/upload/install"
            sent = time.monotonic()
            proc.send_signal(sig)
            try:
                proc.wait(timeout=60)
                exit_s = time.monotonic() - sent
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                exit_s = float("inf")
            reader.join(timeout=5)
            stderr = "".join(lines)
            deadline = time.monotonic() + 20
            while (left := leftovers(board_file)) and time.monotonic() < deadline:
                time.sleep(1)
            try:
                with Connection(boards.load(str(path))) as conn:
                    conn.run(f"rm -rf /data/interrupt{trial}", check=False)
            except DeployError:
                pass
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            results.append({"trial": trial, "delay_s": round(delay, 2), "exit_s": round(exit_s, 2),
                            "returncode": proc.returncode, "last_line": last, "stage": stage,
                            "left_running": left, "traceback": "Traceback" in stderr})
            log(f"trial {trial + 1}/{trials}: signal after {delay:.1f} s ({stage}), exit after {exit_s:.2f} s, "
                f"status {proc.returncode}: {last[:100]}" + (f"; LEFT RUNNING: {left}" if left else ""))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m deploy.stress", description=__doc__.splitlines()[0])
    p.add_argument("--board", default="emulated", help="board name or file (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=50, help="concurrent pairs of deploys (default: %(default)s)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model YAML (default: tests/models/tiny_passes)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--sigint", type=int, metavar="N",
                   help="instead: N deploys interrupted with SIGINT at random moments of upload and run")
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    if args.sigint:
        from deploy import boards
        board_file = str(boards.board_path(args.board))
        results = interrupt_trials(board_file, args.sigint, args.model.resolve(),
                                   log=lambda m: print(m, file=sys.stderr))
        times = [r["exit_s"] for r in results]
        bad = [r for r in results if r["exit_s"] > 10 or r["left_running"] or r["traceback"]]
        print(json.dumps(results) if args.json else
              f"{len(results)} SIGINTs: exit after {min(times):.2f}..{max(times):.2f} s (median "
              f"{sorted(times)[len(times) // 2]:.2f} s); {len(bad)} slower than 10 s, leaving processes, "
              "or with a traceback")
        return 1 if bad else 0
    summary = stress(args.board, args.pairs, args.model.resolve(), log=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['deploys']} deploys in {summary['pairs']} concurrent pairs, {summary['seconds']} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())))
        for line in summary["problems"]:
            print(f"  {line}")
    wrong = sum(v for k, v in summary["counts"].items() if k not in ("own", "refused"))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
