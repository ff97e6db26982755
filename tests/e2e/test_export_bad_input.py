"""Bad input to `nbops export`: one line naming file, cell and fix; a distinct exit code;
no traceback; nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from nbops import errors
from tests.helpers import run_nbops


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def not_json(tmp: Path, make: Callable[..., Path]) -> Path:
    return _write(tmp / "broken.ipynb", '{"cells": [')


def not_a_notebook(tmp: Path, make: Callable[..., Path]) -> Path:
    return _write(tmp / "data.ipynb", json.dumps({"rows": [1, 2, 3]}))


def schema_invalid(tmp: Path, make: Callable[..., Path]) -> Path:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "code", "id": "a1", "metadata": {}, "outputs": []}],
    }
    return _write(tmp / "invalid.ipynb", json.dumps(nb))


def no_tagged_cells(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("x = 1", []), ("y = x + 1", [])])


def two_roles(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("x = 1", ["transform", "train"])])


def syntax_error(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("x = 1", ["transform"]), ("y = 2\nz = (x +", ["train"])])


def untagged_definition(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("raw = [1, 2]", []), ("clean = sorted(raw)", ["transform"])])


def later_step(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("model = weights * 2", ["train"]), ("weights = 3", ["transform:late"])])


def undefined_name(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("clean = sorted(never_defined)", ["transform"])])


def shell_command(tmp: Path, make: Callable[..., Path]) -> Path:
    return make([("!ls -la\nx = 1", ["transform"])])


def non_literal_parameter(tmp: Path, make: Callable[..., Path]) -> Path:
    return make(
        [("import os\nrows = int(os.environ['ROWS'])", ["parameters"]), ("x = rows", ["transform"])]
    )


def parameter_set_again(tmp: Path, make: Callable[..., Path]) -> Path:
    return make(
        [
            ("n_estimators = 100", ["parameters"]),
            ("data = [1, 2]", ["transform"]),
            ("n_estimators = 200\nmodel = (n_estimators, data)", ["train"]),
        ]
    )


CASES = {
    "not JSON": (not_json, errors.NotebookReadError, ["not valid JSON", "line 1"]),
    "not a notebook": (not_a_notebook, errors.NotebookReadError, ["no 'cells'"]),
    "invalid against the schema": (schema_invalid, errors.NotebookReadError, ["cells/0", "source"]),
    "no tagged cells": (no_tagged_cells, errors.NoTaggedCellsError, ["tag cells with"]),
    "two role tags on a cell": (two_roles, errors.TagError, ["cell 1", "'train'", "'transform'"]),
    "syntax error": (syntax_error, errors.CellSyntaxError, ["cell 2", "line 2"]),
    "name defined only in an untagged cell": (
        untagged_definition,
        errors.UntaggedDefinitionError,
        ["cell 2", "'raw'", "untagged cell: cell 1", "tag cell 1"],
    ),
    "name first defined by a later step": (
        later_step,
        errors.LaterStepError,
        ["cell 1", "'weights'", "later step 'transform:late' (cell 2"],
    ),
    "name defined nowhere": (
        undefined_name,
        errors.UndefinedNameError,
        ["cell 1", "'never_defined'"],
    ),
    "shell command in a tagged cell": (shell_command, errors.MagicError, ["cell 1", "'!ls -la'"]),
    "parameter default that is not a literal": (
        non_literal_parameter,
        errors.ParameterError,
        ["cell 1", "line 2", "'rows'"],
    ),
    "parameter set again by a step": (
        parameter_set_again,
        errors.ParameterError,
        ["cell 3", "line 1", "'n_estimators'", "`n_estimators = 200`", "no effect"],
    ),
}


def test_each_kind_of_bad_input_has_its_own_exit_code() -> None:
    kinds = {error for _, error, _ in CASES.values()}
    codes = {error.exit_code for error in kinds}
    assert len(codes) == len(kinds)
    assert 0 not in codes and 1 not in codes and 2 not in codes  # 2 is usage errors


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_writes_nothing(
    case: str, tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    build, error, fragments = CASES[case]
    notebook = build(tmp_path, make_notebook)
    out = tmp_path / "out"

    result = run_nbops("export", str(notebook), "-o", str(out), cwd=tmp_path)

    assert result.returncode == error.exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"nbops: error: {notebook}"), line
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not out.exists(), "a failed export must not write anything"


def test_a_missing_file_is_named_with_its_path(tmp_path: Path) -> None:
    result = run_nbops("export", "nowhere.ipynb", cwd=tmp_path)
    assert result.returncode == errors.NotebookReadError.exit_code
    assert (
        result.stderr.strip()
        == "nbops: error: nowhere.ipynb: cannot read the file (No such file or directory); check the path"
    )


def test_an_untagged_cell_changing_a_step_input_is_warned_about(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    notebook = make_notebook(
        [
            ("rows = [3, 1, 2]", ["transform:load"]),
            ("rows = rows[:1]", []),
            ("ordered = sorted(rows)", ["transform:sort"]),
        ]
    )
    result = run_nbops("export", str(notebook), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"nbops: warning: {notebook}, cell 2" in result.stderr
    assert "changes 'rows', which step 'transform:sort' reads" in result.stderr


def test_dropped_magics_are_reported_as_warnings(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    notebook = make_notebook([("%matplotlib inline\nx = 1", ["setup"]), ("y = x", ["transform"])])
    result = run_nbops("export", str(notebook), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dropped '%matplotlib inline' (only matters interactively)" in result.stderr
    common = (tmp_path / "out" / "analysis" / "analysis" / "common.py").read_text()
    assert "matplotlib" not in common and "x = 1" in common


def test_an_output_path_that_is_a_file_is_one_clear_error(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    notebook = make_notebook([("x = 1", ["transform"])])
    blocker = _write(tmp_path / "out", "not a folder")
    result = run_nbops("export", str(notebook), "-o", str(blocker), cwd=tmp_path)
    assert result.returncode == errors.ExportError.exit_code
    assert result.stderr.startswith(f"nbops: error: {blocker}/analysis: cannot write the package")
    assert len(result.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"
