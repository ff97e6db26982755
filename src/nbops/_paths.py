"""Finding the project root; standard library only, so the in-kernel API can use it."""

from __future__ import annotations

from pathlib import Path


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
