"""Formatting generated code with ruff, so it reads like code a person wrote."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from nbops.errors import ExportError

# Fixed settings, so a user's own ruff configuration cannot change an export's bytes.
_SETTINGS = ["--isolated", "--line-length", "99", "--target-version", "py311"]


def _ruff() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_files(files: dict[str, str]) -> dict[str, str]:
    """Sort imports and format every Python file; raises ExportError if ruff cannot."""
    with tempfile.TemporaryDirectory(prefix="nbops-format-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        ruff = _ruff()
        steps = [
            [ruff, "check", *_SETTINGS, "--select", "I", "--fix", "--quiet", "--no-cache", "."],
            [ruff, "format", *_SETTINGS, "--quiet", "--no-cache", "."],
        ]
        for command in steps:
            proc = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise ExportError(
                    "the generated code could not be formatted: "
                    + (detail[0] if detail else f"ruff exited with {proc.returncode}"),
                    fix="report this as an nbops bug, with the notebook",
                )
        return {rel: (root / rel).read_text(encoding="utf-8") for rel in files}


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
