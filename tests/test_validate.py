"""`neoncc validate`: engine on target vs the host reference, with metrics that fail when limits are exceeded."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from neoncc.tools.validate import compare

TINY = ROOT / "tests/models/tiny_mobile.yaml"


def validate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neoncc", "validate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def test_metrics():
    reference = np.array([[0.7, 0.2, 0.1, 0.0, 0.0, 0.0], [0.1, 0.6, 0.3, 0.0, 0.0, 0.0]])
    engine = np.array([[0.7, 0.2, 0.1, 0.0, 0.0, 0.0], [0.1, 0.3, 0.6, 0.0, 0.0, 0.0]])
    m = compare(engine, reference)
    assert m.inputs == 2 and m.max_abs_error == pytest.approx(0.3)
    assert m.l2_relative_error == pytest.approx(np.sqrt(0.18) / np.sqrt(0.46))
    assert m.cosine_similarity == pytest.approx(0.37 / 0.46)
    assert m.top1_agreement == 0.5 and m.top5_agreement == 1.0


def test_engine_under_qemu_agrees_with_the_reference():
    proc = validate(str(TINY), "--random", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["inputs"] == 6 and report["failures"] == [] and report["schema_version"] == 1
    assert "validate: PyTorch reference on 6 input(s)" in proc.stderr  # progress on stderr, the result on stdout
    assert report["max_abs_error"] < 1e-5 and report["cosine_similarity"] > 0.99999
    assert report["top1_agreement"] == 1.0 and report["top5_agreement"] == 1.0


def test_exceeded_limits_fail_with_the_metric_named():
    proc = validate(str(TINY), "--random", "2", "--max-abs", "0")
    assert proc.returncode == 1 and "FAIL: max_abs_error" in proc.stdout


def test_validation_on_the_emulated_board(models_board):
    proc = validate(str(TINY), "--random", "4", "--board", str(models_board), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["on"] == f"board {models_board}" and report["inputs"] == 4 and report["failures"] == []
    assert report["max_abs_error"] < 1e-5 and report["top1_agreement"] == 1.0
