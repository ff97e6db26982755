"""`prepare_run` refuses a parameter value a later cell always overwrites, before any kernel
starts, and accepts values the notebook keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.config import load_project
from nbops.errors import ParameterValueError
from nbops.runs.execute import prepare_run
from tests.runs.conftest import write_notebook

CELLS = [
    ("n_estimators = 100\nseed = 0", ["parameters"]),
    ("if seed:\n    n_estimators = 10", []),
    ("seed = seed + 1\nn_estimators = 200\nmodel = (n_estimators, seed)", ["train"]),
]


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    return write_notebook(tmp_path / "forest.ipynb", CELLS)


def test_value_for_a_parameter_a_later_cell_always_sets_again_is_refused(notebook: Path) -> None:
    project = load_project(notebook.parent)
    with pytest.raises(ParameterValueError) as info:
        prepare_run(notebook, {"n_estimators": 50}, project=project)
    assert (info.value.location.number, info.value.location.line) == (3, 2)


def test_value_for_a_parameter_the_notebook_only_derives_from_is_accepted(notebook: Path) -> None:
    prepared = prepare_run(notebook, {"seed": 3}, project=load_project(notebook.parent))
    assert prepared.overrides == {"seed": 3}


def test_without_overrides_the_run_is_not_refused(notebook: Path) -> None:
    assert prepare_run(notebook, project=load_project(notebook.parent)).overrides == {}
