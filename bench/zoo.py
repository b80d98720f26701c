"""The model zoo: 13 common embedded CNNs from an independent PyTorch model library (pytorchcv), with seeded random
weights and batch-norm statistics, exported by `torch.onnx.export` (PyTorch's default exporter), imported with
`neoncc import onnx`, built, run under qemu-arm and compared with ONNX Runtime on the same .onnx file.

`python3 -m bench zoo` runs all 13 at 224x224 (or `--size`, `--models`), counts each engine's guest instructions per
inference and writes results/zoo.md and results/zoo.json; tests/test_zoo.py runs a few at small sizes. With
`--board NAME` each engine also goes to that board the way deploy.py sends it (deploy.cli: build, bundle, upload,
run with the board's cores), and the board's output is checked against ONNX Runtime too: on the emulated board
(configs/boards/emulated.yaml) that is the full system emulation, a real kernel, the statically linked engine and
the board's 4 threads, rather than qemu-arm's user mode. `--board-only` skips the qemu-arm run and its count.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neoncc import PROJECT_ROOT

# Architecture -> (pytorchcv module, constructor).
ZOO = {
    "SqueezeNet 1.0": ("squeezenet", "squeezenet_v1_0"),
    "SqueezeNet 1.1": ("squeezenet", "squeezenet_v1_1"),
    "SqueezeResNet 1.1": ("squeezenet", "squeezeresnet_v1_1"),
    "MobileNet v1": ("mobilenet", "mobilenet_w1"),
    "MobileNet v2": ("mobilenetv2", "mobilenetv2_w1"),
    "MobileNet v3-small": ("mobilenetv3", "mobilenetv3_small_w1"),
    "ResNet-18": ("resnet", "resnet18"),
    "ShuffleNet v2": ("shufflenetv2", "shufflenetv2_w1"),
    "MnasNet": ("mnasnet", "mnasnet_b1"),
    "EfficientNet-B0": ("efficientnet", "efficientnet_b0"),
    "EfficientNet-EdgeTPU-S": ("efficientnetedge", "efficientnet_edge_small_b"),
    "GhostNet": ("ghostnet", "ghostnet"),
    "DenseNet-121": ("densenet", "densenet121"),
}


def make_model(arch: str, size: int = 224, seed: int = 0):
    """The library's model with seeded random weights and random batch-norm statistics (so that batch
    normalization is not the identity), in eval mode. Below 224x224, the final fixed-size average pooling
    (7x7 or 13x13 in the library) is shrunk to the feature map it sees."""
    import torch
    module, constructor = ZOO[arch]
    torch.manual_seed(seed)
    model = getattr(importlib.import_module(f"pytorchcv.models.{module}"), constructor)(pretrained=False)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                n = layer.num_features
                layer.weight.copy_(torch.rand(n, generator=generator) * 0.8 + 0.6)
                layer.bias.copy_(torch.randn(n, generator=generator) * 0.2)
                layer.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    model.eval()
    hooks = []

    def fit(pool, inputs):
        if pool.stride in (1, (1, 1)) and pool.kernel_size not in (inputs[0].shape[-1], (inputs[0].shape[-1],) * 2):
            pool.kernel_size = int(inputs[0].shape[-1])

    for layer in model.modules():
        if isinstance(layer, torch.nn.AvgPool2d):
            hooks.append(layer.register_forward_pre_hook(fit))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return model


def export(arch: str, path: Path, size: int = 224, seed: int = 0, dynamo: bool = True) -> np.ndarray:
    """Writes the .onnx file (PyTorch's default exporter, or with dynamo=False the TorchScript one) and returns a
    seeded input (1, 3, size, size)."""
    import torch
    model = make_model(arch, size, seed)
    x = torch.from_numpy(np.random.default_rng(seed).normal(0, 1, (1, 3, size, size)).astype(np.float32))
    extra = {} if dynamo else {"dynamo": False, "opset_version": 13}
    torch.onnx.export(model, (x,), str(path), input_names=["data"], output_names=["logits"], verbose=False, **extra)
    return x.numpy()


def onnx_runtime(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0].ravel()


def model_name(arch: str) -> str:
    return "zoo_" + ZOO[arch][1]


def import_onnx(arch: str, onnx_path: Path, work: Path) -> tuple[Path, Path]:
    """`neoncc import onnx`, exactly as a user runs it."""
    from neoncc.__main__ import main
    yaml_path, npz = work / f"{model_name(arch)}.yaml", work / f"{model_name(arch)}.npz"
    if main(["import", "onnx", str(onnx_path), "-o", str(yaml_path), "--weights-out", str(npz),
             "--preprocess", "torchvision"]) != 0:
        raise AssertionError(f"{arch}: import refused")
    return yaml_path, npz


def agreement(actual: np.ndarray, expected: np.ndarray) -> dict:
    diff = np.abs(actual.astype(np.float64) - expected)
    scale = float(np.abs(expected).max())
    return {"max_abs": float(diff.max()), "largest_logit": scale, "max_rel": float(diff.max() / scale),
            "same_argmax": int(np.argmax(actual)) == int(np.argmax(expected))}


@dataclass
class Row:
    arch: str
    size: int
    layers: int
    max_abs: float | None = None
    max_rel: float | None = None
    same_argmax: bool | None = None
    instructions: int | None = None
    error: str | None = None
    board: str | None = None            # with --board: where it also ran, and how its output compared
    board_max_abs: float | None = None
    board_max_rel: float | None = None
    board_same_argmax: bool | None = None
    board_threads: int | None = None
    board_error: str | None = None
    qemu: bool = True                    # run under qemu-arm too (--board-only: on the board alone)

    @property
    def passed(self) -> bool:
        ok = self.error is None and (not self.qemu or (self.same_argmax and self.max_rel is not None
                                                        and self.max_rel <= 1e-4))
        return bool(ok and (self.board is None or self.board_passed))

    @property
    def board_passed(self) -> bool:
        return self.board_error is None and bool(self.board_same_argmax) and self.board_max_rel is not None \
            and self.board_max_rel <= 1e-4


def on_board(board: str, yaml_path: Path, npz: Path, tensor: Path, work: Path, log=print) -> tuple[np.ndarray, dict]:
    """deploy.py's flow for one engine on a board (built as deploy builds it, with these weights and this input):
    the board's raw output and deploy's result."""
    from deploy import cli
    out = work / "board_output.f32"
    args = cli.parse_args(["--board", board, "--model", str(yaml_path), "--weights", str(npz), "--input",
                           str(tensor), "--output", str(out), "--runs", "1", "--warmup", "0"])
    result = cli.deploy(args, log=lambda message: None)
    return np.fromfile(out, "<f4"), result


def run_one(arch: str, size: int, work: Path, log=print, board: str | None = None, qemu: bool = True) -> Row:
    from bench.engine import build, count_engine
    from neoncc.errors import UserError
    from neoncc.frontend.yaml_model import load_yaml_model
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / f"{ZOO[arch][1]}.onnx"
    x = export(arch, onnx_path, size)
    expected = onnx_runtime(onnx_path, x)
    try:
        yaml_path, npz = import_onnx(arch, onnx_path, work)
        row = Row(arch, size, len(load_yaml_model(yaml_path).nodes), qemu=qemu)
        x[0].astype("<f4").tofile(work / "input.f32")
        if qemu:
            counted = count_engine(build(yaml_path, work / "build", npz, tuning="none"), work / "input.f32")
    except (UserError, AssertionError) as err:
        return Row(arch, size, 0, error=str(err).splitlines()[0])
    if qemu:
        found = agreement(counted.output, expected)
        row.max_abs, row.max_rel, row.same_argmax = found["max_abs"], found["max_rel"], found["same_argmax"]
        row.instructions = counted.per_inference
        log(f"{arch} {size}x{size}: max abs {row.max_abs:.3g} (relative to the largest logit {row.max_rel:.3g}), "
            f"same argmax {row.same_argmax}, {row.instructions / 1e6:.1f} M guest instructions")
    if board is not None:
        row.board = board
        try:
            output, result = on_board(board, yaml_path, npz, work / "input.f32", work, log)
        except UserError as err:  # DeployError is one
            row.board_error = str(err).splitlines()[0]
            log(f"{arch} on board {board}: {row.board_error}")
            return row
        found = agreement(output, expected)
        row.board_max_abs, row.board_max_rel = found["max_abs"], found["max_rel"]
        row.board_same_argmax, row.board_threads = found["same_argmax"], int(result["threads"])
        log(f"{arch} {size}x{size} on board {board} ({row.board_threads} threads): max abs {row.board_max_abs:.3g} "
            f"(relative {row.board_max_rel:.3g}), same argmax {row.board_same_argmax}")
    return row


def zoo(archs: list[str] | None = None, size: int = 224, log=print, board: str | None = None,
        qemu: bool = True) -> list[Row]:
    archs = archs or list(ZOO)
    unknown = [a for a in archs if a not in ZOO and a not in {c for _, c in ZOO.values()}]
    from neoncc.errors import UserError
    if not qemu and board is None:
        raise UserError("--board-only needs --board NAME")
    if unknown:
        raise UserError(f"unknown architecture(s) {', '.join(unknown)} (known: {', '.join(ZOO)})")
    by_constructor = {c: a for a, (_, c) in ZOO.items()}
    rows = []
    if board is not None:
        from deploy import boards
        from deploy.errors import DeployError
        try:
            boards.load(board)
        except DeployError as err:
            raise UserError(str(err)) from None
    with tempfile.TemporaryDirectory(prefix="neoncc-zoo-") as work:
        for arch in [by_constructor.get(a, a) for a in archs]:
            rows.append(run_one(arch, size, Path(work) / ZOO[arch][1], log, board, qemu))
    passed = sum(row.passed for row in rows)
    lines = [f"# Model zoo: {passed} of {len(rows)} architectures match ONNX Runtime ({size}x{size})", "",
             "Written by `python3 -m bench zoo` (see docs/zoo.md): pytorchcv models with seeded random weights and "
             "batch-norm statistics, exported by torch.onnx.export, imported, built for armv7 and run under qemu-arm "
             "(1 thread); compared with ONNX Runtime on the same file. Relative error: max abs difference over the "
             "largest logit.", "",
             "| architecture | layers | max abs error | relative | same argmax | guest instructions / inference |"
             + (f" board {board}: relative, same argmax |" if board else "") + " result |",
             "| --- | ---: | ---: | ---: | --- | ---: |" + (" --- |" if board else "") + " --- |"]
    for row in rows:
        on = "" if board is None else (f" {row.board_error} |" if row.board_error else " - |" if row.error else
                                       f" {row.board_max_rel:.2g}, {row.board_same_argmax} ({row.board_threads} "
                                       "threads) |")
        if row.error:
            lines.append(f"| {row.arch} | - | - | - | - | - |{on} refused: {row.error} |")
        elif not row.qemu:
            lines.append(f"| {row.arch} | {row.layers} | - | - | - | - |{on} {'pass' if row.passed else 'FAIL'} |")
        else:
            lines.append(f"| {row.arch} | {row.layers} | {row.max_abs:.2g} | {row.max_rel:.2g} | {row.same_argmax} | "
                         f"{row.instructions / 1e6:.1f} M |{on} {'pass' if row.passed else 'FAIL'} |")
    out = PROJECT_ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "zoo.md").write_text("\n".join(lines) + "\n")
    (out / "zoo.json").write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in rows], indent=1) + "\n")
    log(f"{passed} of {len(rows)} architectures pass; wrote results/zoo.md and results/zoo.json")
    return rows
