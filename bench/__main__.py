"""Benchmark commands: python3 -m bench {tune,report,threads,int8} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neoncc import __version__
from neoncc.errors import exit_status, program_name


def _cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="N",
                   help="run the counted QEMU runs as Dask tasks on a local cluster of N worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run them on an existing Dask cluster (e.g. tcp://10.0.0.5:8786); default: in this process")


def _tune(args, log) -> None:
    import shutil
    import tempfile
    import time

    from bench import model_path
    from bench.parallel import runner
    from bench.tune import parse_candidates, tune
    from neoncc.errors import UserError
    from neoncc.targets import toolchain

    candidates = parse_candidates(args.candidates.split(",")) if args.candidates else None
    models = [model_path(m) for m in args.models]
    if args.output is not None and len(models) != 1:
        raise UserError("--output names one tuning file: give one model")
    if args.weights is not None and len(models) != 1:
        raise UserError("--weights are one model's weights: give one model")
    if args.weights is not None and not args.weights.is_file():
        raise UserError(f"--weights {args.weights}: no such file")
    if args.precision == "int8":
        from bench.tune_int8 import MAX_KL, tune_int8
        if args.calibration is None:
            raise UserError("--precision int8 needs --calibration DIR: the photos and/or .f32 tensors the 8-bit "
                            "build is calibrated on")
        if candidates or args.workers is not None or args.scheduler is not None or args.check_serial:
            raise UserError("--precision int8 counts three builds one after another: --candidates, --workers, "
                            "--scheduler and --check-serial are for the float32 methods")
        for model in models:
            tune_int8(model, args.calibration, args.weights, log=log, target=args.target, out=args.output,
                      max_kl=MAX_KL if args.max_kl is None else args.max_kl)
        return
    if args.calibration is not None or args.max_kl is not None or args.weights is not None:
        raise UserError("--calibration, --weights and --max-kl are for --precision int8 (float32 counts do not "
                        "depend on the weights)")
    if args.check_serial and args.workers is None and args.scheduler is None:
        raise UserError("--check-serial compares a serial run with a Dask one: give --workers N or --scheduler")
    with runner(args.scheduler, args.workers, log=log) as run:
        for model in models:
            if not args.check_serial:
                tune(model, log=log, candidates=candidates, runner=run, out=args.output, target=args.target)
                continue
            with tempfile.TemporaryDirectory(prefix="neoncc-tune-check-") as tmp:
                serial_out, dask_out = Path(tmp) / "serial.yaml", Path(tmp) / "dask.yaml"
                started = time.monotonic()
                tune(model, log=log, candidates=candidates, out=serial_out, target=args.target)
                serial_s = time.monotonic() - started
                started = time.monotonic()
                tune(model, log=log, candidates=candidates, runner=run, out=dask_out, target=args.target)
                dask_s = time.monotonic() - started
                same = serial_out.is_file() == dask_out.is_file() and (
                    not serial_out.is_file() or serial_out.read_bytes() == dask_out.read_bytes())
                print(f"{model.stem}: serial {serial_s:.1f} s, {run.description} {dask_s:.1f} s, ratio "
                      f"{dask_s / serial_s:.2f}; tuning files {'identical' if same else 'DIFFERENT'}")
                if not same:
                    import difflib
                    diff = [line for line in difflib.unified_diff(
                        serial_out.read_text().splitlines() if serial_out.is_file() else [],
                        dask_out.read_text().splitlines() if dask_out.is_file() else [], lineterm="", n=0)
                        if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                    raise UserError(f"{model.stem}: the Dask run's tuning file differs from the serial run's "
                                    f"({'; '.join(diff[:4])}); nothing was written")
                if dask_out.is_file():
                    target = args.target or toolchain.default_target()
                    dest = args.output or toolchain.tuning_file(target, Path(model).stem)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(dask_out, dest)


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
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="write the tuning file here (one model only; default configs/tuning/<target>/<model>.yaml)")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32",
                   help="int8: choose which layers of the 8-bit build stay float32 (int8_float_layers) by counting "
                        "and a host simulation of the accuracy; writes configs/tuning/<target>/<model>-int8.yaml")
    p.add_argument("--calibration", type=Path, metavar="DIR",
                   help="int8: the calibration folder the 8-bit build takes (photos and/or .f32 tensors)")
    p.add_argument("--weights", type=Path, metavar="NPZ", help="the model's trained weights (one model; default: "
                                                               "seeded random)")
    p.add_argument("--max-kl", type=float, default=None, metavar="X",
                   help="int8: the budget for the outputs' mean KL divergence from float32 in the host simulation "
                        "(default 0.002)")
    _cluster_options(p)
    p.add_argument("--check-serial", action="store_true",
                   help="with --workers/--scheduler: also tune serially first, require the same tuning file, and "
                        "print both wall times and their ratio")
    p = commands.add_parser("report", help="our engine and its peers, counted side by side; writes the report")
    p.add_argument("--models", nargs="+", default=["squeezenet_v1_1", "squeezenet_v1_0", "efficientnet_lite0"],
                   help="model names or YAML files (default: %(default)s)")
    p.add_argument("--update-docs", action="store_true",
                   help="also rewrite docs/benchmarks.md and its charts (default: only results/<stamp>/)")
    p.add_argument("--peers", nargs="*", default=None,
                   help="peer engines (default: every one that exists for the target)")
    p.add_argument("--target", help="a file toolchains/<target>.yaml: our engine and the peers built for it and "
                                    "counted under its qemu-user (default: the default target); "
                                    "results/<stamp>-<target>/"),
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    p = commands.add_parser("threads", help="thread scaling counted per guest thread: the critical path of a "
                                           "1-4 thread inference, per layer and for the network")
    p.add_argument("--models", "--model", nargs="+", default=["squeezenet_v1_1"],
                   help="model names or YAML files (default: %(default)s)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 3, 4], help="thread counts (default: %(default)s)")
    p.add_argument("--target", help="a file toolchains/<target>.yaml (default: the default target)")
    p = commands.add_parser("int8", help="float32 against int8: accuracy on real photos and guest instructions")
    p.add_argument("models", nargs="*", default=["squeezenet_v1_1", "squeezenet_v1_0", "efficientnet_lite0"],
                   help="model names or YAML files (default: %(default)s)")
    p.add_argument("--update-docs", action="store_true",
                   help="also rewrite the int8 section of docs/benchmarks.md (default: only results/<stamp>-int8/)")
    p.add_argument("--runs", type=int, default=3, help="timed runs for the emulated wall times")
    p.add_argument("--weights", type=Path, metavar="NPZ",
                   help="the model's trained weights, as scons weights= takes them (one model; default: "
                        "EfficientNet-Lite0's ImageNet weights, seeded random for the others)")
    p.add_argument("--calibration", type=Path, metavar="DIR",
                   help="calibrate on this folder of photos and/or .f32 tensors, as scons calibration= takes it "
                        "(default: the bundled calibration photos)")
    p.add_argument("--test", type=Path, metavar="DIR",
                   help="compare the two engines on this folder of photos and/or .f32 tensors (default: the bundled "
                        "test photos, none of them in the calibration set)")
    p = commands.add_parser("zoo", help="13 common CNNs from pytorchcv via ONNX: engine under qemu-arm vs ONNX Runtime")
    p.add_argument("--models", nargs="*", default=None, help="architectures (default: all 13)")
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--board", help="also run each engine on this board (configs/boards/NAME.yaml or a YAML file) "
                                   "the way deploy.py does, and check its output against ONNX Runtime")
    p.add_argument("--board-only", action="store_true", help="with --board: skip the qemu-arm run and its count")
    p = commands.add_parser("onnx-nodes", help="ONNX's backend node tests of the imported ops, under qemu-arm")
    p.add_argument("cases", nargs="*", help="case names (default: all of the supported ops)")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    # Progress on stderr (stdout is for results): each step a line; on a terminal also a bar counting the steps
    # with the time spent, which stays below the lines.
    bar = tqdm(desc=f"bench {args.command}", unit="step", disable=not sys.stderr.isatty(), leave=False,
               bar_format="{desc}: {n} steps done, {elapsed} elapsed")

    def log(message: str) -> None:
        if bar.disable:
            print(message, file=sys.stderr, flush=True)
        else:
            bar.write(message, file=sys.stderr)
            bar.update(1)

    def run() -> None:
        if args.command == "tune":
            _tune(args, log)
        elif args.command == "report":
            from bench.report import report
            from bench import peers
            names = args.peers if args.peers is not None else peers.available(args.target)
            report(args.models, names, args.runs, log=log, update_docs=args.update_docs, target=args.target)
        elif args.command == "threads":
            from bench.threads import threads_command
            threads_command(args.models, args.threads, target=args.target, log=log)
        elif args.command == "int8":
            from bench.int8 import int8_report
            int8_report(args.models, args.runs, log=log, update_docs=args.update_docs, weights=args.weights,
                        calibration=args.calibration, test=args.test)
        elif args.command == "zoo":
            from bench.zoo import zoo
            zoo(args.models, args.size, board=args.board, qemu=not args.board_only)
        elif args.command == "onnx-nodes":
            from bench.onnx_nodes import node_tests
            node_tests(args.cases)
    try:
        return exit_status(run)
    finally:
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
