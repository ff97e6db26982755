"""Formatting generated code with ruff, so it reads like code a person wrote.

Formatting is a pure function of the files (their paths and text), ruff's binary and the
fixed settings below; running ruff twice (sort imports, then format) was most of what an
export of an unchanged notebook cost. So the result is kept (nbops.export.cache, kind
`format`), keyed on all of that: a re-export or `nbops export --check` of a notebook whose
generated code did not change runs no ruff. Any change to any file, to ruff's binary (its
path, size or modification time) or to the settings is another key.
"""

from __future__ import annotations

import contextlib
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

    def __init__(self, files: dict[str, str], ready: RuffReady | None = None) -> None:
        self._done: dict[str, str] | None = None
        self._run: _RuffRun | None = None
        try:
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
            self._run, ready = _RuffRun(ruff, files, ready), None
        finally:
            if ready is not None:  # not needed (kept result), or the run did not start
                ready.close()

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


def start_formatting(files: dict[str, str], ready: RuffReady | None = None) -> Formatting:
    """Start formatting `files` (see `format_files`); nothing runs when the result is kept.
    `ready` (from `ruff_ready()`, taken over: closed when not used) starts ruff sooner."""
    return Formatting(files, ready)


def ruff_ready() -> RuffReady:
    """ruff's two steps started ahead of the files they format, for `start_formatting`:
    call it before rendering the files (see RuffReady)."""
    return RuffReady(_ruff(), ahead=os.name == "posix" and os.access(_SHELL, os.X_OK))


_SHELL = "/bin/sh"
# The shell waits for a line on its standard input, then becomes ruff (exec: the same
# process). At the end of its input it exits without running ruff.
_GATE = 'read go && exec "$0" "$@" </dev/null'


class RuffReady:
    """Where ruff's two steps run (a scratch folder each), and their processes.

    Starting a process costs the caller little on its own, but the second of two started
    back to back waits for a core while the first one runs: 2-5 ms on two cores, a third of
    a step. So with `ahead`, both start now, while the files are still being rendered: each
    one a shell waiting on a pipe in its own empty folder, which `go()` (once the files are
    written there) has become ruff. Without it (no POSIX shell), `go()` starts ruff itself.
    `close()` ends whatever is still running or waiting and removes the folders."""

    def __init__(self, ruff: str, *, ahead: bool) -> None:
        self._ruff = ruff
        self._tmp = tempfile.TemporaryDirectory(prefix="nbops-format-", dir=_scratch_dir())
        self.root = Path(self._tmp.name)
        self.sorted, self.formatted = self.root / "sort", self.root / "format"
        self._waiting: list[subprocess.Popen[str]] = []
        self._running: list[subprocess.Popen[str]] = []
        if ahead:
            try:
                for step, folder in zip(_STEPS, (self.sorted, self.formatted), strict=True):
                    folder.mkdir()
                    self._waiting.append(_start(ruff, step, folder, gated=True))
            except BaseException:
                self.close()
                raise

    def go(self) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
        """Run both steps (their files are in `sorted` and `formatted`): the check's
        process and the format's."""
        if self._waiting:
            for proc in self._waiting:
                assert proc.stdin is not None
                try:
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                except BrokenPipeError:  # the shell is gone: _finish reports how it ended
                    pass
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                proc.stdin = None
            self._running, self._waiting = self._waiting, []
        else:
            self._running = [
                _start(self._ruff, step, folder)
                for step, folder in zip(_STEPS, (self.sorted, self.formatted), strict=True)
            ]
        check, format_ = self._running
        return check, format_

    def close(self) -> None:
        """End what is still running or waiting, close its pipes, remove the folders."""
        for proc in [*self._waiting, *self._running]:
            if proc.stdin is not None:  # a shell still waiting: it ends at end of input
                proc.stdin.close()
                proc.stdin = None
            elif proc.stdout is not None and not proc.stdout.closed and proc.poll() is None:
                proc.kill()
            if proc.stdout is not None and not proc.stdout.closed:
                proc.communicate()
        self._tmp.cleanup()


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

    def __init__(self, ruff: str, files: dict[str, str], ready: RuffReady | None = None) -> None:
        self._ruff = ruff
        self._files = files
        self._ready = ready if ready is not None else RuffReady(ruff, ahead=False)
        try:
            self._sorted, self._formatted = self._ready.sorted, self._ready.formatted
            # Both copies first: a running ruff takes both cores from this thread.
            write_files(self._sorted, files)
            write_files(self._formatted, files)
            self._check, self._format = self._ready.go()
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
            again = self._ready.root / "again"
            write_files(again, {rel: sorted_files[rel] for rel in changed})
            _finish(_start(self._ruff, _STEPS[1], again))
            out.update({rel: _read(again / rel) for rel in changed})
        return out

    def close(self) -> None:
        """End what is still running, close its pipes, remove the folders."""
        self._ready.close()


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


def _start(
    ruff: str, step: tuple[str, ...], root: Path, *, gated: bool = False
) -> subprocess.Popen[str]:
    """Start a ruff step in `root`; `gated`: a shell that runs it once told to (RuffReady)."""
    return subprocess.Popen(
        [_SHELL, "-c", _GATE, ruff, *step] if gated else [ruff, *step],
        cwd=root,
        # One thread each: the two steps run side by side on two cores, and the second one
        # starts at once rather than waiting for a core the first one's threads took.
        env={**os.environ, "RAYON_NUM_THREADS": "1"},
        stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
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
