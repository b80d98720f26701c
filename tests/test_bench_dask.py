"""`bench tune` with its candidates fanned out as tasks on a real Dask LocalCluster writes the same tuning file as the
serial run, byte for byte (counts are exact wherever they run), even when a worker is killed in the middle of a task
(its task reruns on a worker the nanny restarts, and nothing is counted twice). An unreachable scheduler is one
clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from bench.parallel import runner
from bench.tune import parse_candidates, tune
from neoncc import PROJECT_ROOT

TINY = PROJECT_ROOT / "tests" / "models" / "tiny_passes.yaml"


def _kill_a_worker_mid_task(client, killed: list, stop: threading.Event) -> None:
    """SIGKILL the first worker process seen running a candidate's task (once)."""
    pids = client.run(os.getpid)
    while not stop.is_set():
        busy = [worker for worker, keys in client.processing().items() if any("measure" in str(k) for k in keys)]
        if busy:
            time.sleep(3)  # well inside its build
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.2)


def test_dask_tune_writes_the_serial_runs_file_even_with_a_worker_killed_mid_task(tmp_path):
    candidates = parse_candidates(["packed_gemm/NHWC"])
    serial_log: list[str] = []
    serial = tune(TINY, log=serial_log.append, candidates=candidates, out=tmp_path / "serial.yaml")
    assert serial is not None and serial.is_file()

    dask_log: list[str] = []
    killed: list[str] = []
    stop = threading.Event()
    with runner(workers=2, log=dask_log.append) as run:
        killer = threading.Thread(target=_kill_a_worker_mid_task, args=(run.client, killed, stop), daemon=True)
        killer.start()
        try:
            distributed = tune(TINY, log=dask_log.append, candidates=candidates, runner=run,
                               out=tmp_path / "dask.yaml")
        finally:
            stop.set()
            killer.join()
    assert killed, "no worker was killed: the test proved nothing"
    assert distributed.read_bytes() == serial.read_bytes()
    per_candidate = [line for line in dask_log if "every layer" in line]
    assert per_candidate == [line for line in serial_log if "every layer" in line] and len(per_candidate) == 2


def test_bench_tune_with_an_unreachable_scheduler_is_one_clear_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "tune", str(TINY), "--scheduler", "tcp://127.0.0.1:9"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: scheduler tcp://127.0.0.1:9: unreachable"), proc.stderr
