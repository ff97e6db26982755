"""Shared fixtures for the run tests: notebooks, a run folder for the capture API, stores, records.

Notebooks are built with nbformat's own constructors and written to `tmp_path`, so each test
reads a real file the way `nbops run` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbops.notebook.read import NotebookModel, read_notebook
from nbops.runs import capture
from nbops.runs.capture import RUN_DIR_ENV, RUN_ID_ENV
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore

# A code cell: (source, tags).
Cells = Sequence[tuple[str, Sequence[str]]]


def write_notebook(path: Path, cells: Cells) -> Path:
    """Write a v4 notebook whose code cells carry these tags; returns the path."""
    nb = new_notebook(
        cells=[
            new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
            for source, tags in cells
        ]
    )
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_with(tmp_path: Path) -> Callable[[str], NotebookModel]:
    """`notebook_with(parameters_source)`: a notebook with that parameters cell, read back."""

    def make(parameters: str) -> NotebookModel:
        path = write_notebook(
            tmp_path / "params.ipynb",
            [("import math", ["setup"]), (parameters, ["parameters"]), ("x = 1", ["train"])],
        )
        return read_notebook(path)

    return make


@pytest.fixture(autouse=True)
def no_active_run() -> Iterator[None]:
    """Every test starts, and leaves, with no capture run cached in the process."""
    capture._active = None
    yield
    capture._active = None


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder of a run started by `nbops run`: the capture API writes there."""
    folder = tmp_path / "store" / "runs" / "20260101-000000-abcdef"
    monkeypatch.setenv(RUN_DIR_ENV, str(folder))
    monkeypatch.setenv(RUN_ID_ENV, folder.name)
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Outside `nbops run`: the working directory is a project (pyproject.toml), no run env."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n', "utf-8")
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def ipython_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process is an IPython (Jupyter) kernel: `IPython.get_ipython()` gives a shell."""
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / ".nbops")


def make_record(run_id: str = "20260101-000000-aaaaaa", **fields: Any) -> RunRecord:
    """A record with the required fields filled in; `fields` override them."""
    values: dict[str, Any] = {
        "notebook": "train.ipynb",
        "started_at": "2026-01-01T00:00:00.000+00:00",
        "status": "completed",
        **fields,
    }
    return RunRecord(run_id=run_id, **values)
