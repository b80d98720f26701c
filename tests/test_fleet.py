"""deploy.py --fleet against two real emulated boards on a real Dask LocalCluster: SqueezeNet v1.1 and the digits
network from one command each, checked against the PyTorch reference; a board that is unreachable, and one whose
qemu is killed mid-run, become their rows' status while the other board completes; an unreachable scheduler and a
bad fleet file are one clear error each. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from deploy import boards, testing, vm
from deploy.ssh import Connection
from neoncc import PROJECT_ROOT
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.reference import torch_graph
from neoncc.weights.pack import random_weights

NAMES = ("pytest-fleet-a", "pytest-fleet-b")
FAST = ["--runs", "1", "--warmup", "0"]
TINY = PROJECT_ROOT / "tests" / "models" / "tiny_passes.yaml"


@pytest.fixture(scope="module")
def fleet_boards(tmp_path_factory):
    """Two emulated boards of their own (the fleet boots them on demand, both at once); always stopped."""
    directory = tmp_path_factory.mktemp("fleet")
    paths = [testing.board_file(directory, name) for name in NAMES]
    try:
        yield paths
    finally:
        for path in paths:
            vm.Instance(boards.load(str(path))).stop()


@pytest.fixture(scope="module")
def fleet_file(fleet_boards):
    path = fleet_boards[0].parent / "fleet.yaml"
    path.write_text(yaml.safe_dump({"name": "pytest", "boards": [p.name for p in fleet_boards]}))
    return path


def reference(model: str, tensor: np.ndarray) -> np.ndarray:
    """PyTorch running the model's YAML graph on the seeded random weights the engine was built with."""
    graph = load_yaml_model(PROJECT_ROOT / "configs" / "models" / f"{model}.yaml")
    return torch_graph.run(graph, random_weights(graph, 0), tensor[None])[0]


def write_input(path, shape, seed: int, scale: float) -> np.ndarray:
    tensor = np.random.default_rng(seed).normal(0, scale, shape).astype("<f4")
    tensor.tofile(path)
    return tensor


def test_two_boards_run_squeezenet_from_one_command_and_both_equal_the_host_reference(fleet_file, tmp_path):
    tensor = write_input(tmp_path / "in.f32", (3, 227, 227), 3, 60.0)
    expected = reference("squeezenet_v1_1", tensor)
    started = time.monotonic()
    proc = testing.deploy("--fleet", str(fleet_file), "--model", "squeezenet_v1_1", "--input",
                          str(tmp_path / "in.f32"), *FAST, "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["fleet"] == "pytest" and doc["model"] == "squeezenet_v1_1"
    assert [b["board"] for b in doc["boards"]] == list(NAMES) and doc["ok"] == 2 and doc["failed"] == 0
    assert doc["cluster"]["local"] and doc["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")
    (build,) = doc["builds"].values()  # one build for the one target, one bundle for both boards
    order = list(np.argsort(-expected, kind="stable")[:5])
    for board in doc["boards"]:
        assert board["status"] == "ok" and board["arch"] == "armv7l" and board["target"] == "armv7", board
        assert board["result"]["bundle"] == build["bundle"] and board["result"]["board"] == board["board"]
        assert [row[0] for row in board["top5"]] == order
        np.testing.assert_allclose([row[1] for row in board["top5"]], expected[order], rtol=0, atol=1e-4)
        assert board["agreement"]["agrees"] and board["agreement"]["max_abs_error"] <= 1e-4
        assert board["median_ms"] > 0 and board["peak_memory_kb"] > 10_000
    assert len({b["worker"] for b in doc["boards"]}) == 2  # the two boards ran at once, on two workers
    assert doc["seconds"] <= time.monotonic() - started


def test_the_digits_network_on_both_boards_and_the_table_lists_both(fleet_file, tmp_path):
    tensor = write_input(tmp_path / "digits.f32", (1, 32, 32), 4, 0.5)
    expected = reference("digits_fire", tensor)
    proc = testing.deploy("--fleet", str(fleet_file), "--model", "digits_fire", "--input",
                          str(tmp_path / "digits.f32"), *FAST, timeout=900)
    assert proc.returncode == 0, proc.stderr
    top5 = " ".join(str(i) for i in np.argsort(-expected, kind="stable")[:5])
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith(NAMES)}
    assert sorted(rows) == sorted(NAMES), proc.stdout
    for line in rows.values():  # board, arch, the five classes, agrees, median ms, peak RSS (N MiB), status
        parts = line.split()
        assert parts[1] == "armv7l" and " ".join(parts[2:7]) == top5 and parts[7] == "yes" and parts[-1] == "ok", line
    assert "digits_fire (float32) on 2 boards, 2 ok, 0 failed" in proc.stdout


def test_an_unreachable_board_is_its_rows_status_and_the_other_board_completes(fleet_boards, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = {"name": "pytest-dead", "host": "127.0.0.1", "port": port, "user": "root",
            "key_file": ".cache/board/id_ed25519", "remote_dir": "/data/neoncc", "arch": "armv7l", "cores": 4,
            "connect_timeout_s": 5}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"boards": [str(fleet_boards[0]), dead]}))
    proc = testing.deploy("--fleet", str(path), "--model", str(TINY), *FAST, "--json", timeout=600)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    ok, down = doc["boards"]
    assert ok["board"] == NAMES[0] and ok["status"] == "ok" and ok["agreement"]["agrees"]
    assert down["board"] == "pytest-dead" and down["status"] == "failed" and down["kind"] == "unreachable"
    assert f"host 127.0.0.1:{port} unreachable" in down["error"]
    assert testing.error_line(proc) == "error: 1 of 2 boards failed: pytest-dead (unreachable)"


def test_an_unreachable_scheduler_is_one_clear_error(fleet_file):
    port = vm.free_port()
    started = time.monotonic()
    proc = testing.deploy("--fleet", str(fleet_file), "--model", str(TINY), "--scheduler",
                          f"tcp://127.0.0.1:{port}", *FAST, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"error: scheduler tcp://127.0.0.1:{port}: unreachable" in testing.error_line(proc)
    assert "build:" not in proc.stderr  # said before anything was built
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("text, message", [
    ("boards: []", "field boards: [] should be non-empty"),
    ("boards: [{name: x}]", "field boards[0]: 'host' is a required property"),
    ("boards: [no-such-board]", "unknown board 'no-such-board'"),
    ("boards: [emulated, {name: emulated, host: h, remote_dir: /opt/x, arch: armv7l, cores: 1}]",
     "board name 'emulated' is listed twice"),
])
def test_a_bad_fleet_file_is_one_error_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    proc = testing.deploy("--fleet", str(path), "--model", str(TINY), timeout=60)
    line = testing.error_line(proc)
    assert proc.returncode == 1 and message in line and line.startswith(f"error: {path}: field boards"), line


def test_a_board_stopped_mid_run_is_a_clear_failure_and_the_other_board_still_reports(fleet_boards, fleet_file):
    """Kill the second board's qemu while its engine runs: the first board's result still comes, the second's
    row says the connection was lost, and the whole command ends within a bounded time."""
    model = "squeezenet_v1_1"
    command = [sys.executable, "deploy.py", "--fleet", str(fleet_file), "--model", model, "--random-weights",
               "--runs", "4", "--warmup", "1", "--json"]
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    victim = boards.load(str(fleet_boards[1]))
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the engine never started on the board"
            try:
                with Connection(victim) as conn:
                    if conn.run(f"pidof {model}", check=False).status == 0:
                        break
            except Exception:  # not booted yet, or busy
                pass
            time.sleep(0.5)
        pid = vm.Instance(victim).pid()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=240)
        ended = time.monotonic() - killed
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    doc = json.loads(stdout)
    survivor, stopped = doc["boards"]
    assert survivor["status"] == "ok" and survivor["agreement"]["agrees"] and len(survivor["result"]["times_ms"]) == 4
    assert stopped["status"] == "failed" and stopped["kind"] == "connection lost", stopped
    assert stopped["error"].startswith(f"board {NAMES[1]}: ") and "lost" in stopped["error"]
    assert f"error: 1 of 2 boards failed: {NAMES[1]} (connection lost)" in stderr
    assert ended < 120, f"the fleet took {ended:.0f} s after the board was stopped"


def _pin(args) -> None:
    from deploy import known_hosts
    path, names, key = args
    for name in names:
        known_hosts.pin(path, name, key)


def test_boards_started_at_once_keep_each_others_host_key_pins(tmp_path):
    """A fleet boots its emulated boards at once, each pinning its host key in the same known-hosts file."""
    import multiprocessing

    import paramiko

    from deploy import known_hosts
    key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    line = (PROJECT_ROOT / ".cache/board/ssh_host_ed25519_key.pub").read_text().strip() if key is None else \
        f"{key.get_name()} {key.get_base64()}"
    path = tmp_path / "known_hosts"
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_pin, [(path, [f"board-{p}-{i}" for i in range(25)], line) for p in range(8)])
    missing = [f"board-{p}-{i}" for p in range(8) for i in range(25) if not known_hosts.lookup(path, f"board-{p}-{i}")]
    assert not missing


def test_ctrl_c_stops_the_fleet_and_leaves_no_engine_running(fleet_boards, fleet_file):
    """SIGINT while both boards run: `error: interrupted` (130) within seconds; the local cluster's workers go, their
    SSH sessions with them, and each board's supervise stops its engine."""
    model = "digits_fire"
    proc = subprocess.Popen([sys.executable, "deploy.py", "--fleet", str(fleet_file), "--model", model,
                             "--random-weights", "--runs", "100000", "--warmup", "0"], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    specs = [boards.load(str(p)) for p in fleet_boards]
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the engines never started"
            try:
                running = 0
                for spec in specs:
                    with Connection(spec) as conn:
                        running += conn.run(f"pidof {model}", check=False).status == 0
                if running == len(specs):
                    break
            except Exception:  # a board still booting
                pass
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        proc.kill()
    assert proc.returncode == 130 and [line for line in stderr.splitlines() if line.startswith("error")] == [
        "error: interrupted"], stderr
    assert "Traceback" not in stderr and took < 30, (took, stderr)
    for spec in specs:
        with Connection(spec) as conn:
            stopped = time.monotonic()
            while conn.run(f"pidof {model} supervise", check=False).stdout.strip():
                assert time.monotonic() - stopped < 20, f"the engine outlived the fleet on {spec.name}"
                time.sleep(0.5)
