"""Documentation that cannot drift: every command in README.md's and docs/*.md's shell blocks is parsed by the
real command line it names (neoncc, bench, deploy.py: argparse with the documented arguments; other modules:
their --help; scons: each variable is one SConstruct knows), and docs/layers.md's table is what the op registry
generates."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from unittest import mock

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\[|\{|\.\.\.|<|\||\$\(")
RUNNABLE = re.compile(r"(python3 (-m \S+|deploy\.py)|scons)( |$)")


def documented_commands() -> list[tuple[str, str]]:
    """(file:line, command) for each runnable-looking line of the shell blocks and each inline `command`."""
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        fenced = in_block = False
        pending, start = "", 0
        for number, line in enumerate(lines, 1):
            if line.startswith("```"):
                fenced = not fenced
                in_block = fenced and line.strip() in ("```", "```sh", "```bash", "```console")
                continue
            if not in_block:
                for span in re.findall(r"`([^`]+)`", line):  # inline commands in the prose count too
                    if RUNNABLE.match(span) and not PLACEHOLDER.search(span):
                        words = span.split()
                        if words[0] != "scons" and not any(re.search(r"^-|[./=]", w) for w in words[3:]):
                            span += " --help"  # a command named in passing (`python3 -m bench tune`): it must exist
                        found.append((f"{path.relative_to(ROOT)}:{number}", span.strip()))
                continue
            text = re.sub(r"\s+#.*$", "", line).strip()
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text, pending = (pending + text).strip(), ""
            if RUNNABLE.match(text) and not PLACEHOLDER.search(text):
                found.append((f"{path.relative_to(ROOT)}:{start}", text))
    return found


COMMANDS = documented_commands()


def test_the_docs_document_commands():
    assert len(COMMANDS) >= 15, COMMANDS  # the extraction itself works


def _scons_variables() -> set[str]:
    out = subprocess.run(["scons", "-h"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^(\w+): ", out, re.M))


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, command):
    words = shlex.split(command)
    if words[0] == "scons":
        unknown = {w.split("=", 1)[0] for w in words[1:] if "=" in w and not w.startswith("-")} - _scons_variables()
        assert not unknown, f"{where}: scons has no variable {unknown}"
        return
    if words[1] == "deploy.py":
        from deploy import cli
        cli.parse_args(words[2:])  # argparse exits (SystemExit 2) on anything it does not accept
        return
    module, argv = words[2], words[3:]
    if module in ("neoncc", "bench"):
        main_module = __import__(f"{module}.__main__", fromlist=["main"])
        with mock.patch.object(main_module, "exit_status", lambda action: 0):  # parse, do not run
            try:
                assert main_module.main(argv) == 0, where
            except SystemExit as end:  # --help
                assert end.code == 0 and argv[-1] == "--help", f"{where}: exit status {end.code}"
        return
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"{where}: python3 -m {module} --help: {proc.stderr[-500:]}"


def test_layer_table_is_generated_from_the_registry():
    from neoncc.tools.layer_table import BEGIN, END, table
    text = (ROOT / "docs" / "layers.md").read_text()
    current = text[text.index(BEGIN):text.index(END) + len(END)] + "\n"
    assert current == table(), "docs/layers.md is stale: regenerate it with python3 -m neoncc.tools.layer_table"
