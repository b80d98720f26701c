"""8-bit engines (scons ... precision=int8 calibration=DIR): SqueezeNet v1.1 on the emulated board against its
float32 engine on real photos, the generated code's single quantize/de-quantize, our 8-bit convolution kernels
against integer arithmetic in numpy, and refusals of bad calibration folders."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bench.photos import photo_tensors, write_photo_set
from conftest import ROOT, build, run_engine, scons
from int8_reference import add, mean, requantize
from deploy.testing import deploy_json

V11 = ROOT / "configs/models/squeezenet_v1_1.yaml"

# A small network whose convolutions take both kernels of runtime/quantized_convolution.cpp: K = 27 (by lane),
# K = 16 x 9 = 144 and K = 80 (8-bit products), padding, stride 2, an unpadded 1x1, and no ReLU at the end.
TINY = """name: tiny_int8
input: {name: data, shape: [3, 21, 19]}
layers:
  - {name: conv1, type: conv, filters: 16, kernel: 3, stride: 2, pad: 1, activation: relu}
  - {name: conv2, type: conv, filters: 80, kernel: 3, pad: 1, activation: relu}
  - {name: conv3, type: conv, filters: 6, kernel: 1}
"""


def build_int8(model, build_dir, calibration, *extra):
    scons("target=armv7", f"model={model}", f"build_dir={build_dir}", "precision=int8", f"calibration={calibration}",
          *extra)
    name = model.stem
    return build_dir / "armv7" / f"{name}-int8" / name


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory, models_board):
    """float32 SqueezeNet v1.1 (seeded random weights) under qemu-arm and its int8 engine, built and run by
    deploy.py on the emulated board, on 56 photo inputs; calibrated on other photos."""
    work = tmp_path_factory.mktemp("int8")
    calibration = work / "calibration"
    write_photo_set(calibration, "calibration")
    test = write_photo_set(work / "test", "test")
    photo_tensors(V11, test).astype("<f4").tofile(work / "test.f32")
    float32 = build(V11, work / "build")
    run_engine(float32, "--input", str(work / "test.f32"), "--output", str(work / "float32.f32"), "--runs", "1",
               "--warmup", "0", "--threads", "1")
    result = deploy_json("--board", str(models_board), "--model", str(V11), "--precision", "int8",
                         "--calibration", str(calibration), "--input", str(work / "test.f32"),
                         "--output", str(work / "int8.f32"), "--runs", "1", "--warmup", "0", timeout=900)
    assert result["batch"] == len(test)
    engines = {"float32": float32, "int8": ROOT / "build/armv7/squeezenet_v1_1-int8/squeezenet_v1_1"}
    outputs = {precision: np.fromfile(work / f"{precision}.f32", "<f4").reshape(len(test), 1000)
               for precision in engines}
    return engines, outputs


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_agrees_with_float32_on_photos(squeezenet):
    _, out = squeezenet
    reference, ours = out["float32"], out["int8"]
    assert len(reference) >= 50
    assert (reference.argmax(1) == ours.argmax(1)).mean() >= 0.98
    assert cosine(reference, ours).min() >= 0.99
    # Random weights give a nearly flat softmax: compare the log-probabilities centred per input (the logits up
    # to a constant) too, which top-1 agreement alone would not catch.
    logs = [np.log(x) - np.log(x).mean(1, keepdims=True) for x in (reference, ours)]
    assert cosine(*logs).min() >= 0.99


def test_generated_code_converts_only_where_precision_changes(squeezenet):
    """The int8 build follows configs/tuning/armv7/squeezenet_v1_1-int8.yaml: the layers it keeps in float32
    (int8_float_layers, chosen by counting) get a quantize after them where an 8-bit layer reads them (fused into
    the Winograd convolutions' stores: they write QASYMM8 themselves) and a dequantize before them where they read
    an 8-bit tensor; nowhere else (not around every layer)."""
    import yaml

    from neoncc.pipeline import float_graph

    engines, _ = squeezenet
    source = engines["int8"].with_suffix(".cpp").read_text()
    kept = set(yaml.safe_load((ROOT / "configs/tuning/armv7/squeezenet_v1_1-int8.yaml").read_text())["int8_float_layers"])
    quantized = re.findall(r'engine::Quantization::validate\([^;]*"([\w.]+)\.quantize"', source)
    # A float32 layer on our GEMM or Winograd kernel writes its quantize's codes itself (passes/fuse_quantize.py):
    # its output is then a channel range of an 8-bit concat.
    qasymm8 = set(re.findall(r"(\w+)\.allocator\(\)->init\([^;]*DataType::QASYMM8", source))
    views = dict(re.findall(r"(\w+) = SubTensor\(&(\w+),", source))
    fused = [n for n in kept if views.get(n.replace(".", "_") + "_out_") in qasymm8]
    assert fused and not any(f'"{n}.quantize"' in source for n in fused)
    quantized += fused
    dequantized = re.findall(r'Dequantization(?:Layer)?::validate\([^;]*"([\w.]+)\.dequantize"', source)
    # Where a tensor's producer and a reader differ in precision (the softmax at the end is float32), and only there.
    graph = float_graph(V11, None, 0)
    in_float = {graph.input_name} | kept | {n.name for n in graph.nodes if n.op == "softmax"}
    producer = {n.output: n.name for n in graph.nodes} | {graph.input_name: graph.input_name}
    crossing = [(producer[t], n.name) for n in graph.nodes for t in n.inputs
                if (producer[t] in in_float) != (n.name in in_float)]
    assert sorted(quantized) == sorted({p for p, _ in crossing if p in in_float})
    assert sorted(dequantized) == sorted({p for p, _ in crossing if p not in in_float})
    assert quantized and "pool10" in dequantized
    assert not re.search(r"NEConcatenateLayer \w+;", source) and source.count("SubTensor(&fire") == 16
    float_tensors = re.findall(r"(\w+)\.allocator\(\)->init\((?:engine::with_layout\()?TensorInfo\([^;]*DataType::F32\)", source)
    allowed = {n.replace(".", "_") + role for n in kept for role in ("_out_", "_weights_", "_biases_")}
    allowed |= {d.replace(".", "_") + "_dequantize_out_" for d in dequantized}
    allowed |= {"data_out_", "data_to_nhwc_out_", "pool10_dequantize_vector_", "pool10_dequantize_to_nchw_out_",
                "pool10_dequantize_to_nchw_vector_", "prob_out_"}
    assert float_tensors and set(float_tensors) <= allowed, set(float_tensors) - allowed
    # Fire expands share their concatenation's quantization: one QuantizationInfo per concatenated tensor.
    plan = json.loads(engines["int8"].with_suffix(".quant.json").read_text())
    for fire in range(2, 10):
        assert plan["tensors"][f"fire{fire}.expand1x1"] == plan["tensors"][f"fire{fire}.expand3x3"] \
            == plan["tensors"][f"fire{fire}"]
    # The squeeze layers and conv10 hold int8 weights (a quarter of their float32 bytes); the float32 layers not.
    assert engines["int8"].with_suffix(".weights").stat().st_size < 0.75 * engines["float32"].with_suffix(".weights").stat().st_size


def test_host_simulation_predicts_the_int8_engine(squeezenet, tmp_path):
    """neoncc/quantize/simulate.py, which bench int8 uses to rank layers for int8_float_layers, gives what the int8
    engine on the board gave (the same mixed precision, the engine's own plan) and not what float32 gives; and its
    per-layer sensitivity puts first a layer whose 8-bit range was made coarse on purpose."""
    import yaml

    from neoncc.pipeline import float_graph
    from neoncc.quantize.plan import QuantPlan
    from neoncc.quantize.simulate import sensitivity, simulate

    engines, out = squeezenet
    graph = float_graph(V11, None, 0)
    plan = QuantPlan.read(engines["int8"].with_suffix(".quant.json"))
    kept = yaml.safe_load((ROOT / "configs/tuning/armv7/squeezenet_v1_1-int8.yaml").read_text())["int8_float_layers"]
    inputs = photo_tensors(V11, write_photo_set(tmp_path / "test", "test"))
    simulated = simulate(graph, plan, kept, inputs)
    logs = [np.log(x) - np.log(x).mean(1, keepdims=True) for x in (simulated, out["int8"], out["float32"])]
    to_engine, to_float32 = 1 - cosine(logs[0], logs[1]), 1 - cosine(logs[2], logs[1])
    assert (simulated.argmax(1) == out["int8"].argmax(1)).all()
    # on every input nearer the engine than float32 is, and on average 5x nearer (0.11x measured with bias
    # correction, which brought the engine within 6e-5 of float32 on some inputs)
    assert (to_engine < to_float32).all() and to_engine.mean() < 0.2 * to_float32.mean(), \
        (to_engine.max(), to_float32.min(), to_engine.mean(), to_float32.mean())
    scale, offset = plan.tensors["fire5.squeeze1x1"]
    plan.tensors["fire5.squeeze1x1"] = (scale * 40, offset)
    ranked = sensitivity(graph, plan, ["fire3.squeeze1x1", "fire5.squeeze1x1", "conv10"], inputs[:8])
    assert max(ranked, key=ranked.get) == "fire5.squeeze1x1" and min(ranked.values()) > 0, ranked


def corrected_bias(plan, name, bias):
    """The float bias the 8-bit layer rounds: its own less the plan's bias correction (checked on its own below)."""
    return np.asarray(bias, np.float64) - np.asarray(plan["bias_corrections"].get(name, 0.0), np.float64)


def numpy_int8_engine(plan, float_weights, x):
    """The 8-bit network in integer numpy: per-channel int8 weights, int32 biases, integer convolution
    (im2col by slicing), then TFLite's reference requantization (tests/int8_reference.py: fixed-point multiplier
    input scale x weight scale / output scale, plus the output zero point, clamped), ReLU as the clamp at the zero
    point; the result de-quantized."""
    scale, offset = plan["tensors"]["data"]
    q = np.clip(np.round(x / scale) + offset, 0, 255).astype(np.int64)  # exact: x lies on the grid
    for name, stride, pad, relu in (("conv1", 2, 1, True), ("conv2", 1, 1, True), ("conv3", 1, 0, False)):
        w, b = float_weights[f"{name}.weight"], corrected_bias(plan, name, float_weights[f"{name}.bias"])
        ws = np.asarray(plan["weight_scales"][name])
        wq = np.clip(np.round(w / ws[:, None, None, None]), -127, 127).astype(np.int64)
        bq = np.round(b / (scale * ws)).astype(np.int64)
        padded = np.pad(q - offset, ((0, 0), (pad, pad), (pad, pad)))
        k = w.shape[2]
        oh, ow = (padded.shape[1] - k) // stride + 1, (padded.shape[2] - k) // stride + 1
        acc = np.zeros((w.shape[0], oh, ow), np.int64)
        for dy in range(k):
            for dx in range(k):
                patch = padded[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
                acc += np.einsum("oc,chw->ohw", wq[:, :, dy, dx], patch)
        out_scale, out_offset = plan["tensors"][name]
        q = requantize(acc + bq[:, None, None], scale, ws, out_scale, out_offset, relu)
        scale, offset = out_scale, out_offset
    return (q - offset) * np.float32(scale), scale


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny_int8")
    model = work / "tiny_int8.yaml"
    model.write_text(TINY)
    rng = np.random.default_rng(3)
    weights = {}
    for name, shape in (("conv1", (16, 3, 3, 3)), ("conv2", (80, 16, 3, 3)), ("conv3", (6, 80, 1, 1))):
        weights[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
        weights[f"{name}.bias"] = rng.uniform(-0.2, 0.2, shape[0]).astype(np.float32)
    np.savez(work / "w.npz", **weights)
    # Inputs on a grid of 1/32 from -4 to 127/32: with min/max calibration the input's scale is exactly 1/32 and
    # its offset 128, so the input quantization is exact and the check below is about the convolutions alone.
    calibration = work / "calibration"
    calibration.mkdir()
    grid = (rng.integers(-128, 128, (8, 3, 21, 19)) / 32).astype("<f4")
    grid.flat[:2] = (-4.0, 127 / 32)
    grid.tofile(calibration / "inputs.f32")
    binary = build_int8(model, work / "build", calibration, f"weights={work / 'w.npz'}", "calibration_method=minmax")
    return work, model, binary, weights


def test_quantized_convolutions_match_integer_numpy(tiny):
    work, _, binary, weights = tiny
    x = (np.random.default_rng(4).integers(-128, 128, (3, 21, 19)) / 32).astype(np.float32)
    x.astype("<f4").tofile(work / "x.f32")
    run_engine(binary, "--input", str(work / "x.f32"), "--output", str(work / "y.f32"), "--runs", "1", "--warmup", "0")
    ours = np.fromfile(work / "y.f32", "<f4")
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    assert plan["tensors"]["data"] == [1 / 32, 128] and plan["method"] == "minmax"
    expected, scale = numpy_int8_engine(plan, weights, x)
    assert ours.shape == (expected.size,)
    np.testing.assert_array_equal(np.round(ours / scale), np.round(expected.ravel() / scale))


def test_bias_correction_is_the_rounded_weights_mean_error(tiny, tmp_path):
    """The plan's bias correction of each convolution, against numpy and PyTorch: the channel means of the layer's
    float input over the calibration inputs (PyTorch's float network), times the per-channel sums of the rounded
    weights' errors; and bias_correction=no leaves the biases alone."""
    import torch
    from torch.nn import functional as F
    work, model, binary, weights = tiny
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    manifest = json.loads(binary.with_suffix(".json").read_text())
    assert manifest["calibration"]["bias_correction"] is True
    x = torch.from_numpy(np.fromfile(work / "calibration/inputs.f32", "<f4").reshape(8, 3, 21, 19))
    t = {k: torch.from_numpy(v) for k, v in weights.items()}
    a1 = F.relu(F.conv2d(x, t["conv1.weight"], t["conv1.bias"], stride=2, padding=1))
    a2 = F.relu(F.conv2d(a1, t["conv2.weight"], t["conv2.bias"], padding=1))
    for name, layer_input in (("conv1", x), ("conv2", a1), ("conv3", a2)):
        w, ws = weights[f"{name}.weight"].astype(np.float64), np.asarray(plan["weight_scales"][name])[:, None, None, None]
        error = np.clip(np.round(w / ws), -127, 127) * ws - w
        expected = error.sum(axis=(2, 3)) @ layer_input.double().mean(dim=(0, 2, 3)).numpy()
        np.testing.assert_allclose(plan["bias_corrections"][name], expected, rtol=1e-6, atol=1e-9)
        assert np.abs(expected).max() > 1e-4   # not a vacuous check: the corrections are not all ~0
    build_int8(model, tmp_path, work / "calibration", f"weights={work / 'w.npz'}", "calibration_method=minmax",
               "bias_correction=no")
    off = tmp_path / "armv7" / "tiny_int8-int8" / "tiny_int8"
    assert json.loads(off.with_suffix(".quant.json").read_text())["bias_corrections"] == {}
    assert json.loads(off.with_suffix(".json").read_text())["calibration"]["bias_correction"] is False


@pytest.mark.parametrize("shape, groups", [((6, 2, 3, 3), 3), ((4, 1, 5, 5), 4), ((8, 1, 3, 3), 4), ((5, 7, 1, 1), 1)])
def test_bias_correction_of_grouped_and_depthwise_filters(shape, groups):
    """Each output channel's correction sums only its own group's input channels (depthwise: one, with a
    multiplier: the filters of one input channel), against a loop over channels and taps."""
    from neoncc.quantize.plan import bias_correction
    rng = np.random.default_rng(sum(shape) + groups)
    w = rng.normal(0, 0.3, shape).astype(np.float32)
    scales = np.abs(w.reshape(shape[0], -1)).max(axis=1) / 127 * rng.uniform(1.0, 1.6, shape[0])  # coarse: errors
    means = rng.uniform(-0.5, 2.0, shape[1] * groups)
    expected = np.zeros(shape[0])
    for o in range(shape[0]):
        group = o // (shape[0] // groups)
        for j in range(shape[1]):
            for tap in np.ndindex(*shape[2:]):
                weight = float(w[(o, j, *tap)])
                rounded = min(max(round(weight / scales[o]), -127), 127) * scales[o]
                expected[o] += (rounded - weight) * means[group * shape[1] + j]
    np.testing.assert_allclose(bias_correction(w, scales, groups, means), expected, rtol=1e-9, atol=1e-12)


def test_int8_engine_refuses_float_weights(tiny, tmp_path):
    work, model, binary, _ = tiny
    scons("target=armv7", f"model={model}", f"build_dir={tmp_path}", f"weights={work / 'w.npz'}")
    proc = run_engine(binary, "--weights", str(tmp_path / "armv7/tiny_int8/tiny_int8.weights"), "--input",
                      str(work / "x.f32"), "--output", str(tmp_path / "y.f32"), check=False)
    assert proc.returncode == 1 and "holds float32 values where the network expects int8" in proc.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "stray", "short", "none"])
def test_bad_calibration_is_refused_clearly(tiny, tmp_path, case):
    _, model, _, _ = tiny
    folder = tmp_path / "calibration"
    expected = {"missing": "no such directory", "empty": "the folder is empty", "stray": "notes.txt: neither a photo",
                "short": "bad.f32: 40 bytes", "none": "precision=int8 needs calibration=DIR"}[case]
    if case != "missing":
        folder.mkdir()
    if case == "stray":
        (folder / "notes.txt").write_text("not an input")
    if case == "short":
        np.zeros(10, "<f4").tofile(folder / "bad.f32")
    args = ["target=armv7", f"model={model}", f"build_dir={tmp_path / 'build'}", "precision=int8"]
    proc = scons(*args, *([] if case == "none" else [f"calibration={folder}"]), check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr and ("calibration" in proc.stderr)
    out = tmp_path / "build/armv7/tiny_int8-int8"
    assert not any(out.glob("*.quant.json*")) and not any(out.glob("*.weights*"))


RESIDUAL = """name: residual_int8
input: {name: data, shape: [4, 9, 11]}
layers:
  - {name: conv1, type: conv, filters: 8, kernel: 1, activation: relu}
  - {name: conv2, type: conv, filters: 8, kernel: 3, pad: 1}
  - {name: add, type: add, input: [conv1, conv2]}
"""
# ACL's 8-bit NEPoolingLayer (NCHW) reads past a row's 11 values and so pads its input: the addition then writes
# rows at a stride past their ends, from dense inputs (its rows one at a time, runtime/tensor_rows.h).
POOLED = RESIDUAL + "  - {name: pool, type: maxpool, kernel: 3, stride: 2}\n"


def residual_network(tmp_path, text, seed):
    """The residual model written out, seeded weights (w.npz) and 8 calibration inputs (calibration/): (model file,
    weights, calibration inputs)."""
    model = tmp_path / "residual_int8.yaml"
    model.write_text(text)
    rng = np.random.default_rng(seed)
    w = {"conv1.weight": rng.normal(0, 0.5, (8, 4, 1, 1)), "conv1.bias": rng.uniform(-0.1, 0.1, 8),
         "conv2.weight": rng.normal(0, 0.2, (8, 8, 3, 3)), "conv2.bias": rng.uniform(-0.1, 0.1, 8)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    np.savez(tmp_path / "w.npz", **w)
    (tmp_path / "calibration").mkdir()
    calibration = rng.normal(0, 1, (8, 4, 9, 11)).astype("<f4")
    calibration.tofile(tmp_path / "calibration/inputs.f32")
    return model, w, calibration


@pytest.mark.parametrize("layout, pooled", [("nchw", False), ("nhwc", False), ("nchw", True)],
                         ids=["nchw", "nhwc", "nchw-strided-output"])
def test_residual_addition_in_8_bits_matches_float(tmp_path, layout, pooled):
    """The 8-bit addition (its own scales on each input) against PyTorch in float32, to the quantization steps, in
    both layouts (element by element: in NHWC with the NHWC 8-bit convolutions around it, no conversion), and into
    an output whose rows are padded (POOLED: a max pooling after it)."""
    import torch
    from torch.nn import functional as F

    model, w, calibration = residual_network(tmp_path, POOLED if pooled else RESIDUAL, seed=5)
    binary = build_int8(model, tmp_path / "build", tmp_path / "calibration", f"weights={tmp_path / 'w.npz'}",
                        "calibration_method=minmax", f"layout={layout}")
    source = binary.with_suffix(".cpp").read_text()
    assert "engine::QuantizedAddition add_;" in source
    layers = {entry["name"]: entry for entry in json.loads(binary.with_suffix(".json").read_text())["layers"]}
    permutes = [name for name, entry in layers.items() if entry["op"] == "permute"]
    assert layers["add"]["layout"] == layout.upper()
    assert permutes == ([] if layout == "nchw" else ["data.to_nhwc", "add.dequantize.to_nchw"])   # only at the ends
    assert not pooled or "NEPoolingLayer pool_;" in source
    x = calibration[3]  # inside every calibrated (min/max) range: nothing saturates
    x.astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"))
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    with torch.no_grad():
        a = F.relu(F.conv2d(torch.from_numpy(x)[None], t["conv1.weight"], t["conv1.bias"]))
        expected = a + F.conv2d(a, t["conv2.weight"], t["conv2.bias"], padding=1)
        expected = (F.max_pool2d(expected, 3, 2) if pooled else expected)[0].numpy().ravel()
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    last = "pool" if pooled else "add"
    step = plan["tensors"][last][0]
    ours = np.fromfile(tmp_path / "y.f32", "<f4")
    error = np.abs(ours - expected) / step
    assert error.max() < 3 and error.mean() < 0.6  # input, weight and two requantization roundings
    # and exactly TFLite's integer arithmetic (tests/int8_reference.py) on the same integers, 99 values per channel
    quant = {k: (float(s), int(o)) for k, (s, o) in plan["tensors"].items()}

    def conv(q, source, name, pad):
        (scale, offset), ws = quant[source], np.asarray(plan["weight_scales"][name])
        wq = np.clip(np.round(w[f"{name}.weight"] / ws[:, None, None, None]), -127, 127).astype(np.int64)
        bq = np.round(corrected_bias(plan, name, w[f"{name}.bias"]) / (scale * ws)).astype(np.int64)
        xp, k = np.pad(q - offset, ((0, 0), (pad, pad), (pad, pad))), wq.shape[2]
        acc = sum(np.einsum("oc,chw->ohw", wq[:, :, dy, dx], xp[:, dy:dy + q.shape[1], dx:dx + q.shape[2]])
                  for dy in range(k) for dx in range(k))
        return requantize(acc + bq[:, None, None], scale, ws, quant[name][0], quant[name][1], relu=name == "conv1")

    f32 = np.float32  # engine::Quantization: x x (1 / scale) + (offset + 0.5) in float32, truncated
    q_in = np.floor(x * f32(1 / f32(quant["data"][0])) + f32(quant["data"][1] + 0.5))
    a = conv(np.clip(q_in, 0, 255).astype(np.int64), "data", "conv1", 0)
    integers = add(a, quant["conv1"], conv(a, "conv1", "conv2", 1), quant["conv2"], quant["add"])
    if pooled:  # the maximum keeps the addition's integers (and quantization)
        assert quant["pool"] == quant["add"]
        windows = np.lib.stride_tricks.sliding_window_view(integers, (3, 3), axis=(1, 2))[:, ::2, ::2]
        integers = windows.max(axis=(3, 4))
    np.testing.assert_array_equal(np.round(ours / step) + quant[last][1], integers.ravel())


def test_a_float32_addition_inside_an_8_bit_network(tmp_path):
    """int8_float_layers may name a layer with two inputs: the residual addition then reads both 8-bit convolutions'
    outputs through one dequantize each and adds in float32 (no 8-bit addition, no quantize after it: the network
    ends there); a concatenation is refused by name (its inputs write into it in place)."""
    import torch
    from torch.nn import functional as F

    model, w, calibration = residual_network(tmp_path, RESIDUAL, seed=6)
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("int8_float_layers: [add]\nlayout: {conv1: NHWC, conv2: NHWC, add: NHWC}\n")
    binary = build_int8(model, tmp_path / "build", tmp_path / "calibration", f"weights={tmp_path / 'w.npz'}",
                        "calibration_method=minmax", f"tuning={tuning}")
    source = binary.with_suffix(".cpp").read_text()
    assert "QuantizedAddition" not in source and "NEArithmeticAddition add_;" in source
    dequantized = re.findall(r'Dequantization(?:Layer)?::validate\([^;]*"([\w.]+)\.dequantize"', source)
    assert sorted(dequantized) == ["conv1", "conv2"]
    x = calibration[2]
    x.astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"))
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    with torch.no_grad():
        a = F.relu(F.conv2d(torch.from_numpy(x)[None], t["conv1.weight"], t["conv1.bias"]))
        expected = (a + F.conv2d(a, t["conv2.weight"], t["conv2.bias"], padding=1))[0].numpy().ravel()
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    step = max(plan["tensors"]["conv1"][0], plan["tensors"]["conv2"][0])
    error = np.abs(np.fromfile(tmp_path / "y.f32", "<f4") - expected) / step
    assert error.max() < 3 and error.mean() < 0.6
    (tmp_path / "concat.yaml").write_text(RESIDUAL.replace("name: residual_int8", "name: concat_int8")
                                          .replace("type: add", "type: concat"))
    tuning.write_text("int8_float_layers: [add]\n")
    proc = scons("target=armv7", f"model={tmp_path / 'concat.yaml'}", f"build_dir={tmp_path / 'build'}",
                 "precision=int8", f"calibration={tmp_path / 'calibration'}", f"tuning={tuning}", check=False)
    assert proc.returncode != 0
    assert "'add' (concat) cannot run in float32 inside the 8-bit network" in proc.stdout + proc.stderr


@pytest.mark.parametrize("shape", [(3, 7, 13), (5, 3, 3)])
def test_input_quantization_rounds_to_nearest(tmp_path, shape):
    """engine::Quantization (ACL 20.08's NEQuantizationLayer truncates on armv7) against numpy, on values off the
    grid and out of range, on odd sizes: input scale and offset given with int8_scales (no calibration), a ReLU
    (which keeps them) after it, the engine's de-quantized output (engine::Dequantization). Both convert a dense
    tensor as one row, 16 values per step, then 8, then one at a time: 273 values take 17 steps of 16 and one
    single value, 45 values 2 of 16, one of 8 and 5 single values."""
    model = tmp_path / "quantize_only.yaml"
    model.write_text(f"name: quantize_only\ninput: {{name: data, shape: {list(shape)}}}\nlayers:\n"
                     "  - {name: r, type: relu}\n")
    scale, offset = 0.05, 100
    (tmp_path / "scales.json").write_text(json.dumps({"tensors": {"data": [scale, offset]}}))
    scons("target=armv7", f"model={model}", f"build_dir={tmp_path}", "precision=int8",
          f"int8_scales={tmp_path / 'scales.json'}")
    binary = tmp_path / "armv7" / "quantize_only-int8" / "quantize_only"
    x = np.random.default_rng(8).normal(0, 4, shape).astype(np.float32)
    x.flat[-2:] = (-20.0, 20.0)  # clamped at both ends, in the values converted one at a time
    x.astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"), "--runs", "1")
    q = np.clip(np.floor(x.astype(np.float64) / scale + offset + 0.5), 0, 255)
    assert (q == 0).any() and (q == 255).any() and (np.abs(x / scale - np.round(x / scale)) > 0.1).mean() > 0.5
    expected = (np.maximum(q, offset) - offset) * np.float32(scale)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.f32", "<f4"), expected.astype(np.float32).ravel())


def test_int8_scales_are_checked_before_building(tmp_path):
    """int8_scales=FILE (a quantized model's own scales): a missing file, a file with calibration= too, a layer the
    scales do not cover, and a pooling layer whose scale contradicts our plan's rule are each one clear error."""
    model = tmp_path / "scaled.yaml"
    model.write_text("name: scaled\ninput: {name: data, shape: [3, 8, 8]}\nlayers:\n"
                     "  - {name: c, type: conv, filters: 4, kernel: 3, pad: 1, activation: relu}\n"
                     "  - {name: p, type: maxpool, kernel: 2, stride: 2}\n"
                     "  - {name: c2, type: conv, filters: 2, kernel: 1}\n")
    common = ("target=armv7", f"model={model}", f"build_dir={tmp_path}", "precision=int8")
    proc = scons(*common, f"int8_scales={tmp_path / 'none.json'}", check=False)
    assert proc.returncode != 0 and f"int8_scales={tmp_path / 'none.json'}: no such file" in proc.stderr
    scales = {"tensors": {"data": [0.02, 128], "c": [0.01, 0], "c2": [0.05, 120]},
              "weight_scales": {"c": [0.01] * 4, "c2": [0.02] * 2}}
    (tmp_path / "s.json").write_text(json.dumps(scales))
    proc = scons(*common, f"int8_scales={tmp_path / 's.json'}", f"calibration={tmp_path}", check=False)
    assert proc.returncode != 0 and "calibration= and int8_scales= exclude each other" in proc.stderr
    del scales["tensors"]["c2"]
    (tmp_path / "s.json").write_text(json.dumps(scales))
    proc = scons(*common, f"int8_scales={tmp_path / 's.json'}", check=False)
    assert proc.returncode != 0 and "layer 'c2' has no 8-bit scale" in proc.stderr
    scales["tensors"].update(c2=[0.05, 120], p=[0.03, 0])
    (tmp_path / "s.json").write_text(json.dumps(scales))
    proc = scons(*common, f"int8_scales={tmp_path / 's.json'}", check=False)
    assert proc.returncode != 0 and "layer 'p' (maxpool) is quantized with scale 0.03, offset 0, its input with " \
                                    "0.01, 0: our 8-bit 'maxpool' keeps its input's quantization" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "armv7" / "scaled-int8" / "scaled").exists()


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_global_average_pooling_requantizes_like_tflite_mean(tmp_path, tmp_path_factory, layout):
    """A global average pooling given a quantization of its own (int8_scales, as a TFLite MEAN has) gives TFLite's
    reference MEAN integers (tests/int8_reference.py), on odd shapes: in NHWC, 37 channels (16 at a time, the last
    block overlapping), 19 channels of a 300-pixel row (partial sums of 257 pixels), 13 channels (one at a time)."""
    build_dir = tmp_path_factory.getbasetemp() / "int8-builds"  # one set of runtime objects for all
    for shape in ((37, 5, 3), (19, 1, 300), (13, 7, 1)):
        name = f"gap_{layout}_{shape[1]}x{shape[2]}"
        model = tmp_path / f"{name}.yaml"
        model.write_text(f"name: {name}\ninput: {{name: data, shape: {list(shape)}}}\nlayers:\n"
                         "  - {name: pool, type: global_avgpool}\n")
        scales = {"data": [0.031, 117], "pool": [0.0113, 131]}
        (tmp_path / "s.json").write_text(json.dumps({"tensors": scales, "weight_scales": {}}))
        scons("target=armv7", f"model={model}", f"build_dir={build_dir}", "precision=int8", f"layout={layout}",
              f"int8_scales={tmp_path / 's.json'}")
        x = np.random.default_rng(3).uniform(-3.9, 4.2, shape).astype(np.float32)
        x.astype("<f4").tofile(tmp_path / "x.f32")
        run_engine(build_dir / "armv7" / f"{name}-int8" / name, "--input", str(tmp_path / "x.f32"),
                   "--output", str(tmp_path / "y.f32"))
        ours = np.round(np.fromfile(tmp_path / "y.f32", "<f4") / scales["pool"][0]) + scales["pool"][1]
        f32 = np.float32  # engine::Quantization, as in the residual test
        q = np.clip(np.floor(x * f32(1 / f32(scales["data"][0])) + f32(scales["data"][1] + 0.5)), 0, 255)
        expected = mean(q.astype(np.int64), tuple(scales["data"]), tuple(scales["pool"]))
        assert expected.std() > 1
        np.testing.assert_array_equal(ours, expected)
