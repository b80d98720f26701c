"""The YAML model description: schema errors name file, line and field; shapes, parameters and MACs agree with
PyTorch's own modules; the summary command prints them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import ROOT
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.shapes import macs, param_count
from torch_reference import SqueezeNet

GOOD_HEAD = """\
name: broken
input: {shape: [3, 32, 32]}
layers:
"""


def error_for(tmp_path, layers: str, head: str = GOOD_HEAD) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(head + textwrap.dedent(layers))
    with pytest.raises(UserError) as info:
        load_yaml_model(path)
    return str(info.value)


@pytest.mark.parametrize("layers, line, expected", [
    ("  - {name: c1, type: conv, filters: 8, kernel: 3}\n  - {name: c2, type: conv, filters: 8, kernal: 3}\n",
     5, "layers[1].kernal: unknown field 'kernal'"),
    ("  - {name: c1, type: conv, filters: eight, kernel: 3}\n", 4, "layers[0].filters: 'eight' is not of type"),
    ("  - {name: c1, type: conv, kernel: 3}\n", 4, "layers[0]: 'filters' is required"),
    ("  - {name: c1, type: convolution, filters: 8, kernel: 3}\n", 4, "layers[0].type: 'convolution' is not one of"),
    ("  - {name: c1, type: conv, filters: 8, kernel: 3}\n  - {name: p, type: maxpool, kernel: 2, rounding: up}\n",
     5, "layers[1].rounding: 'up' is not one of"),
    ("  - {name: c1, type: conv, filters: 8, kernel: 3}\n  - {name: x, type: concat, input: [c1, nope]}\n",
     5, "layers[1].input: no earlier layer named 'nope'"),
    ("  - {name: c1, type: conv, filters: 8, kernel: 3}\n  - {name: c1, type: relu}\n",
     5, "layers[1].name: 'c1' is used twice"),
    ("  - {name: c1, type: conv, filters: 8, kernel: 40}\n", 4, "layer 'c1': kernel 40x40 is larger than"),
])
def test_errors_name_file_line_and_field(tmp_path, layers, line, expected):
    message = error_for(tmp_path, layers)
    assert f"broken.yaml:{line}: " in message and expected in message, message


def test_error_in_top_level_field(tmp_path):
    message = error_for(tmp_path, "  - {name: c1, type: relu}\n",
                        head="name: broken\ninput: {shape: [3, 32]}\nlayers:\n")
    assert "broken.yaml:2: input.shape: " in message and "too short" in message


def test_invalid_yaml_syntax(tmp_path):
    message = error_for(tmp_path, "  - {name: c1, type: conv\n")
    assert "broken.yaml:" in message and "not valid YAML" in message


def shapes_and_macs(model: nn.Module, size: int) -> dict:
    """Per-convolution output shape, parameters and MACs measured from PyTorch's modules with hooks."""
    found = {}

    def hook(module, inputs, output):
        name = names[module]
        _, out_c, out_h, out_w = output.shape
        found[name] = (tuple(output.shape[1:]), sum(p.numel() for p in module.parameters()),
                       out_c * out_h * out_w * module.in_channels * module.kernel_size[0] * module.kernel_size[1])

    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    for module in names:
        module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return found


@pytest.mark.parametrize("version, total_macs, total_params", [("1_0", 832.7e6, 1.248e6), ("1_1", 387.7e6, 1.235e6)])
def test_shapes_params_and_macs_match_pytorch(version, total_macs, total_params):
    graph = load_yaml_model(ROOT / f"configs/models/squeezenet_v{version}.yaml")
    expected = shapes_and_macs(SqueezeNet(version), 227)
    ours = {n.name: (n.shape, param_count(n), macs(graph, n)) for n in graph.nodes if n.op == "conv"}
    assert ours == expected
    assert sum(v[2] for v in ours.values()) == pytest.approx(total_macs, rel=1e-3)
    assert sum(v[1] for v in ours.values()) == pytest.approx(total_params, rel=1e-3)
    assert graph.node("pool1").shape[1:] == ((55, 55) if version == "1_0" else (56, 56))  # ceil rounding


def test_summary_command():
    proc = subprocess.run([sys.executable, "-m", "neoncc", "summary", "configs/models/squeezenet_v1_0.yaml"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert "fire9.expand3x3" in proc.stdout and "512x13x13" in proc.stdout
    assert "1,248,424 parameters" in proc.stdout and "832,667,936 MACs" in proc.stdout


def test_summary_command_reports_a_bad_file_cleanly(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_HEAD + "  - {name: c1, type: conv}\n")
    proc = subprocess.run([sys.executable, "-m", "neoncc", "summary", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "bad.yaml:4:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_labels_file_is_refused_before_building(tmp_path):
    """`labels:` is read from the description's folder: a copied description whose relative path no longer
    resolves is refused when it is read, with its line, not after build, upload and run."""
    text = (ROOT / "configs/models/digits_fire.yaml").read_text()
    (tmp_path / "copy.yaml").write_text(text)
    with pytest.raises(UserError) as err:
        load_yaml_model(tmp_path / "copy.yaml")
    assert str(err.value).startswith(f"{tmp_path / 'copy.yaml'}:5: labels: no such file: ")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "digits.txt").write_text("\n".join("0123456789") + "\n")
    (tmp_path / "copy.yaml").write_text(text.replace("../labels/digits.txt", "labels/digits.txt"))
    assert load_yaml_model(tmp_path / "copy.yaml").meta["labels"] == str(tmp_path / "labels" / "digits.txt")
