"""The custom-check language: one restricted expression, parsed with Python's own parser
and checked against a small grammar, never evaluated as code (comparisons, `in` a literal
list, `+ - * /` over numbers and columns, `and`/`or`/`not`), then evaluated column-wise
over a frame (rows where a column it reads is null are not judged).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from nbops._safe_expr import ARITHMETIC, COMPARE, check_operand

_GRAMMAR = "a comparison such as 'value >= 0', 'value <= other_column' or 'value in (\"a\", \"b\")'"


def parse_expression(text: str) -> ast.Expression:
    """Parse a custom check's expression; ValueError says what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{text!r} is not a valid expression ({e.msg}); write {_GRAMMAR}") from e
    _check_boolean(tree.body)
    return tree


def _check_boolean(node: ast.expr) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_boolean(value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_boolean(node.operand)
    elif isinstance(node, ast.Compare):
        _check_operand(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.Tuple | ast.List | ast.Set) or not all(
                    _is_literal(e) for e in right.elts
                ):
                    raise ValueError(f"'in' needs a literal list, not {ast.unparse(right)!r}")
            elif type(op) in COMPARE:
                _check_operand(right)
            else:
                raise ValueError(f"{ast.unparse(node)!r}: only < <= > >= == != in, not in")
    else:
        raise ValueError(f"{ast.unparse(node)!r} is not a condition; write {_GRAMMAR}")


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str)


def _check_operand(node: ast.expr) -> None:
    """Literals, column names and `col("...")`, with + - * / between them."""

    def leaf(part: ast.expr) -> bool:
        return _is_literal(part) or isinstance(part, ast.Name) or _column_call(part) is not None

    def refuse(part: ast.expr) -> NoReturn:
        raise ValueError(f"{ast.unparse(part)!r} is not allowed in a check; write {_GRAMMAR}")

    check_operand(node, leaf, refuse)


def _column_call(node: ast.expr) -> str | None:
    """The name in `col("name")`, or None if the node is not such a call."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "col"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def expression_names(tree: ast.Expression) -> list[str]:
    """The names an expression reads, in order ("value" included as such)."""
    names: list[str] = []
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        name = _column_call(node) if isinstance(node, ast.Call) else None
        if name is None and isinstance(node, ast.Name) and id(node) not in calls:
            name = node.id
        if name is not None and name not in names:
            names.append(name)
    return names


def evaluate_expression(
    tree: ast.Expression, frame: pd.DataFrame, value_column: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a parsed check over a frame, vectorised: (holds, judged) boolean arrays.

    `judged` is False on rows where a column the check reads is null; raises KeyError for a
    column the frame lacks and TypeError/ValueError for operands that cannot be compared.
    """
    n = len(frame)
    series: dict[str, pd.Series] = {}
    for name in expression_names(tree):
        column = value_column if name == "value" else name
        if column is None:
            raise KeyError("value")
        series[name] = frame[column]
    judged = np.ones(n, dtype=bool)
    for s in series.values():
        judged &= ~np.asarray(s.isna())
    holds = _as_bool(_eval(tree.body, series), n)
    return holds, judged


def _as_bool(x: Any, n: int) -> np.ndarray:
    if isinstance(x, pd.Series):
        return x.to_numpy(dtype=bool, na_value=False)
    if isinstance(x, np.ndarray):
        return x.astype(bool, copy=False)
    return np.full(n, bool(x))


def _eval(node: ast.expr, env: Mapping[str, pd.Series]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Call):
        return env[_column_call(node) or ""]
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return ~_as_bool(operand, _length(env))
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return ARITHMETIC[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.BoolOp):
        n = _length(env)
        parts = [_as_bool(_eval(v, env), n) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return combine.reduce(parts)
    if isinstance(node, ast.Compare):
        n = _length(env)
        result = np.ones(n, dtype=bool)
        left = _eval(node.left, env)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(comparator, ast.Tuple | ast.List | ast.Set)
                values = [ast.literal_eval(e) for e in comparator.elts]
                inside = (
                    _as_bool(left.isin(values), n)
                    if isinstance(left, pd.Series)
                    else np.full(n, left in values)
                )
                result &= inside if isinstance(op, ast.In) else ~inside
                continue
            right = _eval(comparator, env)
            result &= _as_bool(COMPARE[type(op)][1](left, right), n)
            left = right
        return result
    raise ValueError(f"{ast.unparse(node)!r} is not allowed")  # parse_expression rules it out


def _length(env: Mapping[str, pd.Series]) -> int:
    return len(next(iter(env.values()))) if env else 1
