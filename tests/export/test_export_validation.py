"""nbformat's validation of the notebook runs while ruff formats the package (when it can
wait): an export of an invalid notebook still reports the validation's error, first, and
writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import NbopsError, NotebookReadError
from nbops.export.exporter import export_notebook
from nbops.notebook.read import read_notebook


def _cell(cid: str, source: str, tags: list[str]) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "id": cid,
        "metadata": {"tags": tags},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


def _notebook(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


_GOOD = [
    _cell("s", "import math", ["setup"]),
    _cell("a", "x = math.sqrt(2)", ["transform:prep"]),
    _cell("b", "y = x * 2", ["train"]),
]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "nb" / "flow.ipynb"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _invalid(cells: list[dict[str, Any]]) -> dict[str, Any]:
    data = _notebook([dict(c) for c in cells])
    data["cells"][-1]["execution_count"] = "one"  # not an integer: invalid
    return data


@pytest.mark.parametrize(
    "cells",
    [
        [_cell("u", "x = 1", [])],  # no steps: analysis fails too
        [_cell("a", "x = (", ["transform"])],  # a syntax error: analysis fails too
        [_cell("a", "x = 1", ["transform:bad name"])],  # a tag error when reading
        _GOOD,  # analysis and rendering succeed
    ],
)
def test_an_invalid_notebook_gets_the_validation_error(
    cells: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = _write(tmp_path, _invalid(cells))
    with pytest.raises(NotebookReadError) as read_error:
        read_notebook(path)
    out = tmp_path / "out"
    with pytest.raises(NbopsError) as export_error:
        export_notebook(path, out)
    assert type(export_error.value) is NotebookReadError
    assert str(export_error.value) == str(read_error.value)
    assert "invalid notebook at cells/" in str(export_error.value)


def test_an_invalid_notebook_writes_nothing(tmp_path: Path, _own_cache: Path) -> None:
    path = _write(tmp_path, _invalid(_GOOD))
    out = tmp_path / "out"
    with pytest.raises(NotebookReadError):
        export_notebook(path, out)
    assert not out.exists()
    assert [p for p in _own_cache.rglob("*") if p.is_file()] == []  # ruff's result not kept


def test_a_valid_notebook_exports(tmp_path: Path) -> None:
    result = export_notebook(_write(tmp_path, _notebook(_GOOD)), tmp_path / "out")
    assert [s.key for s in result.manifest.steps] == ["transform:prep", "train"]


def test_duplicate_ids_are_repaired_as_before(tmp_path: Path) -> None:
    cells = [*_GOOD, _cell("b", "z = y + 1", ["evaluate"])]  # "b" twice
    path = _write(tmp_path, _notebook(cells))
    result = export_notebook(path, tmp_path / "out")
    ids = [c.id for s in result.manifest.steps for c in s.cells]
    assert ids[:2] == ["a", "b"] and len(set(ids)) == 3
