"""Where the parallel host work runs: a Dask distributed cluster, the one we do not write ourselves.

Without an address: a LocalCluster on this host (worker processes, loopback only, no dashboard), closed when the
work is done. With `--scheduler tcp://HOST:PORT` (or DASK_SCHEDULER_ADDRESS, Dask's own variable): the cluster
behind that scheduler, however it was started (dask-scheduler/dask-worker, dask-ssh, dask-jobqueue,
Kubernetes); it is left running. An address that does not answer is one clear error.

Workers import this project: on other hosts they must run from a checkout (or install) of the same version.
"""

from __future__ import annotations

import contextlib
import logging
import os

from neoncc.errors import UserError

CONNECT_TIMEOUT_S = 10


class ClusterError(UserError):
    """The cluster cannot be reached or cannot run the work."""


def address_from(scheduler: str | None) -> str | None:
    """The scheduler to use: the option's, else DASK_SCHEDULER_ADDRESS's, else None (a LocalCluster)."""
    return scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


@contextlib.contextmanager
def client(scheduler: str | None = None, workers: int = 2, threads_per_worker: int = 1,
           resources: dict[str, float] | None = None, log=print):
    """A dask.distributed Client: on the given scheduler, or on a LocalCluster of `workers` processes that each
    run `threads_per_worker` tasks at once and offer `resources` (Dask worker resources)."""
    from distributed import Client, LocalCluster

    address = address_from(scheduler)
    # Dask's own lines (worker start and stop, tasks cancelled by Ctrl-C) are not ours to print; its errors are.
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # A Ctrl-C tears the cluster down under its event loop's feet; the callbacks that then fail are Dask's, not
    # the user's, and their tracebacks would bury the one `error: interrupted` line.
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    if address:
        try:
            handle = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(f"scheduler {address}: unreachable ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                               "start one with `dask scheduler` and `dask worker`, or run without --scheduler (and "
                               "without DASK_SCHEDULER_ADDRESS) for a local cluster") from None
        try:
            log(f"cluster: scheduler {address}, {len(handle.scheduler_info()['workers'])} workers")
            yield handle
        finally:
            handle.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           host="127.0.0.1", dashboard_address=None, resources=resources or None,
                           silence_logs=logging.ERROR)
    try:
        handle = Client(cluster)
        try:
            log(f"cluster: local, {workers} worker processes on 127.0.0.1 ({cluster.scheduler_address})")
            yield handle
        finally:
            handle.close()
    finally:
        cluster.close()


def workers_offering(handle, resource: str) -> dict[str, float]:
    """The cluster's workers that offer a resource, with how much of it each has."""
    return {address: info.get("resources", {}).get(resource, 0)
            for address, info in handle.scheduler_info(n_workers=-1)["workers"].items()
            if info.get("resources", {}).get(resource, 0) > 0}
