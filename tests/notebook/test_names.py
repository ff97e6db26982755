"""Which names a cell defines and which it uses (`cell_names`).

A "use" is a name the cell reads before binding it itself, in execution order; a "define"
is a name the cell binds. Builtins are reported like any other name (the analysis filters
them), so the expectations below list them where they occur.
"""

from __future__ import annotations

import ast
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.notebook import names
from nbops.notebook.names import CellNames, cell_names


def names_of(source: str) -> CellNames:
    return cell_names(ast.parse(textwrap.dedent(source)))


def uses(source: str) -> list[str]:
    return list(names_of(source).uses)


def defines(source: str) -> dict[str, str]:
    return dict(names_of(source).defines)


# -- plain assignments and reads -----------------------------------------------------------


def test_assigned_name_is_defined_and_not_used():
    assert names_of("x = 1").defines == {"x": "value"}
    assert uses("x = 1") == []


def test_read_name_is_used():
    assert uses("y = x") == ["x"]


def test_uses_are_listed_in_execution_order():
    assert uses("result = f(b, a)\nprint(c)") == ["f", "b", "a", "print", "c"]


def test_right_hand_side_is_read_before_the_target_is_bound():
    assert uses("x = x + 1") == ["x"]


def test_defines_are_listed_in_first_assignment_order():
    assert list(defines("b = 1\na = 2\nb = 3")) == ["b", "a"]


def test_name_read_after_the_cell_assigns_it_is_not_a_use():
    assert uses("x = 1\ny = x") == []


def test_name_read_twice_is_listed_once():
    assert uses("print(x)\nprint(x)") == ["print", "x"]


def test_tuple_unpacking_defines_every_target():
    assert list(defines("a, (b, *c) = values")) == ["a", "b", "c"]


def test_chained_assignment_defines_every_target():
    assert list(defines("a = b = 0")) == ["a", "b"]


def test_annotation_without_value_binds_nothing():
    assert defines("x: int") == {}


def test_annotated_assignment_defines_the_name():
    assert defines("x: int = y") == {"x": "value"}


def test_walrus_at_module_level_defines_its_target():
    names = names_of("if (n := len(rows)) > 3:\n    print(n)")
    assert "n" in names.defines
    assert "n" not in names.uses


def test_names_in_f_strings_are_used():
    assert uses('label = f"{name}: {score:.2f}"') == ["name", "score"]


def test_del_reads_the_name():
    assert uses("del tmp") == ["tmp"]


# -- in-place updates: used and defined ----------------------------------------------------


def test_rebinding_from_itself_is_a_use_and_a_definition():
    names = names_of("df = df.dropna()")
    assert list(names.uses) == ["df"]
    assert names.defines == {"df": "value"}


def test_item_assignment_uses_and_defines_the_base_name():
    names = names_of('df["x"] = 1')
    assert list(names.uses) == ["df"]
    assert names.defines == {"df": "value"}


def test_item_assignment_reads_names_in_the_subscript():
    assert uses('df.loc[mask, "x"] = 0') == ["df", "mask"]


def test_attribute_assignment_updates_the_base_name():
    names = names_of("model.coef_ = weights")
    assert list(names.uses) == ["weights", "model"]
    assert names.defines == {"model": "value"}


def test_augmented_assignment_uses_and_defines_the_name():
    names = names_of("x += 1")
    assert list(names.uses) == ["x"]
    assert names.defines == {"x": "value"}


def test_augmented_item_assignment_updates_the_base_name():
    names = names_of('counts["a"] += 1')
    assert list(names.uses) == ["counts"]
    assert names.defines == {"counts": "value"}


def test_inplace_true_call_uses_and_defines_the_base_name():
    names = names_of('df.drop(columns=["a"], inplace=True)')
    assert list(names.uses) == ["df"]
    assert names.defines == {"df": "value"}


def test_inplace_true_on_a_column_updates_the_frame():
    assert defines('df["a"].fillna(0, inplace=True)') == {"df": "value"}


def test_inplace_false_call_only_uses_the_name():
    names = names_of('df.drop(columns=["a"], inplace=False)')
    assert list(names.uses) == ["df"]
    assert names.defines == {}


def test_method_call_without_inplace_does_not_define_the_receiver():
    assert defines("model.fit(X, y)") == {}


# -- functions, lambdas, classes, comprehensions -------------------------------------------


def test_function_definition_defines_a_function():
    assert defines("def f(a):\n    return a") == {"f": "function"}


def test_function_parameters_are_not_uses():
    assert uses("def f(a, *args, b=1, **kw):\n    return a, args, b, kw") == []


def test_free_variable_of_a_function_is_a_use():
    assert uses("def f(a):\n    return a * scale") == ["scale"]


def test_free_variable_of_a_function_bound_later_in_the_cell_is_not_a_use():
    assert uses("def f(a):\n    return a * scale\nscale = 2") == []


def test_names_local_to_a_function_are_not_uses():
    assert uses("def f():\n    tmp = 1\n    return tmp") == []


def test_recursive_function_does_not_use_its_own_name():
    assert uses("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)") == []


def test_decorators_defaults_and_annotations_are_read_when_def_runs():
    src = "@cache\ndef f(a: Arr = default) -> Out:\n    return a"
    assert uses(src) == ["cache", "default", "Arr", "Out"]


def test_free_variable_of_a_nested_function_is_a_use():
    src = """
    def outer():
        def inner():
            return threshold
        return inner
    """
    assert uses(src) == ["threshold"]


def test_closure_variable_of_the_enclosing_function_is_not_a_use():
    src = """
    def outer(k):
        def inner(x):
            return x * k
        return inner
    """
    assert uses(src) == []


def test_global_declaration_in_a_function_makes_the_name_a_use():
    assert uses("def bump():\n    global counter\n    counter = counter + 1") == ["counter"]


def test_free_variable_of_a_lambda_is_a_use():
    assert uses("f = lambda a: a + offset") == ["offset"]


def test_free_variable_of_a_lambda_bound_later_in_the_cell_is_not_a_use():
    assert uses("f = lambda: x\nx = 1") == []


def test_lambda_defaults_are_read_immediately():
    assert uses("f = lambda a=start: a") == ["start"]


def test_class_definition_defines_a_class():
    assert defines("class A:\n    pass") == {"A": "class"}


def test_class_bases_are_uses():
    assert uses("class Net(Base, metaclass=Meta):\n    pass") == ["Base", "Meta"]


def test_free_variable_of_a_method_is_a_use():
    src = """
    class Scaler:
        def apply(self, x):
            return x * factor
    """
    assert uses(src) == ["factor"]


def test_free_variables_of_a_comprehension_are_uses():
    assert set(uses("ys = [x * k for x in xs]")) == {"k", "xs"}


def test_comprehension_variable_is_not_defined_in_the_cell():
    assert defines("ys = [x for x in xs]") == {"ys": "value"}


def test_dict_set_and_generator_comprehensions_read_their_free_variables():
    assert set(uses("a = {k: v * w for k, v in d.items()}")) == {"d", "w"}
    assert set(uses("b = {v + w for v in s}")) == {"s", "w"}
    assert set(uses("c = sum(v * w for v in s)")) == {"sum", "s", "w"}


def test_comprehension_runs_at_once_so_a_later_binding_does_not_hide_its_use():
    assert uses("total = sum([v for v in vals])\nvals = []") == ["sum", "vals"]


def test_name_bound_before_a_comprehension_is_not_a_use():
    assert uses("k = 2\nys = [x * k for x in range(3)]") == ["range"]


# -- loops, with, except, match ------------------------------------------------------------


def test_for_loop_variables_are_defined_and_marked_as_loop_targets():
    names = names_of("for i, (a, b) in pairs:\n    pass")
    assert list(names.defines) == ["i", "a", "b"]
    assert names.loop_targets == {"i", "a", "b"}


def test_for_loop_iterable_is_a_use_and_the_loop_variable_is_not():
    assert uses("for row in rows:\n    print(row)") == ["rows", "print"]


def test_names_assigned_in_a_loop_body_are_not_loop_targets():
    names = names_of("for i in range(3):\n    total = i")
    assert names.loop_targets == {"i"}
    assert "total" in names.defines


def test_while_loop_body_names_are_read_and_defined():
    names = names_of("while n > 0:\n    n = n - step")
    assert list(names.uses) == ["n", "step"]
    assert names.defines == {"n": "value"}


def test_with_as_binds_its_target_and_reads_the_context_expression():
    names = names_of("with open(path) as fh:\n    text = fh.read()")
    assert list(names.uses) == ["open", "path"]
    assert list(names.defines) == ["fh", "text"]


def test_except_as_binds_the_exception_name():
    names = names_of("try:\n    run()\nexcept ValueError as err:\n    print(err)")
    assert "err" in names.defines
    assert list(names.uses) == ["run", "ValueError", "print"]


def test_match_capture_patterns_bind_names():
    src = """
    match command:
        case [first, *rest]:
            pass
        case {"k": value, **others}:
            pass
        case Point(x=px) | Point(y=px):
            pass
        case _ as whole:
            pass
    """
    assert set(defines(src)) == {"first", "rest", "value", "others", "px", "whole"}


def test_match_subject_class_patterns_value_patterns_and_guards_are_uses():
    src = """
    match command:
        case Point(x=0) if limit > 1:
            pass
        case Color.RED:
            pass
    """
    assert uses(src) == ["command", "Point", "limit", "Color"]


def test_match_guard_may_read_the_names_its_pattern_binds():
    assert uses("match p:\n    case [a, b] if a > b:\n        pass") == ["p"]


# -- imports -------------------------------------------------------------------------------


def test_import_defines_an_import():
    assert defines("import numpy as np") == {"np": "import"}


def test_dotted_import_binds_the_top_package():
    assert defines("import os.path") == {"os": "import"}


def test_from_import_binds_the_alias():
    assert defines("from sklearn.ensemble import RandomForestClassifier as RF") == {"RF": "import"}


def test_star_import_binds_nothing_by_name():
    assert defines("from math import *") == {}


def test_imported_name_stays_a_use_when_the_cell_reads_it():
    names = names_of("import numpy as np\na = np.zeros(3)")
    assert list(names.uses) == ["np"]
    assert names.defines["np"] == "import"


def test_imported_name_used_by_a_function_stays_a_use():
    assert uses("import math\ndef f(x):\n    return math.sqrt(x)") == ["math"]


def test_imported_name_not_read_is_not_a_use():
    assert uses("import numpy as np") == []


def test_name_rebound_as_a_value_after_import_is_not_a_use_when_read():
    assert uses("import data\ndata = 1\nprint(data)") == ["print"]


# -- properties ----------------------------------------------------------------------------

ALPHABET = ["a", "b", "c", "d", "e"]
statement = st.tuples(
    st.sampled_from(ALPHABET), st.sampled_from(ALPHABET), st.sampled_from(ALPHABET)
)
program = st.lists(statement, min_size=1, max_size=12)


def _render(stmts: list[tuple[str, str, str]], indent: str = "") -> str:
    return "".join(f"{indent}{target} = {left} + {right}\n" for target, left, right in stmts)


def _read_before_assigned(stmts: list[tuple[str, str, str]]) -> list[str]:
    assigned: set[str] = set()
    read: dict[str, None] = {}
    for target, left, right in stmts:
        for name in (left, right):
            if name not in assigned:
                read.setdefault(name, None)
        assigned.add(target)
    return list(read)


@given(program)
def test_straight_line_uses_are_the_names_read_before_any_assignment(stmts):
    assert list(names_of(_render(stmts)).uses) == _read_before_assigned(stmts)


@given(program)
def test_straight_line_defines_are_the_assigned_names_in_order(stmts):
    expected = list(dict.fromkeys(target for target, _, _ in stmts))
    assert list(names_of(_render(stmts)).defines) == expected
    assert set(names_of(_render(stmts)).defines.values()) == {"value"}


@given(program)
def test_function_free_variables_are_the_names_it_reads_but_never_assigns(stmts):
    source = "def f():\n" + _render(stmts, indent="    ")
    assigned = {target for target, _, _ in stmts}
    read = {name for _, left, right in stmts for name in (left, right)}
    names = names_of(source)
    assert set(names.uses) == read - assigned
    assert names.defines == {"f": "function"}


# -- known bugs ----------------------------------------------------------------------------


def test_comprehension_iterable_is_used_before_its_element():
    assert uses("ys = [x * k for x in xs]") == ["xs", "k"]


def test_walrus_inside_a_comprehension_defines_the_name_in_the_cell():
    names = names_of("if any((hit := v) > 3 for v in vals):\n    print(hit)")
    assert "hit" in names.defines
    assert "hit" not in names.uses


def test_class_body_reads_its_free_names_when_the_class_is_defined():
    assert uses("class Config:\n    size = n\nn = 10") == ["n"]


def test_method_does_not_see_class_level_names():
    src = """
    class Model:
        scale = 2
        def predict(self, x):
            return x * scale
    """
    assert uses(src) == ["scale"]


def test_defaults_of_a_lambda_inside_a_function_are_uses():
    assert uses("def make():\n    return lambda a=start: a") == ["start"]


def test_match_mapping_pattern_keys_are_uses():
    assert uses("match p:\n    case {Color.RED: v}:\n        pass") == ["p", "Color"]


_atoms = st.sampled_from(["a", "b", "df", "1", "'s'", "None", "x.y", "d['k']", "f()", "*rest"])


@st.composite
def _expression(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        atom = draw(_atoms)
        return atom if atom != "*rest" else "rest"
    left, right = draw(_expression(depth + 1)), draw(_expression(depth + 1))
    forms = [
        f"({left} + {right})",
        f"-{left}",
        f"({left} and {right})",
        f"({left} < {right} <= a)",
        f"g({left}, {right}, key={right})",
        f"g(one={left}, two={right})",
        f"({left}, {right})",
        f"not {left}",
        f"h(*{left}, **{right})",
        f"{left}.attr",
        f"{left}[{right}:a]",
        f"[{left}, {right}]",
        f"({left}, *{right})",
        f"{{{left}: {right}, **{right}}}",
        f"{{{left}}}",
        f"({left} if {right} else b)",
        f"f'{{{left}!r:>{{{right}}}}}'",
        f"[{left} for {right.strip('()')} in b]"
        if right.isidentifier()
        else f"[q for q in {left}]",
        f"(lambda q: q + {left})",
        f"(w := {left})",
        f"{left}.drop(c, inplace=True)",
        f"{left}.drop(c, inplace=False)",
        f"(await {left})",
    ]
    return draw(st.sampled_from(forms))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["x = {}", "{}", "y, z = {}"]), _expression()), max_size=4)
)
def test_plain_reads_are_found_as_the_visitor_finds_them(
    statements: list[tuple[str, str]],
) -> None:
    """The shortcut for expressions that only read names (names._reads) gives the names,
    kinds and order the visitor gives."""
    code = "\n".join(form.format(expr) for form, expr in statements) + "\n"
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return  # `await` outside a function, and the like: not a cell
    fast = cell_names(tree)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(names, "_reads", lambda node: None)
        slow = cell_names(tree)
    assert list(fast.uses) == list(slow.uses)
    assert list(fast.defines.items()) == list(slow.defines.items())
    assert fast.loop_targets == slow.loop_targets
