"""ONNX import: torchvision-layout SqueezeNets (tests/torchvision_layout.py, seeded weights) exported here by
torch.onnx.export, with both of PyTorch's exporters; the imported model must compute what ONNX Runtime computes
from the same .onnx file. 1.1 (TorchScript exporter) runs under qemu-arm; 1.0 (torch.export exporter, PyTorch's
default) is checked on the host with neoncc's PyTorch interpreter of the imported description."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from conftest import ROOT
from import_helpers import assert_logits_agree, engine_output, refused, run_import, yaml_layers
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.reference import torch_graph
from torch_reference import make_model
from torchvision_layout import torchvision_model


@pytest.fixture(scope="module")
def sample_224() -> np.ndarray:
    return np.random.default_rng(9).normal(0.0, 1.0, (1, 3, 224, 224)).astype(np.float32)


def export(version: str, seed: int, sample: np.ndarray, path, dynamo: bool) -> np.ndarray:
    """Writes the .onnx file (batch left free, as usually exported) and returns ONNX Runtime's logits for
    `sample`, after checking they are PyTorch's."""
    model = torchvision_model(make_model(version, seed=seed, sample=torch.from_numpy(sample)), version)
    x = torch.from_numpy(sample)
    if dynamo:
        torch.onnx.export(model, (x,), path, dynamo=True, input_names=["data"], output_names=["logits"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=8)}}, verbose=False)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, input_names=["data"], output_names=["logits"],
                          dynamic_axes={"data": {0: "batch"}, "logits": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"data": sample})[0][0]
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x)[0].numpy(), rtol=1e-4, atol=1e-5)  # the export is right
    return logits


@pytest.fixture(scope="module")
def onnx_v1_1(tmp_path_factory, sample_224):
    work = tmp_path_factory.mktemp("onnx")
    expected = export("1_1", 51, sample_224, work / "squeezenet1_1.onnx", dynamo=False)
    yaml, npz = work / "onnx_squeezenet_v1_1.yaml", work / "onnx_squeezenet_v1_1.npz"
    run_import("onnx", work / "squeezenet1_1.onnx", "-o", yaml, "--weights-out", npz, "--preprocess", "torchvision")
    return expected, work, yaml, npz


def test_engine_matches_onnx_runtime(onnx_v1_1, tmp_path_factory, sample_224):
    expected, _, yaml, npz = onnx_v1_1
    logits = engine_output(tmp_path_factory, yaml, npz, sample_224[0])
    assert_logits_agree(logits, expected, "onnx v1.1 (TorchScript exporter), engine under qemu-arm")


def test_description_has_fire_modules_and_module_names(onnx_v1_1):
    _, _, yaml, _ = onnx_v1_1
    text = yaml.read_text()
    assert text.startswith("# Imported from ONNX: ") and "(opset " in text.splitlines()[0]
    assert "input: {name: data, shape: [3, 224, 224]}" in text
    assert "channel_order: RGB, mean: [123.675, 116.28, 103.53]" in text
    layers = yaml_layers(yaml)
    assert layers[:4] == [
        "  - {name: features.0, type: conv, filters: 64, kernel: 3, stride: 2, activation: relu}",
        "  - {name: features.2, type: maxpool, kernel: 3, stride: 2, rounding: ceil, ceil_rule: onnx}",
        "  - {name: features.3, type: fire, squeeze: 16, expand: 64}",
        "  - {name: features.4, type: fire, squeeze: 16, expand: 64}"]
    assert layers[-2:] == ["  - {name: classifier.1, type: conv, filters: 1000, kernel: 1, activation: relu}",
                           "  - {name: classifier.3, type: global_avgpool}"]
    assert sum("type: fire" in line for line in layers) == 8


def test_v1_0_from_the_default_exporter_matches_onnx_runtime(tmp_path, sample_224):
    """torch.export's graph spells global pooling as ReduceMean and flattening as Reshape; same network."""
    expected = export("1_0", 52, sample_224, tmp_path / "squeezenet1_0.onnx", dynamo=True)
    yaml, npz = tmp_path / "v10.yaml", tmp_path / "v10.npz"
    run_import("onnx", tmp_path / "squeezenet1_0.onnx", "-o", yaml, "--weights-out", npz)
    types = [line.split("type: ")[1].split(",")[0].rstrip("}") for line in yaml_layers(yaml)]
    assert types == ["conv", "maxpool", "fire", "fire", "fire", "maxpool", "fire", "fire", "fire", "fire",
                     "maxpool", "fire", "conv", "global_avgpool"]
    with np.load(npz) as weights:
        actual = torch_graph.run(load_yaml_model(yaml), dict(weights), sample_224)[0]
    assert_logits_agree(actual, expected, "onnx v1.0 (torch.export exporter), host interpreter")


def _edited(source, target, edit) -> None:
    model = onnx.load(source)
    edit(model)
    onnx.save(model, target)


def _node(model, name):
    return next(node for node in model.graph.node if node.name == name)


def _replace_op(model, name, op_type):
    _node(model, name).op_type = op_type


def _concat_axis(model, name, axis):
    next(a for a in _node(model, name).attribute if a.name == "axis").i = axis


def _free_height(model):
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"


@pytest.mark.parametrize("edit, message", [
    (lambda m: _replace_op(m, "/features/features.1/Relu", "Elu"),
     "node '/features/features.1/Relu' (Elu): this operator is not supported"),
    (lambda m: _concat_axis(m, "/features/features.4/Concat", 2),
     "node '/features/features.4/Concat' (Concat): concatenation along axis 2 of a 4-D tensor is not supported"),
    (_free_height, "input 'data' has shape ['?', 3, '?', 224]; give a fixed C,H,W with --input-shape"),
])
def test_refusals_name_the_file_and_node(onnx_v1_1, tmp_path, capsys, edit, message):
    _, work, _, _ = onnx_v1_1
    _edited(work / "squeezenet1_1.onnx", tmp_path / "bad.onnx", edit)
    err = refused(capsys, "onnx", tmp_path / "bad.onnx", "-o", tmp_path / "bad.yaml", "--weights-out",
                  tmp_path / "bad.npz")
    assert f"{tmp_path / 'bad.onnx'}: {message}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"], "nothing half-written"


def test_free_input_size_imports_with_an_input_shape(onnx_v1_1, tmp_path):
    _, work, yaml, _ = onnx_v1_1
    _edited(work / "squeezenet1_1.onnx", tmp_path / "free.onnx", _free_height)
    run_import("onnx", tmp_path / "free.onnx", "--input-shape", "3,224,224", "-o", tmp_path / "free.yaml",
               "--weights-out", tmp_path / "free.npz", "--preprocess", "torchvision")
    assert yaml_layers(tmp_path / "free.yaml") == yaml_layers(yaml)


def test_refuses_a_file_that_is_not_onnx(tmp_path, capsys):
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff\xff\xff not protobuf")
    err = refused(capsys, "onnx", tmp_path / "junk.onnx", "-o", tmp_path / "m.yaml", "--weights-out",
                  tmp_path / "m.npz")
    assert "junk.onnx: not an ONNX model" in err
    assert not (tmp_path / "m.yaml").exists() and not (tmp_path / "m.npz").exists()


def test_refuses_an_output_folder_that_does_not_exist(onnx_v1_1, tmp_path, capsys):
    _, work, _, _ = onnx_v1_1
    err = refused(capsys, "onnx", work / "squeezenet1_1.onnx", "-o", tmp_path / "m.yaml", "--weights-out",
                  tmp_path / "missing" / "m.npz")
    assert f"{tmp_path / 'missing' / 'm.npz'}: no such directory: {tmp_path / 'missing'}" in err
    assert not (tmp_path / "m.yaml").exists()


def test_an_import_named_like_a_tuned_model_builds_with_a_note(onnx_v1_1, tmp_path, capsys):
    """The shipped tuning file of squeezenet_v1_1 names Caffe's layers; an import saved as squeezenet_v1_1.yaml
    has torchvision's. The file's fingerprint tells them apart: a note and the default methods, not a failure."""
    from neoncc.pipeline import lowered_graph
    _, work, yaml, npz = onnx_v1_1
    renamed = tmp_path / "squeezenet_v1_1.yaml"
    renamed.write_text(yaml.read_text().replace("name: onnx_squeezenet_v1_1", "name: squeezenet_v1_1"))
    tuning = ROOT / "configs/tuning/armv7/squeezenet_v1_1.yaml"
    capsys.readouterr()
    graph = lowered_graph(renamed, npz, 0, "armv7", tuning)
    assert "was measured on another model" in capsys.readouterr().err
    assert not any(node.attrs.get("method") for node in graph.nodes)
    tuned = lowered_graph(ROOT / "configs/models/squeezenet_v1_1.yaml", None, 0, "armv7", tuning)
    assert "another model" not in capsys.readouterr().err
    assert any(node.attrs.get("method") for node in tuned.nodes)
