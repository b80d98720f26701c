"""`scons target=armv7 ...` as a user runs it: outputs, incremental builds, cleaning, help, linking, bad weights;
and the engine's command line: weight-file checks, input checks, options."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import ARMV7, ROOT, build, run_engine, scons

V11 = ROOT / "configs/models/squeezenet_v1_1.yaml"
TINY = ROOT / "tests/models/tiny_passes.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    build_dir = tmp_path_factory.mktemp("build")
    return build(V11, build_dir), build_dir


def elf_header(path):
    data = path.read_bytes()[:52]
    return data[:4], data[4], int.from_bytes(data[18:20], "little")


def test_outputs_are_a_static_arm_executable_its_weights_and_manifest(built):
    binary, _ = built
    magic, elf_class, machine = elf_header(binary)
    assert magic == b"\x7fELF" and elf_class == 1 and machine == 40  # 32-bit, EM_ARM
    assert b"/lib/ld-linux" not in binary.read_bytes()  # static: no dynamic loader requested
    assert binary.with_suffix(".weights").stat().st_size > 4.9e6  # 1.235 M float32 parameters
    manifest = json.loads(binary.with_suffix(".json").read_text())
    assert manifest["model"] == "squeezenet_v1_1" and manifest["weights_random"] is True
    assert manifest["input_shape"] == [3, 227, 227]


def test_generated_code_concatenates_fire_modules_without_a_copy(tmp_path):
    """In NCHW a fire module's two expand convolutions write straight into the halves of its output (the paper's
    design); tests/test_squeezenet_engine.py runs that engine against PyTorch."""
    from neoncc.pipeline import compile_engine
    cpp = tmp_path / "v11.cpp"
    compile_engine(V11, None, 0, "armv7", cpp, tmp_path / "v11.weights", tmp_path / "v11.json", layout="nchw")
    source = cpp.read_text()
    assert not re.search(r"NEConcatenateLayer \w+;", source)
    for fire in range(2, 10):
        for offset_name in ("expand1x1", "expand3x3"):
            assert re.search(rf"fire{fire}_{offset_name}_out_ = SubTensor\(&fire{fire}_out_, ", source)
            assert re.search(rf"fire{fire}_{offset_name}_\.configure\(&fire{fire}_squeeze1x1_out_, "
                             rf"&fire{fire}_{offset_name}_weights_, &fire{fire}_{offset_name}_biases_, "
                             rf"&fire{fire}_{offset_name}_out_,", source)
    # every convolution validated before it is configured: ACL's functions, or our 1x1 NEGEMM (tuning file)
    assert len(re.findall(r"(NE(GEMM|Winograd|Direct)?ConvolutionLayer|engine::PointwiseConvolution)::validate\(",
                          source)) == 26
    assert "Dropout" not in source


def test_second_build_does_nothing_and_clean_removes_outputs(built, tmp_path):
    binary, build_dir = built
    args = ["target=armv7", f"model={V11}", f"build_dir={build_dir}"]
    assert scons("-q", *args, check=False).returncode == 0  # question mode: 0 means up to date
    assert "up to date" in scons(*args).stdout
    copy = tmp_path / "copy"
    shutil.copytree(build_dir, copy)
    scons("-c", "target=armv7", f"model={V11}", f"build_dir={copy}")
    assert not (copy / "armv7/squeezenet_v1_1/squeezenet_v1_1").exists()
    assert not (copy / "armv7/squeezenet_v1_1/squeezenet_v1_1.weights").exists()


def test_help_lists_variables_with_defaults():
    out = scons("-h").stdout
    for name, default in [("target", "armv7"), ("model", "configs/models/squeezenet_v1_1.yaml"),
                          ("link", "static"), ("weights", ""), ("seed", "0")]:
        assert re.search(rf"^{name}: .*\n\s+default: {re.escape(default)}$", out, re.M), (name, out)


def test_weights_found_beside_the_binary_from_any_directory(built, tmp_path):
    binary, _ = built
    np.zeros((3, 227, 227), "<f4").tofile(tmp_path / "in.f32")
    proc = subprocess.run([*ARMV7.runner(), str(binary), "--input", "in.f32", "--output", "out.f32"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert np.fromfile(tmp_path / "out.f32", "<f4").sum() == pytest.approx(1.0, abs=1e-4)


def test_default_weights_follow_the_file_name_not_the_model_name(tmp_path):
    # SCons names the binary and its weights after the model file; the network inside is called tiny_passes.
    model = tmp_path / "my_copy.yaml"
    shutil.copy(TINY, model)
    binary = build(model, tmp_path / "build")
    assert binary.name == "my_copy" and (binary.parent / "my_copy.weights").is_file()
    np.zeros((3, 20, 24), "<f4").tofile(tmp_path / "in.f32")
    proc = run_engine(binary, "--input", str(tmp_path / "in.f32"), "--output", str(tmp_path / "out.f32"))
    assert np.fromfile(tmp_path / "out.f32", "<f4").sum() == pytest.approx(1.0, abs=1e-4), proc.stderr


def test_outputs_are_labelled_probabilities_only_after_a_softmax(tmp_path):
    logits = tmp_path / "logits.yaml"
    text = TINY.read_text()
    assert text.rstrip().endswith("{name: prob, type: softmax}")
    logits.write_text(text.rstrip().rpartition("\n")[0] + "\n")  # the same network without its softmax
    np.ones((3, 20, 24), "<f4").tofile(tmp_path / "in.f32")
    args = ["--input", str(tmp_path / "in.f32"), "--output", str(tmp_path / "out.f32")]
    for model, kind, mark in ((TINY, "probabilities", "p"), (logits, "scores", "score")):
        binary = build(model, tmp_path / "build")
        assert json.loads(run_engine(binary, *args, "--json").stdout)["output"] == kind
        lines = re.findall(r"class +\d+  (\w+)=", run_engine(binary, *args).stdout)
        assert lines and set(lines) == {mark}


@pytest.fixture
def input_file(tmp_path):
    path = tmp_path / "in.f32"
    np.random.default_rng(0).normal(0, 50, (3, 227, 227)).astype("<f4").tofile(path)
    return path


def refused(binary, weights, input_file, tmp_path):
    output = tmp_path / "out.f32"
    proc = run_engine(binary, "--weights", str(weights), "--input", str(input_file), "--output", str(output),
                      check=False)
    assert proc.returncode == 1 and not output.exists()
    return proc.stderr


def test_truncated_weight_file_refused(built, input_file, tmp_path):
    weights = tmp_path / "short.weights"
    data = built[0].with_suffix(".weights").read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert "truncated weight file" in refused(built[0], weights, input_file, tmp_path)


def test_corrupted_weight_file_refused(built, input_file, tmp_path):
    data = bytearray(built[0].with_suffix(".weights").read_bytes())
    data[len(data) // 2] ^= 0x40
    weights = tmp_path / "flipped.weights"
    weights.write_bytes(bytes(data))
    assert "checksum mismatch" in refused(built[0], weights, input_file, tmp_path)


def test_damaged_tensor_table_refused_with_the_file_name(built, input_file, tmp_path):
    """One flipped byte in a tensor's dimension count: named, not `cannot create std::vector larger than ...`."""
    data = bytearray(built[0].with_suffix(".weights").read_bytes())
    name_size = int.from_bytes(data[16:20], "little")  # magic (8), version and count (8), then the first name
    data[20 + name_size + 3] ^= 0x40
    weights = tmp_path / "ndim.weights"
    weights.write_bytes(bytes(data))
    message = refused(built[0], weights, input_file, tmp_path)
    assert "ndim.weights: corrupted tensor table" in message and "dimensions" in message


def test_foreign_file_and_other_models_weights_refused(built, input_file, tmp_path):
    assert "bad magic" in refused(built[0], input_file, input_file, tmp_path)
    tiny = build(TINY, built[1])
    message = refused(built[0], tiny.with_suffix(".weights"), input_file, tmp_path)
    assert "this network needs 52" in message and "another model" in message


def test_input_of_the_wrong_size_and_bad_options(built, tmp_path):
    small = tmp_path / "small.f32"
    np.zeros(100, "<f4").tofile(small)
    proc = run_engine(built[0], "--input", str(small), "--output", str(tmp_path / "o.f32"), check=False)
    assert proc.returncode == 1 and "154587 float32 values" in proc.stderr
    proc = run_engine(built[0], "--input", str(small), "--output", "o.f32", "--threads", "zero", check=False)
    assert proc.returncode == 2 and "--threads wants a whole number" in proc.stderr and "usage:" in proc.stderr
    proc = run_engine(built[0], "--help", check=False)  # asked for: the usage on stdout, exit 0
    assert proc.returncode == 0 and proc.stdout.startswith("usage:") and "--input" in proc.stdout


@pytest.mark.parametrize("change, message", [
    (lambda w: w.pop("conv10.bias"), "missing 1 array(s) that squeezenet_v1_1 needs: conv10.bias"),
    (lambda w: w.update({"conv1.weight": np.zeros((64, 3, 5, 5), np.float32)}),
     "'conv1.weight' has shape [64, 3, 5, 5]; squeezenet_v1_1 expects [64, 3, 3, 3]"),
    (lambda w: w.update({"fire2.expand3x3.weight2": np.zeros(1, np.float32)}), "match no layer"),
])
def test_bad_npz_refused_at_build_time_leaving_nothing(tmp_path, change, message):
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.weights.pack import random_weights
    weights = random_weights(load_yaml_model(V11), 0)
    change(weights)
    np.savez(tmp_path / "w.npz", **weights)
    proc = scons("target=armv7", f"model={V11}", f"build_dir={tmp_path / 'b'}", f"weights={tmp_path / 'w.npz'}",
                 check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    leftovers = list((tmp_path / "b").rglob("*.weights*"))
    assert leftovers == []


def test_shared_linking_runs_with_the_sysroot(tmp_path, input_file):
    scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path}", "link=shared")
    binary = tmp_path / "armv7/tiny_passes/tiny_passes"
    assert b"libarm_compute.so" in binary.read_bytes()
    x = tmp_path / "x.f32"
    np.ones((3, 20, 24), "<f4").tofile(x)
    proc = run_engine(binary, "--input", str(x), "--output", str(tmp_path / "o.f32"))
    assert "tiny_passes" in proc.stdout and os.path.getsize(tmp_path / "o.f32") == 40
