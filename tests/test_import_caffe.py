"""Caffe import: a deploy.prototxt and .caffemodel written here, in the layout of SqueezeNet's original release,
from tests/torch_reference.py's model; the imported engine must compute what that PyTorch model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from import_helpers import assert_agrees, config_layers, engine_output, refused, run_import, yaml_layers
from neoncc.frontend.caffe import proto
from torch_reference import make_model


def _caffe_layers(model) -> list[dict]:
    """The release's layers: (name, type, bottoms, top, parameters), ReLUs and dropout in place."""
    layers = [{"name": "conv1", "type": "Convolution", "bottom": "data",
               "conv": {"num_output": model.conv1.out_channels, "kernel_size": model.conv1.kernel_size[0],
                        "stride": 2}},
              {"name": "relu_conv1", "type": "ReLU", "bottom": "conv1", "top": "conv1"},
              {"name": "pool1", "type": "Pooling", "bottom": "conv1", "pool": "MAX"}]
    previous = "pool1"
    for index in range(2, 10):
        fire = getattr(model, f"fire{index}")
        squeeze, e1, e3 = (f"fire{index}/{part}" for part in ("squeeze1x1", "expand1x1", "expand3x3"))
        layers += [
            {"name": squeeze, "type": "Convolution", "bottom": previous,
             "conv": {"num_output": fire.squeeze1x1.out_channels, "kernel_size": 1}},
            {"name": f"fire{index}/relu_squeeze1x1", "type": "ReLU", "bottom": squeeze, "top": squeeze},
            {"name": e1, "type": "Convolution", "bottom": squeeze,
             "conv": {"num_output": fire.expand1x1.out_channels, "kernel_size": 1}},
            {"name": f"fire{index}/relu_expand1x1", "type": "ReLU", "bottom": e1, "top": e1},
            {"name": e3, "type": "Convolution", "bottom": squeeze,
             "conv": {"num_output": fire.expand3x3.out_channels, "pad": 1, "kernel_size": 3}},
            {"name": f"fire{index}/relu_expand3x3", "type": "ReLU", "bottom": e3, "top": e3},
            {"name": f"fire{index}/concat", "type": "Concat", "bottom": [e1, e3]}]
        previous = f"fire{index}/concat"
        if f"fire{index}" in model.pools_after:
            layers.append({"name": f"pool{index}", "type": "Pooling", "bottom": previous, "pool": "MAX"})
            previous = f"pool{index}"
    return layers + [
        {"name": "drop9", "type": "Dropout", "bottom": previous, "top": previous},
        {"name": "conv10", "type": "Convolution", "bottom": previous, "conv": {"num_output": 1000, "kernel_size": 1}},
        {"name": "relu_conv10", "type": "ReLU", "bottom": "conv10", "top": "conv10"},
        {"name": "pool10", "type": "Pooling", "bottom": "conv10", "pool": "AVE"},
        {"name": "prob", "type": "Softmax", "bottom": "pool10"}]


def _prototxt_layer(layer: dict, v1: bool) -> str:
    kind = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING", "Concat": "CONCAT",
            "Dropout": "DROPOUT", "Softmax": "SOFTMAX"}[layer["type"]] if v1 else f'"{layer["type"]}"'
    bottoms = layer["bottom"] if isinstance(layer["bottom"], list) else [layer["bottom"]]
    lines = [f'  name: "{layer["name"]}"', f"  type: {kind}", *[f'  bottom: "{b}"' for b in bottoms],
             f'  top: "{layer.get("top", layer["name"])}"']
    if "conv" in layer:  # as released: learning-rate and filler settings the importer must skip over
        lines += ["  blobs_lr: 1" if v1 else "  param { lr_mult: 1 decay_mult: 1 }",
                  "  convolution_param {", *[f"    {k}: {v}" for k, v in layer["conv"].items()],
                  '    weight_filler { type: "xavier" }', "  }"]
    if layer.get("pool") == "MAX":
        lines += ["  pooling_param { pool: MAX kernel_size: 3 stride: 2 }"]
    elif layer.get("pool") == "AVE":
        lines += ["  pooling_param { pool: AVE global_pooling: true }"]
    if layer["type"] == "Dropout":
        lines += ["  dropout_param { dropout_ratio: 0.5 }"]
    return ("layers {\n" if v1 else "layer {\n") + "\n".join(lines) + "\n}\n"


def write_caffe(model, folder, v1: bool = False, size: int = 227) -> tuple:
    """deploy.prototxt and .caffemodel of the model; V1 files use the old `layers`, net-level input and 4-D
    blob dimensions, and carry a training-only layer."""
    layers = _caffe_layers(model)
    header = 'name: "SqueezeNet"\n'
    if v1:
        header += f'input: "data"\ninput_dim: 10\ninput_dim: 3\ninput_dim: {size}\ninput_dim: {size}\n'
        tail = 'layers {\n  name: "loss"\n  type: SOFTMAX_LOSS\n  bottom: "pool10"\n  bottom: "label"\n' \
               '  top: "loss"\n  include { phase: TRAIN }\n}\n'
    else:
        header += ('layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n'
                   f'  input_param {{ shape: {{ dim: 10 dim: 3 dim: {size} dim: {size} }} }}\n}}\n')
        tail = ""
    prototxt = folder / ("deploy_v1.prototxt" if v1 else "deploy.prototxt")
    prototxt.write_text(header + "".join(_prototxt_layer(layer, v1) for layer in layers) + tail)

    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    net = proto.net_parameter()
    net.name = "SqueezeNet"
    for layer in layers:
        if layer["type"] != "Convolution":
            continue
        entry = net.layers.add() if v1 else net.layer.add()
        entry.name = layer["name"]
        if v1:
            entry.type = entry.CONVOLUTION
        else:
            entry.type = "Convolution"
        key = layer["name"].replace("/", ".")
        for array in (state[f"{key}.weight"], state[f"{key}.bias"]):
            blob = entry.blobs.add()
            if v1:  # num, channels, height, width; a bias as 1 x 1 x 1 x N
                blob.num, blob.channels, blob.height, blob.width = array.shape if array.ndim == 4 else (1, 1, 1,
                                                                                                        array.size)
            else:
                blob.shape.dim.extend(array.shape)
            blob.data.extend(array.astype(np.float32).ravel().tolist())
    caffemodel = folder / ("squeezenet_v1.caffemodel" if v1 else "squeezenet.caffemodel")
    caffemodel.write_bytes(net.SerializeToString())
    return prototxt, caffemodel


@pytest.fixture(scope="module")
def caffe_v1_0(tmp_path_factory, sample_input):
    work = tmp_path_factory.mktemp("caffe")
    model = make_model("1_0", seed=21, sample=torch.from_numpy(sample_input))
    prototxt, caffemodel = write_caffe(model, work)
    yaml, npz = work / "caffe_squeezenet_v1_0.yaml", work / "caffe_squeezenet_v1_0.npz"
    run_import("caffe", prototxt, caffemodel, "-o", yaml, "--weights-out", npz)
    return model, work, yaml, npz


def test_engine_matches_pytorch(caffe_v1_0, tmp_path_factory, sample_input):
    model, _, yaml, npz = caffe_v1_0
    probabilities = engine_output(tmp_path_factory, yaml, npz, sample_input[0])
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    assert_agrees(probabilities, expected, "caffe v1.0")


def test_description_reads_like_the_hand_written_one(caffe_v1_0):
    _, _, yaml, npz = caffe_v1_0
    text = yaml.read_text()
    assert text.startswith("# Imported from Caffe: ") and "deploy.prototxt" in text.splitlines()[0]
    assert "channel_order: BGR, mean: [104, 117, 123]" in text
    assert yaml_layers(yaml) == config_layers("1_0")
    with np.load(npz) as weights:
        assert "fire2.expand3x3.weight" in weights.files and weights["conv1.weight"].shape == (96, 3, 7, 7)


def test_v1_layers_format_imports_the_same(caffe_v1_0, tmp_path):
    model, _, yaml, npz = caffe_v1_0
    prototxt, caffemodel = write_caffe(model, tmp_path, v1=True)
    run_import("caffe", prototxt, caffemodel, "-o", tmp_path / "v1.yaml", "--weights-out", tmp_path / "v1.npz")
    assert yaml_layers(tmp_path / "v1.yaml") == yaml_layers(yaml)
    with np.load(npz) as expected, np.load(tmp_path / "v1.npz") as actual:
        assert sorted(actual.files) == sorted(expected.files)
        for key in expected.files:
            np.testing.assert_array_equal(actual[key], expected[key])


def test_plain_layers_where_the_fire_pattern_does_not_hold(caffe_v1_0, tmp_path):
    """fire3 concatenated 3x3 first: not a fire module, so plain convolutions and a concat (same weights)."""
    _, work, _, _ = caffe_v1_0
    text = (work / "deploy.prototxt").read_text().replace(
        'bottom: "fire3/expand1x1"\n  bottom: "fire3/expand3x3"', 'bottom: "fire3/expand3x3"\n  bottom: "fire3/expand1x1"')
    (tmp_path / "swapped.prototxt").write_text(text)
    run_import("caffe", tmp_path / "swapped.prototxt", work / "squeezenet.caffemodel",
               "-o", tmp_path / "swapped.yaml", "--weights-out", tmp_path / "swapped.npz")
    layers = yaml_layers(tmp_path / "swapped.yaml")
    assert "  - {name: fire3.squeeze1x1, type: conv, filters: 16, kernel: 1, activation: relu}" in layers
    assert "  - {name: fire3.concat, type: concat, input: [fire3.expand3x3, fire3.expand1x1]}" in layers
    assert "  - {name: fire2, type: fire, squeeze: 16, expand: 64}" in layers


@pytest.mark.parametrize("edit, message", [
    (('type: "ReLU"', 'type: "LRN"', 1), "layer 'relu_conv1' (LRN): this layer type is not supported"),
    (("kernel_size: 7", "kernel_size: 7\n    group: 2", 1), "layer 'conv1' (Convolution): grouped convolution"),
    (("pool: MAX kernel_size: 3", "pool: STOCHASTIC kernel_size: 3", 1), "layer 'pool1' (Pooling): STOCHASTIC"),
    (('name: "conv10"', 'name: "conv11"', 1), "layer 'conv11' (Convolution): "),
])
def test_refusals_name_the_file_and_layer(caffe_v1_0, tmp_path, capsys, edit, message):
    _, work, _, _ = caffe_v1_0
    old, new, count = edit
    (tmp_path / "bad.prototxt").write_text((work / "deploy.prototxt").read_text().replace(old, new, count))
    err = refused(capsys, "caffe", tmp_path / "bad.prototxt", work / "squeezenet.caffemodel",
                  "-o", tmp_path / "bad.yaml", "--weights-out", tmp_path / "bad.npz")
    assert f"{tmp_path / 'bad.prototxt'}: {message}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.prototxt"], "nothing half-written"


def test_refuses_a_file_that_is_not_a_caffemodel(caffe_v1_0, tmp_path, capsys):
    _, work, _, _ = caffe_v1_0
    (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xff\xff\xff not protobuf")
    err = refused(capsys, "caffe", work / "deploy.prototxt", tmp_path / "junk.caffemodel",
                  "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert "junk.caffemodel: not a Caffe model" in err
