"""The benchmark commands as a user meets them: names and paths both accepted, a wrong one refused before any
work, results in results/<stamp>/ and docs/ untouched unless --update-docs, progress on stderr."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np

from conftest import ROOT, on_terminal

TINY = ROOT / "tests/models/tiny_passes.yaml"


def docs_state() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ROOT / "docs").rglob("*")) if p.is_file()}


def bench(*args, timeout=1800):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_unknown_model_is_one_error_before_any_work():
    before = sorted((ROOT / "results").glob("*")) if (ROOT / "results").is_dir() else []
    for command in (["report", "--models", "configs/models/nope.yaml", "--peers"], ["int8", "nope"], ["tune", "nope"]):
        proc = bench(*command, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("error: unknown model") and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "squeezenet_v1_1" in proc.stderr  # lists the known ones
    after = sorted((ROOT / "results").glob("*")) if (ROOT / "results").is_dir() else []
    assert after == before


def test_report_on_a_model_path_writes_results_leaves_docs_untouched_and_shows_a_progress_bar():
    """One run on a terminal (stderr on a pseudo-terminal): the bar and the progress lines there, nothing on
    stdout, the report in results/<stamp>/, docs/ untouched."""
    before = docs_state()
    status, terminal, stdout = on_terminal([sys.executable, "-m", "bench", "report", "--models", str(TINY), "--peers",
                                            "--runs", "1"], timeout=1800)
    assert status == 0, terminal[-3000:]
    assert docs_state() == before
    assert stdout == ""  # progress and the closing line on stderr
    assert "bench report: 1 steps done" in terminal and "tiny_passes: our engine (tuned), counting" in terminal
    closing = [line for line in terminal.splitlines() if "report: results/" in line]  # the lines stay, above the bar
    assert len(closing) == 1 and "docs/ untouched" in closing[0]
    out = ROOT / "results" / closing[0].split("report: results/", 1)[1].split("/report.md")[0]
    text = (out / "report.md").read_text()
    assert "tiny_passes" in text and (out / "report.json").is_file()
    assert "Targets:" not in text and "as in the paper" not in text  # SqueezeNet's, not a user's model's
    assert all((out / chart).stat().st_size > 0 for chart in ("peers.png", "groups_threads.png", "tiny_passes_layers.png"))
    measured = __import__("json").loads((out / "report.json").read_text())["models"][0]["ours"]
    assert set(measured["scaling_range_ms"]) == set(measured["scaling_ms"])  # min–max over the repeated runs


def test_int8_wording_is_right_in_both_directions():
    from bench.int8 import fewer_or_more
    assert fewer_or_more(200e6, 100e6) == "**2.00x** fewer"
    assert fewer_or_more(100e6, 116e6) == "**1.16x** more"  # int8 slower: never "0.86x fewer"


def test_int8_accuracy_names_near_ties_apart():
    """A flip where float32 was all but tied counts against the plain agreement, and is reported with its margin;
    the agreement on the inputs float32 calls clearly is given beside it."""
    from bench.int8 import accuracy
    reference = np.array([[0.70, 0.20, 0.10], [0.403, 0.400, 0.197], [0.10, 0.60, 0.30], [0.2, 0.3, 0.5]])
    ours = np.array([[0.60, 0.30, 0.10], [0.399, 0.404, 0.197], [0.10, 0.55, 0.35], [0.45, 0.25, 0.3]])
    a = accuracy(reference, ours)
    assert a["top1_agreement"] == 0.5
    assert a["decisive_inputs"] == 3 and np.isclose(a["decisive_agreement"], 2 / 3)
    assert np.allclose(a["disagreement_margins"], [0.003, 0.2])
    assert accuracy(reference[1:2], ours[1:2])["decisive_agreement"] is None


def test_int8_on_a_users_model_with_its_weights_and_input_folders(tmp_path):
    """bench int8 on a model of the user's own: its trained weights and its own calibration and test folders (.f32
    tensors here) replace the bundled ones, named in the report; the float32 engine's outputs on the user's test
    inputs are PyTorch's with the user's weights; docs/ untouched; --update-docs with them is refused."""
    import json

    import torch
    import torch.nn.functional as F

    model = tmp_path / "bench_int8_user.yaml"
    model.write_text("name: bench_int8_user\ninput: {name: data, shape: [3, 13, 11]}\nlayers:\n"
                     "  - {name: conv1, type: conv, filters: 12, kernel: 3, pad: 1, activation: relu}\n"
                     "  - {name: conv2, type: conv, filters: 7, kernel: 1}\n"
                     "  - {name: pool, type: global_avgpool}\n  - {name: prob, type: softmax}\n")
    rng = np.random.default_rng(11)
    weights = {"conv1.weight": rng.normal(0, 0.3, (12, 3, 3, 3)), "conv1.bias": rng.normal(0, 0.1, 12),
               "conv2.weight": rng.normal(0, 0.5, (7, 12, 1, 1)), "conv2.bias": rng.normal(0, 0.1, 7)}
    np.savez(tmp_path / "w.npz", **{k: v.astype(np.float32) for k, v in weights.items()})
    for folder, count in (("calibration", 8), ("held_out", 12)):
        (tmp_path / folder).mkdir()
        rng.normal(0, 1, (count, 3, 13, 11)).astype("<f4").tofile(tmp_path / folder / "inputs.f32")
    before = docs_state()
    args = [str(model), "--weights", str(tmp_path / "w.npz"), "--calibration", str(tmp_path / "calibration"),
            "--test", str(tmp_path / "held_out")]
    refused = bench("int8", *args, "--update-docs", timeout=120)
    assert refused.returncode == 1 and refused.stderr.startswith("error: --update-docs rewrites")
    proc = bench("int8", *args, "--runs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert docs_state() == before
    out = ROOT / proc.stderr.strip().splitlines()[-1].split("wrote ", 1)[1].split("/int8.md")[0]
    report = (out / "int8.md").read_text()
    assert "given (w.npz)" in report and f"on 12 inputs from the folder {tmp_path / 'held_out'}" in report
    assert f"calibrated on 8 inputs from the folder {tmp_path / 'calibration'}" in report
    assert "by `python3 -m bench int8`" in report and "seeded random" not in report
    result = json.loads((out / "int8.json").read_text())[0]
    assert result["accuracy"]["inputs"] == 12 and set(result["sensitivity"]) >= {"conv1", "conv2"}

    x = torch.from_numpy(np.fromfile(tmp_path / "held_out/inputs.f32", "<f4").reshape(12, 3, 13, 11))
    w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
    y = F.conv2d(F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"], padding=1)), w["conv2.weight"], w["conv2.bias"])
    expected = torch.softmax(y.mean((2, 3)), 1).numpy()
    engine = np.fromfile(ROOT / "build/bench-int8/bench_int8_user/test.bench_int8_user.out", "<f4").reshape(12, 7)
    assert np.abs(engine - expected).max() < 1e-5
