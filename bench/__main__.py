"""Benchmark commands: python3 -m bench {tune,report,int8} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neoncc import __version__
from neoncc.errors import exit_status, program_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("python3 -m bench"), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("tune", help="choose each convolution's ACL method by guest-instruction counts")
    p.add_argument("models", nargs="+", help="model names (configs/models/NAME.yaml) or YAML files")
    p.add_argument("--candidates", metavar="METHOD/LAYOUT,...",
                   help="measure only these (method, layout) builds, comma-separated, besides ACL's own NCHW choice "
                        "(default: all)")
    p.add_argument("--target", help="a file toolchains/<target>.yaml: built for it, counted under its qemu-user "
                                    "(default: the default target); writes configs/tuning/<target>/")
    p = commands.add_parser("report", help="our engine and its peers, counted side by side; writes the report")
    p.add_argument("--models", nargs="+", default=["squeezenet_v1_0", "squeezenet_v1_1"],
                   help="model names or YAML files (default: %(default)s)")
    p.add_argument("--update-docs", action="store_true",
                   help="also rewrite docs/benchmarks.md and its charts (default: only results/<stamp>/)")
    p.add_argument("--peers", nargs="*", default=None,
                   help="peer engines (default: every one that exists for the target)")
    p.add_argument("--target", help="a file toolchains/<target>.yaml: our engine and the peers built for it and "
                                    "counted under its qemu-user (default: the default target); "
                                    "results/<stamp>-<target>/"),
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    p = commands.add_parser("int8", help="float32 against int8: accuracy on real photos and guest instructions")
    p.add_argument("models", nargs="*", default=["squeezenet_v1_1", "squeezenet_v1_0", "efficientnet_lite0"],
                   help="model names or YAML files (default: %(default)s)")
    p.add_argument("--update-docs", action="store_true",
                   help="also rewrite the int8 section of docs/benchmarks.md (default: only results/<stamp>-int8/)")
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    p = commands.add_parser("zoo", help="13 common CNNs from pytorchcv via ONNX: engine under qemu-arm vs ONNX Runtime")
    p.add_argument("--models", nargs="*", default=None, help="architectures (default: all 13)")
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p = commands.add_parser("onnx-nodes", help="ONNX's backend node tests of the imported ops, under qemu-arm")
    p.add_argument("cases", nargs="*", help="case names (default: all of the supported ops)")
    args = parser.parse_args(argv)
    def log(message: str) -> None:  # progress on stderr: stdout is for results
        print(message, file=sys.stderr, flush=True)

    def run() -> None:
        if args.command == "tune":
            from bench.tune import parse_candidates, tune
            candidates = parse_candidates(args.candidates.split(",")) if args.candidates else None
            from bench import model_path
            for model in [model_path(m) for m in args.models]:
                tune(model, log=log, candidates=candidates, target=args.target)
        elif args.command == "report":
            from bench.report import report
            from bench import peers
            names = args.peers if args.peers is not None else peers.available(args.target)
            report(args.models, names, args.runs, log=log, update_docs=args.update_docs, target=args.target)
        elif args.command == "int8":
            from bench.int8 import int8_report
            int8_report(args.models, args.runs, log=log, update_docs=args.update_docs)
        elif args.command == "zoo":
            from bench.zoo import zoo
            zoo(args.models, args.size)
        elif args.command == "onnx-nodes":
            from bench.onnx_nodes import node_tests
            node_tests(args.cases)
    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
