"""Targets are data: toolchain files are checked against their schema, and the compiler reads what differs between
targets (strategy, default layout, runner) from them."""

from __future__ import annotations

import subprocess

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


def test_every_targets_host_packages_are_installed_by_setup():
    listed = {line.strip() for line in (ROOT / "scripts/apt-packages.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    for path in (ROOT / "toolchains").glob("*.yaml"):
        assert set(toolchain.load(path.stem).spec["host_packages"]) <= listed, path.name


def test_a_boards_arch_names_its_target():
    assert toolchain.for_machine("armv7l").name == "armv7"
    assert toolchain.for_machine("aarch64").name == "aarch64"
    with pytest.raises(UserError, match=r"board.yaml: arch: no target in .*toolchains runs on `uname -m` = x86_64 "
                                        r"\(known: .*aarch64 \(aarch64\).*armv7l \(armv7\)"):
        toolchain.for_machine("x86_64", "board.yaml: arch")


@pytest.fixture(scope="module")
def executables(tmp_path_factory):
    """A tiny static C program cross-built by each target's compiler with its flags."""
    work = tmp_path_factory.mktemp("elf")
    (work / "hello.c").write_text("int main(void) { return 0; }\n")
    built = {}
    for path in sorted((ROOT / "toolchains").glob("*.yaml")):
        target = toolchain.load(path.stem)
        out = work / f"hello-{target.name}"
        subprocess.run([target.spec["compiler_prefix"] + "gcc", *target.spec["arch_flags"], "-static", "-o", str(out),
                        str(work / "hello.c")], check=True)
        built[target.name] = out
    return built


def test_each_target_builds_its_elf_machine(executables):
    for name, binary in executables.items():
        assert toolchain.elf_machine(binary) == toolchain.load(name).spec["elf_machine"]
        readelf = subprocess.run([toolchain.load(name).spec["compiler_prefix"] + "readelf", "-h", str(binary)],
                                 capture_output=True, text=True, check=True).stdout
        assert f"Machine:                           {toolchain.elf_machine(binary)}" in readelf


def test_a_binary_for_another_architecture_is_refused_before_upload(executables, tmp_path):
    from deploy.bundle import Bundle, File
    from deploy.errors import DeployError
    from deploy.run import check_executables
    (tmp_path / "input.f32").write_bytes(b"\0" * 16)
    wrong = Bundle("hello", [File("hello", executables["aarch64"], executable=True),
                             File("input.f32", tmp_path / "input.f32")])
    with pytest.raises(DeployError, match=r"board zuluko: hello \(.*hello-aarch64\) is an AArch64 executable, but the "
                                          r"board runs armv7 \(ARM\); nothing was uploaded"):
        check_executables("zuluko", wrong, toolchain.load("armv7"))
    right = Bundle("hello", [File("hello", executables["armv7"], executable=True)])
    check_executables("zuluko", right, toolchain.load("armv7"))
    with pytest.raises(UserError, match="not an ELF executable"):
        toolchain.elf_machine(tmp_path / "input.f32")


def test_each_shipped_emulated_board_is_built_and_run_for_its_target():
    from deploy import boards, image, vm
    emulated = {p.stem: boards.load(p.stem) for p in (ROOT / "configs/boards").glob("*.yaml")}
    arches = {name: image.Arch.of(board) for name, board in emulated.items() if board.emulator}
    assert {name: (a.target, a.debian_arch, a.loader) for name, a in arches.items()} == {
        "emulated": ("armv7", "armhf", "ld-linux-armhf.so.3"),
        "emulated-2": ("armv7", "armhf", "ld-linux-armhf.so.3"),  # the fleet's second armv7 board
        "emulated-aarch64": ("aarch64", "arm64", "ld-linux-aarch64.so.1")}
    assert vm.Instance(emulated["emulated-aarch64"]).qemu == "qemu-system-aarch64"
    assert vm.Instance(emulated["emulated"]).qemu == "qemu-system-arm"
