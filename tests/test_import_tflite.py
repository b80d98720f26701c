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
}
ON_QEMU = ["hand_landmark_lite", "face_landmark", "iris_landmark"]


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
    """TFLite's NHWC output as the engine writes it: (C, H, W), flattened."""
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
    ("face_detection/face_detection_short_range.tflite", "classificators",
     "operator 158 (RESHAPE): reshaping [1, 16, 16, 2] to [1, 512, 1] is not supported"),
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
