"""An executed notebook (papermill's output) analyses and exports as its source notebook.

papermill inserts a cell tagged `injected-parameters`, holding the run's parameter values,
after the `parameters` cell, and adds `metadata.papermill`. That cell is the run's, not the
pipeline's: nbops ignores it, so the steps, the parameter defaults and the exported code are
the source's, and no warning is given about it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_markdown_cell, new_output
from papermill.parameterize import parameterize_notebook

from nbops.export.exporter import export_notebook
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.read import read_notebook
from nbops.notebook.tags import PAPERMILL_INJECTED_TAG
from tests.notebook.conftest import CellSpec, build_notebook

CELLS: list[CellSpec] = [
    new_markdown_cell("# Pipeline"),
    ("import math\nimport random", ["setup"]),
    ("n_rows = 40  # rows to draw\nscale = 2.0\nseed = 0", ["parameters"]),
    (
        "random.seed(seed)\ndata = [random.random() * scale for _ in range(n_rows)]",
        ["transform:make_data"],
    ),
    ("data[:3]", []),
    ("model = sum(data) / len(data)", ["train"]),
    ("score = math.sqrt(model)", ["evaluate"]),
]

RUN_VALUES = {"n_rows": 25, "scale": 0.5}


def executed(source: NotebookNode, run_dir: str = "/p/.nbops/runs/r-1") -> NotebookNode:
    """The notebook as papermill leaves it: the injected cell (made by papermill itself),
    `metadata.papermill`, execution counts and outputs."""
    nb = copy.deepcopy(source)
    for cell in nb.cells:  # papermill's reader gives every cell a tags list
        cell.metadata.setdefault("tags", [])
    nb.metadata["papermill"] = {
        "input_path": "/p/pipeline.ipynb",
        "output_path": f"{run_dir}/output.ipynb",
        "default_parameters": {},
        "environment_variables": {},
        "version": "2.7.0",
    }
    nb = parameterize_notebook(nb, RUN_VALUES, kernel_name="python3", language="python")
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.metadata["papermill"] = {"status": "completed", "duration": 0.01}
        if cell.source == "data[:3]":
            cell.outputs = [
                new_output(
                    "execute_result", {"text/plain": "[0.1, 0.2, 0.3]"}, execution_count=count
                )
            ]
    return nb


def write(nb: NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def summary(graph: StepGraph) -> dict[str, object]:
    return {
        "steps": [
            (
                s.key,
                [a.cell.cell_id for a in s.cells],
                [(i.name, i.source, i.step) for i in s.inputs],
                s.outputs,
            )
            for s in graph.steps
        ],
        "parameters": [(p.name, p.type_source, p.default) for p in graph.parameters],
        "setup": [a.cell.cell_id for a in graph.setup],
    }


def test_papermill_inserts_the_cell_this_test_is_about(tmp_path: Path) -> None:
    nb = executed(build_notebook(CELLS))
    [injected] = [c for c in nb.cells if PAPERMILL_INJECTED_TAG in c.metadata.get("tags", [])]
    assert nb.cells.index(injected) == 3  # right after the parameters cell
    assert "n_rows = 25" in injected.source
    model = read_notebook(write(nb, tmp_path / "out.ipynb"))
    assert [c.number for c in model.cells if c.injected] == [4]
    assert all(not c.injected for c in model.cells if c.number != 4)


def test_an_executed_notebook_analyses_as_its_source(tmp_path: Path) -> None:
    source_nb = build_notebook(CELLS)
    source = analyse(read_notebook(write(source_nb, tmp_path / "pipeline.ipynb")))
    run = analyse(read_notebook(write(executed(source_nb), tmp_path / "out" / "pipeline.ipynb")))

    assert summary(run) == summary(source)
    # The notebook's defaults, not the run's values.
    assert [(p.name, p.default) for p in run.parameters] == [
        ("n_rows", 40), ("scale", 2.0), ("seed", 0),
    ]  # fmt: skip
    assert source.diagnostics == []
    # No "this untagged cell changes 'n_rows'" about papermill's cell, nor any other.
    assert run.diagnostics == []
    assert all(not a.cell.injected for a in [*run.setup, *(c for s in run.steps for c in s.cells)])


def test_an_untagged_cell_changing_a_parameter_is_still_warned_about(tmp_path: Path) -> None:
    """Only papermill's cell is ignored: the same code in a cell of the user's is a warning."""
    cells = [*CELLS[:3], ("n_rows = 25", []), *CELLS[3:]]
    graph = analyse(read_notebook(write(build_notebook(cells), tmp_path / "nb.ipynb")))
    [warning] = graph.diagnostics
    assert "untagged cell changes 'n_rows'" in warning.message


def test_an_injected_cell_at_the_top_is_ignored_too(tmp_path: Path) -> None:
    """papermill puts the cell first when the notebook has no parameters cell."""
    cells = [c for c in CELLS if isinstance(c, NotebookNode) or "parameters" not in c[1]]
    cells.insert(1, ("n_rows = 40\nscale = 2.0\nseed = 0", ["setup"]))
    source_nb = build_notebook(cells)
    run_nb = executed(source_nb)
    assert PAPERMILL_INJECTED_TAG in run_nb.cells[0].metadata["tags"]
    source = analyse(read_notebook(write(source_nb, tmp_path / "a" / "nb.ipynb")))
    run = analyse(read_notebook(write(run_nb, tmp_path / "b" / "nb.ipynb")))
    assert summary(run) == summary(source)
    assert run.diagnostics == []


def test_an_executed_notebook_exports_the_same_content(tmp_path: Path) -> None:
    source_nb = build_notebook(CELLS)
    source = write(source_nb, tmp_path / "pipeline.ipynb")
    # The same file name: the generated files' header names the notebook file they came from.
    run = write(executed(source_nb), tmp_path / "executed" / "pipeline.ipynb")

    from_source = export_notebook(source, tmp_path / "export-a", name="pipeline")
    from_run = export_notebook(run, tmp_path / "export-b", name="pipeline")

    assert from_run.content_hash == from_source.content_hash
    assert from_run.diagnostics == []
    assert [p.default for p in from_run.manifest.parameters] == [40, 2.0, 0]
    # The generated code itself, file by file (the manifest differs: it names its source).
    a, b = tmp_path / "export-a", tmp_path / "export-b"
    code_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*.py")}
    code_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*.py")}
    assert code_a and code_b == code_a


def test_nbops_tags_labels_the_injected_cell_as_ignored(tmp_path: Path) -> None:
    from tests.helpers import run_nbops

    path = write(executed(build_notebook(CELLS)), tmp_path / "out.ipynb")
    proc = run_nbops("tags", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = proc.stdout[proc.stdout.index("injected-parameters") :]
    assert "(ignored)" in row.split("transform:make_data")[0]  # the table may wrap the label
    assert "n_rows" not in proc.stderr  # no warning about the run's values
