"""Parameters a later cell sets again, which would make `-p NAME=VALUE` do nothing.

A parameters cell says `n_estimators = 100`; a train cell further down says
`n_estimators = 200`. Run top to bottom, the notebook trains with 200 whatever value is
passed for the parameter, so an override is silently lost. nbops refuses that:

- an *unconditional* reassignment — a statement at the top level of the cell (or in a `with`
  block) that binds the name to a value computed without it (`n = 200`, `n, m = f()`,
  `n: int = 200`) — is an error: the parameter's value is discarded on every run;
- a *conditional* one — inside `if`, a loop, `try`, or as a `for` target — may keep or
  discard it, so it is a warning naming the cell and line;
- a reassignment that reads the parameter (`n = n * 2`, `n += 1`, `n = int(n)`) derives the
  new value from it, so `-p` still counts: not reported.

Function and class bodies are their own scopes and are not looked at.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nbops.errors import NbopsError
from nbops.notebook.cellcode import translate
from nbops.notebook.read import Cell, NotebookModel
from nbops.notebook.tags import Role

_CONDITIONAL = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.Match)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True)
class Reassignment:
    """A statement that binds a parameter's name again."""

    name: str
    line: int  # in the cell, from 1
    statement: str  # the statement's first line, as written
    conditional: bool


def parameter_reassignments(
    tree: ast.Module, source: str, parameters: Iterable[str]
) -> list[Reassignment]:
    """The statements of a cell that bind one of `parameters` again (see the module
    docstring for what counts), in source order."""
    wanted = set(parameters)
    if not wanted:
        return []
    lines = source.splitlines()
    found: list[Reassignment] = []
    for stmt, conditional in _statements(tree.body, conditional=False):
        for name, from_loop in _bound_names(stmt):
            if name not in wanted or _reads(stmt, name):
                continue
            text = lines[stmt.lineno - 1].strip() if stmt.lineno <= len(lines) else ""
            found.append(Reassignment(name, stmt.lineno, text, conditional or from_loop))
    return found


def _statements(body: list[ast.stmt], conditional: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement of module-level code, with whether it may not run (or run again)."""
    for stmt in body:
        if isinstance(stmt, _SCOPES):
            continue
        yield stmt, conditional
        inner = conditional or isinstance(stmt, _CONDITIONAL)
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, field, []) or [], inner)
        for handler in getattr(stmt, "handlers", []) or []:
            yield from _statements(handler.body, True)
        for case in getattr(stmt, "cases", []) or []:
            yield from _statements(case.body, True)


def _bound_names(stmt: ast.stmt) -> list[tuple[str, bool]]:
    """Plain names a statement itself binds, each with whether it is a loop target."""
    targets: list[ast.expr] = []
    loop = False
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets = [stmt.target]
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        targets, loop = [stmt.target], True
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    names: list[tuple[str, bool]] = []
    for target in targets:
        names.extend((n, loop) for n in _target_names(target))
    return names


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []  # item or attribute assignment updates an object, it does not rebind


def _reads(stmt: ast.stmt, name: str) -> bool:
    """Whether the value a statement binds is computed from `name`."""
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        values: list[ast.AST] = [stmt.value] if stmt.value is not None else []
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        values = [stmt.iter]
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        values = [i.context_expr for i in stmt.items]
    else:
        return False
    return any(
        isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)
        for v in values
        for n in ast.walk(v)
    )


def reassigned_after_parameters(
    nb: NotebookModel, names: Iterable[str]
) -> list[tuple[Cell, Reassignment]]:
    """Code cells after the parameters cell that set one of `names` again when the notebook
    runs top to bottom (skip cells and papermill's injected cell left out; cells whose code
    cannot be read are left to the run to report)."""
    wanted = set(names)
    params_index = next((c.index for c in nb.code_cells if c.role is Role.PARAMETERS), None)
    if params_index is None or not wanted:
        return []
    found: list[tuple[Cell, Reassignment]] = []
    for cell in nb.code_cells:
        if cell.index <= params_index or cell.injected or cell.role is Role.SKIP:
            continue
        try:
            code = translate(cell.source, cell.location)
        except NbopsError:
            continue
        found.extend((cell, r) for r in parameter_reassignments(code.tree, code.source, wanted))
    return found
