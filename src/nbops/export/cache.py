"""What an export derives from generated code alone, kept between exports.

An export of an unchanged notebook generates the same code again, and what is derived from
that code alone is the same too: ruff's formatting of the package (formatting.py), the line
layout of the formatted modules that hold cells (exporter.py, one entry per package). Both
are kept in the user's cache folder, `$XDG_CACHE_HOME/nbops/export/<kind>/` (default
`~/.cache`), one JSON file per entry, named by a SHA-256 of everything the result depends
on (the caller's key).

An entry is written whole (temporary file, then rename); one that cannot be read or does
not hold what the caller expects is a miss; a cache that cannot be written is skipped.
Each kind keeps its newest `limit` entries (reading an entry makes it newest).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_VERSION = 1  # part of every key: bump when what an entry holds changes


def cache_dir(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbops" / "export" / kind


def read_entry(kind: str, key: str) -> Any:
    """The data kept under `key`, or None (a miss)."""
    path = cache_dir(kind) / f"{key}.json"
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "data" not in data:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept longest
    return data["data"]


def write_entry(kind: str, key: str, data: Any, limit: int) -> None:
    """Keep `data` (JSON) under `key`, then drop the oldest entries beyond `limit`."""
    folder = cache_dir(kind)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # json.dumps, not json.dump: only the one-shot encoder is the C one.
        text = json.dumps({"key": key, "data": data})
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            # The bytes written straight to the file descriptor, not through a text file
            # object: a few system calls less, the same bytes.
            try:
                _write_all(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder, limit)
    except OSError:
        return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _prune(folder: Path, limit: int) -> None:
    # The entries are counted before any is looked at: no more than `limit`, none is
    # dropped (as when fewer of them could be looked at).
    with os.scandir(folder) as found:
        names = [entry for entry in found if entry.name.endswith(".json")]
    if len(names) <= limit:
        return
    entries = []
    for entry in names:
        with contextlib.suppress(OSError):
            entries.append((entry.stat().st_mtime_ns, entry.path))
    if len(entries) <= limit:
        return
    entries.sort(reverse=True)
    for _, path in entries[limit:]:
        with contextlib.suppress(OSError):
            os.unlink(path)
