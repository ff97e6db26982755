"""Finding the project root; standard library only, so the in-kernel API can use it."""

from __future__ import annotations

from pathlib import Path


def find_root(start: Path | None = None) -> Path:
    """The nearest folder, from `start` up, holding `.nbops/` or a pyproject.toml; else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / ".nbops").is_dir() or (folder / "pyproject.toml").is_file():
            return folder
    return here
