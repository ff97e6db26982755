"""The parameters cell as papermill runs it: computed lines and IPython syntax are not
refused for a run; only the values passed are typed. An export still needs literals."""

from __future__ import annotations

import ast
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import CellLocation, CellSyntaxError, ParameterError
from nbops.notebook.parameters import read_parameters, split_parameters
from nbops.notebook.read import NotebookModel
from nbops.runs.parameters import parameter_specs, resolve_parameters

NotebookWith = Callable[[str], NotebookModel]

# A tutorial's parameters cell: literals, values computed from them, a shell line.
TUTORIAL_CELL = (
    "DATA_DIR = 'data'\n"
    "a = 3\n"
    "d = a == 3\n"
    "path = DATA_DIR + '/x.csv'\n"
    "out: str = DATA_DIR.upper()\n"
)


def test_run_parameters_are_the_literal_lines_of_a_cell_with_computed_lines(
    notebook_with: NotebookWith,
) -> None:
    specs = parameter_specs(notebook_with(TUTORIAL_CELL))

    assert [(s.name, s.type, s.default) for s in specs] == [
        ("DATA_DIR", "str", "data"),
        ("a", "int", 3),
    ]


def test_names_computed_in_the_parameters_cell_may_be_passed_to_a_run(
    notebook_with: NotebookWith,
) -> None:
    specs = parameter_specs(notebook_with(TUTORIAL_CELL), computed=True)

    computed = {s.name: (s.type, s.computed) for s in specs if s.computed is not None}
    assert computed == {
        "d": ("Any", "a == 3"),
        "path": ("Any", "DATA_DIR + '/x.csv'"),
        "out": ("str", "DATA_DIR.upper()"),
    }


def test_a_computed_name_has_no_default_and_is_typed_only_when_passed(
    notebook_with: NotebookWith,
) -> None:
    specs = parameter_specs(notebook_with(TUTORIAL_CELL), computed=True)

    assert resolve_parameters(specs, {}, notebook="nb.ipynb") == {"DATA_DIR": "data", "a": 3}
    passed = resolve_parameters(specs, {"d": "false", "out": "X", "a": "5"}, notebook="nb.ipynb")
    assert passed == {"DATA_DIR": "data", "a": 5, "d": False, "out": "X"}


def test_ipython_syntax_in_the_parameters_cell_does_not_stop_a_run(
    notebook_with: NotebookWith,
) -> None:
    nb = notebook_with("!echo preparing\n%undefined_magic\nrows = 10\nfiles = !ls")

    assert [(s.name, s.default) for s in parameter_specs(nb, computed=True)] == [
        ("rows", 10),
        ("files", None),
    ]


def test_a_parameters_cell_that_is_not_python_is_refused_with_run_wording(
    notebook_with: NotebookWith,
) -> None:
    with pytest.raises(CellSyntaxError) as info:
        parameter_specs(notebook_with("rows = 10\nsize = (3"), computed=True)

    assert "run again" in str(info.value) and "export" not in str(info.value)
    assert info.value.location.number == 2  # type: ignore[union-attr]


def test_an_export_still_refuses_a_computed_line_naming_it() -> None:
    tree = ast.parse(TUTORIAL_CELL)

    with pytest.raises(ParameterError) as info:
        read_parameters(tree, TUTORIAL_CELL, CellLocation("nb.ipynb", 2, "abc"))

    assert info.value.location.line == 3  # type: ignore[union-attr]
    assert "'d'" in str(info.value) and "a == 3" in str(info.value)


_NAMES = st.sampled_from(["a", "b", "rows", "path"])
_LITERALS = st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.none()).map(repr)
_COMPUTED = st.sampled_from(["a + 1", "str(b)", "DATA + '/x'", "len([])"])


@given(st.lists(st.tuples(_NAMES, st.booleans(), _LITERALS, _COMPUTED), max_size=8))
def test_a_name_is_a_parameter_exactly_when_its_last_assignment_is_a_literal(
    lines: list[tuple[str, bool, str, str]],
) -> None:
    source = "".join(
        f"{name} = {literal if is_literal else computed}\n"
        for name, is_literal, literal, computed in lines
    )

    params, computed = split_parameters(ast.parse(source), source)

    last: dict[str, bool] = {}
    for name, is_literal, _, _ in lines:
        last[name] = is_literal
    assert {p.name for p in params} == {n for n, lit in last.items() if lit}
    assert len(computed) == sum(1 for _, lit, _, _ in lines if not lit)
