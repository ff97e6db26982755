"""The parameters cell: names, literal defaults, types and the comments that describe them.

A parameter is a name assigned a literal (`n_rows = 1_000`, `test_size: float = 0.2`). Any
other statement is a computed line (`d = a == 3`, `path = DATA_DIR + "/x.csv"`): papermill
runs it as written, before the injected values, so `nbops run` does too (`split_parameters`);
an export needs literals, because the package's `Params` are typed values
(`read_parameters` refuses a computed line, naming it).
"""

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


@dataclass(frozen=True)
class ComputedLine:
    """A statement of the parameters cell that is not `name = literal`."""

    name: str | None  # the name it assigns, when it assigns exactly one name
    annotation: str | None  # that name's annotation, if any (`path: str = ...`)
    value: str | None  # the assigned expression's source
    source: str
    line: int


def read_parameters(tree: ast.Module, source: str, location: CellLocation) -> list[Parameter]:
    """The parameters a `parameters` cell defines, for an export.

    Every statement must assign a literal (`n_rows = 1_000`, `test_size: float = 0.2`);
    imports and comments are allowed. Raises ParameterError naming the first computed line.
    """
    params, computed = split_parameters(tree, source)
    if computed:
        first = computed[0]
        where = CellLocation(location.path, location.number, location.cell_id, first.line)
        if first.name is None:
            raise ParameterError(
                "the parameters cell may only assign values to names",
                location=where,
                fix="keep only 'name = value' lines in the parameters cell; "
                "move other code to a setup or transform cell",
            )
        raise ParameterError(
            f"parameter {first.name!r} has a default that is not a literal ({first.value}); "
            "`nbops run` runs it as papermill does, but an export needs literal defaults",
            location=where,
            fix="give it a literal default (a number, string, bool, None, list or dict), or "
            "move the line into the first step that reads it",
        )
    return params


def split_parameters(tree: ast.Module, source: str) -> tuple[list[Parameter], list[ComputedLine]]:
    """The cell's parameters (its `name = literal` lines, the last assignment of a name
    winning) and its computed lines, in order. Imports and bare strings are neither.

    A name a computed line assigns after its literal is not a parameter: the cell leaves it
    computed.
    """
    comments = _line_comments(source)
    params: dict[str, Parameter] = {}
    computed: list[ComputedLine] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring-like string
        target, value, annotation = _assignment(stmt)
        default, literal = _literal(value)
        if target is None or value is None or not literal:
            params.pop(target or "", None)
            computed.append(
                ComputedLine(
                    name=target if value is not None else None,
                    annotation=ast.unparse(annotation) if annotation else None,
                    value=ast.unparse(value) if value is not None else None,
                    source=ast.get_source_segment(source, stmt) or ast.unparse(stmt),
                    line=stmt.lineno,
                )
            )
            continue
        params[target] = Parameter(
            name=target,
            default=default,
            default_source=ast.unparse(value),
            type_source=ast.unparse(annotation) if annotation else type_of_literal(default),
            annotated=annotation is not None,
            description=comments.get(stmt.lineno, ""),
            line=stmt.lineno,
        )
    return list(params.values()), computed


def _literal(value: ast.expr | None) -> tuple[Any, bool]:
    """The value of a literal expression, and whether it is one."""
    if value is None:
        return None, False
    try:
        return ast.literal_eval(value), True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, False


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
