"""The analysis's shortcuts give what the plain code they replace gives.

Each shortcut (a name resolved once per step, a cell translated without building its
location, one substring test of all the code before a regex search of each cell) is checked
against the code it replaced, kept here, on generated notebooks and cells.
"""

from __future__ import annotations

import ast
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import CellLocation, DependencyError, NbopsError
from nbops.notebook import analysis, cellcode, slicing
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.cellcode import CellCode, translate, translate_cell
from nbops.notebook.read import read_notebook

from .conftest import build_notebook

# -- a name read again in a step is resolved once ------------------------------------------


def _resolve_every_read(
    graph: StepGraph,
    untagged_defs: dict[str, Any],
    report: Any,
    unknown_ok: bool,
    pending_params: set[str] | frozenset[str] = frozenset(),
) -> None:
    """analysis._resolve as it was before names were resolved once per step: every read
    of a name not bound earlier in the step is resolved and recorded."""
    params = {p.name for p in graph.parameters} | set(pending_params)
    setup_names = graph.setup_names
    producer: dict[str, str] = {}
    later_defs = analysis._later_definitions(graph.steps)
    declared = analysis.declared_metrics(graph.notebook)
    readers: dict[str, set[str]] = {s.key: set() for s in graph.steps}
    for index, step in enumerate(graph.steps):
        bound: set[str] = set()
        for a in step.cells:
            for name in a.names.uses:
                if name in bound:
                    continue
                try:
                    step_input = analysis._resolve_name(
                        name, a, step, producer, params, setup_names, graph, untagged_defs,
                        later_defs[index], unknown_ok,
                    )  # fmt: skip
                except DependencyError as exc:
                    report(exc)
                    continue
                analysis._record(step, step_input, name, readers)
            bound.update(n for n, k in a.names.defines.items() if k != "import")
        for name, kind in step.defines().items():
            if kind != "import":
                producer[name] = step.key
    for step in graph.steps:
        outputs = readers[step.key]
        if step.role in analysis._RESULT_ROLES:
            loops = set().union(*(c.names.loop_targets for c in step.cells))
            outputs |= {
                n
                for n, kind in step.defines().items()
                if kind == "value" and not n.startswith("_") and n not in loops
            }
        order = {name: i for i, name in enumerate(step.defines())}
        for name in declared.get(step.key, []):
            if name in step.input_names or name in order:
                outputs.add(name)
                order.setdefault(name, len(order))
        step.outputs = sorted(outputs, key=order.__getitem__)


def _error(exc: BaseException) -> tuple[str, str, str]:
    location = getattr(exc, "location", None)
    return type(exc).__name__, str(exc), str(location)


def _outcome(path: Path, partial: bool) -> object:
    """What analyse gives for the notebook: each step's inputs, outputs and uses, the
    warnings and the problems kept (partial mode), or the error raised."""
    problems: list[NbopsError] | None = [] if partial else None
    try:
        graph = analyse(read_notebook(path), problems=problems)
    except NbopsError as exc:
        return _error(exc)
    steps = [
        (s.key, s.inputs, s.outputs, s.uses_setup, s.uses_imports, s.unknown_inputs)
        for s in graph.steps
    ]
    return steps, [str(d) for d in graph.diagnostics], [_error(p) for p in problems or []]


_NAMES = ["a", "b", "c", "d", "math"]
_line = st.one_of(
    st.builds("{} = {} + {}".format, *[st.sampled_from(_NAMES)] * 3),
    st.builds("{} = 1".format, st.sampled_from(_NAMES)),
    st.builds("print({}, len({}))".format, *[st.sampled_from(_NAMES)] * 2),
    st.builds("{} += 1".format, st.sampled_from(_NAMES)),
    st.builds("import math as {}".format, st.sampled_from(_NAMES)),
    st.builds("def {}():\n    return {}".format, *[st.sampled_from(_NAMES)] * 2),
    st.builds("for {} in {}:\n    pass".format, *[st.sampled_from(_NAMES)] * 2),
    st.just("import math"),
    st.just("x = ("),  # a cell that cannot be read
)
_tags = st.sampled_from(
    [None, "setup", "parameters", "transform:one", "transform:two", "train", "evaluate", "skip"]
)
_cells = st.lists(
    st.tuples(st.lists(_line, min_size=1, max_size=3).map("\n".join), _tags),
    min_size=1,
    max_size=9,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cells, st.booleans())
def test_resolving_a_name_once_per_step_gives_what_resolving_every_read_gives(
    cells: list[tuple[str, str | None]], partial: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nb.ipynb"
        specs = [(source, [tag] if tag else []) for source, tag in cells]
        nbformat.write(build_notebook(specs), path)
        fast = _outcome(path, partial)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(analysis, "_resolve", _resolve_every_read)
            slow = _outcome(path, partial)
    assert fast == slow


def test_a_name_that_fails_is_reported_for_each_cell_reading_it(make_notebook) -> None:
    """Partial mode: the name is not resolved once for the step when it fails."""
    problems: list[NbopsError] = []
    path = make_notebook([("a = nowhere", ["transform"]), ("b = nowhere", ["transform"])])
    analyse(read_notebook(path), problems=problems)
    assert [p.location.number for p in problems] == [1, 2]  # type: ignore[union-attr]


# -- a cell is translated without its location when it needs none ---------------------------

_fragments = st.sampled_from(
    [
        "x = 1",
        "y = x + 1",
        "import os",
        "from helpers import *",
        "df.head()",
        "%matplotlib inline",
        "%time y = 2",
        "%%time",
        "!pip install pandas",
        "!ls",
        "x?",
        "%unknown_magic",
        "get_ipython().run_line_magic('matplotlib', 'inline')",
        "get_ipython().system('ls')",
        "s = 'get_ipython'",
        "s = '100%'",
        "if x != 1:\n    pass",
        "def f(:",
        "    indented = 1",
        "x = (",
        "\n",
        "# a comment",
    ]
)


class _Cell:
    """A cell as translate_cell reads it, counting the reads of its location."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.reads = 0

    @property
    def location(self) -> CellLocation:
        self.reads += 1
        return CellLocation("nb.ipynb", 3, "cell-3")


def _translated(run: Any) -> object:
    try:
        code: CellCode = run()
    except NbopsError as exc:
        return _error(exc)
    return (
        code.source,
        ast.dump(code.tree, include_attributes=True),
        code.body,
        code.imports,
        [str(d) for d in code.diagnostics],
        code.star_import,
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(_fragments, min_size=0, max_size=5).map("\n".join))
def test_translating_a_cell_gives_what_translate_gives(source: str) -> None:
    cell = _Cell(source)
    fast = _translated(lambda: translate_cell(cell))
    slow = _translated(lambda: translate(source, CellLocation("nb.ipynb", 3, "cell-3")))
    assert fast == slow
    plain = not any(ch in source for ch in "%!?") and "get_ipython" not in source
    if plain and isinstance(fast, tuple) and len(fast) == 6:
        assert cell.reads == 0  # plain code that parses: the location is never built


# -- one substring test of all the code before a regex search of each cell ------------------


def _may_call_each_cell(graph: Any, methods: frozenset[str]) -> bool:
    """slicing._may_call as it was: a substring test, then a regex search, of each cell."""
    pattern = re.compile(r"\b(?:" + "|".join(sorted(methods)) + r")\b")
    return any(
        any(m in a.code.source for m in methods) and pattern.search(a.code.source)
        for s in graph.steps
        for a in s.cells
    )


_code = st.lists(
    st.sampled_from(["model.fit(X, y)", "fitness = 1", "refit", "fi", "t", "fit", "x = 1", ""]),
    max_size=3,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_code, max_size=3), max_size=4))
def test_one_substring_test_first_gives_what_testing_each_cell_gives(
    steps: list[list[str]],
) -> None:
    graph = SimpleNamespace(
        steps=[
            SimpleNamespace(cells=[SimpleNamespace(code=SimpleNamespace(source=s)) for s in cells])
            for cells in steps
        ]
    )
    for methods in (slicing.FIT_METHODS, slicing.PREDICT_METHODS, frozenset({"fit", "t"})):
        assert slicing._may_call(graph, methods) == _may_call_each_cell(graph, methods)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(_fragments, min_size=0, max_size=5).map("\n".join))
def test_one_look_at_the_statements_gives_the_imports_and_body_of_two(source: str) -> None:
    """A cell's imports and exported body, found in one loop (cellcode._cell_code), are
    what `_import_bindings` and `_exported_body` find."""
    try:
        code = translate(source, CellLocation("nb.ipynb", 3, "cell-3"))
    except NbopsError:
        return
    assert (code.imports, code.star_import) == cellcode._import_bindings(code.tree)
    assert code.body == cellcode._exported_body(code.source, code.tree)
