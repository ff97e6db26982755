"""Habits of real notebooks, through the real command line: parameters set again after the
parameters cell, helper modules beside the notebook, relative data paths, percent scripts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nbops import errors
from tests.e2e.conftest import run_nbops

# -- a parameter set again: `-p` would do nothing ---------------------------------------------


def test_run_refuses_a_value_a_later_cell_always_overwrites_before_any_kernel_starts(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(
        [
            ("n_estimators = 100\nseed = 0", ["parameters"]),
            "## Train",
            ("print(n_estimators)", []),
            ("n_estimators = 200\nmodel = (n_estimators, seed)", []),
        ],
        name="forest.ipynb",
    )
    result = run_nbops("run", "forest.ipynb", "-p", "n_estimators", "50", cwd=tmp_path)
    assert result.returncode == errors.ParameterValueError.exit_code, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("nbops: error: forest.ipynb, cell 4 (id "), line
    assert "`n_estimators = 200`" in line and "no effect on the run" in line
    assert not (tmp_path / ".nbops" / "runs").exists() or not any(
        (tmp_path / ".nbops" / "runs").iterdir()
    )
