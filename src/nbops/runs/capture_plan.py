"""The cells `nbops run` adds to the copy of the notebook papermill executes, so that a
notebook without any nbops call still records its metrics and its model.

What to record comes from nbops.notebook.metrics on the notebook's analysis — the rule and
the analysis the exported package's `collect_metrics` is rendered from — so a run records
the metrics `python -m PKG` reports, under the same names:

- after a train or evaluate cell whose last expression is a metric, a cell records the value
  Jupyter showed for it (IPython's `Out`; the expression is not evaluated again);
- after an evaluate cell that only prints a metric (`print("r2: %.2f" % r2_score(y, p))`),
  a cell evaluates the printed expression once more in the notebook's globals: the
  notebook does not keep the value, the export does (metrics.printed_metrics; only
  metric-looking expressions, metric functions and `.score` being pure);
- after the last cell of each train or evaluate step with metrics, a cell records them from
  the notebook's globals, as the step left them;
- after the last cell of the step the model is read from, the same cell saves the model;
- after a step cell that reads a data file (`pd.read_csv(data_path)`, `read_parquet`,
  `np.load`, ... with a path that is a literal or a global name), a cell fingerprints that
  file as the data set it is read into (`customers = pd.read_csv(...)` records
  "customers"), as `nbops.track_data(path, name)` would; not when the notebook calls
  `track_data` itself. A value that is not a file at run time is skipped.

Each added cell is tagged `nbops-capture` (the analysis and the run record ignore it, as they
ignore papermill's `injected-parameters` cell) and calls nbops.runs.autocapture.record; in a
kernel without nbops it does nothing. The user's notebook is never changed: the cells go into
a copy in the run's folder. A notebook the analysis cannot export (no tags, a dependency
error) runs without them: a run needs no tags, but `capture_warnings` says why nothing is
captured (the run record keeps it and `nbops run` prints it as a warning).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.metrics import metric_sources, model_source
from nbops.notebook.read import NotebookModel
from nbops.notebook.tags import NBOPS_CAPTURE_TAG
from nbops.runs.files import write_text

CAPTURED_INPUT = "input.ipynb"


@dataclass
class CaptureCall:
    """What one added cell records, after the cell at `after` (index in the notebook)."""

    after: int
    step: str
    metrics: dict[str, str] = field(default_factory=dict)  # metric name -> global name
    output: str | None = None  # the metric the previous cell's last expression holds
    evaluate: dict[str, str] = field(default_factory=dict)  # metric name -> printed expression
    model: str | None = None  # the global holding the model
    data: dict[str, str] = field(default_factory=dict)  # data set name -> global holding a path
    data_paths: dict[str, str] = field(default_factory=dict)  # data set name -> literal path

    def source(self) -> str:
        args = [repr(self.step)]
        if self.metrics:
            args.append(repr(self.metrics))
        if self.output is not None:
            args.append(f"output={self.output!r}")
        if self.evaluate:
            args.append(f"evaluate={self.evaluate!r}")
        if self.model is not None:
            args.append(f"model={self.model!r}")
        if self.data:
            args.append(f"data={self.data!r}")
        if self.data_paths:
            args.append(f"data_paths={self.data_paths!r}")
        call = f"record(globals(), {', '.join(args)})"
        return (
            f"# Added by `nbops run` to its copy of the notebook: records step {self.step!r}.\n"
            "try:\n"
            f'    __import__("nbops.runs.autocapture").runs.autocapture.{call}\n'
            "except ImportError:  # nbops is not installed in this kernel: nothing to record\n"
            "    pass\n"
        )


def capture_calls(notebook: NotebookModel) -> list[CaptureCall]:
    """The capture cells a run of this notebook gets, in notebook order (see the module
    docstring); none when the notebook cannot be analysed."""
    graph = _analysed(notebook)
    if isinstance(graph, NbopsError):
        return []
    steps = {s.key: s for s in graph.steps}
    calls: dict[int, CaptureCall] = {}

    def call_after(index: int, step: str) -> CaptureCall:
        return calls.setdefault(index, CaptureCall(after=index, step=step))

    for m in metric_sources(graph):
        if m.headline is not None:
            call_after(m.headline, m.step).output = m.name
        elif m.printed is not None and m.expression is not None:
            call_after(m.printed, m.step).evaluate[m.name] = m.expression
        else:
            last = steps[m.step].cells[-1].cell.index
            call_after(last, m.step).metrics[m.name] = m.value
    model = model_source(graph)
    if model is not None and not _logs_model(notebook):
        call_after(steps[model.step].cells[-1].cell.index, model.step).model = model.value
    if not any("track_data(" in c.source for c in notebook.code_cells):
        for step in graph.steps:
            for analysed in step.cells:
                for read in data_reads(analysed.code.tree):
                    call = call_after(analysed.cell.index, step.key)
                    if read.global_name is not None:
                        call.data.setdefault(read.name, read.global_name)
                    elif read.path is not None:
                        call.data_paths.setdefault(read.name, read.path)
    return [calls[i] for i in sorted(calls)]


# Functions that read a whole data file from the path given first (pandas, numpy, polars).
DATA_READERS = frozenset(
    {
        "read_csv", "read_table", "read_parquet", "read_feather", "read_json", "read_excel",
        "read_orc", "read_sas", "read_stata", "read_spss", "read_fwf", "read_xml",
        "read_ndjson", "read_ipc", "scan_csv", "scan_parquet", "loadtxt", "genfromtxt",
    }
)  # fmt: skip


@dataclass(frozen=True)
class DataRead:
    """A data file a statement reads: into `name`, from a global or a literal path."""

    name: str
    global_name: str | None = None
    path: str | None = None


def data_reads(tree: ast.Module) -> list[DataRead]:
    """The data files the top-level statements of a cell read, in order (see the module
    docstring). A read whose path is an expression (an f-string, a join) is not listed."""
    found: list[DataRead] = []
    for stmt in tree.body:
        target = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
        for node in ast.walk(stmt):
            if not (isinstance(node, ast.Call) and _reader(node.func) in DATA_READERS):
                continue
            arg = node.args[0] if node.args else None
            if arg is None:
                arg = next((k.value for k in node.keywords if k.arg in _PATH_KEYWORDS), None)
            name = target.id if isinstance(target, ast.Name) else None
            if isinstance(arg, ast.Name):
                found.append(DataRead(name or arg.id, global_name=arg.id))
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(DataRead(name or Path(arg.value).stem, path=arg.value))
    return found


_PATH_KEYWORDS = frozenset({"filepath_or_buffer", "path", "path_or_buf", "io", "fname", "source"})


def _reader(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def capture_warnings(notebook: NotebookModel) -> list[str]:
    """One warning when the notebook's analysis fails, so the run records no metric or model
    by itself: the analysis error, with its cell and fix; none otherwise."""
    e = _analysed(notebook)
    if isinstance(e, NbopsError):
        return [
            "metrics and the model are not captured automatically in this run (log them with "
            f"nbops.log_metric / nbops.log_model, or fix what stops the analysis): {e}"
        ]
    return []


# The last notebook analysed and what came of it: a run asks twice (capture_warnings when it
# starts, capture_calls to write its capture cells), and analysing is the most work nbops
# does before the kernel starts. Held by identity, so a notebook read again is analysed again.
_last_analysis: tuple[NotebookModel, StepGraph | NbopsError] | None = None


def _analysed(notebook: NotebookModel) -> StepGraph | NbopsError:
    global _last_analysis
    last = _last_analysis
    if last is not None and last[0] is notebook:
        return last[1]
    result: StepGraph | NbopsError
    try:
        result = analyse(notebook)
    except NbopsError as e:
        result = e
    _last_analysis = (notebook, result)
    return result


def _logs_model(notebook: NotebookModel) -> bool:
    """Whether the notebook saves its model itself (`nbops.log_model`): then that one wins
    and nbops does not save a second copy."""
    return any("log_model(" in c.source for c in notebook.code_cells)


def add_capture_cells(
    source: Path, notebook: NotebookModel, run_dir: Path, node: Any = None
) -> Path:
    """The notebook papermill should execute: `source` (an .ipynb) itself when there is
    nothing to record, else a copy with the capture cells, written into `run_dir`. `node`:
    the notebook `source` holds, as nbformat read it, when the caller has it (it is copied,
    not changed), so the file is not read again."""
    calls = capture_calls(notebook)
    if not calls:
        return source
    import copy

    import nbformat

    nb = copy.deepcopy(node) if node is not None else nbformat.read(source, as_version=4)
    positions = _positions(nb.cells, notebook)
    for call in reversed(calls):
        position = positions.get(call.after)
        if position is not None:
            nb.cells.insert(position + 1, _capture_cell(call, nb))
    target = run_dir / CAPTURED_INPUT
    write_text(target, nbformat.writes(nb))  # atomic, as every file of a run (files.py)
    return target


def _capture_cell(call: CaptureCall, nb: Any) -> Any:
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(call.source(), metadata={"tags": [NBOPS_CAPTURE_TAG]})
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        cell["id"] = f"nbops-capture-{call.after}"
    else:
        cell.pop("id", None)
    return cell


def _positions(cells: list[Any], notebook: NotebookModel) -> dict[int, int]:
    """Notebook cell index -> position in `cells`, matching cells in order by type and
    source, so cells the file has and the model lacks (or the reverse) are stepped over."""
    positions: dict[int, int] = {}
    cursor = 0
    for model_cell in notebook.cells:
        for position in range(cursor, len(cells)):
            cell = cells[position]
            if cell.cell_type == model_cell.cell_type and cell.source == model_cell.source:
                positions[model_cell.index] = position
                cursor = position + 1
                break
    return positions
