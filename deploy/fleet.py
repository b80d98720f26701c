"""Fleet runs: one engine pushed to many boards and their results compared, on a Dask distributed cluster.

    python3 deploy.py --fleet FLEET.yaml --model M [--weights W] [--image P] [--json] [--scheduler ADDR]

A fleet file lists boards, by name (configs/boards/NAME.yaml), by path (relative to the fleet file), or inline
with the fields of a board file:

    name: lab                           # optional
    boards:
      - emulated                        # configs/boards/emulated.yaml
      - emulated-2
      - ../boards/zuluko-7.yaml
      - {name: zuluko-8, host: 192.0.2.18, port: 22, user: root, remote_dir: /opt/neoncc, arch: armv7l, cores: 4}

The host builds once per target (the board's `arch` is a target's `uname_machine`) and computes the host reference
(the YAML graph run by PyTorch) once; the bundle's files go to the cluster once (scattered to every worker); then one
Dask task per board runs deploy's own single-board path (deploy.cli.on_board: boot an emulated board on demand,
connect, check, upload what it lacks, switch, run). Each task needs one unit of the worker resource
`neoncc-board` (a worker drives that many boards at once) and holds the cluster-wide lock `neoncc-board:<name>`
while it works, so a board is bound to one worker at a time, even across fleet runs on one cluster. A board's
fault (unreachable, unknown host key, wrong architecture, timeout, crash, lost mid-run) becomes its row's status;
the other boards complete. The exit status is 1 when any board failed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from deploy import CACHE, boards, build
from deploy.bundle import Bundle, File
from deploy.errors import DeployError
from neoncc.errors import UserError

SCHEMA_VERSION = 1  # of the fleet's --json document
RESOURCE = "neoncc-board"  # worker resource: how many boards a worker drives at once
LOCK_WAIT_S = 600  # how long a board task waits for another fleet run on the same board
FILES = CACHE / "fleet" / "files"  # the bundle files as a worker received them, by SHA-256
MAX_ABS_ERROR = 1e-4  # agreement with the host reference (float32), as `neoncc validate` checks by default

FLEET_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["boards"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "boards": {"type": "array", "minItems": 1,
                   "items": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "object"}]}},
    },
}

# A board's fault, from deploy's one-line errors, as the kind shown in the status column (first match wins).
FAULTS = [
    ("host key", r"unknown host key|HOST KEY CHANGED"),
    ("unreachable", r"unreachable|unknown host |no SSH server answers"),
    ("login refused", r"authentication refused|authentication with|no key to log in|key file"),
    ("wrong architecture", r"wrong architecture|no NEON|no target for"),
    ("timeout", r"time limit|no end of|no answer from its worker|may be hung|no SSH answer within"),
    ("crash", r"crashed|failed with exit status|could not run|printed no JSON"),
    ("connection lost", r"connection lost|connection to .* lost|cut off|qemu exited"),
    ("board full", r"disk full|not enough free memory"),
    ("checksum", r"checksum mismatch|ran other files"),
]


def fault_kind(message: str) -> str:
    return next((kind for kind, pattern in FAULTS if re.search(pattern, message)), "error")


# -- the fleet file --------------------------------------------------------------------------------------------

def load_fleet(path: Path) -> tuple[str, list[boards.Board]]:
    """The fleet's name and boards, every board checked as a board file is; errors name the file and field."""
    if not path.is_file():
        raise DeployError(f"fleet file {path}: no such file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DeployError(f"{path}: not valid YAML: {err}") from None
    errors = sorted(jsonschema.Draft202012Validator(FLEET_SCHEMA).iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path).lstrip(".") or "(top level)"
        message = "a board name, a board file's path, or a board's fields" if err.validator == "oneOf" else err.message
        raise DeployError(f"{path}: field {where}: {message}")
    fleet: list[boards.Board] = []
    for i, entry in enumerate(spec["boards"]):
        if isinstance(entry, dict):
            board = boards.from_spec(entry, path, f"boards[{i}]")
        else:
            relative = path.parent / entry
            is_path = entry.endswith((".yaml", ".yml")) or "/" in entry
            try:
                board = boards.load(str(relative) if is_path and not Path(entry).is_absolute() else entry)
            except DeployError as err:
                raise DeployError(f"{path}: field boards[{i}]: {err}") from None
        clash = next((b for b in fleet if b.name == board.name), None)
        if clash is not None:
            raise DeployError(f"{path}: field boards[{i}]: board name '{board.name}' is listed twice (also "
                              f"{clash.source}); each board once")
        fleet.append(board)
    return spec.get("name", path.stem), fleet


def target_of(board: boards.Board) -> str | None:
    """The target whose boards print this board's `uname -m` (toolchains/*.yaml, uname_machine), or None."""
    try:
        return build.target_of(board)
    except DeployError:
        return None


# -- what a worker gets ----------------------------------------------------------------------------------------

@dataclass
class Shipment:
    """A bundle as it travels to the workers: its files' names and checksums; the bytes go separately (scattered
    once to every worker)."""

    model: str
    id: str
    files: list[tuple[str, str, bool]]  # name, sha256, executable

    @classmethod
    def of(cls, bundle: Bundle) -> Shipment:
        return cls(bundle.model, bundle.id, [(f.name, f.sha256, f.executable) for f in bundle.files])


def contents(bundle: Bundle) -> dict[str, bytes]:
    return {f.sha256: f.path.read_bytes() for f in bundle.files}


def _materialize(shipment: Shipment, data: dict[str, bytes]) -> Bundle:
    """The bundle on this worker: its files written once under .cache/fleet/files/<sha256>, checked."""
    FILES.mkdir(parents=True, exist_ok=True)
    files = []
    for name, sha, executable in shipment.files:
        path = FILES / sha
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            tmp = path.with_name(f"{sha}.{os.getpid()}.{time.monotonic_ns()}.tmp")
            tmp.write_bytes(data[sha])
            tmp.replace(path)
        files.append(File(name, path, executable))
    bundle = Bundle(shipment.model, files)
    if bundle.id != shipment.id:
        raise DeployError(f"bundle {shipment.id} arrived on worker {socket.gethostname()} as {bundle.id}: its files "
                          "changed on the way")
    return bundle


def board_task(spec: dict, source: str, args, engine: build.Engine, shipment: Shipment, data: dict) -> dict:
    """One board, on a Dask worker: deploy's own single-board path, under the board's cluster-wide lock. Every
    fault of the board is returned as its row, never raised: the other boards' tasks go on."""
    from distributed import Lock, get_worker

    from deploy.cli import on_board
    from deploy.ssh import check_credentials

    # On Ctrl-C the scheduler goes while this task holds its board's lock: the lock's lease refresher then fails in
    # Dask's event loop, and its traceback is Dask's, not the user's (see neoncc.cluster).
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    started = time.monotonic()
    lines: list[str] = []
    row = {"board": spec.get("name"), "worker": get_worker().address, "worker_host": socket.gethostname()}
    try:
        board = boards.from_spec(spec, Path(source))
        lock = Lock(f"{RESOURCE}:{board.name}")
        if not lock.acquire(timeout=LOCK_WAIT_S):
            raise DeployError(f"board {board.name}: another fleet run has held it for {LOCK_WAIT_S} s")
        try:
            check_credentials(board)
            bundle = _materialize(shipment, data)
            result, output = on_board(args, lines.append, board, engine, bundle)
        finally:
            lock.release()
        row.update(status="ok", result=result, output=output)
    except UserError as err:  # DeployError is one: one line that names the board and what went wrong
        row.update(status="failed", kind=fault_kind(str(err)), error=str(err))
    except (OSError, EOFError) as err:  # anything deploy did not put in words yet is still only this board's
        row.update(status="failed", kind="error", error=f"board {spec.get('name')}: {type(err).__name__}: {err}")
    row.update(seconds=round(time.monotonic() - started, 3), log=lines[-20:])
    return row


# -- the host's part -------------------------------------------------------------------------------------------

def host_reference(engine: build.Engine, bundle: Bundle) -> np.ndarray:
    """What the engine's output must equal: the model's YAML graph run by PyTorch (neoncc's reference, not the
    engine) on the build's own weights (the trained .npz, or the same seeded random ones) and the bundle's input."""
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.reference import torch_graph
    from neoncc.weights.pack import load_npz, random_weights

    graph = load_yaml_model(engine.yaml)
    manifest = engine.manifest
    weights = random_weights(graph, int(manifest.get("seed") or 0)) if engine.weights_random else \
        load_npz(graph, Path(manifest["weights"]))
    path = next(f.path for f in bundle.files if f.name == "input.f32")
    inputs = np.fromfile(path, "<f4").reshape(-1, *engine.input_shape)
    return torch_graph.run(graph, weights, inputs)


def agreement(output: np.ndarray, reference: np.ndarray, precision: str) -> dict:
    from neoncc.tools.validate import compare

    metrics = compare(output.reshape(reference.shape[0], -1), reference)
    same = metrics.top1_agreement == 1.0 and metrics.top5_agreement == 1.0
    agrees = same and (precision != "float32" or metrics.max_abs_error <= MAX_ABS_ERROR)
    return {"agrees": bool(agrees), "top1": metrics.top1_agreement, "top5": metrics.top5_agreement,
            "max_abs_error": metrics.max_abs_error, "cosine": metrics.cosine_similarity,
            "max_abs_limit": MAX_ABS_ERROR if precision == "float32" else None}


def default_timeout(fleet: list[boards.Board], args) -> float:
    """How long the host waits for the slowest board: a boot, a connection, a generous upload, the run's limit."""
    def one(board: boards.Board) -> float:
        boot = board.emulator.get("boot_timeout_s", 180) if board.emulator else 0
        run = args.timeout if args.timeout is not None else board.run_timeout_s
        return boot + 4 * board.connect_timeout_s + run + 300
    return max(one(b) for b in fleet)


def run_fleet(args, log) -> tuple[dict, int]:
    """The fleet's JSON document, and the exit status (1 when any board failed)."""
    from distributed import wait

    from deploy.cli import _check_args, prepare
    from neoncc import cluster

    started = time.monotonic()
    if args.output is not None:
        raise DeployError("--output is for one board; with --fleet each board's top-5 and its agreement with the "
                          "host reference are in the table and the JSON")
    if args.workers is not None and args.workers < 1:
        raise DeployError(f"--workers must be at least 1, not {args.workers}")
    if args.fleet_timeout is not None and not (math.isfinite(args.fleet_timeout) and args.fleet_timeout > 0):
        raise DeployError(f"--fleet-timeout must be a number of seconds above 0, not {args.fleet_timeout}")
    _check_args(args)
    name, fleet = load_fleet(args.fleet)
    targets = {b.name: target_of(b) for b in fleet}
    rows: dict[str, dict] = {b.name: {"board": b.name, "arch": b.arch, "target": targets[b.name]} for b in fleet}
    for b in fleet:
        if targets[b.name] is None:
            rows[b.name].update(status="failed", kind="wrong architecture",
                                error=f"board {b.name}: no target for arch {b.arch} (no toolchains/*.yaml lists it "
                                      "in uname_machine)")
    todo = [b for b in fleet if "status" not in rows[b.name]]
    builds: dict[str, dict] = {}
    timeout = args.fleet_timeout or default_timeout(fleet, args)
    workers = args.workers or max(1, min(len(todo), os.cpu_count() or 1))
    slots = max(1, math.ceil(len(todo) / workers))
    t0 = time.monotonic()
    # The cluster first: an unreachable scheduler is said before anything is built.
    with cluster.client(args.scheduler, workers=workers, threads_per_worker=slots, resources={RESOURCE: slots},
                        log=log) as client, build.workdir() as work:
        cluster_info = {"scheduler": client.scheduler.address, "local": cluster.address_from(args.scheduler) is None,
                        "workers": len(client.scheduler_info()["workers"]), "start_s": round(time.monotonic() - t0, 3)}
        if todo and not cluster.workers_offering(client, RESOURCE):
            raise DeployError(f"scheduler {cluster_info['scheduler']}: no worker offers the resource {RESOURCE}, "
                              f"so no board task could start; start workers with `dask worker ADDRESS "
                              f"--resources {RESOURCE}=N` (N: how many boards one worker drives at once)")
        prepared = {}
        for target in sorted({targets[b.name] for b in todo}):
            t0 = time.monotonic()
            engine, bundle = prepare(args, log, work / target, target)
            reference = host_reference(engine, bundle)
            prepared[target] = engine, bundle, reference
            builds[target] = {"bundle": bundle.id, "files": len(bundle.files), "bytes": bundle.size,
                              "build_id": engine.manifest.get("build_id"), "weights_random": engine.weights_random,
                              "seconds": round(time.monotonic() - t0, 3)}
        t0 = time.monotonic()
        data = {target: client.scatter(contents(bundle), broadcast=True)
                for target, (_, bundle, _) in prepared.items()}
        cluster_info["scatter_s"] = round(time.monotonic() - t0, 3)
        futures = {}
        for b in todo:
            engine, bundle, _ = prepared[targets[b.name]]
            futures[b.name] = client.submit(board_task, b.spec, str(b.source), args, engine, Shipment.of(bundle),
                                            data[targets[b.name]], resources={RESOURCE: 1}, pure=False,
                                            key=f"board-{b.name}-{os.urandom(4).hex()}")
        log(f"fleet {name}: {len(futures)} board tasks submitted")
        try:
            done, not_done = wait(list(futures.values()), timeout=timeout, return_when="ALL_COMPLETED") \
                if futures else (set(), set())
        except KeyboardInterrupt:
            client.cancel(list(futures.values()), force=True)
            raise
        except TimeoutError:
            done = {f for f in futures.values() if f.done()}
            not_done = {f for f in futures.values() if not f.done()}
        for board_name, future in futures.items():
            row = rows[board_name]
            if future in not_done:
                future.cancel(force=True)
                row.update(status="failed", kind="timeout",
                           error=f"board {board_name}: no answer from its worker within {timeout:.0f} s "
                                 "(--fleet-timeout)")
                continue
            try:
                answer = future.result()
            except Exception as err:  # the task itself died (its worker too, more than the retries allow)
                row.update(status="failed", kind="worker lost", error=f"board {board_name}: {type(err).__name__}: {err}")
                continue
            output = answer.pop("output", None)
            row.update(answer)
            if row["status"] == "ok":
                row["agreement"] = agreement(output, prepared[row["target"]][2], args.precision)
                log(f"fleet: board {board_name}: ok in {row['seconds']:.1f} s"
                    f"{'' if row['agreement']['agrees'] else ' but DISAGREES with the host reference'}")
            else:
                log(f"fleet: board {board_name}: {row['kind']}: {row['error']}")
    ordered = [rows[b.name] for b in fleet]
    for row in ordered:
        if row["status"] == "ok" and not row["agreement"]["agrees"]:
            row.update(status="disagrees", kind="wrong result",
                       error=f"board {row['board']}: its output differs from the host reference (max abs error "
                             f"{row['agreement']['max_abs_error']:.3g}, top-1 {row['agreement']['top1']:.2f})")
    failed = [r for r in ordered if r["status"] != "ok"]
    document = {
        "schema_version": SCHEMA_VERSION,
        "fleet": name,
        "fleet_file": str(args.fleet),
        "model": Path(build.model_yaml(args.model)).stem,
        "precision": args.precision,
        "reference": "PyTorch (neoncc.reference.torch_graph) on the build's weights and the bundle's input",
        "builds": builds,
        "cluster": cluster_info if todo else None,
        "boards": [_summary(r) for r in ordered],
        "ok": len(ordered) - len(failed),
        "failed": len(failed),
        "seconds": round(time.monotonic() - started, 3),
    }
    return document, 1 if failed else 0


def _summary(row: dict) -> dict:
    """A board's row of the JSON document: the columns of the table, then deploy's own full result."""
    result = row.get("result") or {}
    times = result.get("times_ms") or []
    return {
        "board": row["board"], "arch": (result.get("board_info") or {}).get("arch", row.get("arch")),
        "target": row.get("target"), "status": row["status"], "kind": row.get("kind"), "error": row.get("error"),
        "top5": result.get("top5"), "agreement": row.get("agreement"),
        "median_ms": statistics.median(times) if times else None,
        "peak_memory_kb": result.get("peak_memory_kb"),
        "upload": result.get("upload"), "phases_s": result.get("phases_s"),
        "worker": row.get("worker"), "worker_host": row.get("worker_host"), "seconds": row.get("seconds"),
        "log": row.get("log", []), "result": result or None,
    }


def format_table(doc: dict) -> str:
    lines = [f"fleet {doc['fleet']}: {doc['model']} ({doc['precision']}) on {len(doc['boards'])} boards, "
             f"{doc['ok']} ok, {doc['failed']} failed, {doc['seconds']:.1f} s"]
    for target, b in doc["builds"].items():
        lines.append(f"  build {target}: bundle {b['bundle']}, {b['files']} files, {b['bytes'] / 2**20:.1f} MiB"
                     + ("; weights RANDOM: the top-5 is not a classification" if b["weights_random"] else ""))
    if doc["cluster"]:
        c = doc["cluster"]
        lines.append(f"  cluster: {'local ' if c['local'] else ''}{c['scheduler']}, {c['workers']} workers")
    header = f"{'board':<16} {'arch':<8} {'top-5 classes':<26} {'agrees':<7} {'median ms':>10} {'peak RSS':>10}  status"
    lines += ["", header]
    for r in doc["boards"]:
        top5 = " ".join(str(row[0]) for row in r["top5"]) if r["top5"] else "-"
        agrees = "-" if r["agreement"] is None else ("yes" if r["agreement"]["agrees"] else "NO")
        median = f"{r['median_ms']:.1f}" if r["median_ms"] is not None else "-"
        rss = f"{r['peak_memory_kb'] / 1024:.1f} MiB" if r["peak_memory_kb"] is not None else "-"
        status = "ok" if r["status"] == "ok" else f"{r['status']} ({r['kind']}): {r['error']}"
        lines.append(f"{r['board']:<16} {r['arch'] or '-':<8} {top5:<26} {agrees:<7} {median:>10} {rss:>10}  {status}")
    if any(r["median_ms"] is not None for r in doc["boards"]) and any(
            (r["result"] or {}).get("emulated") for r in doc["boards"]):
        lines.append("(times of emulated boards are emulated times, not those of real boards)")
    return "\n".join(lines)
