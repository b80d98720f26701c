"""The model zoo (bench/zoo.py): common embedded CNNs from pytorchcv, an independent PyTorch model library, with
seeded random weights and batch-norm statistics, exported by torch.onnx.export and imported.

All 13 architectures are imported and checked on the host (neoncc's PyTorch interpreter of the imported description
against ONNX Runtime on the .onnx file), at 64x64; three of them, covering depthwise convolutions, hard-swish,
squeeze-excitation, channel shuffle, channel slices and standalone batch normalization, are built and run under
qemu-arm, and MobileNet v3-small on an emulated board through deploy's flow. `python3 -m bench zoo` runs the
whole set on qemu-arm at 224x224, `--board NAME` on a board too (docs/zoo.md)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytorchcv", reason="pytorchcv: scripts/setup --tests installs it (requirements-nodeps.txt)")

from bench.zoo import ZOO, agreement, export, import_onnx, model_name, onnx_runtime  # noqa: E402
from conftest import build, infer  # noqa: E402
from neoncc.frontend.yaml_model import load_yaml_model  # noqa: E402
from neoncc.reference import torch_graph  # noqa: E402

ON_QEMU = {"MobileNet v3-small": 96, "ShuffleNet v2": 96, "DenseNet-121": 64}


def imported(arch: str, size: int, work, dynamo: bool = True):
    x = export(arch, work / f"{ZOO[arch][1]}.onnx", size, dynamo=dynamo)
    expected = onnx_runtime(work / f"{ZOO[arch][1]}.onnx", x)
    assert np.count_nonzero(expected) > expected.size // 2 and expected.std() > 0.05 * np.abs(expected).max(), \
        "reference logits are mostly zero or flat: the comparison would be too weak"
    yaml_path, npz = import_onnx(arch, work / f"{ZOO[arch][1]}.onnx", work)
    return x, expected, yaml_path, npz


def check(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    found = agreement(actual, expected)
    print(f"\n{what}: max abs {found['max_abs']:.3g}, relative to the largest logit {found['max_rel']:.3g}")
    assert found["max_rel"] <= 1e-4, found
    assert found["same_argmax"]


@pytest.mark.parametrize("arch", list(ZOO))
def test_imports_and_matches_onnx_runtime_on_the_host(arch, tmp_path):
    x, expected, yaml_path, npz = imported(arch, 64, tmp_path)
    with np.load(npz) as weights:
        actual = np.asarray(torch_graph.run(load_yaml_model(yaml_path), dict(weights), x)[0]).ravel()
    check(actual, expected, f"{arch} 64x64, host interpreter")


@pytest.mark.parametrize("arch", ["ShuffleNet v2", "MobileNet v3-small", "MnasNet"])
def test_torchscript_exporter_imports_too(arch, tmp_path):
    """The older TorchScript exporter (dynamo=False) computes reshape targets with Shape/Gather/Concat nodes and
    leaves some shapes to data propagation; same networks, same check."""
    x, expected, yaml_path, npz = imported(arch, 64, tmp_path, dynamo=False)
    with np.load(npz) as weights:
        actual = np.asarray(torch_graph.run(load_yaml_model(yaml_path), dict(weights), x)[0]).ravel()
    check(actual, expected, f"{arch} 64x64 (TorchScript exporter), host interpreter")


@pytest.mark.parametrize("arch", list(ON_QEMU))
def test_engine_under_qemu_matches_onnx_runtime(arch, tmp_path, tmp_path_factory):
    x, expected, yaml_path, npz = imported(arch, ON_QEMU[arch], tmp_path)
    binary = build(yaml_path, tmp_path_factory.getbasetemp() / "zoo-builds", npz, "tuning=none")
    actual, _ = infer(binary, x[0], tmp_path)
    check(actual, expected, f"{arch} {ON_QEMU[arch]}x{ON_QEMU[arch]}, engine under qemu-arm")


def test_descriptions_use_the_engines_layer_kinds(tmp_path):
    """The exporters' spellings become one layer each: hard-swish, hard-sigmoid, depthwise convolutions, channel
    shuffles, channel slices, fully connected layers."""
    kinds = {}
    for arch in ("MobileNet v3-small", "ShuffleNet v2", "EfficientNet-B0"):
        onnx_path = tmp_path / f"{ZOO[arch][1]}.onnx"
        export(arch, onnx_path, 64)
        yaml_path, _ = import_onnx(arch, onnx_path, tmp_path)
        kinds[arch] = [n.op for n in load_yaml_model(yaml_path).nodes]
        assert model_name(arch) in yaml_path.name
    assert kinds["MobileNet v3-small"].count("hardswish") >= 10 and "hardsigmoid" in kinds["MobileNet v3-small"]
    assert "affine" not in kinds["MobileNet v3-small"] and "relu6" not in kinds["MobileNet v3-small"]
    assert kinds["ShuffleNet v2"].count("channel_shuffle") == 16 and "slice" in kinds["ShuffleNet v2"]
    assert "fc" in kinds["ShuffleNet v2"]
    # EfficientNet's x * sigmoid(x): the reader expands `swish` into sigmoid and mul; squeeze-excitation muls too.
    yaml_text = (tmp_path / f"{model_name('EfficientNet-B0')}.yaml").read_text()
    assert yaml_text.count("type: swish") >= 40


def test_engine_on_the_emulated_board_matches_onnx_runtime(tmp_path):
    """`python3 -m bench zoo --board NAME`'s route for one model: deploy.py's flow (build, bundle, upload, run with
    the board's 4 cores) on a private emulated board booted for this test, the board's output against ONNX
    Runtime."""
    from bench.zoo import on_board
    from deploy import testing
    arch = "MobileNet v3-small"
    x, expected, yaml_path, npz = imported(arch, 96, tmp_path)
    x[0].astype("<f4").tofile(tmp_path / "input.f32")
    path = testing.board_file(tmp_path, "pytest-zoo-board")
    with testing.running_board(path):
        output, result = on_board(str(path), yaml_path, npz, tmp_path / "input.f32", tmp_path)
    assert result["emulated"] and result["board"] == "pytest-zoo-board" and result["threads"] == 4
    assert not result["weights_random"]
    check(output, expected, f"{arch} 96x96, engine on the emulated board")
