"""Where a benchmark's counted QEMU runs go: in this process one after another (the default), or out to a Dask
cluster as tasks (`--workers N`: a LocalCluster of N processes on this host; `--scheduler ADDRESS`: an existing
cluster). A counted run is a pure function of the engine's bytes and its input, so whichever worker runs it (or
reruns it after its first worker died) counts exactly the same: only the wall time changes.
"""

from __future__ import annotations

import contextlib


class _Done:
    """A result computed already, behind the same .result() as a Dask future."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class Serial:
    """Runs each task at once, in this process."""

    description = "serial, in this process"

    def scatter(self, data):
        return data

    def submit(self, fn, *args):
        return _Done(fn(*args))


class Distributed:
    """Sends each task to a Dask cluster; data scattered once is shared by the tasks that use it."""

    def __init__(self, client, description: str):
        self.client = client
        self.description = description

    def scatter(self, data):
        return self.client.scatter(data)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)


@contextlib.contextmanager
def runner(scheduler: str | None = None, workers: int | None = None, log=print):
    """Serial without options; a Dask cluster with --workers or --scheduler."""
    if scheduler is None and workers is None:
        yield Serial()
        return
    from neoncc import cluster
    from neoncc.errors import UserError

    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    with cluster.client(scheduler, workers=workers or 2, log=log) as client:
        count = len(client.scheduler_info()["workers"])
        yield Distributed(client, f"Dask, {count} workers at {client.scheduler.address}")


def _noop(i: int) -> int:
    return i


def overhead(tasks: int = 1000, workers: int = 2, megabytes: int = 9, scheduler: str | None = None) -> dict:
    """What the cluster itself costs: its start, the scheduler's per-task overhead (no-op tasks, submitted at once
    and one after another) and a broadcast of `megabytes` (a bundle's size) to every worker."""
    import os
    import time

    from neoncc import cluster

    started = time.monotonic()
    with cluster.client(scheduler, workers=workers, log=lambda message: None) as client:
        start_s = time.monotonic() - started
        n = len(client.scheduler_info()["workers"])
        t0 = time.monotonic()
        assert client.gather(client.map(_noop, range(tasks), pure=False)) == list(range(tasks))
        batch_s = time.monotonic() - t0
        t0 = time.monotonic()
        for i in range(100):
            client.submit(_noop, i, pure=False).result()
        round_trip_s = (time.monotonic() - t0) / 100
        data = os.urandom(megabytes << 20)
        t0 = time.monotonic()
        client.scatter(data, broadcast=True).result()
        scatter_s = time.monotonic() - t0
    return {"workers": n, "start_s": round(start_s, 3), "tasks": tasks,
            "per_task_ms_batched": round(1000 * batch_s / tasks, 3), "round_trip_ms": round(1000 * round_trip_s, 3),
            "broadcast_mb": megabytes, "broadcast_s": round(scatter_s, 3)}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python3 -m bench.parallel",
                                     description="measure a Dask cluster's own overhead (docs/fleet.md)")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--megabytes", type=int, default=9, help="size broadcast to every worker (a bundle's)")
    parser.add_argument("--scheduler", help="an existing cluster (default: a local one)")
    args = parser.parse_args()
    print(json.dumps(overhead(args.tasks, args.workers, args.megabytes, args.scheduler)))
