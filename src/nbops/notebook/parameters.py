"""The parameters cell: names, literal defaults, types and the comments that describe them."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from typing import Any

from nbops.errors import CellLocation, ParameterError


@dataclass(frozen=True)
class Parameter:
    """One parameter of the notebook, as papermill would inject it."""

    name: str
    default: Any
    default_source: str
    type_source: str
    annotated: bool
    description: str
    line: int


def read_parameters(tree: ast.Module, source: str, location: CellLocation) -> list[Parameter]:
    """The parameters a `parameters` cell defines.

    Every statement must assign a literal (`n_rows = 1_000`, `test_size: float = 0.2`);
    imports and comments are allowed. Raises ParameterError naming the offending line.
    """
    comments = _line_comments(source)
    params: dict[str, Parameter] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring-like string
        target, value, annotation = _assignment(stmt)
        where = CellLocation(location.path, location.number, location.cell_id, stmt.lineno)
        if target is None or value is None:
            raise ParameterError(
                "the parameters cell may only assign values to names",
                location=where,
                fix="keep only 'name = value' lines in the parameters cell; "
                "move other code to a setup or transform cell",
            )
        try:
            default = ast.literal_eval(value)
        except ValueError:
            raise ParameterError(
                f"parameter {target!r} has a default that is not a literal ({ast.unparse(value)})",
                location=where,
                fix="give it a literal default (a number, string, bool, None, list or dict) "
                "and compute derived values in a transform step",
            ) from None
        params[target] = Parameter(
            name=target,
            default=default,
            default_source=ast.unparse(value),
            type_source=ast.unparse(annotation) if annotation else type_of_literal(default),
            annotated=annotation is not None,
            description=comments.get(stmt.lineno, ""),
            line=stmt.lineno,
        )
    return list(params.values())


def _assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Name):
            return target.id, stmt.value, None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, stmt.value, stmt.annotation
    return None, None, None


def type_of_literal(value: Any) -> str:
    """The annotation a parameter gets from its default: `0.2` → `float`, `[1, 2]` → `list[int]`."""
    if value is None:
        return "Any"
    if isinstance(value, bool | int | float | str | bytes):
        return type(value).__name__
    if isinstance(value, list | set | frozenset):
        kinds = {type_of_literal(v) for v in value}
        inner = kinds.pop() if len(kinds) == 1 else "Any"
        return f"{type(value).__name__}[{inner}]"
    if isinstance(value, tuple):
        kinds = {type_of_literal(v) for v in value}
        inner = kinds.pop() if len(kinds) == 1 else "Any"
        return f"tuple[{inner}, ...]"
    if isinstance(value, dict):
        keys = {type_of_literal(k) for k in value}
        key = keys.pop() if len(keys) == 1 else "Any"
        return f"dict[{key}, Any]"
    return "Any"


def _line_comments(source: str) -> dict[int, str]:
    """Trailing comments by line number (`n = 3  # trees` → {1: 'trees'})."""
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments
