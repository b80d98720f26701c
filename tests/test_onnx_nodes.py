"""ONNX's backend node tests (bench/onnx_nodes.py): a representative subset imported, built and run under qemu-arm
against the outputs ONNX expects; `python3 -m bench onnx-nodes` runs them all. Plus the importer's refusals of
single-node models: one `error:` line naming the node and the operator, nothing written."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bench.onnx_nodes import cases, run_case
from import_helpers import refused, run_import

SUBSET = ["test_maxpool_2d_ceil_output_size_reduce_by_one",  # ONNX's ceil rule, not Caffe's
          "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_same_lower",
          "test_conv_with_strides_and_asymmetric_padding", "test_conv_with_autopad_same", "test_globalmaxpool",
          "test_constant_pad",  # a standalone Pad with a non-zero value
          "test_resize_downsample_scales_cubic_antialias",  # Resize: cubic, antialiased, scales given
          "test_resize_tf_crop_and_resize_extrapolation_value",  # crop-and-resize, the outside extrapolated
          "test_averagepool_2d_dilations"]  # our dilated pooling (ACL 20.08 has none)


@pytest.fixture(scope="module")
def subset():
    found = {case.name: case for case in cases(SUBSET)}
    assert sorted(found) == sorted(SUBSET)
    return found


@pytest.mark.parametrize("name", SUBSET)
def test_node_case_matches_onnx(subset, name, tmp_path, tmp_path_factory):
    outcome = run_case(subset[name], tmp_path, tmp_path_factory.getbasetemp() / "onnx-node-builds")
    print(f"\n{name}: {outcome.status} {outcome.detail}")
    assert outcome.status == "pass", outcome.detail


def _model(nodes, inputs, output, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, [output], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _x(c=4, h=6, w=6):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])


def _y(c=4, h=6, w=6):
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, h, w])


def _const(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array, np.float32), name)


@pytest.mark.parametrize("model, message", [
    (_model([helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=2, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])], [_x()], _y(),
            [_const("w", np.ones((4, 2, 3, 3)))]),
     "node 'grouped' (Conv): grouped convolution (group 2 of 4 input channels) is not supported: only dense "
     "(group 1) and depthwise (group = input channels)"),
    (_model([helper.make_node("Pad", ["x", "pads"], ["y"], name="edge", mode="edge")], [_x()], _y(8, 6, 6),
            [onnx.numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]),
     "node 'edge' (Pad): padding mode 'edge' is not supported (constant or reflect)"),
    (_model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="deeper")], [_x()], _y(8, 6, 6),
            [_const("scales", [1, 2, 1, 1])]),
     "node 'deeper' (Resize): resizing [1, 4, 6, 6] to [1, 8, 6, 6] is not supported (height and width only)"),
    (_model([helper.make_node("Div", ["k", "x"], ["y"], name="inverse")], [_x()], _y(), [_const("k", 2.0)]),
     "node 'inverse' (Div): dividing a constant by a tensor is not supported"),
    (_model([helper.make_node("Transpose", ["x"], ["y"], name="nhwc", perm=[0, 2, 3, 1])], [_x()], _y()),
     "node 'nhwc' (Transpose): transposing with perm [0, 2, 3, 1] is not supported"),
    (_model([helper.make_node("Elu", ["x"], ["y"], name="elu")], [_x()], _y()),
     "node 'elu' (Elu): this operator is not supported (supported: Conv (dense or depthwise)"),
])
def test_refusals_are_one_line_naming_node_and_op(tmp_path, capsys, model, message):
    onnx.save(model, tmp_path / "m.onnx")
    err = refused(capsys, "onnx", tmp_path / "m.onnx", "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert f"{tmp_path / 'm.onnx'}: {message}" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_constants_fold_into_affine_batchnorm_and_depthwise(tmp_path):
    """Sub/Mul/Div by scalars become `affine` layers, by per-channel constants a `batchnorm`; Shape arithmetic is
    evaluated at import; a group = channels Conv is depthwise; x * sigmoid(x) is swish."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="dw", group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Sub", ["c", "half"], ["s"], name="sub"),
             helper.make_node("Mul", ["s", "per_channel"], ["m"], name="mul"),
             helper.make_node("Sigmoid", ["m"], ["g"], name="sig"),
             helper.make_node("Mul", ["m", "g"], ["sw"], name="swish"),
             helper.make_node("Shape", ["sw"], ["shape"], name="shape"),
             helper.make_node("Reshape", ["sw", "shape"], ["y"], name="noop")]
    model = _model(nodes, [_x()], _y(), [_const("w", rng.normal(0, 1, (4, 1, 3, 3))), _const("half", 0.5),
                                         _const("per_channel", rng.normal(0, 1, (4, 1, 1)))])
    onnx.save(model, tmp_path / "m.onnx")
    run_import("onnx", tmp_path / "m.onnx", "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    text = (tmp_path / "m.yaml").read_text()
    assert "{name: dw, type: conv, filters: 4, groups: 4, kernel: 3, pad: 1}" in text
    assert "{name: sub, type: affine, beta: -0.5}" in text
    assert "{name: mul, type: batchnorm}" in text and "type: swish" in text
    import onnxruntime
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.reference import torch_graph
    x = rng.normal(0, 1, (1, 4, 6, 6)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})[0]
    with np.load(tmp_path / "m.npz") as weights:
        actual = torch_graph.run(load_yaml_model(tmp_path / "m.yaml"), dict(weights), x)[0]
    np.testing.assert_allclose(np.asarray(actual).ravel(), expected.ravel(), rtol=1e-5, atol=1e-6)


def test_zero_padding_before_a_convolution_becomes_its_padding(tmp_path):
    """TensorFlow-converted models pad explicitly before strided convolutions: the Conv takes the Pad over
    (asymmetric, added to its own pads); a Pad read by anything else is a `pad` layer."""
    rng = np.random.default_rng(1)
    pad = helper.make_node("Pad", ["x", "pads"], ["p"], name="pad")
    conv = helper.make_node("Conv", ["p", "w"], ["y"], name="conv", kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 0, 1, 0])
    pads = onnx.numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 2, 1], np.int64), "pads")
    model = _model([pad, conv], [_x()], helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                   [pads, _const("w", rng.normal(0, 1, (5, 4, 3, 3)))])
    onnx.save(model, tmp_path / "m.onnx")
    run_import("onnx", tmp_path / "m.onnx", "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert "{name: conv, type: conv, filters: 5, kernel: 3, stride: 2, pad: [1, 3, 1, 1]}" in \
        (tmp_path / "m.yaml").read_text()
    import onnxruntime
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.reference import torch_graph
    x = rng.normal(0, 1, (1, 4, 6, 6)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})[0]
    with np.load(tmp_path / "m.npz") as weights:
        actual = torch_graph.run(load_yaml_model(tmp_path / "m.yaml"), dict(weights), x)[0]
    np.testing.assert_allclose(np.asarray(actual).ravel(), expected.ravel(), rtol=1e-5, atol=1e-5)
    # Read by anything else, the padding is a layer of its own.
    relu = helper.make_node("Relu", ["p"], ["y"], name="after_pad")
    onnx.save(_model([pad, relu], [_x()], helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [pads]),
              tmp_path / "own.onnx")
    run_import("onnx", tmp_path / "own.onnx", "-o", tmp_path / "own.yaml", "--weights-out", tmp_path / "own.npz")
    assert "{name: pad, type: pad, pad: [0, 2, 1, 1]}" in (tmp_path / "own.yaml").read_text()
    expected = onnxruntime.InferenceSession(str(tmp_path / "own.onnx")).run(None, {"x": x})[0]
    actual = torch_graph.run(load_yaml_model(tmp_path / "own.yaml"), {}, x)[0]
    np.testing.assert_allclose(np.asarray(actual).ravel(), expected.ravel(), rtol=1e-6, atol=1e-6)


def test_a_missing_external_data_file_is_named(tmp_path, capsys):
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], [_x()], _y(),
                   [_const("w", np.ones((4, 4, 3, 3)))])
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    (tmp_path / "m.onnx.data").unlink()
    err = refused(capsys, "onnx", tmp_path / "m.onnx", "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert (f"{tmp_path / 'm.onnx'}: the weights of 'w' are in an external data file, {tmp_path / 'm.onnx.data'}, "
            "which is missing") in err
