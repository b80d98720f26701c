"""deploy.py: build a model's engine, push it to a board over SSH, run it there and print what it found.

Every fault ends in one `error:` line on stderr and exit status 1; progress and the engine's own output go to
stderr, so stdout holds only the result (a table, or one JSON object with --json).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import logging
import sys
import time
from pathlib import Path

import numpy as np
import paramiko

from deploy import boards, build, vm
from deploy.bundle import Remote
from deploy.errors import DeployError
from deploy.run import check_executables, preflight, run
from deploy.ssh import Connection, check_credentials
from neoncc import __version__
from neoncc.errors import UserError, program_name
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.targets import toolchain
from neoncc.tools.preprocess import write_tensor


SCHEMA_VERSION = 1  # of the --json result; its JSON Schema: docs/schemas/deploy-result.schema.json


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program_name("deploy.py"), description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--board", default=boards.DEFAULT_BOARD,
                        help="board name (configs/boards/NAME.yaml) or YAML file (default: %(default)s)")
    target.add_argument("--fleet", type=Path, metavar="FILE",
                        help="run on every board a fleet file lists, one Dask task per board (docs/fleet.md)")
    p.add_argument("--model", default="squeezenet_v1_1",
                   help="model name (configs/models/NAME.yaml) or YAML file (default: %(default)s)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", type=Path, help="trained weights (.npz) for the build; without them: the "
                                                      "weights the model's build has (random if it has none)")
    weights.add_argument("--random-weights", action="store_true",
                         help="build with seeded random weights even if the model's build has trained ones")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32",
                   help="float32, or an 8-bit engine calibrated on --calibration (default: %(default)s)")
    p.add_argument("--calibration", type=Path, help="int8: folder of photos and/or .f32 inputs to calibrate on")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="photo to classify (preprocessed as the model's YAML says)")
    source.add_argument("--input", type=Path, help="raw float32 NCHW input tensor")
    p.add_argument("--runs", type=int, default=3, help="timed runs (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)")
    p.add_argument("--threads", type=int, help="engine threads (default: the board's cores)")
    p.add_argument("--timeout", type=float, help="seconds the run may take on the board (default: the board's "
                                                 "run_timeout_s, 600)")
    p.add_argument("--output", type=Path, help="also write the raw float32 output here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--profile", action="store_true", help="also print the per-layer times (median/min/max)")
    p.add_argument("--trust-host-key", action="store_true",
                   help="pin the board's host key if none is pinned yet (check its fingerprint first)")
    p.add_argument("--no-build", action="store_true", help="use the engine already in build/ as it is")
    fleet = p.add_argument_group("fleet runs (--fleet)")
    fleet.add_argument("--scheduler", metavar="ADDRESS",
                       help="Dask scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786 (default: "
                            "$DASK_SCHEDULER_ADDRESS, else a local cluster on this host)")
    fleet.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per "
                                                   "board, at most one per core)")
    fleet.add_argument("--fleet-timeout", type=float, metavar="S",
                       help="seconds to wait for the slowest board before it counts as timed out (default: its "
                            "boot, connect and run limits plus 300 s)")
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr (the result on stdout)")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also the build's own lines (compiler "
                                                                         "commands)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """deploy.py's options, for commands that run deploy() themselves (neoncc validate --board)."""
    return _parser().parse_args(argv)


def class_names(engine, classes: int) -> list[str] | None:
    """The engine's class names when its label file has one per output class; a file with another count is
    said plainly on stderr (not silently dropped) and the classes are shown by index."""
    labels = engine.labels()
    if labels is not None and len(labels) != classes:
        logging.getLogger("neoncc.deploy").warning(
            f"warning: label file {engine.manifest.get('labels')} has {len(labels)} names for {classes} output "
            "classes; showing class indices only")
        return None
    return labels


def _top5(output: np.ndarray, labels: list[str] | None) -> list[list]:
    order = np.argsort(-output, kind="stable")[:5]
    named = labels is not None and len(labels) == output.size
    return [[int(i), float(output[i]), labels[i] if named else None] for i in order]


MAX_TIMEOUT_S = 24 * 3600


def _check_args(args: argparse.Namespace) -> None:
    """Options that cannot work are refused before anything is built or sent."""
    if args.timeout is not None and not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT_S):
        raise DeployError(f"--timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S}, "
                          f"not {args.timeout}")
    if args.output is not None:
        if args.output.is_dir():
            raise DeployError(f"--output {args.output} is a directory; give a file name")
        parent = args.output.parent
        if not parent.is_dir():
            raise DeployError(f"--output {args.output}: directory {parent} does not exist")
    for name in ("weights", "image", "input"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise DeployError(f"--{name} {path}: no such file")
    for name in ("runs", "warmup", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise DeployError(f"--{name} must be at least {0 if name == 'warmup' else 1}, not {value}")
    if args.precision == "int8" and args.calibration is None and not args.no_build:
        raise DeployError("--precision int8 needs --calibration DIR (photos and/or .f32 inputs to calibrate on)")
    if args.calibration is not None and args.precision != "int8":
        raise DeployError("--calibration is only used with --precision int8")


class Phases(dict):
    """Seconds per phase of a deploy (build, boot, connect, upload, install, run), each from the end of the last."""

    def __init__(self):
        super().__init__()
        self.clock = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self[name] = round(now - self.clock, 3)
        self.clock = now


def deploy(args: argparse.Namespace, log) -> dict:
    """The whole flow; returns the result that main prints."""
    _check_args(args)
    with build.workdir() as work:
        return _deploy(args, log, work)


def _deploy(args: argparse.Namespace, log, work: Path) -> dict:
    phases = Phases()
    board = boards.load(args.board)
    check_credentials(board)  # the key and the known-hosts file, before any build
    target = build.target_of(board)  # the toolchain file whose uname_machine lists the board's arch
    engine, bundle = prepare(args, log, work, target)
    phases("build")
    result, _output = on_board(args, log, board, engine, bundle, phases)
    return result


def prepare(args: argparse.Namespace, log, work: Path, target: str = build.TARGET) -> tuple[build.Engine, Bundle]:
    """The host's half of a deploy for a target: the engine built (or the one in build/ with --no-build),
    snapshotted into work, its input prepared, and the bundle of files that goes to a board. Nothing here touches
    a board, so a fleet makes it once per target and sends it to every board of that target."""
    yaml_path = build.model_yaml(args.model)
    load_yaml_model(yaml_path)  # the model description's own mistakes, by file, line and field, before any build
    if args.no_build:
        engine = build.existing_engine(yaml_path, args.precision, snapshot=work / "engine", target=target)
        build.check_build(engine, args.weights, args.calibration)
        if args.random_weights and not engine.weights_random:
            raise DeployError(f"{engine.dir}: this build has trained weights; deploy without --no-build to "
                              "rebuild with random ones")
    else:
        engine = build.build_engine(yaml_path, args.weights, log=log, precision=args.precision,
                                    calibration=args.calibration, random_weights=args.random_weights,
                                    snapshot=work / "engine", target=target)
    engine.labels()  # a missing labels file is found now, not after the upload and the run
    input_path = build.prepare_input(engine, image=args.image, tensor=args.input, log=log)
    if args.input is not None:  # this deploy's own copy: what it hashes is what it sends
        input_path = Path(shutil.copy(input_path, work / "input.f32"))
    bundle = build.make_bundle(engine, input_path, target)
    log(f"bundle {bundle.id}: {len(bundle.files)} files, {bundle.size / 2**20:.1f} MiB")
    return engine, bundle


def on_board(args: argparse.Namespace, log, board: boards.Board, engine: build.Engine, bundle: Bundle,
             phases: Phases | None = None) -> tuple[dict, np.ndarray]:
    """The board's half of a deploy: boot an emulated board if it is not running, connect, check, upload what
    it lacks, switch, run; returns the result and the engine's raw output."""
    phases = Phases() if phases is None else phases
    target = toolchain.load(build.target_of(board))
    check_executables(board.name, bundle, target)  # a binary of another architecture: refused before any upload
    if board.emulator is not None:
        vm.Instance(board).start(log=log, progress=sys.stderr.isatty())
        phases("boot")
    try:
        return _on_board(args, log, board, engine, bundle, phases, target)
    except (OSError, EOFError, paramiko.SSHException) as err:  # the board went away mid-way
        raise DeployError(f"board {board.name}: connection lost ({err or type(err).__name__}); nothing was "
                          "switched unless the run had started, and a rerun resumes any upload") from None


def _on_board(args, log, board, engine, bundle, phases: Phases, target) -> tuple[dict, np.ndarray]:
    threads = args.threads or board.cores
    with Connection(board, trust_host_key=args.trust_host_key, log=log) as conn:
        remote = Remote(conn)
        info = preflight(conn, remote, bundle, target)
        phases("connect")
        try:
            upload = remote.upload(bundle, progress=sys.stderr.isatty(), log=log)
            phases("upload")
            remote.install(bundle)
            phases("install")
            log(f"run: {engine.model} on {board.name}, {threads} threads, {args.warmup} warm-up, {args.runs} runs")
            result = run(conn, remote, bundle,
                         ["--threads", str(threads), "--runs", str(args.runs), "--warmup", str(args.warmup)],
                         args.timeout if args.timeout is not None else board.run_timeout_s, log=log,
                         progress=sys.stderr.isatty())
            phases("run")
        finally:
            remote.cleanup()
    if args.output is not None:
        try:
            write_tensor(result.output, args.output)
        except OSError as err:
            raise DeployError(f"--output {args.output}: cannot write it ({err.strerror or err})") from None
    stats = result.stats
    batch = int(result.engine.get("batch", 1))
    outputs = result.output.reshape(batch, -1)
    return {
        "schema_version": SCHEMA_VERSION,
        "board": board.name,
        "target": target.name,
        "emulated": board.emulator is not None,
        "host": conn.where,
        "model": engine.model,
        "precision": args.precision,
        "weights_random": engine.weights_random,
        "build_id": engine.manifest.get("build_id"),
        "bundle": bundle.id,
        "run": remote.token,
        "input_sha256": next(f.sha256 for f in bundle.files if f.name == "input.f32"),
        "weights_sha256": next(f.sha256 for f in bundle.files if f.name == f"{engine.model}.weights"),
        "threads": result.engine.get("threads", threads),
        "runs": args.runs,
        "warmup": args.warmup,
        "batch": batch,
        "output": result.engine.get("output", "probabilities"),
        "top5": _top5(outputs[0], class_names(engine, outputs.shape[1])),
        "top1": [int(i) for i in outputs.argmax(1)],
        "times_ms": [float(t) for t in result.engine.get("times_ms", [])],
        "groups_ms": result.engine.get("groups_ms", {}),
        "layers": result.engine.get("layers", []),
        "weights_bytes": result.engine.get("weights_bytes"),
        "activation_pool_bytes": result.engine.get("activation_pool_bytes"),
        "peak_memory_kb": stats["maxrss_kb"],
        "cpu": {"user_s": stats["user_s"], "sys_s": stats["sys_s"], "wall_s": stats["wall_s"],
                "cores_busy": round((stats["user_s"] + stats["sys_s"]) / stats["wall_s"], 2)
                if stats["wall_s"] > 0 else None},
        "board_info": vars(info),
        "upload": vars(upload),
        "phases_s": dict(phases),
    }, result.output


def format_table(r: dict, profile: bool = False) -> str:
    info = r["board_info"]
    precision = " (int8)" if r.get("precision") == "int8" else ""
    lines = [f"{r['model']}{precision} on board {r['board']} ({r['host']}: {info['arch']}, {info['cores']} cores, "
             f"{', '.join(info['cpu_features'])}, {info['mem_available_kb'] // 1024} MB free)"]
    if r["weights_random"]:
        lines.append("NOTE: the weights are RANDOM (no trained weights were given): the top-5 below is not a "
                     "classification.")
    probabilities = r.get("output", "probabilities") == "probabilities"
    lines.append("top-5:" if probabilities else "top-5 (raw scores: the model ends without a softmax):")
    for rank, (index, value, label) in enumerate(r["top5"], 1):
        lines.append(f"  {rank}. class {index:4d}  " + (f"p={value:.4f}" if probabilities else f"score={value:.4g}")
                     + (f"  {label}" if label else ""))
    times = r["times_ms"]
    if times:
        lines.append(f"times (ms): {', '.join(f'{t:.1f}' for t in times)}  (mean {sum(times) / len(times):.1f}, "
                     f"min {min(times):.1f}; {r['threads']} threads, {r['warmup']} warm-up)"
                     + ("; EMULATED board: not the times of a real board" if r["emulated"] else ""))
    if r["groups_ms"]:
        total = sum(r["groups_ms"].values()) or 1.0
        lines.append("per group (median ms): " + ", ".join(
            f"{group} {ms:.1f} ({100 * ms / total:.0f} %)" for group, ms in r["groups_ms"].items()))
    if profile:
        lines.append(f"  {'layer':<24} {'group':<20} {'median':>9} {'min':>9} {'max':>9}  (ms)")
        lines += [f"  {x['name']:<24} {x['group']:<20} {x['median_ms']:9.2f} {x['min_ms']:9.2f} {x['max_ms']:9.2f}"
                  for x in r["layers"]]
    cpu = r["cpu"]
    lines.append(f"peak memory (VmHWM): {r['peak_memory_kb'] / 1024:.1f} MiB; CPU: {cpu['user_s']:.2f} s user + "
                 f"{cpu['sys_s']:.2f} s sys in {cpu['wall_s']:.2f} s wall ({cpu['cores_busy']} cores busy)")
    up = r["upload"]
    lines.append(f"upload: {up['files']} files, {up['bytes'] / 2**20:.2f} MiB in {up['seconds']:.1f} s "
                 f"({up['skipped']} already on the board" + (f", {up['resumed']} resumed" if up["resumed"] else "")
                 + f"); bundle {r['bundle']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(message)s",
                        level=logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        logging.getLogger("paramiko").setLevel(logging.WARNING)  # its INFO lines are not ours to print
    log = logging.getLogger("neoncc.deploy").info  # progress: stderr, silenced by -q; the result: stdout

    def terminate(signum, frame):
        raise KeyboardInterrupt  # SIGTERM: the same orderly stop as Ctrl-C (the board's engine is stopped)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        if args.fleet is not None:
            return _fleet_main(args, log)
        if args.scheduler or args.workers is not None or args.fleet_timeout is not None:
            print("error: --scheduler, --workers and --fleet-timeout are for fleet runs (--fleet FILE)",
                  file=sys.stderr)
            return 1
        result = _or_exit_status(lambda: deploy(args, log))
        if isinstance(result, int):
            return result
        print(json.dumps(result) if args.json else format_table(result, args.profile))
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _or_exit_status(run):
    """run()'s result, or the exit status after one `error:` line (1 for a user error, 130 for an interrupt)."""
    try:
        return run()
    except UserError as err:  # DeployError is one
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _fleet_main(args: argparse.Namespace, log) -> int:
    from deploy import fleet

    outcome = _or_exit_status(lambda: fleet.run_fleet(args, log))
    if isinstance(outcome, int):
        return outcome
    document, status = outcome
    print(json.dumps(document) if args.json else fleet.format_table(document))
    if status:
        failed = [f"{b['board']} ({b['kind']})" for b in document["boards"] if b["status"] != "ok"]
        print(f"error: {len(failed)} of {len(document['boards'])} boards failed: {', '.join(failed)}", file=sys.stderr)
    return status
