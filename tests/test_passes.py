"""Each graph pass on its own, and a network that takes every pass and template branch, against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from conftest import ROOT, build, infer
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import fold_batchnorm, fuse_activation, global_pooling, lower, optimize, remove_dropout
from neoncc.reference import torch_graph
from neoncc.weights.pack import attach, random_weights

TINY = ROOT / "tests/models/tiny_passes.yaml"
SQUEEZENET = ROOT / "configs/models/squeezenet_v1_1.yaml"


def ops(graph):
    return [(n.name, n.op) for n in graph.nodes]


def test_fuse_activation_folds_every_squeezenet_relu():
    graph = fuse_activation.run(load_yaml_model(SQUEEZENET))
    assert not [n for n in graph.nodes if n.op == "relu"]
    assert all(n.attrs.get("activation") == "relu" for n in graph.nodes if n.op == "conv")
    assert graph.node("pool1").inputs == ["conv1"]


def test_fuse_activation_keeps_a_relu_after_pooling():
    graph = fuse_activation.run(load_yaml_model(TINY))
    assert ("r1", "relu") not in ops(graph) and graph.node("c1").attrs["activation"] == "relu"
    assert ("a1", "relu") in ops(graph)


def test_remove_dropout_drops_plain_dropout():
    graph = remove_dropout.run(load_yaml_model(SQUEEZENET))
    assert "dropout" not in {n.op for n in graph.nodes}
    assert graph.node("conv10").inputs == ["fire9"] and "input_scale" not in graph.node("conv10").attrs


def with_weights(graph, seed=0):
    rng = np.random.default_rng(seed)
    return attach(graph, {p.name: rng.normal(0, 1, p.shape).astype(np.float32) for p in graph.params})


def test_remove_dropout_attenuation_folds_into_convolutions_or_stays_as_scale():
    graph = with_weights(load_yaml_model(TINY))
    before = graph.constant("c3.weight").copy()
    graph = remove_dropout.run(graph)
    np.testing.assert_array_equal(graph.constant("c3.weight"), before * np.float32(0.7))  # the weights themselves
    assert graph.node("c3").inputs == ["cat"]
    assert graph.node("d1").op == "scale" and graph.node("d1").attrs["factor"] == 0.5


def test_fold_batchnorm_rewrites_the_convolution_constants():
    graph = load_yaml_model(ROOT / "configs/models/efficientnet_lite0.yaml")
    graph = attach(graph, random_weights(graph, 0))
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    expected = torch_graph.run(graph, None, x)
    folded = fold_batchnorm.run(graph)
    assert "batchnorm" not in {n.op for n in folded.nodes}
    assert not [name for name in folded.constants if "running_mean" in name]
    np.testing.assert_allclose(torch_graph.run(folded, None, x), expected, rtol=1e-4, atol=1e-5)


def test_every_op_in_the_registry_is_complete():
    from neoncc import ops
    assert ops.check_registry() == []
    assert {"conv", "maxpool", "avgpool", "global_avgpool", "concat", "add", "mul", "fc", "batchnorm", "softmax",
            "relu", "relu6", "sigmoid", "hardswish", "dropout", "fire"} <= set(ops.all_ops())


def test_an_incomplete_op_is_caught_when_the_registry_checks(monkeypatch):
    from neoncc import ops

    class Half(ops.Op):
        """half: no shape rule, no reference, no kernel."""
        name, doc = "half_op", "an op missing its pieces"
    monkeypatch.setitem(ops._REGISTRY, "half_op", Half())
    problems = ops.check_registry()
    assert "op 'half_op': no shape rule (infer)" in problems and "op 'half_op': no host reference" in problems
    assert "op 'half_op': no implementation and no pass that removes it" in problems


def test_layout_pass_inserts_conversions_and_permutes_weights():
    graph = optimize(with_weights(load_yaml_model(SQUEEZENET)))
    weight = graph.constant("conv1.weight").copy()
    graph = lower(graph, layout_mode="nhwc")
    assert graph.nodes[0].op == "permute" and graph.nodes[0].attrs["to"] == "NHWC"
    assert graph.tensor("conv1").layout == "NHWC"
    np.testing.assert_array_equal(graph.constant("conv1.weight"), weight.transpose(0, 2, 3, 1))
    assert graph.constants["conv1.weight"].layout == "OHWI"
    assert "fire2" in {n.name for n in graph.nodes}  # NHWC: the concat stays a copying one


def test_softmax_reads_an_nhwc_vector_as_it_is():
    """A C x 1 x 1 tensor is the same bytes in both layouts: after an NHWC global pooling the softmax runs in NHWC
    (ACL reduces dimension 0, the channels), with no permute and no flatten copy before it; after an NCHW one it
    stays NCHW."""
    for mode, layout in (("nhwc", "NHWC"), ("nchw", "NCHW")):
        graph = lower(optimize(with_weights(load_yaml_model(SQUEEZENET))), layout_mode=mode)
        assert ops(graph)[-2:] == [("pool10", "global_avgpool"), ("prob", "softmax")]
        assert graph.nodes[-1].attrs["layout"] == graph.tensor("pool10").layout == layout


def test_global_pooling_recognises_a_whole_input_window():
    graph = global_pooling.run(load_yaml_model(TINY))
    assert graph.node("gp").op == "global_avgpool" and graph.node("ap").op == "avgpool"


def test_concat_in_place_for_fire_modules_only():
    graph = lower(optimize(load_yaml_model(SQUEEZENET)), layout_mode="nchw")
    assert "fire2" not in {n.name for n in graph.nodes}  # the concat node is gone ...
    assert graph.tensor("fire2.expand1x1").view_of == ("fire2", 0)  # ... its inputs are views of its tensor
    assert graph.tensor("fire2.expand3x3").view_of == ("fire2", 64)
    assert graph.node("fire3.squeeze1x1").inputs == ["fire2"]
    tiny = lower(optimize(load_yaml_model(TINY)), layout_mode="nchw")
    assert "cat" in {n.name for n in tiny.nodes}  # one input is a scale node, not a convolution


def reference(weights: dict, x: torch.Tensor) -> torch.Tensor:
    """tiny_passes.yaml written by hand in PyTorch."""
    w = {k: torch.from_numpy(v) for k, v in weights.items()}
    x = F.relu(F.conv2d(F.pad(x, (2, 2, 1, 1)), w["c1.weight"], w["c1.bias"], stride=(1, 2)))
    x = F.relu(F.max_pool2d(x, 3, 2, ceil_mode=True))
    x = x * 0.5
    x = torch.cat([F.relu(F.conv2d(x, w["c2.weight"], w["c2.bias"])), x], dim=1)
    x = F.relu(F.conv2d(x * 0.7, w["c3.weight"], w["c3.bias"], padding=1))
    x = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True)
    x = F.avg_pool2d(x, (5, 3))
    return F.softmax(x.flatten(1), dim=1)


def test_tiny_network_matches_pytorch(tmp_path):
    rng = np.random.default_rng(3)
    graph = load_yaml_model(TINY)
    weights = {p.name: rng.normal(0, 0.3, p.shape).astype(np.float32) for p in graph.params}
    np.savez(tmp_path / "tiny.npz", **weights)
    binary = build(TINY, tmp_path / "build", tmp_path / "tiny.npz")
    source = binary.with_suffix(".cpp").read_text()
    assert "NEConcatenateLayer" in source and "ActivationFunction::LINEAR, 0.5f" in source
    assert "PoolingLayerInfo(PoolingType::AVG, DataLayout::" in source
    assert "PadStrideInfo(2U, 2U, 0U, 1U, 0U, 1U, DimensionRoundingType::FLOOR)" in source  # ceil: one more row
    assert "PadStrideInfo(2U, 1U, 2U, 2U, 1U, 1U" in source
    x = rng.normal(0, 2, (1, 3, 20, 24)).astype(np.float32)
    probabilities, _ = infer(binary, x[0], tmp_path)
    expected = reference(weights, torch.from_numpy(x))[0].numpy()
    assert expected.max() < 0.9
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)


def test_fuse_quantize_moves_the_grid_onto_kernels_that_store_codes():
    """After the quantize pass: a float32 convolution's quantize node goes into the convolution when its kernel
    writes codes (Impl.quantized_output), it is the only reader, and the layouts agree; otherwise it stays."""
    from neoncc.ir.graph import Graph, Node
    from neoncc.passes import fuse_quantize

    def conv(name, source, impl):
        return Node(name, "conv", [source], {"impl": impl, "precision": "float32"}, shape=(8, 5, 5))

    def quantize(source):
        return Node(f"{source}.quantize", "quantize", [source], {"impl": "engine", "precision": "int8"},
                    shape=(8, 5, 5))

    nodes = [conv("w", "data", "winograd63"), quantize("w"),            # fused
             conv("g", "data", "packed_gemm"), quantize("g"),           # fused
             conv("d", "data", "direct"), quantize("d"),                # ACL's kernel: stays
             conv("two", "data", "packed_gemm"), quantize("two"),       # a second reader: stays
             conv("p", "data", "packed_gemm"), quantize("p"),           # a layout change: stays
             Node("cat", "concat", ["w.quantize", "g.quantize", "d.quantize", "two.quantize", "two", "p.quantize"],
                  {"precision": "int8"}, shape=(48, 5, 5))]
    graph = Graph("g", "data", (8, 5, 5), nodes)
    for node in nodes:
        graph.tensor(node.output).layout = "NHWC"
    graph.tensor("p").layout = "NCHW"
    for name in ("w", "g", "d", "two", "p"):
        t = graph.tensor(f"{name}.quantize")
        t.dtype, t.quant = "qasymm8", (0.05, 3)
    graph = fuse_quantize.run(graph)
    assert graph.node("cat").inputs == ["w", "g", "d.quantize", "two.quantize", "two", "p.quantize"]
    assert [n.name for n in graph.nodes if n.op == "quantize"] == ["d.quantize", "two.quantize", "p.quantize"]
    assert (graph.tensor("w").dtype, graph.tensor("w").quant) == ("qasymm8", (0.05, 3)) == \
        (graph.tensor("g").dtype, graph.tensor("g").quant)
    assert graph.tensor("d").dtype == graph.tensor("two").dtype == graph.tensor("p").dtype == "float32"
