"""neoncc as a package: installed into a fresh virtual environment it runs from any directory; every command
answers --version and --help (exit 0); the light commands never import PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neoncc import PROJECT_ROOT

COMMANDS = [["-m", "neoncc"], ["-m", "bench"], [str(PROJECT_ROOT / "deploy.py")]]


def _python(args, cwd=PROJECT_ROOT, python=sys.executable, **kwargs):
    return subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[-1].rsplit("/", 1)[-1])
def test_version_and_help_exit_0(command):
    version = _python([*command, "--version"])
    assert version.returncode == 0 and "0." in version.stdout, version.stderr
    assert _python([*command, "--help"]).returncode == 0


@pytest.mark.parametrize("sub", ["summary", "preprocess", "random-weights", "convert-weights", "validate", "import"])
def test_neoncc_subcommand_help_exits_0(sub):
    assert _python(["-m", "neoncc", sub, "--help"]).returncode == 0


@pytest.mark.parametrize("sub", ["tune", "report", "int8"])
def test_bench_subcommand_help_exits_0(sub):
    assert _python(["-m", "bench", sub, "--help"]).returncode == 0


def test_bench_layout_help_does_not_start_the_study():
    proc = _python(["-m", "bench.layout", "--help"])
    assert proc.returncode == 0 and "usage:" in proc.stdout and "layout:" not in proc.stderr


PROBE = """
import sys
from neoncc.__main__ import main
try:
    status = main(sys.argv[1:])
except SystemExit as done:  # --help
    status = done.code
heavy = sorted(m for m in ("torch", "onnx", "matplotlib", "paramiko") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.parametrize("args", [["--help"], ["summary", "configs/models/squeezenet_v1_1.yaml"],
                                  ["validate", "--help"], ["import", "--help"]])
def test_light_commands_do_not_import_torch(args):
    proc = _python(["-c", PROBE, *args])
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY:\n" in proc.stderr, proc.stderr.splitlines()[-1]


def test_installed_in_a_fresh_venv_works_from_any_directory(tmp_path):
    venv = tmp_path / "venv"
    # --without-pip: the interpreter's own pip and setuptools (seen through --system-site-packages) build the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              str(PROJECT_ROOT)], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PIP_NO_INDEX": "1"})
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NEONCC_ROOT")}
    for script in ("neoncc", "neoncc-deploy", "neoncc-bench"):
        proc = subprocess.run([str(venv / "bin" / script), "--version"], cwd=elsewhere, capture_output=True,
                              text=True, env=env)
        assert proc.returncode == 0 and proc.stdout.startswith(f"{script} 0."), proc.stderr
    # the installed copy, not the checkout: its data (schema, templates, runtime) comes with it
    model = elsewhere / "tiny.yaml"
    text = (PROJECT_ROOT / "configs" / "models" / "digits_fire.yaml").read_text()
    model.write_text("\n".join(line for line in text.splitlines() if not line.startswith("labels:")) + "\n")
    root = subprocess.run([python, "-c", "import neoncc; print(neoncc.__file__, neoncc.PROJECT_ROOT)"],
                          cwd=elsewhere, capture_output=True, text=True, env=env).stdout.split()
    assert str(venv) in root[0] and Path(root[1], "templates", "network.cpp.j2").is_file(), root
    summary = subprocess.run([str(venv / "bin" / "neoncc"), "summary", "tiny.yaml"], cwd=elsewhere,
                             capture_output=True, text=True, env=env)
    assert summary.returncode == 0, summary.stderr
    assert "parameters" in summary.stdout and "MACs" in summary.stdout
