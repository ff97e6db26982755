"""Parameters set again by a later cell (`n_estimators = 200` after the parameters cell), which
would make `-p` do nothing: found in a cell's code, refused at export, warned about when
conditional."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.errors import ParameterError
from nbops.notebook.analysis import analyse
from nbops.notebook.names import cell_names
from nbops.notebook.read import read_notebook
from nbops.notebook.reassign import (
    Reassignment,
    parameter_reassignments,
    reassigned_after_parameters,
)


def found(code: str, params: tuple[str, ...] = ("n",)) -> list[tuple[str, int, bool]]:
    return [
        (r.name, r.line, r.conditional)
        for r in parameter_reassignments(ast.parse(code), code, params)
    ]


# -- what counts as setting a parameter again -----------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["n = 200", "n: int = 200", "a, n = 1, 2", "[n, *rest] = [1, 2, 3]", "x = n = 5"],
    ids=["plain", "annotated", "tuple", "starred-list", "chained"],
)
def test_top_level_assignment_not_reading_the_parameter_is_unconditional(code):
    assert found(code) == [("n", 1, False)]


def test_assignment_inside_a_with_block_is_unconditional():
    assert found("with open('f') as fh:\n    n = 3\n") == [("n", 2, False)]


@pytest.mark.parametrize(
    "code",
    [
        "if fast:\n    n = 10\n",
        "for i in range(3):\n    n = i\n",
        "while False:\n    n = 1\n",
        "try:\n    n = 1\nexcept ValueError:\n    pass\n",
        "try:\n    pass\nexcept ValueError:\n    n = 1\n",
    ],
    ids=["if", "for-body", "while", "try", "except"],
)
def test_assignment_that_may_not_run_is_conditional(code):
    assert [(name, conditional) for name, _, conditional in found(code)] == [("n", True)]


def test_loop_over_candidate_values_is_conditional():
    assert found("for n in [10, 50, 100]:\n    fit(n)\n") == [("n", 1, True)]


@pytest.mark.parametrize(
    "code",
    ["n = n * 2", "n += 1", "n = int(n)", "n: int = max(n, 1)", "for n in range(n):\n    pass"],
)
def test_new_value_computed_from_the_parameter_is_not_reported(code):
    assert found(code) == []


@pytest.mark.parametrize(
    "code",
    [
        "def f():\n    n = 1\n",
        "class C:\n    n = 1\n",
        "model.n = 3",
        "cfg['n'] = 3",
        "m = 200",
        "print(n)",
    ],
    ids=["function-scope", "class-scope", "attribute", "item", "other-name", "read-only"],
)
def test_code_that_does_not_rebind_the_parameter_is_not_reported(code):
    assert found(code) == []


def test_only_the_given_parameters_are_looked_for():
    assert found("n = 1\nm = 2\nk = 3", ("m", "k")) == [("m", 2, False), ("k", 3, False)]


def test_the_statement_is_quoted_as_written():
    code = "x = 1\nn_estimators = 200  # more trees\n"
    (r,) = parameter_reassignments(ast.parse(code), code, ["n_estimators"])
    assert r == Reassignment("n_estimators", 2, "n_estimators = 200  # more trees", False)


# -- at export: the analysis -----------------------------------------------------------------

TUTORIAL = [
    ("from sklearn.ensemble import RandomForestClassifier", ["setup"]),
    ("n_estimators = 100\nseed = 0", ["parameters"]),
    ("X, y = [[0], [1]], [0, 1]", ["transform"]),
]


def test_step_setting_a_parameter_again_is_an_export_error_naming_cell_and_line(analyse_cells):
    train = "n_estimators = 200\nmodel = RandomForestClassifier(n_estimators, random_state=seed)"
    with pytest.raises(ParameterError, match=r"sets the parameter 'n_estimators' again") as info:
        analyse_cells([*TUTORIAL, (train + "\nmodel.fit(X, y)", ["train"])])
    assert (info.value.location.number, info.value.location.line) == (4, 1)
    assert "n_estimators = 200" in str(info.value)


def test_step_setting_a_parameter_again_only_sometimes_is_a_warning(analyse_cells):
    train = "if len(X) < 10:\n    n_estimators = 10\nmodel = RandomForestClassifier(n_estimators)"
    graph = analyse_cells([*TUTORIAL, (train, ["train"])])
    (warning,) = [d for d in graph.diagnostics if "n_estimators" in d.message]
    assert "may set the parameter 'n_estimators' again" in warning.message
    assert (warning.location.number, warning.location.line) == (4, 2)


def test_step_deriving_a_parameter_from_itself_exports(analyse_cells):
    graph = analyse_cells([*TUTORIAL, ("n_estimators = int(n_estimators)\nm = 1", ["train"])])
    assert not [d for d in graph.diagnostics if "n_estimators" in d.message]


def test_error_on_a_notebook_without_ids_names_the_cell_by_number(write_v44):
    path = write_v44([*TUTORIAL, ("seed = 42\nm = seed", ["train"])])
    with pytest.raises(ParameterError) as info:
        analyse(read_notebook(path))
    assert str(info.value).startswith(f"{path}, cell 4, line 1: ")


# -- before a run: every cell after the parameters cell ----------------------------------------


def test_untagged_cell_after_the_parameters_cell_is_found_for_a_run(make_notebook):
    path = make_notebook([("n = 1", ["parameters"]), ("print(n)", []), ("n = 5", [])])
    ((cell, r),) = reassigned_after_parameters(read_notebook(path), ["n"])
    assert (cell.number, r.line, r.conditional) == (3, 1, False)


def test_cells_before_the_parameters_cell_and_skip_cells_are_not_looked_at(make_notebook):
    path = make_notebook([("n = 0", []), ("n = 1", ["parameters"]), ("n = 5", ["skip"])])
    assert reassigned_after_parameters(read_notebook(path), ["n"]) == []


def test_cell_with_a_shell_command_does_not_stop_the_check(make_notebook):
    path = make_notebook([("n = 1", ["parameters"]), ("!ls", []), ("n = 2", [])])
    assert [c.number for c, _ in reassigned_after_parameters(read_notebook(path), ["n"])] == [3]


_bind_forms = [
    "{n} = 1",
    "{n}, other = f()",
    "[*{n}] = g()",
    "{n}: int = 2",
    "{n}: int",
    "{n} += 1",
    "for {n} in range(3):\n    pass",
    "with open(p) as {n}:\n    pass",
    "if c:\n    {n} = 3",
    "try:\n    {n} = 1\nexcept E:\n    {n} = 2",
    "while c:\n    {n} = 4",
    "match c:\n    case 1:\n        {n} = 5",
    "def f():\n    {n} = 6",
    "class K:\n    {n} = 7",
    "x[{n}] = 1",
    "print({n})",
    "y = [{n} for {n} in z]",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_bind_forms), st.sampled_from(["alpha", "beta", "gamma"])),
        min_size=1,
        max_size=4,
    )
)
def test_a_cell_sets_a_parameter_again_only_if_it_binds_the_name(
    parts: list[tuple[str, str]],
) -> None:
    """The analysis skips cells whose names (cell_names) bind no parameter: what
    parameter_reassignments finds is always among those names."""
    code = "\n".join(form.format(n=name) for form, name in parts) + "\n"
    tree = ast.parse(code)
    found = {r.name for r in parameter_reassignments(tree, code, ["alpha", "beta"])}
    assert found <= set(cell_names(tree).defines)
