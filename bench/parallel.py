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
