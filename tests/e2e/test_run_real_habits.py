"""`nbops run`, `sweep` and `ci` on notebooks as people leave them: files older than nbformat
4.5 (no cell ids), parameters cells with computed lines, IPython magics, install and tool
cells tagged `skip`. Real kernels, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbops import errors
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore
from tests.helpers import run_nbops

pytestmark = pytest.mark.slow

# A skip cell as tutorials have them: installs a package and imports a tool CI lacks.
INSTALL_CELL = ("!pip install nbops-not-a-real-package\nimport nbops_absent_tool", ["skip"])
WORK = ("import nbops\nnbops.log_metric('total', rows * 2)", ["train"])
PARAMS = ("rows = 10", ["parameters"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nstore = ".nbops"\n')
    return tmp_path


@pytest.fixture
def store(project: Path) -> RunStore:
    return RunStore(project / ".nbops")


def _single_run(store: RunStore) -> RunRecord:
    (record,) = store.list()
    return record


def _write_v44(path: Path) -> Path:
    """A notebook as Jupyter wrote them before nbformat 4.5: no cell ids."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    nb.cells = [
        new_markdown_cell("# Titanic"),
        new_code_cell("rows = 10", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import nbops\nnbops.log_metric('rows', rows)", metadata={"tags": ["transform"]}
        ),
        new_code_cell("raise ValueError('no model today')", metadata={"tags": ["train"]}),
    ]
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        del cell["id"]
    path.write_text(json.dumps(data))
    return path


def test_a_failing_run_of_a_notebook_without_cell_ids_names_the_cell_by_number(
    project: Path, store: RunStore
) -> None:
    _write_v44(project / "titanic.ipynb")

    result = run_nbops("run", "titanic.ipynb", cwd=project)

    assert result.returncode == errors.RunFailedError.exit_code
    # the cell by its number only: the file has no ids, so none is made up for the message
    assert ", cell 4: " in result.stderr and "ValueError: no model today" in result.stderr
    record = _single_run(store)
    assert [(c.index, c.role, c.status) for c in record.cells] == [
        (1, "parameters", "ok"),
        (2, "transform", "ok"),
        (3, "train", "error"),
    ]
    assert record.failure is not None
    assert (record.failure.cell_index, record.failure.role) == (3, "train")


def test_the_parameters_cell_runs_as_papermill_runs_it(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook(
        [
            (
                "!echo preparing\nDATA_DIR = 'data'\na = 3\nd = a == 3\npath = DATA_DIR + '/x.csv'",
                ["parameters"],
            ),
            (
                "import nbops\nnbops.log_metric('a', a)\nnbops.log_metric('d', d)\n"
                "nbops.log_metric('path_length', len(path))",
                ["train"],
            ),
        ],
        name="tutorial.ipynb",
    )

    result = run_nbops("run", "tutorial.ipynb", "-p", "a", "5", cwd=project)

    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    assert record.parameters == {"DATA_DIR": "data", "a": 5}
    # The computed line runs before the injected values, so it saw the default a = 3.
    assert record.latest_metrics() == {"a": 5.0, "d": 1.0, "path_length": len("data/x.csv")}


def test_an_undefined_line_magic_fails_the_run_with_its_own_message(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, ("%undefined_magic", ["transform"]), WORK], name="magic.ipynb")

    result = run_nbops("run", "magic.ipynb", cwd=project)

    assert result.returncode == errors.RunFailedError.exit_code
    message = "UsageError: Line magic function `%undefined_magic` not found."
    assert "cell 2 (id " in result.stderr and message in result.stderr
    failure = _single_run(store).failure
    assert failure is not None
    assert (failure.ename, failure.evalue, failure.cell_index) == (
        "UsageError",
        "Line magic function `%undefined_magic` not found.",
        1,
    )


def test_skip_cells_are_kept_in_the_output_but_not_executed(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, INSTALL_CELL, WORK], name="train.ipynb")

    result = run_nbops("run", "train.ipynb", cwd=project)

    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    assert [(c.role, c.status) for c in record.cells] == [
        ("parameters", "ok"),
        ("skip", "skipped"),
        ("train", "ok"),
    ]
    assert record.latest_metrics() == {"total": 20.0}
    executed = nbformat.read(store.run_dir(record.run_id) / "output.ipynb", as_version=4)
    skipped = [c for c in executed.cells if "skip" in c.metadata.get("tags", [])]
    assert [(c.cell_type, c.source, c.outputs, c.metadata["nbops"]) for c in skipped] == [
        ("code", INSTALL_CELL[0], [], {"skipped": True})
    ]


def test_all_cells_executes_skip_cells_too(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, INSTALL_CELL, WORK], name="train.ipynb")

    result = run_nbops("run", "train.ipynb", "--all-cells", cwd=project)

    assert result.returncode == errors.RunFailedError.exit_code
    assert "ModuleNotFoundError" in result.stderr
    record = _single_run(store)
    assert record.all_cells
    assert [c.status for c in record.cells] == ["ok", "error", "not run"]


def test_a_rerun_repeats_all_cells(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, INSTALL_CELL, WORK], name="train.ipynb")
    run_nbops("run", "train.ipynb", "--all-cells", cwd=project)
    original = _single_run(store)

    result = run_nbops("rerun", original.run_id, cwd=project)

    assert result.returncode == errors.RunFailedError.exit_code
    rerun = store.load("latest")
    assert rerun.rerun_of == original.run_id and rerun.all_cells
    assert [c.status for c in rerun.cells] == ["ok", "error", "not run"]


def test_ci_does_not_execute_skip_cells(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, INSTALL_CELL, WORK], name="train.ipynb")

    result = run_nbops("ci", "train.ipynb", "--gate", "total >= 20", cwd=project)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [c.status for c in _single_run(store).cells] == ["ok", "skipped", "ok"]


def test_sweep_passes_all_cells_to_its_runs(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, INSTALL_CELL, WORK], name="train.ipynb")

    result = run_nbops("sweep", "train.ipynb", "-g", "rows=1", "--all-cells", cwd=project)

    assert result.returncode == errors.RunFailedError.exit_code
    record = _single_run(store)
    assert record.all_cells and record.failure is not None
    assert record.failure.ename == "ModuleNotFoundError"


@pytest.mark.parametrize(
    "command",
    [["run"], ["ci"], ["sweep", "-g", "rows=1,2"]],
    ids=["run", "ci", "sweep"],
)
def test_a_parameters_cell_that_is_not_python_is_refused_in_run_words(
    command: list[str], project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([("rows = 10\nsize = (3", ["parameters"]), WORK], name="train.ipynb")

    result = run_nbops(command[0], "train.ipynb", *command[1:], cwd=project)

    assert result.returncode == errors.CellSyntaxError.exit_code
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "cell 1" in line and "line 2" in line
    assert "run again" in line and "export" not in line
    assert store.list() == []


def test_a_percent_script_without_a_header_runs_with_its_skip_cell_left_out(
    project: Path, store: RunStore
) -> None:
    (project / "train.py").write_text(
        '# %% tags=["parameters"]\nrows = 3\n\n'
        '# %% tags=["skip"]\nimport nbops_absent_tool\n\n'
        '# %% tags=["train"]\nimport nbops\nnbops.log_metric("total", rows * 2)\n'
    )

    result = run_nbops("run", "train.py", "-p", "rows", "4", cwd=project)

    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    assert record.latest_metrics() == {"total": 8.0}
    assert [c.status for c in record.cells] == ["ok", "skipped", "ok"]
