"""Formatting generated code with ruff, so it reads like code a person wrote.

Formatting is a pure function of the files (their paths and text), ruff's binary and the
fixed settings below; running ruff twice (sort imports, then format) is most of what an
export of an unchanged notebook costs. So the result is kept in the user's cache folder
(`$XDG_CACHE_HOME/nbops/format/`, default `~/.cache`), keyed on all of that: a re-export or
`nbops export --check` of a notebook whose generated code did not change skips ruff. Any
change to any file, to ruff's binary (its path, size or modification time) or to the
settings is another key. A cache entry that cannot be read, or does not hold exactly the
files asked for, is ignored; a cache that cannot be written is skipped.
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

from nbops.errors import ExportError

# Fixed settings, so a user's own ruff configuration cannot change an export's bytes.
_SETTINGS = ["--isolated", "--line-length", "99", "--target-version", "py311"]
_STEPS = (
    ("check", *_SETTINGS, "--select", "I", "--fix", "--quiet", "--no-cache", "."),
    ("format", *_SETTINGS, "--quiet", "--no-cache", "."),
)
_CACHE_FORMAT = 1  # bump when what an entry holds changes
CACHE_ENTRIES = 64  # the newest entries kept (one per distinct package; ~100 KB each)


@cache
def _ruff() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_files(files: dict[str, str]) -> dict[str, str]:
    """Sort imports and format every Python file; raises ExportError if ruff cannot."""
    ruff = _ruff()
    key = _cache_key(ruff, files)
    cached = _read_cached(key, files) if key is not None else None
    if cached is not None:
        return cached
    formatted = _run_ruff(ruff, files)
    if key is not None:
        _write_cached(key, formatted)
    return formatted


def _run_ruff(ruff: str, files: dict[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="nbops-format-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for step in _STEPS:
            command = [ruff, *step]
            proc = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise ExportError(
                    "the generated code could not be formatted: "
                    + (detail[0] if detail else f"ruff exited with {proc.returncode}"),
                    fix="report this as an nbops bug, with the notebook",
                )
        return {rel: (root / rel).read_text(encoding="utf-8") for rel in files}


# -- the cache -----------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where formatted packages are kept (see the module docstring)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbops" / "format"


def _cache_key(ruff: str, files: dict[str, str]) -> str | None:
    """The entry for these files formatted by this ruff binary; None when ruff's binary
    cannot be identified (then nothing is cached)."""
    try:
        stat = os.stat(ruff)
    except OSError:
        return None
    digest = hashlib.sha256()
    head = [_CACHE_FORMAT, ruff, stat.st_size, stat.st_mtime_ns, _STEPS]
    digest.update(json.dumps(head).encode() + b"\0")
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel].encode() + b"\0")
    return digest.hexdigest()


def _read_cached(key: str, files: dict[str, str]) -> dict[str, str] | None:
    path = cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("key") != key
        or not isinstance(data.get("files"), dict)
        or data["files"].keys() != files.keys()
        or not all(isinstance(v, str) for v in data["files"].values())
    ):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept longest
    return {rel: data["files"][rel] for rel in files}


def _write_cached(key: str, formatted: dict[str, str]) -> None:
    """Keep an entry (written whole: temp file and rename), then drop the oldest beyond
    CACHE_ENTRIES. A cache that cannot be written is skipped."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"key": key, "files": formatted}, handle)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder)
    except OSError:
        return


def _prune(folder: Path) -> None:
    entries = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime_ns, path))
    entries.sort(reverse=True)
    for _, path in entries[CACHE_ENTRIES:]:
        with contextlib.suppress(OSError):
            path.unlink()


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
