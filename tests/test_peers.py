"""The benchmark's peer engines (bench/peers): each one runs the digits fire network (convolutions with padding,
fire modules with concatenation, Caffe's rounded-up max pooling, dropout, global pooling, softmax) with the
same weights and input as our engine, must agree with our engine to 1e-4 and be counted per inference; and the
agreement check must reject an output that is off, so a peer computing something else is never measured."""

from __future__ import annotations

import numpy as np
import pytest

from bench import peers
from conftest import ROOT, build, infer
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.tools.preprocess import random_inputs
from neoncc.weights.pack import random_weights

MODEL = ROOT / "configs/models/digits_fire.yaml"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Weights, one input and our engine's output for it."""
    work = tmp_path_factory.mktemp("peers")
    graph = load_yaml_model(MODEL)
    np.savez(work / "w.npz", **random_weights(graph, 3))
    tensor = random_inputs(graph, 1, 5)[0]
    tensor.astype("<f4").tofile(work / "input.f32")
    ours, _ = infer(build(MODEL, work / "engine", work / "w.npz"), tensor, work)
    return work, ours


@pytest.mark.parametrize("name", peers.available())   # the default target's (aarch64 ones: test_aarch64)
def test_peer_agrees_with_our_engine_and_is_counted(name, case):
    work, ours = case
    peers.setup([name])
    peer = peers.prepare(name, MODEL, work / "w.npz", work / name)
    result = peer.run(work / "input.f32", runs=2, warmup=1)
    assert result.probabilities.shape == ours.shape == (10,)
    tolerance = peers.PEERS[name].tolerance   # TOLERANCE; looser for an int8 peer against our float engine
    assert peers.check_agreement(name, result.probabilities, ours) <= tolerance
    assert len(result.instructions) == 2 and len(result.wall_ms) == 2
    # the digits network is about 1.1 M MACs: no engine does it in fewer instructions than MACs/4 (one NEON
    # multiply-add per 4 MACs), and a span that long means the markers really bracket the inference
    assert 250_000 < result.instructions_per_inference < 100_000_000
    assert max(result.instructions) - min(result.instructions) < 0.01 * result.instructions_per_inference
    if name == "tflite":   # what the wheel applied is reported, not assumed
        assert isinstance(result.details["xnnpack"], bool) and result.details["ops"] > 0
    if name == "onnxruntime_xnnpack":   # the profile shows XNNPACK ran the nodes, not the CPU provider
        assert result.details["nodes_by_provider"]["XnnpackExecutionProvider"] >= 7
    if name.startswith("ncnn"):
        assert result.details["options"]["use_int8_inference"] == name.endswith("int8")
    if name.endswith("_int8"):   # really 8-bit: not float32's output to float32's rounding
        assert np.abs(result.probabilities - ours).max() > 1e-5
    if name == "xnnpack_int8":   # every layer but the float32 softmax on XNNPACK's 8-bit operators
        assert result.details["int8_tensors"] == len(peer.network.layers)
    # a deliberately wrong output is refused, naming the peer and the difference
    wrong = result.probabilities.copy()
    wrong[int(np.argmax(wrong))] += 3 * tolerance
    with pytest.raises(peers.PeerError, match=rf"{name}: output differs from the reference by"):
        peers.check_agreement(name, wrong, ours)
    with pytest.raises(peers.PeerError, match="output has 9 values"):
        peers.check_agreement(name, result.probabilities[:9], ours)


def test_peer_with_other_weights_is_rejected(case, tmp_path):
    """The whole chain, not just the comparison: a peer that ran a differently weighted network fails the check."""
    work, ours = case
    np.savez(tmp_path / "other.npz", **random_weights(load_yaml_model(MODEL), 4))
    peer = peers.prepare("plain_cpp", MODEL, tmp_path / "other.npz", tmp_path / "plain_cpp")
    result = peer.run(work / "input.f32", runs=1, warmup=0, count=False)
    assert result.instructions_per_inference is None and len(result.wall_ms) == 1
    with pytest.raises(peers.PeerError, match="plain_cpp: output differs"):
        peers.check_agreement("plain_cpp", result.probabilities, ours)


def test_wrong_input_size_is_refused(case, tmp_path):
    work, _ = case
    short = tmp_path / "short.f32"
    np.zeros(100, "<f4").tofile(short)
    peer = peers.prepare("plain_cpp", MODEL, work / "w.npz", tmp_path / "plain_cpp")
    with pytest.raises(peers.PeerError, match=r"short.f32: want one float32 tensor \[1, 32, 32\] \(4096 bytes\), "
                                              r"got 400 bytes"):
        peer.run(short)


def test_unsupported_layers_are_refused_by_name(tmp_path):
    """A ReLU after pooling (and padded average pooling, which runtimes count differently) is not exported:
    refused, naming file, line and layer, rather than exported wrongly."""
    model = ROOT / "tests/models/tiny_passes.yaml"
    np.savez(tmp_path / "w.npz", **random_weights(load_yaml_model(model), 0))
    with pytest.raises(UserError, match=r"tiny_passes.yaml:10: layer 'a1': the peer engines do not support op 'relu' "
                                        r"\(supported: conv \(\+relu\), maxpool"):
        peers.prepare("plain_cpp", model, tmp_path / "w.npz", tmp_path / "plain_cpp")


def test_missing_weights_are_refused(tmp_path):
    np.savez(tmp_path / "w.npz", nothing=np.zeros(1, np.float32))
    with pytest.raises(UserError, match=r"w.npz: missing 22 array\(s\) that digits_fire needs: conv1.weight, conv1.bias"):
        peers.prepare("acl_graph", MODEL, tmp_path / "w.npz", tmp_path / "acl_graph")


def test_unknown_peer_is_refused():
    with pytest.raises(peers.PeerError, match="unknown peer nope"):
        peers.prepare("nope", MODEL, "w.npz", "work")


def test_peers_agree_on_a_spatial_output(tmp_path):
    """A network ending in a fire module's concatenation (a C x H x W output, not 1 x 1 x C): NHWC peers must
    hand back NCHW, and the plain loops must place both halves of the concatenation."""
    model = tmp_path / "fire_out.yaml"
    model.write_text("name: fire_out\ninput: {name: data, shape: [8, 9, 7]}\nlayers:\n"
                     "  - {name: fire, type: fire, squeeze: 4, expand: 6}\n")
    graph = load_yaml_model(model)
    np.savez(tmp_path / "w.npz", **random_weights(graph, 2))
    tensor = random_inputs(graph, 1, 2)[0]
    tensor.astype("<f4").tofile(tmp_path / "input.f32")
    ours, _ = infer(build(model, tmp_path / "engine", tmp_path / "w.npz"), tensor, tmp_path)
    assert ours.shape == (12 * 9 * 7,)
    for name in ("acl_graph", "acl_graph_nhwc", "plain_cpp", "xnnpack", "ncnn"):
        result = peers.prepare(name, model, tmp_path / "w.npz", tmp_path / name).run(tmp_path / "input.f32",
                                                                                     runs=1, warmup=0, count=False)
        assert peers.check_agreement(name, result.probabilities, ours) <= peers.TOLERANCE


def test_xnnpack_runs_mobile_layers(tmp_path):
    """EfficientNet-Lite's layer kinds (same padding, depthwise with multiplier 1 and 2, ReLU6, a residual add, a
    fully connected classifier) through XNNPACK agree with PyTorch running the graph as written; the peers without
    those layers refuse them by name."""
    from neoncc.reference import torch_graph
    model = ROOT / "tests/models/tiny_mobile.yaml"
    graph = load_yaml_model(model)
    weights = random_weights(graph, 5)
    np.savez(tmp_path / "w.npz", **weights)
    tensor = random_inputs(graph, 1, 6)[0]
    tensor.astype("<f4").tofile(tmp_path / "input.f32")
    reference = torch_graph.run(graph, weights, tensor[None])[0]
    result = peers.prepare("xnnpack", model, tmp_path / "w.npz", tmp_path / "xnnpack").run(
        tmp_path / "input.f32", runs=1, warmup=1)
    assert peers.check_agreement("xnnpack", result.probabilities, reference) <= peers.TOLERANCE
    assert result.instructions_per_inference > 0 and result.details["operators"] == 10   # dropout is folded away
    with pytest.raises(UserError, match=r"tiny_mobile.yaml:\d+: layer 'stem': the peer engines do not support a "
                                        r"fused relu6"):
        peers.prepare("acl_graph", model, tmp_path / "w.npz", tmp_path / "acl_graph")


def test_mobile_layers_through_the_peers_that_export_them(tmp_path):
    """tiny_mobile ("same" padding, depthwise convolutions with multiplier 2 and 1, ReLU6, a residual add, a fully
    connected classifier): ncnn (our .param writer, float32 and int8) and ONNX Runtime (both providers) agree with
    our engine; a peer whose exporter lacks these layers refuses the network by name."""
    model = ROOT / "tests/models/tiny_mobile.yaml"
    graph = load_yaml_model(model)
    np.savez(tmp_path / "w.npz", **random_weights(graph, 5))
    tensor = random_inputs(graph, 1, 6)[0]
    tensor.astype("<f4").tofile(tmp_path / "input.f32")
    ours, _ = infer(build(model, tmp_path / "engine", tmp_path / "w.npz"), tensor, tmp_path)
    for name in ("ncnn", "ncnn_int8", "onnxruntime", "onnxruntime_xnnpack", "xnnpack_int8"):
        result = peers.prepare(name, model, tmp_path / "w.npz", tmp_path / name).run(tmp_path / "input.f32",
                                                                                     runs=1, warmup=0, count=False)
        assert peers.check_agreement(name, result.probabilities, ours) <= peers.PEERS[name].tolerance
    with pytest.raises(UserError, match=r"tiny_mobile.yaml:\d+: layer 'stem': the peer engines do not support"):
        peers.prepare("opencv_dnn", model, tmp_path / "w.npz", tmp_path / "opencv_dnn")
