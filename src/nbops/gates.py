"""Gates: one comparison per gate, over a run's metrics and a baseline's.

Used by `nbops ci` (runs), the inspector (workbench) and `nbops bundle compare` (bundle), so
it sits below all three and imports only errors and the safe-expression core.

    accuracy >= 0.90
    f1 >= 0.85
    accuracy >= baseline.accuracy - 0.01
    scores.rmse <= 0.6

A gate is parsed with Python's own parser and then checked against a small grammar — a
single comparison of arithmetic (+ - * /) over numbers and dotted names — so nothing in a
gate is ever evaluated as code. A dotted name is looked up whole (`scores.rmse`,
`baseline.accuracy`, and later `slices.recall.min`).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from nbops._safe_expr import ARITHMETIC as _ARITHMETIC
from nbops._safe_expr import COMPARE as _COMPARE
from nbops._safe_expr import check_operand
from nbops.errors import GateError


@dataclass(frozen=True)
class Gate:
    """A parsed gate: `left OP right`, and the names it reads."""

    text: str
    left: ast.expr
    op: str
    right: ast.expr
    names: tuple[str, ...]


@dataclass(frozen=True)
class GateResult:
    """A gate checked against a run: passed, the two sides' values, and why."""

    gate: str
    passed: bool
    left: float | None
    right: float | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "left": self.left,
            "right": self.right,
            "reason": self.reason,
        }


def parse_gate(text: str) -> Gate:
    """Parse one gate; raises GateError saying what is wrong and how a gate looks."""
    source = text.split("#", 1)[0].strip()
    example = "write one comparison, e.g. 'accuracy >= 0.9' or 'f1 >= baseline.f1 - 0.01'"
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        raise GateError(
            f"gate {text!r} is not an expression (column {exc.offset})", fix=example
        ) from None
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1:
        raise GateError(f"gate {text!r} is not a single comparison", fix=example)
    op = _COMPARE.get(type(tree.ops[0]))
    if op is None:
        raise GateError(f"gate {text!r}: unsupported comparison", fix="use >=, <=, >, <, == or !=")
    names: list[str] = []
    for side in (tree.left, tree.comparators[0]):
        _check(side, text, names)
    return Gate(source, tree.left, op[0], tree.comparators[0], tuple(dict.fromkeys(names)))


def _check(node: ast.expr, text: str, names: list[str]) -> None:
    """Numbers and dotted names (recorded in `names`), with + - * / between them."""

    def leaf(part: ast.expr) -> bool:
        if isinstance(part, ast.Constant) and type(part.value) in (int, float):
            return True
        if isinstance(part, ast.Name | ast.Attribute):
            names.append(_dotted(part, text))
            return True
        return False

    def refuse(part: ast.expr) -> NoReturn:
        raise GateError(
            f"gate {text!r}: {ast.unparse(part)!r} is not allowed",
            fix="gates use numbers, metric names (dotted too), + - * / and one comparison",
        )

    check_operand(node, leaf, refuse)


def _dotted(node: ast.expr, text: str) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise GateError(f"gate {text!r}: {ast.unparse(node)!r} is not a metric name")
    parts.append(node.id)
    return ".".join(reversed(parts))


def evaluate_gate(gate: Gate, values: Mapping[str, float]) -> GateResult:
    """Check a gate; a name the values lack fails the gate with that reason."""
    missing = [n for n in gate.names if n not in values]
    if missing:
        name = missing[0]
        if name.startswith("baseline."):
            reason = f"the baseline has no metric {name.removeprefix('baseline.')!r}"
            if not any(k.startswith("baseline.") for k in values):
                reason = f"{name!r} needs a baseline run (--baseline RUN_ID)"
        else:
            reason = f"metric {name!r} was not logged by the run"
        return GateResult(gate.text, False, None, None, reason)
    try:
        left, right = _value(gate.left, values), _value(gate.right, values)
    except ZeroDivisionError:
        return GateResult(gate.text, False, None, None, "division by zero")
    compare = next(f for sym, f in _COMPARE.values() if sym == gate.op)
    passed = not (math.isnan(left) or math.isnan(right)) and compare(left, right)
    left_text, right_text = _show(gate.left, left), _show(gate.right, right)
    reason = (
        f"{left_text} {gate.op} {right_text}"
        if passed
        else f"{left_text}, needs {gate.op} {right_text}"
    )
    return GateResult(gate.text, passed, left, right, reason)


def evaluate_gates(gates: list[Gate], values: Mapping[str, float]) -> list[GateResult]:
    return [evaluate_gate(g, values) for g in gates]


def _value(node: ast.expr, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name | ast.Attribute):
        return float(values[_dotted(node, "")])
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_value(node.left, values), _value(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else operand
    raise TypeError(type(node).__name__)  # pragma: no cover - parse_gate allows no other node


def _show(node: ast.expr, value: float) -> str:
    text = ast.unparse(node)
    return f"{value:.6g}" if isinstance(node, ast.Constant) else f"{text} = {value:.6g}"
