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
    ruff = _ruff()
    key = _cache_key(ruff, files)
    if key is not None:
        cached = read_entry(CACHE_KIND, key)
        if (
            isinstance(cached, dict)
            and cached.keys() == files.keys()
            and all(isinstance(text, str) for text in cached.values())
        ):
            return {rel: cached[rel] for rel in files}
    formatted = _run_ruff(ruff, files)
    if key is not None:
        write_entry(CACHE_KIND, key, formatted, CACHE_ENTRIES)
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
