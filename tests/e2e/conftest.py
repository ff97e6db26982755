"""Helpers for end-to-end tests: real notebook files and the real `nbops` command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_notebooks"

Cells = Sequence[tuple[str, Sequence[str]] | str]


def build_notebook(path: Path, cells: Cells) -> Path:
    """Write a notebook; each cell is (source, tags) for code, or a plain string for markdown."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(new_markdown_cell(cell))
        else:
            source, tags = cell
            code = new_code_cell(source)
            if tags:
                code.metadata["tags"] = list(tags)
            nb.cells.append(code)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    def make(cells: Cells, name: str = "analysis.ipynb") -> Path:
        return build_notebook(tmp_path / name, cells)

    return make


def run_nbops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "nbops", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SMALL = [
    ("import math\n\nOFFSET = 1", ["setup"]),
    ("factor = 3  # multiplies the data\nsize = 5", ["parameters"]),
    ("values = [i + OFFSET for i in range(size)]", ["transform:load"]),
    ("values", []),
    ("scaled = [v * factor for v in values]", ["transform:scale"]),
    ("total = sum(scaled)", ["train"]),
    ("score = math.sqrt(total)\nscore", ["evaluate"]),
]
