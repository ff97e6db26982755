"""The kernels this process runs: each started with its run's environment and log, and each
reachable from any thread.

`kernel_manager(env, log)` is the kernel manager class papermill starts a run's kernel with:
the run's environment variables added (per run, not through os.environ, so runs in parallel
threads each get their own), its output going to the run's kernel.log. It registers the
kernel under the run id, so `interrupt_runs()` can send SIGINT to every kernel this process
runs (a sweep's worker threads cannot be reached by a signal to the process);
`stop_requested(run_id)` tells a run it was stopped so, and `forget(run_id)` drops it when it
ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import IO, Any

from nbops.runs.capture import RUN_ID_ENV


def kernel_manager(env: dict[str, str], log: IO[bytes]) -> type:
    """A kernel manager that starts the kernel with these extra environment variables, its
    output and errors going to the run's kernel.log.

    Per run, not through os.environ, so runs in parallel threads each get their own.
    """
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)
            with _running_lock:
                _running[env[RUN_ID_ENV]] = self

    return RunKernelManager


# The runs this process is executing (run id -> kernel manager), for interrupt_runs(): runs in
# worker threads (a Dask LocalCluster) cannot be reached by a signal to the process.
_running: dict[str, Any] = {}
_stop_requested: set[str] = set()
_running_lock = threading.Lock()


def interrupt_runs() -> list[str]:
    """Interrupt every run this process is executing, in any thread: each kernel gets SIGINT
    (the running cell raises KeyboardInterrupt) and the run is recorded as interrupted.
    Returns their run ids."""
    with _running_lock:
        running = list(_running.items())
        _stop_requested.update(run_id for run_id, _ in running)
    for _, manager in running:
        pid = getattr(getattr(manager, "provisioner", None), "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
    return [run_id for run_id, _ in running]


def stop_requested(run_id: str) -> bool:
    with _running_lock:
        return run_id in _stop_requested


def forget(run_id: str) -> None:
    with _running_lock:
        _running.pop(run_id, None)
        _stop_requested.discard(run_id)
