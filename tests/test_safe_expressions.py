"""The two small expression languages nbops reads and never evaluates as code: CI gates
(`nbops.gates`) and schema custom checks (`nbops.quality.schema`). They share their
checker core (`nbops._safe_expr`) but not their grammar; these tests pin what each accepts
and refuses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.errors import GateError
from nbops.gates import evaluate_gate, parse_gate
from nbops.quality.schema import parse_expression

GATES_ACCEPTED = {
    "accuracy >= 0.9": ("accuracy",),
    "f1 >= baseline.f1 - 0.01": ("f1", "baseline.f1"),
    "slices.recall.min >= 0.80": ("slices.recall.min",),
    "-mae > -0.5": ("mae",),
    "a / b <= 2 * c + +1": ("a", "b", "c"),
    "data.failed_checks == 0  # no failed check": ("data.failed_checks",),
    "rmse != 1e-3": ("rmse",),
}

GATES_REFUSED = [
    "accuracy",
    "0.8 <= accuracy <= 0.9",
    "a >= 1 and b >= 2",
    "not a >= 1",
    "name == 'x'",
    "flag == True",
    "a is b",
    "a in (1, 2)",
    "f(x) >= 1",
    "col('a') >= 1",
    "a[0] >= 1",
    "a ** 2 >= 1",
    "a // 2 >= 1",
    "__import__('os').system('true') >= 0",
    "(lambda: 1)() >= 0",
    "x.y().z >= 1",
    "a >=",
    "",
]

CHECKS_ACCEPTED = {
    "value >= 0": ["value"],
    "value <= other_column": ["value", "other_column"],
    "value in ('a', 'b')": ["value"],
    "value not in [1, -2, 3.5]": ["value"],
    "0 <= value < 10": ["value"],
    "value >= 0 and not (value > 5 or x == 'a')": ["value", "x"],
    "col('a name') + 1 > value": ["value", "a name"],
    "-value < 3 * (b - c) / 2": ["value", "b", "c"],
    "flag == True": ["flag"],
}

CHECKS_REFUSED = [
    "value",
    "value + 1",
    "a.b >= 1",
    "f(value) > 0",
    "col(x) > 0",
    "col('a', 'b') > 0",
    "value in other_list",
    "value in (x, 1)",
    "value is None",
    "value ** 2 > 1",
    "value % 2 == 0",
    "__import__('os').system('true') == 0",
    "value[0] > 1",
    "(lambda: 1)() > 0",
    "value >=",
    "",
]


@pytest.mark.parametrize("text", sorted(GATES_ACCEPTED))
def test_a_gate_of_one_comparison_over_numbers_and_dotted_names_is_accepted(text: str) -> None:
    assert parse_gate(text).names == GATES_ACCEPTED[text]


@pytest.mark.parametrize("text", GATES_REFUSED)
def test_a_gate_outside_the_gate_grammar_is_refused(text: str) -> None:
    with pytest.raises(GateError):
        parse_gate(text)


def test_a_gate_computes_its_arithmetic() -> None:
    gate = parse_gate("accuracy >= baseline.accuracy - 0.01 * 2")
    assert evaluate_gate(gate, {"accuracy": 0.9, "baseline.accuracy": 0.91}).passed
    assert not evaluate_gate(gate, {"accuracy": 0.9, "baseline.accuracy": 0.93}).passed


@pytest.mark.parametrize("text", sorted(CHECKS_ACCEPTED))
def test_a_check_condition_is_accepted(text: str) -> None:
    from nbops.quality.schema import expression_names

    assert expression_names(parse_expression(text)) == CHECKS_ACCEPTED[text]


@pytest.mark.parametrize("text", CHECKS_REFUSED)
def test_a_check_outside_the_check_grammar_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_expression(text)


TOKENS = [*"ab.()[]'\"+-*/%<>=!, 019_", " and ", " in ", " not ", "col", "value", "lambda"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=15).map("".join))
def test_any_text_is_accepted_or_refused_with_the_language_error(text: str) -> None:
    with contextlib.suppress(GateError):
        parse_gate(text)
    with contextlib.suppress(ValueError):
        parse_expression(text)
