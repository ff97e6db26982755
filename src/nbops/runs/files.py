"""How a run writes its files: never a truncated file left as if it were complete.

Every file of a run folder that nbops writes (the record's copy, the notebook papermill
executes and the output notebook it saves after each cell, the source copy, logged models)
goes to a temporary name in the same folder, is flushed to disk, then renamed over its
target. A rename is atomic, so a reader sees the previous complete version or the new one;
a write that fails (a full disk: ENOSPC, a quota: EDQUOT) removes its temporary file and
raises. `disk_full` tells such a failure from others, wherever it happened (this process,
SQLite, or a notebook cell whose error names errno 28).

Light on purpose: the capture API imports it inside the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from nbops import _atomic

TEMP_MARK = ".nbops-tmp-"  # in every temporary name: `name.nbops-tmp-1a2b3c.suffix`

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_TEXT = re.compile(
    rf"\[Errno (?:{errno.ENOSPC}|{errno.EDQUOT})\]"
    r"|No space left on device|database or disk is full|Disk quota exceeded"
)


def disk_full(exc: BaseException | str) -> bool:
    """Whether an exception (or an error text, e.g. a cell's `evalue`) is a full disk."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    return bool(_FULL_TEXT.search(exc if isinstance(exc, str) else str(exc)))


def _write_chunk(handle: int, data: memoryview) -> int:
    """One write system call (the place tests inject a full disk into)."""
    return os.write(handle, data)


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_write_chunk(handle, view) :]
    os.fsync(handle)


def _temp_name(target: Path) -> Path:
    return target.with_name(f"{target.stem}{TEMP_MARK}{uuid.uuid4().hex[:6]}{target.suffix}")


def atomic_path(target: Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary path to write `target` through: renamed over it when the block ends
    without error, removed otherwise (nbops._atomic, with the run folder's temporary names,
    which keep the suffix and carry TEMP_MARK so `leftover_temporaries` finds them)."""
    return _atomic.atomic_path(target, temp_name=_temp_name)


def write_bytes(target: Path, data: bytes) -> None:
    """Write a whole file atomically (see the module docstring)."""
    try:
        with atomic_path(target) as temp:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(handle, data)
            finally:
                os.close(handle)
    except OSError as exc:
        if exc.filename is None:  # os.write names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def copy_file(source: Path, target: Path) -> None:
    """Copy a file atomically."""
    with atomic_path(target) as temp:
        shutil.copyfile(source, temp)


def leftover_temporaries(folder: Path) -> list[Path]:
    """Temporary files a killed process left in a folder (and its subfolders)."""
    return sorted(p for p in folder.rglob(f"*{TEMP_MARK}*") if p.is_file())


# -- room for the record at the end of a run ------------------------------------------------

RESERVE_FILE = "reserve"
RESERVE_BYTES = 256 * 1024  # a record.json and its SQLite row, several times over
DISK_FULL_MARK = "disk-full"


def reserve_space(folder: Path) -> None:
    """Hold some disk space in `folder` for the run's final record (random bytes, which no
    filesystem stores sparse or compressed). Raises OSError when there is no room at all."""
    write_bytes(folder / RESERVE_FILE, os.urandom(RESERVE_BYTES))


def release_space(folder: Path, *, mark: bool = False) -> None:
    """Free the space `reserve_space` held. With `mark`, a zero-byte `disk-full` file takes
    its place (a rename needs no free space), telling readers that the run ended on a full
    disk if its final record cannot be written (liveness.py)."""
    reserve = folder / RESERVE_FILE
    with contextlib.suppress(OSError):
        os.truncate(reserve, 0)
        if mark:
            os.replace(reserve, folder / DISK_FULL_MARK)
        else:
            reserve.unlink()


def clear_mark(folder: Path) -> None:
    with contextlib.suppress(OSError):
        (folder / DISK_FULL_MARK).unlink()


# -- papermill's output notebook -----------------------------------------------------------

_registered: set[str] = set()
_registered_lock = threading.Lock()


def atomic_notebook_writes(folder: Path) -> None:
    """Make papermill write every notebook under `folder` atomically.

    papermill saves the output notebook after each cell with a plain `open(path, "w")`, so a
    full disk or a kill mid-write leaves a truncated file. Its I/O handlers are chosen by
    path prefix; this registers, once per folder, a local handler whose write is atomic.
    """
    prefix = str(folder.resolve()) + os.sep
    with _registered_lock:
        if prefix in _registered:
            return
        from papermill.iorw import LocalHandler, papermill_io

        class AtomicLocalHandler(LocalHandler):
            def write(self, buf: str, path: str) -> None:
                write_text(Path(path), buf)

        papermill_io.register(prefix, AtomicLocalHandler())
        _registered.add(prefix)
