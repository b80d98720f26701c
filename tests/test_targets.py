"""Targets are data: toolchain files are checked against their schema, and the compiler reads what differs between
targets (strategy, default layout, runner) from them."""

from __future__ import annotations

import pytest

from conftest import ROOT
from neoncc.errors import UserError
from neoncc.targets import toolchain


def test_shipped_targets_validate_and_one_is_the_default():
    names = [p.stem for p in (ROOT / "toolchains").glob("*.yaml")]
    assert names and all(toolchain.load(name).name == name for name in names)
    assert toolchain.default_target() in names


def test_a_misspelt_field_names_file_line_and_field(tmp_path, monkeypatch):
    text = (ROOT / "toolchains/armv7.yaml").read_text().replace("compiler_prefix:", "compiler_prefx:")
    (tmp_path / "armv7.yaml").write_text(text)
    monkeypatch.setattr(toolchain, "TOOLCHAIN_DIR", tmp_path)
    with pytest.raises(UserError) as error:
        toolchain.load("armv7")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("compiler_prefx:"))
    assert f"armv7.yaml:{line}: compiler_prefx: unknown field 'compiler_prefx'" in str(error.value)


def test_a_wrong_value_and_an_unknown_target(tmp_path, monkeypatch):
    text = (ROOT / "toolchains/armv7.yaml").read_text().replace("default_layout: NHWC", "default_layout: NWHC")
    (tmp_path / "armv7.yaml").write_text(text)
    monkeypatch.setattr(toolchain, "TOOLCHAIN_DIR", tmp_path)
    with pytest.raises(UserError, match=r"default_layout: 'NWHC' is not one of \['NCHW', 'NHWC'\]"):
        toolchain.load("armv7")
    with pytest.raises(UserError, match="unknown target 'riscv'"):
        toolchain.load("riscv")


def test_the_strategy_table_chooses_kernels(tmp_path):
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.passes import optimize, select_kernels
    graph = optimize(load_yaml_model(ROOT / "configs/models/squeezenet_v1_1.yaml"))
    for node in graph.nodes:
        node.attrs["precision"] = "int8" if node.op != "softmax" else "float32"
    select_kernels.run(graph, {}, toolchain.load("armv7").spec["strategy"])
    assert graph.node("conv1").attrs["impl"] == "qconv" and graph.node("pool10").attrs["impl"] == "engine"
