"""Atomic writes: a file or a folder appears whole, or not at all (temp + rename).

    atomic_write_text(path, text)             # write, fsync, rename over `path`
    atomic_write_bytes(path, data, mode=0o600)
    with atomic_path(path) as tmp: ...        # a library writes `tmp`; renamed on success
    with atomic_directory(final) as scratch:  # fill `scratch`; renamed to `final` on success

The temporary file or folder is hidden (`.<name>.<random>.tmp`) beside its target, on the
same file system, so the rename is atomic; it is removed when the block fails, and the
error (OSError) is the caller's to report. A file is synced to disk before it is renamed.

A file's mode: `mode` when given (set before anything is written, so a private key is
never readable by others); otherwise that of the file it replaces, or for a new file the
usual one (0o666 less the umask, as `open` gives).

`atomic_directory` publishes a folder that must not exist yet (the rename fails when
`final` is a folder with files in it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_files",
]


def _temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    *,
    mode: int | None = None,
    temp_name: Callable[[Path], Path] | None = None,
) -> Iterator[Path]:
    """An empty temporary file beside `path`, created exclusively; renamed over `path` when
    the block ends without error (after a sync to disk), removed when it raises.

    `temp_name(target)` names the temporary file when the caller must find leftovers of a
    killed process by name (a run folder's `.nbops-tmp-` files, runs/files.py)."""
    target = Path(path)
    if mode is None:
        with contextlib.suppress(OSError):
            mode = target.stat().st_mode & 0o7777
    tmp = (temp_name or _temp_name)(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the first error is the one to report
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> None:
    """Write `data` to `path` atomically (see the module)."""
    with atomic_path(path, mode=mode) as tmp, tmp.open("wb") as handle:
        handle.write(data)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> None:
    """Write `text` to `path` atomically, encoded, with no newline translation."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """An empty hidden folder beside `final`, renamed to `final` when the block ends without
    error; removed, with what it holds, when it raises."""
    target = Path(final)
    scratch = _temp_name(target)
    scratch.mkdir()
    try:
        yield scratch
        os.rename(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path -> text, UTF-8) under `root`, making folders as needed.
    Not atomic by itself: callers write into a scratch folder they then swap in or drop."""
    made: set[Path] = set()
    for rel, text in files.items():
        path = root / rel
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        if os.name != "posix":
            path.write_text(text, encoding="utf-8")
            continue
        # What path.write_text(text, encoding="utf-8") does on POSIX (the file opened as
        # mode "w" opens it, no newline translation), without a text file object's calls.
        fd = os.open(path, _WRITE_FLAGS, 0o666)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
