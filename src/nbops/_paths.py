"""Finding the project root, and telling a data folder or glob from a file; standard library
only, so the in-kernel API and the command line's early checks can use it."""

from __future__ import annotations

import os
from pathlib import Path

GLOB_CHARS = frozenset("*?[")


def find_root(start: Path | None = None, *, stop: Path | None = None) -> Path:
    """The nearest folder, from `start` up, holding `.nbops/` or a pyproject.toml; else `start`.

    `stop` (resolved): a folder the search does not go above, such as the JupyterLab server's
    root, so that no project outside it is found.
    """
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / ".nbops").is_dir() or (folder / "pyproject.toml").is_file():
            return folder
        if folder == stop:
            break
    return here


def is_folder_or_glob(path: str | os.PathLike[str]) -> bool:
    """A folder or a glob pattern: data read as a set of files (partitioned Parquet), in chunks."""
    text = os.fspath(path)
    return Path(text).is_dir() or any(c in GLOB_CHARS for c in text)
