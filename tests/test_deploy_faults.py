"""Faults of a deploy against the real emulated board: two deploys at once each get their own result (checked
against the PyTorch reference), Ctrl-C during the upload or the run exits within seconds, a killed deploy.py
leaves no engine running, and the board's lock and per-deploy run directories hold.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from deploy import boards, build, stress, testing
from deploy.bundle import Remote
from deploy.ssh import Connection
from neoncc import PROJECT_ROOT
from neoncc.pipeline import content_sha256

TINY = PROJECT_ROOT / "tests" / "models" / "tiny_passes.yaml"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    path = testing.board_file(tmp_path_factory.mktemp("board"), "pytest-faults")
    with testing.running_board(path):
        yield path


def test_concurrent_deploys_each_report_their_own_result(board):
    summary = stress.stress(str(board), pairs=2, model=TINY, log=lambda m: None)
    assert summary["deploys"] == 4
    wrong = {k: v for k, v in summary["counts"].items() if k not in ("own", "refused")}
    assert not wrong, summary["problems"]
    assert summary["counts"].get("own", 0) >= 3, summary["problems"]  # refusals are allowed, but rare
    spec = boards.load(str(board))
    with Connection(spec) as conn:  # each deploy removed its own run directory
        assert conn.sftp.listdir(f"{spec.remote_dir}/runs") == []


def test_a_run_reports_the_hashes_it_ran_and_the_host_checks_them(board, tmp_path):
    tensor = tmp_path / "in.f32"
    np.random.default_rng(5).normal(0, 1, (3, 20, 24)).astype("<f4").tofile(tensor)
    result = testing.deploy_json("--board", str(board), "--model", str(TINY), "--input", str(tensor),
                                 "--runs", "1", "--warmup", "0", "--random-weights")
    import hashlib
    assert result["input_sha256"] == hashlib.sha256(tensor.read_bytes()).hexdigest()
    assert len(result["run"]) == 16 and len(result["bundle"]) == 16


def test_ctrl_c_during_upload_and_run_exits_within_10_s_and_leaves_nothing_running(board):
    results = stress.interrupt_trials(str(board), trials=3, model=TINY, seed=1, log=lambda m: None)
    for r in results:
        assert r["exit_s"] < 10, r
        assert r["returncode"] == 130 and r["last_line"] == "error: interrupted", r
        assert not r["traceback"] and not r["left_running"], r


def test_sigkill_of_deploy_py_stops_the_engine_on_the_board(board, tmp_path):
    tensor = tmp_path / "batch.f32"
    np.random.default_rng(9).normal(0, 1, (400, 3, 20, 24)).astype("<f4").tofile(tensor)
    proc = subprocess.Popen([sys.executable, "deploy.py", "--board", str(board), "--model", str(TINY),
                             "--input", str(tensor), "--runs", "100000", "--warmup", "0", "--random-weights"],
                            cwd=PROJECT_ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spec = boards.load(str(board))
    try:
        with Connection(spec) as conn:
            deadline = time.monotonic() + 180
            while conn.run("pidof tiny_passes", check=False).status != 0:
                assert proc.poll() is None and time.monotonic() < deadline, "the engine never started"
                time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed = time.monotonic()
            while conn.run("pidof tiny_passes supervise", check=False).stdout.strip():
                assert time.monotonic() - killed < 15, "the engine outlived the deploy that started it"
                time.sleep(0.5)
    finally:
        proc.kill()


def test_the_board_lock_excludes_a_second_holder(board, tmp_path):
    """Two Remotes of one board: while one holds the deploy lock, the other's `supervise --lock` waits."""
    spec = boards.load(str(board))
    with Connection(spec) as first, Connection(spec) as second:
        a, b = Remote(first), Remote(second)
        for remote, conn in ((a, first), (b, second)):
            remote._make_rundir()
            supervise = content_sha256(build.build_supervise())  # in store/ since the deploys above
            conn.run(f"ln -f {spec.remote_dir}/store/{supervise} {remote.rundir}/supervise")
        with a.locked():
            probe = second.run(f"{b.rundir}/supervise --lock {spec.remote_dir}/lock 2 /bin/true", check=False)
            assert probe.status == 75 and "still taken" in probe.stderr
        assert second.run(f"{b.rundir}/supervise --lock {spec.remote_dir}/lock 2 /bin/true", check=False).status == 0
        a.cleanup()
        b.cleanup()
