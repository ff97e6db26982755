"""The core of nbops' two small expression languages, which are parsed and never evaluated
as code: CI gates (`nbops.gates`: one comparison over numbers and dotted metric names)
and schema custom checks (`nbops.quality.schema.expressions`: conditions over columns, with
`and`/`or`/`not`, `in` a literal list, strings).

Both parse with Python's own parser, then walk the tree against a whitelist. What they share
is here: the comparison and arithmetic operators, and the walk of an arithmetic operand
(`+ - * /` and unary `+ -` between leaves). Each language says which leaves it accepts and
which error a refused node raises; their grammars stay their own, as their users write
different things (a gate names `baseline.f1`, a check compares text with `"a"`).

Standard library only: gates are parsed in light contexts.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any, NoReturn

COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.GtE: (">=", operator.ge),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.Lt: ("<", operator.lt),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
"""The comparisons both languages accept: their symbol and their function."""

ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
"""The binary operators of an operand: + - * / (no power, modulo or floor division)."""


def check_operand(
    node: ast.expr,
    is_leaf: Callable[[ast.expr], bool],
    refuse: Callable[[ast.expr], NoReturn],
) -> None:
    """Accept `node` if it is a leaf (`is_leaf` may record it), or `+ - * /` between
    accepted operands, or unary `+`/`-` of one; call `refuse` on the first node that is not."""
    if is_leaf(node):
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        check_operand(node.operand, is_leaf, refuse)
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        check_operand(node.left, is_leaf, refuse)
        check_operand(node.right, is_leaf, refuse)
    else:
        refuse(node)
