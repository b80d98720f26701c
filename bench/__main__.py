"""Benchmark commands: python3 -m bench {tune,report,int8} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neoncc.errors import exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("tune", help="choose each convolution's ACL method by guest-instruction counts")
    p.add_argument("models", nargs="+", type=Path, help="model descriptions (YAML)")
    p.add_argument("--candidates", metavar="METHOD/LAYOUT,...",
                   help="measure only these (method, layout) builds, comma-separated, besides ACL's own NCHW choice "
                        "(default: all)")
    p = commands.add_parser("report", help="our engine and its peers, counted side by side; writes the report")
    p.add_argument("--models", nargs="+", default=["squeezenet_v1_0", "squeezenet_v1_1"])
    p.add_argument("--peers", nargs="*", default=["tflite", "acl_graph", "acl_graph_nhwc", "opencv_dnn", "plain_cpp"])
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    p = commands.add_parser("int8", help="float32 against int8: accuracy on real photos and guest instructions")
    p.add_argument("models", nargs="*", default=["squeezenet_v1_1", "squeezenet_v1_0", "efficientnet_lite0"])
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    args = parser.parse_args(argv)
    def run() -> None:
        if args.command == "tune":
            from bench.tune import parse_candidates, tune
            candidates = parse_candidates(args.candidates.split(",")) if args.candidates else None
            for model in args.models:
                tune(model, candidates=candidates)
        elif args.command == "report":
            from bench.report import report
            report(args.models, args.peers, args.runs)
        elif args.command == "int8":
            from bench.int8 import int8_report
            int8_report(args.models, args.runs)
    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
