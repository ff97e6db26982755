"""Formatting generated code with ruff, so it reads like code a person wrote.

Formatting is a pure function of the files (their paths and text), ruff's binary and the
fixed settings below; running ruff twice (sort imports, then format) was most of what an
export of an unchanged notebook cost. So the result is kept (nbops.export.cache, kind
`format`), keyed on all of that: a re-export or `nbops export --check` of a notebook whose
generated code did not change runs no ruff. Any change to any file, to ruff's binary (its
path, size or modification time) or to the settings is another key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from nbops._atomic import write_files
from nbops.errors import ExportError
from nbops.export.cache import CACHE_VERSION, read_entry, write_entry

# Fixed settings, so a user's own ruff configuration cannot change an export's bytes.
_SETTINGS = ["--isolated", "--line-length", "99", "--target-version", "py311"]
_STEPS = (
    ("check", *_SETTINGS, "--select", "I", "--fix", "--quiet", "--no-cache", "."),
    ("format", *_SETTINGS, "--quiet", "--no-cache", "."),
)
CACHE_KIND = "format"
CACHE_ENTRIES = 64  # one per package exported lately (~100 KB for 500 cells)


@cache
def _ruff() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_files(files: dict[str, str]) -> dict[str, str]:
    """Sort imports and format every Python file; raises ExportError if ruff cannot."""
    return start_formatting(files).result()


class Formatting:
    """The formatting of a set of files, under way: ruff runs in processes of its own while
    the caller does other work; `result()` waits for it (and keeps it in the cache)."""

    def __init__(self, files: dict[str, str]) -> None:
        self._done: dict[str, str] | None = None
        self._run: _RuffRun | None = None
        ruff = _ruff()
        self._key = _cache_key(ruff, files)
        if self._key is not None:
            cached = read_entry(CACHE_KIND, self._key)
            if (
                isinstance(cached, dict)
                and cached.keys() == files.keys()
                and all(isinstance(text, str) for text in cached.values())
            ):
                self._done = {rel: cached[rel] for rel in files}
                return
        self._run = _RuffRun(ruff, files)

    def result(self) -> dict[str, str]:
        if self._done is None:
            assert self._run is not None
            try:
                self._done = self._run.result()
            finally:
                self.close()
            if self._key is not None:
                write_entry(CACHE_KIND, self._key, self._done, CACHE_ENTRIES)
        return self._done

    def close(self) -> None:
        """End ruff's processes and remove its folders (the result, when taken, is kept)."""
        if self._run is not None:
            self._run.close()
            self._run = None


def start_formatting(files: dict[str, str]) -> Formatting:
    """Start formatting `files` (see `format_files`); nothing runs when the result is kept."""
    return Formatting(files)


class _RuffRun:
    """ruff's two steps over the files, run at the same time rather than one after the other.

    Sorting imports changes few files, and often none: `format` runs at once on a copy of the
    files as rendered, while `check --select I --fix` runs on another. A file the import step
    left unchanged is then formatted already (formatting is per file: its text and path); the
    few it changed are formatted again from their sorted text, in a third copy with the same
    relative paths. Each step runs over a folder, as before, so ruff sees the same tree, finds
    the same first-party package and excludes the same paths: the result is the same as
    `check --fix` then `format` over one folder.
    """

    def __init__(self, ruff: str, files: dict[str, str]) -> None:
        self._ruff = ruff
        self._files = files
        self._tmp = tempfile.TemporaryDirectory(prefix="nbops-format-", dir=_scratch_dir())
        try:
            root = Path(self._tmp.name)
            self._sorted, self._formatted = root / "sort", root / "format"
            # Both copies first: a running ruff takes both cores from this thread.
            write_files(self._sorted, files)
            write_files(self._formatted, files)
            self._check = _start(ruff, _STEPS[0], self._sorted)
            self._format = _start(ruff, _STEPS[1], self._formatted)
        except BaseException:
            self.close()
            raise

    def result(self) -> dict[str, str]:
        """The formatted files; ExportError when a step failed. `close()` cleans up."""
        return self._result()

    def _result(self) -> dict[str, str]:
        _finish(self._check)
        sorted_files = {rel: _read(self._sorted / rel) for rel in self._files}
        changed = {rel for rel, text in sorted_files.items() if text != self._files[rel]}
        try:
            _finish(self._format)
        except ExportError:
            if not changed:
                raise
            # Formatting the text as rendered failed, but ruff formats the sorted text: do
            # exactly what the two steps in a row do.
            _finish(_start(self._ruff, _STEPS[1], self._sorted))
            return {rel: _read(self._sorted / rel) for rel in self._files}
        out = {rel: _read(self._formatted / rel) for rel in self._files}
        if changed:
            again = Path(self._tmp.name) / "again"
            write_files(again, {rel: sorted_files[rel] for rel in changed})
            _finish(_start(self._ruff, _STEPS[1], again))
            out.update({rel: _read(again / rel) for rel in changed})
        return out

    def close(self) -> None:
        """End what is still running, close its pipes, remove the folders."""
        for proc in (getattr(self, "_check", None), getattr(self, "_format", None)):
            if proc is not None and proc.stdout is not None and not proc.stdout.closed:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
        self._tmp.cleanup()


@cache
def _scratch_dir() -> str | None:
    """Where ruff's copies go: a memory file system when there is one (Linux's /dev/shm),
    where writing, reading and removing a few dozen files costs a quarter of what it costs
    on a disk; else the usual temporary folder. Only paths below the copy's root reach
    ruff, so where the root is changes nothing in what it does."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _start(ruff: str, step: tuple[str, ...], root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ruff, *step],
        cwd=root,
        # One thread each: the two steps run side by side on two cores, and the second one
        # starts at once rather than waiting for a core the first one's threads took.
        env={**os.environ, "RAYON_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> None:
    """Wait for a ruff step; ExportError (its first line of output) when it failed."""
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()
        raise ExportError(
            "the generated code could not be formatted: "
            + (detail[0] if detail else f"ruff exited with {proc.returncode}"),
            fix="report this as an nbops bug, with the notebook",
        )


def _cache_key(ruff: str, files: dict[str, str]) -> str | None:
    """The cache entry for these files formatted by this ruff binary; None when the binary
    cannot be identified (then nothing is kept)."""
    try:
        stat = os.stat(ruff)
    except OSError:
        return None
    digest = hashlib.sha256()
    head = [CACHE_VERSION, ruff, stat.st_size, stat.st_mtime_ns, _STEPS]
    digest.update(json.dumps(head).encode() + b"\0")
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].encode() + b"\0")
    return digest.hexdigest()


def lint_problems(directory: Path) -> list[str]:
    """ruff's default lint rules on a folder: the problems found, one line each."""
    proc = subprocess.run(
        [_ruff(), "check", "--isolated", "--no-cache", "--output-format", "concise", "."],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return [] if proc.returncode == 0 else lines
