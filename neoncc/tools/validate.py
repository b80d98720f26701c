"""Validation on target, as STM32Cube.AI validates: K inputs through the engine on a board (or under qemu-arm)
and through the host reference (the YAML graph executed by PyTorch), compared with error metrics, failing when
they exceed set limits."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.targets import toolchain
from neoncc.tools.preprocess import image_to_tensor, random_inputs
from neoncc.weights.pack import load_npz, random_weights

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"}


@dataclass
class Metrics:
    inputs: int
    max_abs_error: float
    l2_relative_error: float  # worst input: ||engine - reference|| / ||reference||
    cosine_similarity: float  # worst input
    top1_agreement: float  # fraction of inputs with the same top-1 class
    top5_agreement: float  # fraction of inputs with the same set of top-5 classes

    def failures(self, limits: dict) -> list[str]:
        checks = [("max_abs_error", self.max_abs_error <= limits["max_abs"], "<=", limits["max_abs"]),
                  ("l2_relative_error", self.l2_relative_error <= limits["max_l2r"], "<=", limits["max_l2r"]),
                  ("cosine_similarity", self.cosine_similarity >= limits["min_cosine"], ">=", limits["min_cosine"]),
                  ("top1_agreement", self.top1_agreement >= limits["min_top1"], ">=", limits["min_top1"])]
        return [f"{name} {getattr(self, name):.6g} (limit {op} {limit:g})" for name, ok, op, limit in checks if not ok]


def compare(outputs: np.ndarray, reference: np.ndarray) -> Metrics:
    a, b = outputs.astype(np.float64), reference.astype(np.float64)
    l2r = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-30)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    k = min(5, a.shape[1])
    top5 = [set(np.argsort(-x)[:k]) == set(np.argsort(-y)[:k]) for x, y in zip(a, b)]
    return Metrics(len(a), float(np.abs(a - b).max()), float(l2r.max()), float(cosine.min()),
                   float((a.argmax(1) == b.argmax(1)).mean()), float(np.mean(top5)))


def load_inputs(args, graph) -> np.ndarray:
    if args.images:
        files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{args.images}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return np.stack([image_to_tensor(args.model, f) for f in files])
    if args.inputs:
        data = np.fromfile(args.inputs, "<f4")
        size = int(np.prod(graph.input_shape))
        if data.size == 0 or data.size % size:
            raise UserError(f"{args.inputs}: {data.size} float32 values is not a whole number of "
                            f"{'x'.join(map(str, graph.input_shape))} inputs")
        return data.reshape(-1, *graph.input_shape)
    return random_inputs(graph, args.random, args.seed)


def _target(args) -> str:
    return getattr(args, "target", None) or toolchain.default_target()


def _where(args) -> str:
    return f"board {args.board}" if args.board else toolchain.load(_target(args)).spec["qemu_user"]


def run_on_qemu(args, batch: Path, output: Path) -> None:
    from deploy.build import build_engine  # the same build deploy.py does
    # without --weights the reference runs the seeded random weights, so the engine must have them too
    engine = build_engine(Path(args.model).resolve(), args.weights, log=lambda line: None,
                          random_weights=args.weights is None, target=_target(args))
    target = toolchain.load(engine.manifest["target"])
    proc = subprocess.run([*target.runner(), str(engine.binary), "--input", str(batch), "--output", str(output),
                           "--threads", str(args.threads or 1), "--runs", "1", "--warmup", "0"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"the engine failed under {target.spec['qemu_user']}: {proc.stderr.strip()}")


def run_on_board(args, batch: Path, output: Path) -> None:
    from deploy.cli import deploy, parse_args  # the whole push-and-run flow of deploy.py, with its defaults
    argv = ["--board", args.board, "--model", str(Path(args.model).resolve()), "--input", str(batch),
            "--output", str(output), "--runs", "1", "--warmup", "0", "--json"]
    argv += ["--weights", str(args.weights)] if args.weights else ["--random-weights"]
    argv += ["--threads", str(args.threads)] if args.threads else []
    deploy(parse_args(argv), log=lambda line: None)


def validate(args) -> tuple[Metrics, list[str]]:
    graph = load_yaml_model(args.model)
    weights = load_npz(graph, args.weights) if args.weights else random_weights(graph, 0)
    inputs = load_inputs(args, graph)
    progress = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    progress(f"validate: PyTorch reference on {len(inputs)} input(s)")
    from neoncc.reference import torch_graph  # PyTorch only where the reference is computed
    reference = torch_graph.run(graph, weights, inputs)
    progress(f"validate: building the engine and running it on {_where(args)}")
    with tempfile.TemporaryDirectory(prefix="neoncc-validate-") as work:
        batch, output = Path(work) / "inputs.f32", Path(work) / "outputs.f32"
        inputs.astype("<f4").tofile(batch)
        (run_on_board if args.board else run_on_qemu)(args, batch, output)
        outputs = np.fromfile(output, "<f4").reshape(len(inputs), -1)
    metrics = compare(outputs, reference)
    limits = {"max_abs": args.max_abs, "max_l2r": args.max_l2r, "min_cosine": args.min_cosine,
              "min_top1": args.min_top1}
    return metrics, metrics.failures(limits)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model description (YAML)")
    p.add_argument("--weights", type=Path, help="trained weights (.npz); default: the build's seeded random ones")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, help="a folder of photos, preprocessed as the YAML says")
    source.add_argument("--inputs", type=Path, help="raw float32 inputs back to back (N x C x H x W)")
    source.add_argument("--random", type=int, default=10, metavar="K", help="K random inputs (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--board", help="run on this board (configs/boards/NAME.yaml; its target follows from its arch); "
                                   "default: the target's qemu-user on the host")
    p.add_argument("--target", help="without --board: the target (toolchains/<target>.yaml) whose qemu-user runs the "
                                    f"engine (default: {toolchain.default_target()})")
    p.add_argument("--threads", type=int)
    p.add_argument("--max-abs", type=float, default=1e-4, help="limit on the max absolute error (%(default)g)")
    p.add_argument("--max-l2r", type=float, default=1e-3, help="limit on the L2 relative error (%(default)g)")
    p.add_argument("--min-cosine", type=float, default=0.9999, help="limit on cosine similarity (%(default)g)")
    p.add_argument("--min-top1", type=float, default=1.0, help="limit on top-1 agreement (%(default)g)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr (results stay on stdout)")


def main(args) -> int:
    metrics, failures = validate(args)
    where = _where(args)
    if args.json:
        print(json.dumps({"schema_version": 1, "model": Path(args.model).stem, "on": where, **asdict(metrics), "failures": failures}))
    else:
        print(f"{Path(args.model).stem} on {where} vs PyTorch reference, {metrics.inputs} inputs:")
        for name, value in asdict(metrics).items():
            if name != "inputs":
                print(f"  {name:<18} {value:.6g}")
        print("  FAIL: " + "; ".join(failures) if failures else "  PASS")
    return 1 if failures else 0
