"""Telling a run in progress from a run whose process died without recording its end.

`nbops run` records its owner in the run's record before the kernel starts: the pid, the
host and the process's start time. While the run executes, a thread touches the run
folder's `heartbeat` file every `HEARTBEAT_S` seconds. A reader of the store (`runs list`,
`runs show`, any load) judges a record still marked `running`:

- owner on this host: the run is alive while a process with that pid and that start time
  exists (a later process given the same pid has another start time, a zombie is dead);
  otherwise the run is `killed` (SIGKILL, out of memory, power cut);
- owner on another host: the run is `abandoned` once its heartbeat is older than
  `STALE_S` (the store is shared, e.g. over NFS, and no pid can be checked from here).

A dead run whose process left a `disk-full` mark (files.py: it could not write its final
record) is `failed` instead. The reader stores what it found, with a failure
saying why, and redacts the secret
parameters in the partial output notebook the dead process left (it could not do it itself).
Records without an owner (interactive runs, older records) are left as they are.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from nbops.runs.files import DISK_FULL_MARK
from nbops.runs.record import Failure, RunOwner, RunRecord

HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_S = 10.0
STALE_S = 180.0  # generous: a loaded machine, clocks of a few hosts


def _process_started(pid: int) -> float | None:
    """The start time of a live process (None when there is none, or it is a zombie)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # another user's process: it exists, its start time is unknown
        return -1.0


def this_process() -> RunOwner:
    started = _process_started(os.getpid())
    return RunOwner(
        pid=os.getpid(),
        host=socket.gethostname(),
        process_started=started if started is not None else time.time(),
        heartbeat_s=HEARTBEAT_S,
    )


@contextlib.contextmanager
def heartbeat(run_dir: Path, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Touch `run_dir/heartbeat` now and every `every_s` seconds until the block ends."""
    beat = run_dir / HEARTBEAT_FILE
    stop = threading.Event()

    def touch() -> None:
        with contextlib.suppress(OSError):  # a full disk must not stop the run for this
            beat.touch()

    def loop() -> None:
        while not stop.wait(every_s):
            touch()

    touch()
    thread = threading.Thread(target=loop, name=f"nbops-heartbeat-{run_dir.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _last_beat(run_dir: Path) -> float | None:
    try:
        return (run_dir / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return None


def owner_gone(record: RunRecord, run_dir: Path) -> RunRecord | None:
    """The record as it should now be stored if its owner is gone, else None (see the
    module docstring)."""
    owner = record.owner
    if record.status != "running" or owner is None:
        return None
    last = _last_beat(run_dir)
    if owner.host == socket.gethostname():
        started = _process_started(owner.pid)
        if started is not None and (started < 0 or abs(started - owner.process_started) < 1.0):
            return None
        status, why = (
            "killed",
            (
                f"the process running it (pid {owner.pid} on {owner.host}) ended without "
                "recording the end of the run (killed, e.g. SIGKILL or out of memory)"
            ),
        )
    else:
        reference = last if last is not None else _iso_seconds(record.started_at)
        if reference is None or time.time() - reference < STALE_S:
            return None
        status, why = (
            "abandoned",
            (
                f"no heartbeat from the process running it (pid {owner.pid} on {owner.host}) "
                f"for more than {STALE_S:.0f} s"
            ),
        )
    gone = record.model_copy(deep=True)
    gone.status = status  # type: ignore[assignment]
    ended = last if last is not None else time.time()
    gone.ended_at = datetime.fromtimestamp(ended, UTC).isoformat(timespec="milliseconds")
    if (run_dir / DISK_FULL_MARK).exists():  # the process could not write its final record
        gone.status = "failed"
        gone.failure = Failure(
            ename="DiskFullError",
            evalue="the disk was full when the run ended, so its end could not be recorded",
        )
    else:
        gone.failure = gone.failure or Failure(ename="RunOwnerGone", evalue=why)
    return gone


def _iso_seconds(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
