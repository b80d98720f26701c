"""A build's identity includes its weights: `scons ... weights=W` then `deploy.py --model M` runs W (or refuses in
one line when W is gone or changed), `--no-build --weights W` refuses a build made with other weights, and the
manifest records the weights, precision, calibration and tuning by content hash."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, scons
from deploy import build
from deploy.errors import DeployError

TINY = ROOT / "tests/models/tiny_passes.yaml"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_npz(model, seed, out):
    subprocess.run([sys.executable, "-m", "neoncc", "random-weights", str(model), "--seed", str(seed), "-o", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture
def model(tmp_path):
    """The tiny model under a name of its own, so its build (build/armv7/<name>/, where deploy looks) is this
    test's alone; removed afterwards."""
    name = f"identity_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.read_text())
    yield path
    shutil.rmtree(ROOT / "build" / "armv7" / name, ignore_errors=True)


def test_deploy_keeps_the_weights_scons_built_with_and_refuses_a_swap(model, tmp_path, caplog):
    w = random_npz(model, 5, tmp_path / "w.npz")
    other = random_npz(model, 6, tmp_path / "other.npz")
    scons("target=armv7", f"model={model}", f"weights={w}")
    manifest = json.loads((ROOT / "build/armv7" / model.stem / f"{model.stem}.json").read_text())
    assert manifest["weights_sha256"] == sha256(w) and manifest["weights_random"] is False
    assert manifest["precision"] == "float32" and manifest["calibration"] is None
    assert manifest["model_sha256"] == sha256(model) and len(manifest["build_id"]) == 16

    # deploy's build without --weights: the same weights, the same build (SCons rebuilds nothing)
    lines = []
    caplog.set_level(logging.DEBUG, logger="neoncc.build")  # SCons's own lines
    engine = build.build_engine(model, log=lines.append)
    assert engine.manifest["weights_sha256"] == sha256(w) and not engine.weights_random
    assert engine.manifest["build_id"] == manifest["build_id"]
    assert any("keeps the weights it was built with" in line for line in lines)
    scons_lines = [r.getMessage() for r in caplog.records if r.name == "neoncc.build"]
    assert scons_lines and not any(line.startswith("build: compile") for line in scons_lines), scons_lines

    # --no-build --weights: the build must be made of exactly those weights
    build.check_build(engine, w)
    with pytest.raises(DeployError, match=r"this build has the weights .*w\.npz, not .*other\.npz"):
        build.check_build(engine, other)
    proc = subprocess.run([sys.executable, "deploy.py", "--model", str(model), "--no-build", "--weights", str(other)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "not " + str(other) in proc.stderr

    # the weights the build was made with changed on disk: refused in one line, never random weights instead
    shutil.copyfile(other, w)
    with pytest.raises(DeployError, match="has changed since; give --weights FILE"):
        build.build_engine(model, log=lambda line: None)
    w.unlink()
    with pytest.raises(DeployError, match="no longer exists"):
        build.build_engine(model, log=lambda line: None)

    # asked for explicitly: random weights (a new identity)
    engine = build.build_engine(model, log=lambda line: None, random_weights=True)
    assert engine.weights_random and engine.manifest["weights_sha256"] is None
    assert engine.manifest["build_id"] != manifest["build_id"]
    # and other trained weights rebuild with those
    engine = build.build_engine(model, other, log=lambda line: None)
    assert engine.manifest["weights_sha256"] == sha256(other)


def test_a_label_file_of_the_wrong_length_is_said_not_dropped(tmp_path, caplog):
    from deploy.cli import class_names
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    engine = build.Engine("m", TINY, tmp_path, {"labels": str(labels)})
    assert class_names(engine, 2) == ["cat", "dog"]
    with caplog.at_level(logging.WARNING, logger="neoncc.deploy"):
        assert class_names(engine, 10) is None
    assert "has 2 names for 10 output classes" in caplog.text
