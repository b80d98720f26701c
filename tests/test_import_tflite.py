"""TFLite import: real .tflite models that ship in a PyPI package (MediaPipe 0.10.14's wheel, installed with
--no-deps only for its model files), imported, built for armv7 and run under qemu-arm; each must compute what the
host LiteRT runtime (ai-edge-litert) computes from the same file, within 1e-4 relative to the output's largest
value. The input is a photo (scikit-image's astronaut), as the model's NHWC float input in [0, 1]."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from import_helpers import engine_output, refused, run_import, yaml_layers
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.reference import torch_graph

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert: scripts/setup --tests installs it")
_spec = importlib.util.find_spec("mediapipe")
if _spec is None:
    pytest.skip("mediapipe (its .tflite files): scripts/setup --tests installs it", allow_module_level=True)
MODULES = Path(_spec.submodule_search_locations[0]) / "modules"

# (file under mediapipe/modules, the output the engine computes)
MODELS = {
    "hand_landmark_lite": ("hand_landmark/hand_landmark_lite.tflite", "Identity"),      # 21 landmarks x (x, y, z)
    "hand_landmark_full": ("hand_landmark/hand_landmark_full.tflite", "Identity_3"),    # world landmarks
    "face_landmark": ("face_landmark/face_landmark.tflite", "conv2d_21"),               # 468 landmarks x 3
    "iris_landmark": ("iris_landmark/iris_landmark.tflite", "output_eyes_contours_and_brows"),
    "face_detection": ("face_detection/face_detection_short_range.tflite", "regressors"),  # [1, 896, 16]
}
ON_QEMU = ["hand_landmark_lite", "face_landmark", "iris_landmark", "face_detection"]


def photo(height: int, width: int) -> np.ndarray:
    """The astronaut's face and shoulders, resized to the model's input, RGB in [0, 1], NHWC."""
    from PIL import Image
    from skimage import data
    crop = Image.fromarray(data.astronaut()[20:300, 100:380])
    return (np.asarray(crop.resize((width, height), Image.BILINEAR), np.float32) / 255.0)[None]


def litert_output(path: Path, output: str, x: np.ndarray) -> np.ndarray:
    interpreter = litert.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    details = next(d for d in interpreter.get_output_details() if d["name"] == output)
    return interpreter.get_tensor(details["index"])


def as_engine_order(value: np.ndarray) -> np.ndarray:
    """TFLite's NHWC output as the engine writes it: (C, H, W), flattened ([1, N] and [1, A, B] as they are)."""
    return value[0].transpose(2, 0, 1).ravel() if value.ndim == 4 else value.ravel()


def check(actual: np.ndarray, expected: np.ndarray, what: str) -> float:
    scale = float(np.abs(expected).max())
    assert expected.std() > 0.05 * scale and np.count_nonzero(expected) > expected.size // 2, \
        "reference output is flat or mostly zero: the comparison would be too weak"
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.float64) - expected)
    print(f"\n{what}: max abs diff {diff.max():.3g}, relative to the largest output ({scale:.3g}) "
          f"{diff.max() / scale:.3g}")
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)
    return diff.max() / scale


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each model imported once: name -> (yaml, npz, input, LiteRT's output in the engine's order)."""
    work = tmp_path_factory.mktemp("tflite")
    done = {}
    for name, (file, output) in MODELS.items():
        path = MODULES / file
        yaml, npz = work / f"mp_{name}.yaml", work / f"mp_{name}.npz"
        run_import("tflite", path, "--output-tensor", output, "-o", yaml, "--weights-out", npz)
        interpreter = litert.Interpreter(model_path=str(path))
        _, height, width, _ = interpreter.get_input_details()[0]["shape"]
        x = photo(int(height), int(width))
        done[name] = yaml, npz, x, as_engine_order(litert_output(path, output, x))
    return done


@pytest.mark.parametrize("name", list(MODELS))
def test_host_interpreter_matches_litert(imported, name):
    """neoncc's PyTorch interpreter of the imported description: the import itself is right."""
    yaml, npz, x, expected = imported[name]
    with np.load(npz) as weights:
        actual = np.asarray(torch_graph.run(load_yaml_model(yaml), dict(weights), x.transpose(0, 3, 1, 2))[0])
    check(actual.ravel(), expected, f"{name}, host interpreter vs LiteRT")


@pytest.mark.parametrize("name", ON_QEMU)
def test_engine_under_qemu_matches_litert(imported, tmp_path_factory, name):
    yaml, npz, x, expected = imported[name]
    actual = engine_output(tmp_path_factory, yaml, npz, x[0].transpose(2, 0, 1))
    check(actual, expected, f"{name}, engine under qemu-arm vs LiteRT")


def test_descriptions_read_like_the_model(imported):
    """Depthwise convolutions with TFLite's SAME padding spelled out, PReLU with a slope per channel, BlazeFace's
    channel padding before residual adds as slice + add + concat, the fully connected head."""
    hand = yaml_layers(imported["hand_landmark_lite"][0])
    assert hand[0] == "  - {name: re_lu.Relu6, type: conv, filters: 24, kernel: 3, stride: 2, pad: [0, 1, 0, 1], " \
                      "activation: relu6}"
    assert hand[-2:] == ["  - {name: global_average_pooling2d.Mean, type: global_avgpool}",
                         "  - {name: Identity, type: fc, units: 63}"]
    iris = load_yaml_model(imported["iris_landmark"][0])
    kinds = [node.op for node in iris.nodes]
    assert kinds.count("prelu") == 37 and "slice" in kinds and "concat" in kinds
    faces = load_yaml_model(imported["face_detection"][0])
    assert [n.op for n in faces.nodes][-3:] == ["flatten", "flatten", "concat"]  # anchors of two feature maps
    for yaml, *_ in imported.values():
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", node.name) for node in load_yaml_model(yaml).nodes)


def test_several_outputs_need_a_choice(tmp_path, capsys):
    err = refused(capsys, "tflite", MODULES / "hand_landmark/hand_landmark_lite.tflite", "-o", tmp_path / "m.yaml",
                  "--weights-out", tmp_path / "m.npz")
    assert "the model has 4 outputs (Identity, Identity_1, Identity_2, Identity_3); the engine computes one: " \
           "choose it with --output-tensor NAME" in err
    err = refused(capsys, "tflite", MODULES / "hand_landmark/hand_landmark_lite.tflite", "--output-tensor", "nope",
                  "-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert "--output-tensor nope: the model has no tensor of that name" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("file, output, message", [
    ("palm_detection/palm_detection_lite.tflite", "Identity_1",
     "operator 168 (RESIZE_BILINEAR): this operator is not supported (supported: ADD, "),
    ("holistic_landmark/hand_recrop.tflite", "output_crop",
     "operator 49 (STRIDED_SLICE): slicing a computed tensor is not supported (only shape arithmetic on constants)"),
    ("selfie_segmentation/selfie_segmentation.tflite", "activation_10",
     "operator 167 (RESIZE_BILINEAR): this operator is not supported (supported: ADD, "),
])
def test_unsupported_operators_are_refused_by_index_and_name(tmp_path, capsys, file, output, message):
    err = refused(capsys, "tflite", MODULES / file, "--output-tensor", output, "-o", tmp_path / "m.yaml",
                  "--weights-out", tmp_path / "m.npz")
    assert f"{MODULES / file}: {message}" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [], "nothing half-written"


def test_refuses_a_file_that_is_not_tflite(tmp_path, capsys):
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    err = refused(capsys, "tflite", tmp_path / "junk.tflite", "-o", tmp_path / "m.yaml", "--weights-out",
                  tmp_path / "m.npz")
    assert f"{tmp_path / 'junk.tflite'}: not a TFLite model" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tflite"]


def test_file_names_never_reach_the_model_unescaped(tmp_path):
    """A model file and an output file named with shell and C++ metacharacters: the description's name and every
    layer name are identifiers; the files are written where asked."""
    odd = tmp_path / "iris $(touch pwned); `x`.tflite"
    shutil.copy(MODULES / "iris_landmark/iris_landmark.tflite", odd)
    yaml, npz = tmp_path / "my model;rm -rf.yaml", tmp_path / "w $x.npz"
    run_import("tflite", odd, "--output-tensor", "output_iris", "-o", yaml, "--weights-out", npz)
    graph = load_yaml_model(yaml)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", graph.name)
    assert not (tmp_path / "pwned").exists() and npz.is_file()


# --- a fully 8-bit model: MediaPipe's hand landmark model (lite) quantized here by TFLite's own quantizer -------

INT8_OUTPUT = "Identity"  # the 21 landmarks: the last fully connected layer, which our plan runs in float32
INT8_LAST = "model_1/model/global_average_pooling2d/Mean"  # the last 8-bit tensor before that float32 tail


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """hand_landmark_lite, calibrated on photos other than the test's and fully quantized (tests/tflite_quantize.py)."""
    from PIL import Image
    from skimage import data
    from tflite_quantize import quantize, widen
    work = tmp_path_factory.mktemp("tflite-int8")
    widen(MODULES / MODELS["hand_landmark_lite"][0], work / "hand32.tflite")
    calibration = []
    for image in (data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()):
        for crop in (image, image[:, ::-1], image[image.shape[0] // 4:, image.shape[1] // 4:]):
            resized = Image.fromarray(np.ascontiguousarray(crop)).resize((224, 224), Image.BILINEAR)
            calibration.append((np.asarray(resized, np.float32) / 255.0)[None])
    quantize(work / "hand32.tflite", work / "hand_int8.tflite", calibration)
    return work, work / "hand_int8.tflite"


def tensor_details(path: Path) -> dict:
    interpreter = litert.Interpreter(model_path=str(path))
    return {d["name"]: d for d in interpreter.get_tensor_details()}


def litert_int8(path: Path, x: np.ndarray, tensor: str, reference: bool) -> np.ndarray:
    """A tensor of the 8-bit model, as the integers LiteRT computed: with its default (XNNPACK) kernels, or its
    reference kernels."""
    kind = litert.OpResolverType.BUILTIN_REF if reference else litert.OpResolverType.AUTO
    interpreter = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=kind,
                                     experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(tensor_details(path)[tensor]["index"])


def int8_engine(tmp_path_factory, model: Path, output: str, work: Path, x: np.ndarray) -> np.ndarray:
    """Imports the 8-bit model for one of its tensors, builds it with precision=int8 and its own scales, runs it
    under qemu-arm."""
    from conftest import build, infer
    name = "q_" + re.sub(r"\W", "_", output.split(";")[0])[-40:]
    yaml, npz = work / f"{name}.yaml", work / f"{name}.npz"
    run_import("tflite", model, "--output-tensor", output, "-o", yaml, "--weights-out", npz)
    scales = work / f"{name}.int8.json"
    assert scales.is_file(), "a fully 8-bit model comes with its scales"
    build_dir = tmp_path_factory.getbasetemp() / "import-builds"
    build(yaml, build_dir, npz, "precision=int8", f"int8_scales={scales}")
    binary = build_dir / "armv7" / f"{name}-int8" / name
    actual, _ = infer(binary, x[0].transpose(2, 0, 1), work)
    return actual


def test_int8_model_imports_with_its_own_scales(int8_model, tmp_path):
    """Every operator but the float interface's QUANTIZE/DEQUANTIZE is int8; the imported scales are the file's (int8
    zero point + 128 = our QASYMM8 offset), and the plan the build makes from them keeps them."""
    import json
    from neoncc.pipeline import import_plan
    from neoncc.quantize.plan import QuantPlan
    work, model = int8_model
    details = tensor_details(model)
    interpreter = litert.Interpreter(model_path=str(model))
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
            types = {interpreter.get_tensor_details()[t]["dtype"] for t in [*op["inputs"], *op["outputs"]] if t >= 0}
            assert types <= {np.int8, np.int32}, (op["op_name"], types)
    yaml, npz = tmp_path / "hand_int8.yaml", tmp_path / "hand_int8.npz"
    run_import("tflite", model, "--output-tensor", INT8_OUTPUT, "-o", yaml, "--weights-out", npz)
    scales = json.loads((tmp_path / "hand_int8.int8.json").read_text())
    quantized_input = details["input_1_int8"]["quantization"]
    assert scales["tensors"]["input_1"] == [pytest.approx(quantized_input[0], rel=1e-7), quantized_input[1] + 128]
    first = next(name for name in details if name.startswith("model_1/model/re_lu/Relu6;"))
    assert scales["tensors"]["re_lu.Relu6"] == [pytest.approx(details[first]["quantization"][0], rel=1e-7),
                                                details[first]["quantization"][1] + 128]
    kernel = details["model_1/model/conv2d/Conv2D_dequantize"]["quantization_parameters"]["scales"]
    assert np.allclose(scales["weight_scales"]["re_lu.Relu6"], kernel, rtol=1e-7) and len(kernel) == 24
    import_plan(yaml, npz, 0, tmp_path / "hand_int8.int8.json", tmp_path / "plan.json")
    plan = QuantPlan.read(tmp_path / "plan.json")
    assert plan.method == "imported" and plan.calibration_inputs == 0 and plan.float_tail == ["Identity_int8"]
    for layer, (scale, offset) in scales["tensors"].items():
        if layer in plan.tensors:  # (the mean too: our 8-bit global average pooling requantizes like TFLite's MEAN)
            assert plan.tensors[layer] == (pytest.approx(scale), offset), layer


def test_int8_first_convolution_matches_litert(int8_model, tmp_path_factory):
    """The first layer, from the quantized input: LiteRT's reference kernels' integers exactly (the requantization is
    TFLite's fixed-point one), and its default kernels' but for rounding ties."""
    work, model = int8_model
    details = tensor_details(model)
    first = next(name for name in details if name.startswith("model_1/model/re_lu/Relu6;"))
    x = photo(224, 224)
    actual = int8_engine(tmp_path_factory, model, first, work, x)
    scale, zero = details[first]["quantization"]
    for reference in (False, True):
        expected = as_engine_order((litert_int8(model, x, first, reference).astype(np.float64) - zero) * scale)
        steps = np.round(np.abs(actual - expected) / scale)
        print(f"\nint8 first convolution vs LiteRT ({'reference' if reference else 'default'} kernels): "
              f"max {steps.max():.0f} steps, {int((steps > 0).sum())} of {steps.size} values differ")
        assert steps.max() <= (0 if reference else 1)
        assert (steps > 0).mean() < 1e-2


def test_int8_model_computes_litert_reference_integers(int8_model, tmp_path_factory):
    """The whole 8-bit part of the network (31 convolutions, 16 depthwise ones, 10 additions, a max pooling, the
    mean) gives the integers of LiteRT's reference kernels: its last 8-bit tensor, the mean the fully connected
    layers read, within one step (equal when this was written). LiteRT's own default (XNNPACK) kernels are several
    steps from its reference kernels there (10 when this was written): printed, not asserted."""
    work, model = int8_model
    x = photo(224, 224)
    scale, zero = tensor_details(model)[INT8_LAST]["quantization"]
    actual = int8_engine(tmp_path_factory, model, INT8_LAST, work, x)
    ours = np.round(actual / scale).astype(np.int64) + zero
    reference, default = (litert_int8(model, x, INT8_LAST, ref).ravel().astype(np.int64) for ref in (True, False))
    assert ours.shape == reference.shape == (672,) and reference.std() > 5, "too weak a comparison"
    print(f"\nint8 hand landmark model, last 8-bit tensor ({INT8_LAST}, {reference.size} values): engine vs LiteRT "
          f"reference kernels max {np.abs(ours - reference).max()} steps, {int((ours != reference).sum())} differ; "
          f"LiteRT default vs reference kernels max {np.abs(default - reference).max()} steps, "
          f"{int((default != reference).sum())} differ")
    assert np.abs(ours - reference).max() <= 1


def test_int8_whole_model_is_within_one_step_of_litert_reference_kernels(int8_model, tmp_path_factory):
    """The landmarks: the engine's float32 fully connected layers on those integers end within one output step of
    LiteRT's 8-bit ones (reference kernels), and about as close to the float model as LiteRT's 8-bit results are.
    LiteRT's default and reference kernels end several output steps apart (7 when this was written): printed."""
    work, model = int8_model
    x = photo(224, 224)
    actual = int8_engine(tmp_path_factory, model, INT8_OUTPUT, work, x)
    step = tensor_details(model)[f"{INT8_OUTPUT}_int8"]["quantization"][0]
    default, reference = (litert_output_with(model, x, ref) for ref in (False, True))
    floating = litert_output(work / "hand32.tflite", INT8_OUTPUT, x).ravel()
    spread = np.abs(default - reference).max() / step
    ours = np.abs(actual - reference).max() / step
    error = {name: np.abs(v - floating).mean() for name, v in
             (("engine", actual), ("LiteRT default", default), ("LiteRT reference", reference))}
    print(f"\nint8 hand landmarks (step {step:.3g}): engine vs LiteRT reference kernels {ours:.2f} steps; LiteRT "
          f"default vs reference kernels {spread:.2f} steps; mean error vs float32: "
          + ", ".join(f"{k} {v:.3g}" for k, v in error.items()))
    assert ours <= 1
    assert error["engine"] <= 1.25 * max(error["LiteRT default"], error["LiteRT reference"])


def litert_output_with(path: Path, x: np.ndarray, reference: bool) -> np.ndarray:
    kind = litert.OpResolverType.BUILTIN_REF if reference else litert.OpResolverType.AUTO
    interpreter = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    details = next(d for d in interpreter.get_output_details() if d["name"] == INT8_OUTPUT)
    return interpreter.get_tensor(details["index"]).ravel()
