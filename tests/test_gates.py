"""Gate expressions: parsed by a small grammar, never evaluated as code."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import GateError
from nbops.gates import evaluate_gate, parse_gate


def check(text: str, **values: float):  # type: ignore[no-untyped-def]
    flat = {k.replace("__", "."): v for k, v in values.items()}
    return evaluate_gate(parse_gate(text), flat)


def test_a_threshold_gate_passes_and_fails_on_the_metric() -> None:
    assert check("accuracy >= 0.9", accuracy=0.95).passed
    result = check("accuracy >= 0.9", accuracy=0.85)
    assert not result.passed
    assert result.reason == "accuracy = 0.85, needs >= 0.9"


def test_a_gate_can_compare_with_a_baseline_and_arithmetic() -> None:
    assert check(
        "accuracy >= baseline.accuracy - 0.01", accuracy=0.9, baseline__accuracy=0.905
    ).passed
    assert not check(
        "accuracy >= baseline.accuracy - 0.01", accuracy=0.8, baseline__accuracy=0.9
    ).passed


def test_dotted_metric_names_are_looked_up_whole() -> None:
    assert check("scores.rmse <= 0.6", scores__rmse=0.5).passed


def test_a_metric_the_run_did_not_log_fails_the_gate_with_that_reason() -> None:
    result = check("f1 >= 0.8", accuracy=0.9)
    assert not result.passed
    assert result.reason == "metric 'f1' was not logged by the run"


def test_a_baseline_gate_without_a_baseline_says_so() -> None:
    result = check("accuracy >= baseline.accuracy", accuracy=0.9)
    assert result.reason == "'baseline.accuracy' needs a baseline run (--baseline RUN_ID)"


def test_a_comment_after_the_gate_is_ignored() -> None:
    assert parse_gate("loss <= 0.4  # must improve").text == "loss <= 0.4"


def test_nan_never_passes() -> None:
    assert not check("loss <= 1", loss=math.nan).passed


@pytest.mark.parametrize(
    "text",
    [
        "accuracy",  # no comparison
        "0.8 <= accuracy <= 0.9",  # chained
        "accuracy >>= 1",  # not Python
        "__import__('os').system('true') == 0",  # a call
        "accuracy in [1]",  # not a comparison nbops allows
        "accuracy >= 'high'",  # a string
        "accuracy ** 2 >= 1",  # a power
        "metrics['a'] >= 1",  # a subscript
    ],
)
def test_anything_but_one_arithmetic_comparison_is_refused(text: str) -> None:
    with pytest.raises(GateError) as info:
        parse_gate(text)
    assert "\n" not in str(info.value)


OPS = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__}


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(sorted(OPS)),
)
def test_a_gate_agrees_with_python_comparison(value: float, threshold: float, op: str) -> None:
    result = evaluate_gate(parse_gate(f"m {op} {threshold!r}"), {"m": value})
    assert result.passed is OPS[op](float(value), float(threshold))


@given(st.text(alphabet="abcxyz_.+-*/<>=!() 0123456789'\"[]", max_size=30))
def test_parsing_any_text_either_gives_a_gate_or_a_gate_error(text: str) -> None:
    try:
        gate = parse_gate(text)
    except GateError:
        return
    assert gate.op in {">=", "<=", ">", "<", "==", "!="}
