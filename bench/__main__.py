"""Benchmark commands: python3 -m bench {tune,report} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neoncc.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("tune", help="choose each convolution's ACL method by guest-instruction counts")
    p.add_argument("models", nargs="+", type=Path, help="model descriptions (YAML)")
    args = parser.parse_args(argv)
    try:
        if args.command == "tune":
            from bench.tune import tune
            for model in args.models:
                tune(model)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
