"""Shared helpers for the notebook-reading and analysis tests.

Notebooks are built with nbformat's own constructors and written to `tmp_path`, so every
test reads a real file the way `nbops export` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

from nbops.errors import CellLocation
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.read import read_notebook

# A cell is either (source, tags) for a code cell, or a ready-made nbformat cell
# (e.g. `new_markdown_cell("# Title")`) for anything else.
CellSpec = tuple[str, Sequence[str]] | NotebookNode
MakeNotebook = Callable[..., Path]


def build_notebook(cells: Sequence[CellSpec], **metadata: Any) -> NotebookNode:
    """A v4 notebook with these cells, made by nbformat's constructors."""
    nb_cells = [
        c
        if isinstance(c, NotebookNode)
        else new_code_cell(c[0], metadata={"tags": list(c[1])} if c[1] else {})
        for c in cells
    ]
    return new_notebook(cells=nb_cells, metadata=metadata)


def without_ids(nb: NotebookNode, minor: int = 4) -> dict[str, Any]:
    """The notebook as a v4.<minor> JSON document whose cells have no `id` (pre-4.5 files)."""
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = minor
    for cell in data["cells"]:
        cell.pop("id", None)
    return data


@pytest.fixture
def make_notebook(tmp_path: Path) -> MakeNotebook:
    """`make_notebook(cells, name="notebook.ipynb")`: write a notebook, return its path.

    `cells` are (source, tags) pairs for code cells, or nbformat cells.
    """

    def make(cells: Sequence[CellSpec], name: str = "notebook.ipynb", **metadata: Any) -> Path:
        path = tmp_path / name
        nbformat.write(build_notebook(cells, **metadata), path)
        return path

    return make


@pytest.fixture
def write_v44(tmp_path: Path) -> MakeNotebook:
    """`write_v44(cells, name="old.ipynb")`: write a v4.4 notebook whose cells have no ids."""

    def write(cells: Sequence[CellSpec], name: str = "old.ipynb") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(without_ids(build_notebook(cells))), "utf-8")
        return path

    return write


@pytest.fixture
def analyse_cells(make_notebook: MakeNotebook) -> Callable[..., StepGraph]:
    """`analyse_cells(cells)`: write the notebook, read it and analyse it."""

    def run(cells: Sequence[CellSpec], name: str = "notebook.ipynb") -> StepGraph:
        return analyse(read_notebook(make_notebook(cells, name=name)))

    return run


@pytest.fixture
def location() -> CellLocation:
    """Where a cell under test sits: cell 3 of `nb.ipynb`."""
    return CellLocation("nb.ipynb", 3, "cell-3")
