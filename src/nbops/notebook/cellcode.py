"""A code cell as plain Python: IPython syntax translated, display-only lines left out.

IPython's own input transformer turns `%magic`, `!shell` and `name?` into calls on
`get_ipython()`. What only matters interactively (`%matplotlib`, `%load_ext`, `!pip install`,
`name?`) is dropped with a warning; `%time`/`%%time`/`%%capture` are unwrapped to the code they
run; anything else is a MagicError naming the cell. Imports at the top level of the cell are
split out so the exporter can put them at the top of the modules that need them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Protocol, cast

from nbops.errors import CellLocation, CellSyntaxError, MagicError

if TYPE_CHECKING:
    from IPython.core.inputtransformer2 import TransformerManager

# Line magics that only change the interactive session: dropped from exported code.
INTERACTIVE_LINE_MAGICS = frozenset(
    {
        "matplotlib", "load_ext", "reload_ext", "unload_ext", "autoreload", "aimport",
        "config", "pinfo", "pinfo2", "psearch", "pdef", "pdoc", "psource", "pfile", "who",
        "whos", "who_ls", "history", "lsmagic", "magic", "precision", "pprint", "xmode",
        "colors", "pip", "conda", "mamba", "uv", "timeit", "prun", "reset", "clear",
        "notebook", "qtconsole", "connect_info", "page", "pwd", "watermark",
    }
)  # fmt: skip
# Magics whose argument or body is ordinary Python that runs once: exported as that code.
UNWRAPPED_MAGICS = frozenset({"time", "capture"})
_PACKAGE_INSTALL = re.compile(r"^\s*(pip3?|conda|mamba|micromamba|uv\s+pip)\s+install\b")

# Methods whose value is only shown when they end a cell (`df.head()`): never exported.
DISPLAY_METHODS = frozenset(
    {
        "head", "tail", "describe", "info", "sample", "value_counts", "nunique", "unique",
        "isna", "isnull", "notna", "corr", "cov", "memory_usage", "style", "to_markdown",
        "plot", "hist", "boxplot", "show",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ImportBinding:
    """One name an import statement binds, and the statement that binds only it."""

    name: str
    statement: str
    module: str
    line: int


@dataclass(frozen=True)
class Diagnostic:
    """A warning about a cell that does not stop the export."""

    message: str
    location: CellLocation

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class CellCode:
    """A cell's code ready for analysis and export."""

    source: str
    tree: ast.Module
    body: str
    imports: list[ImportBinding] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    star_import: bool = False


@cache
def _transformer() -> TransformerManager:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def translate(source: str, location: CellLocation) -> CellCode:
    """Turn a cell's source into plain Python, as the exporter writes it.

    Raises CellSyntaxError (with the line in the cell) and MagicError.
    """
    diagnostics: list[Diagnostic] = []
    code = _python_source(source, location, diagnostics)
    tree = _parse(code, location)
    return _cell_code(code, tree, diagnostics)


class Located(Protocol):
    """A cell, as `translate_cell` reads it (nbops.notebook.read.Cell)."""

    @property
    def source(self) -> str: ...

    @property
    def location(self) -> CellLocation: ...


def translate_cell(cell: Located) -> CellCode:
    """`translate(cell.source, cell.location)`, reading the location only when it is
    needed: most cells are plain Python that parses (nothing translated, nothing to warn
    about), and a notebook of many cells would build every cell's location for nothing."""
    source = cell.source
    if _may_use_ipython(source) or "get_ipython" in source:
        return translate(source, cell.location)
    try:  # ast.parse(source), without its wrapper's call
        tree = cast(ast.Module, compile(source, "<unknown>", "exec", ast.PyCF_ONLY_AST))
    except SyntaxError:
        return translate(source, cell.location)  # raises the CellSyntaxError naming the line
    return _cell_code(source, tree, [])


def _cell_code(code: str, tree: ast.Module, diagnostics: list[Diagnostic]) -> CellCode:
    """The CellCode of translated code: `_import_bindings` and `_exported_body` in one look
    at the statements (most cells import nothing, and need no second one)."""
    kept: list[ast.stmt] = []
    imports_any = False
    for stmt in tree.body:
        if isinstance(stmt, _IMPORT_STATEMENTS):
            imports_any = True
        elif not is_display_only(stmt):
            kept.append(stmt)
    imports, star = _import_bindings(tree) if imports_any else ([], False)
    return CellCode(
        source=code,
        tree=tree,
        body=without_leading_blank_lines(slice_statements(code, tree.body, kept)),
        imports=imports,
        diagnostics=diagnostics,
        star_import=star,
    )


_IMPORT_STATEMENTS = (ast.Import, ast.ImportFrom)


def _exported_body(code: str, tree: ast.Module) -> str:
    kept = [s for s in tree.body if not isinstance(s, _IMPORT_STATEMENTS)]
    kept = [s for s in kept if not is_display_only(s)]
    # Blank lines left where magics were dropped only mattered for error line numbers.
    return without_leading_blank_lines(slice_statements(code, tree.body, kept))


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def without_leading_blank_lines(text: str) -> str:
    """`text` without the blank lines it starts with (most code starts with none, which a
    look at its first character tells without a regex)."""
    if not text or text[0] not in " \t\n":
        return text
    return _LEADING_BLANK_LINES.sub("", text)


def keep_last_value(code: CellCode, variable: str) -> CellCode:
    """The cell with its last statement, a bare expression, assigned to `variable`:
    `knn.score(X_test, y_test)` becomes `knn_score = knn.score(X_test, y_test)`."""
    stmt = code.tree.body[-1]
    if not isinstance(stmt, ast.Expr):
        raise ValueError("the cell does not end with a bare expression")
    lines = code.source.splitlines(keepends=True)
    line = lines[stmt.lineno - 1].encode("utf-8")  # col_offset counts UTF-8 bytes
    head, tail = line[: stmt.col_offset], line[stmt.col_offset :]
    lines[stmt.lineno - 1] = (head + f"{variable} = ".encode() + tail).decode("utf-8")
    source = "".join(lines)
    return _with_source(code, source)


def _with_source(code: CellCode, source: str) -> CellCode:
    """`code` with its source rewritten by nbops (imports and diagnostics unchanged)."""
    tree = ast.parse(source)
    return CellCode(
        source=source,
        tree=tree,
        body=_exported_body(source, tree),
        imports=code.imports,
        diagnostics=code.diagnostics,
        star_import=code.star_import,
    )


def keep_printed_values(code: CellCode, kept: list[tuple[ast.stmt, ast.expr, str]]) -> CellCode:
    """The cell with each printed value kept: for (print statement, value, variable),
    `variable = value` is assigned just before the statement and the print shows
    `variable`: `print("r2: %.2f" % r2_score(y, p))` becomes `r2 = r2_score(y, p)` and
    `print("r2: %.2f" % r2)`. The statements are top-level ones of the cell."""
    if not kept:
        return code
    data = code.source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:  # col_offset counts UTF-8 bytes
        return starts[line - 1] + col

    edits: list[tuple[int, int, int, bytes]] = []
    for index, (stmt, value, variable) in enumerate(kept):
        text = ast.unparse(value)
        at = offset(stmt.lineno, stmt.col_offset)
        edits.append((at, at, index, f"{variable} = {text}\n".encode()))
        segment = ast.get_source_segment(code.source, value)
        end_line, end_col = value.end_lineno, value.end_col_offset
        if segment is not None and end_line and end_col and _same_expression(segment, value):
            start = offset(value.lineno, value.col_offset)
            edits.append((start, offset(end_line, end_col), index, variable.encode()))
    for start, end, _, replacement in sorted(edits, key=lambda e: e[:3], reverse=True):
        data = data[:start] + replacement + data[end:]
    source = data.decode("utf-8")
    return _with_source(code, source)


def _same_expression(segment: str, value: ast.expr) -> bool:
    """Whether a source segment is the expression (f-string fields report positions that
    older Pythons get wrong): otherwise the print keeps its expression as it was."""
    try:
        return ast.dump(ast.parse(f"({segment})", mode="eval").body) == ast.dump(value)
    except SyntaxError:
        return False


def _parse(code: str, location: CellLocation, offset: int = 0) -> ast.Module:
    """Parse a cell's code; `offset` is how many cell lines come before `code`."""
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        line = exc.lineno + offset if exc.lineno is not None else None
        where = CellLocation(location.path, location.number, location.cell_id, line)
        raise CellSyntaxError(
            f"syntax error: {exc.msg}",
            location=where,
            fix="fix the code in the notebook (it must run as Python) and export again",
        ) from None


def _python_source(
    source: str, location: CellLocation, diagnostics: list[Diagnostic], offset: int = 0
) -> str:
    """The cell with IPython syntax translated, dropped or unwrapped (see module docstring)."""
    code = _transformer().transform_cell(source) if _may_use_ipython(source) else source
    if "get_ipython" not in code:
        return code
    tree = _parse(code, location, offset)
    lines = code.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for stmt in tree.body:
        call = _ipython_call(stmt)
        if call is None:
            if any(_is_get_ipython(n) for n in ast.walk(stmt)):
                raise _magic_error(ast.get_source_segment(code, stmt) or "", location)
            continue
        kind, args = call
        out.extend(lines[cursor : stmt.lineno - 1])
        cursor = stmt.end_lineno or stmt.lineno
        line_offset = offset + stmt.lineno - 1
        replacement = _translate_magic(kind, args, location, diagnostics, line_offset)
        out.append(replacement)
    out.extend(lines[cursor:])
    return "".join(out)


def _may_use_ipython(source: str) -> bool:
    return "%" in source or "!" in source or "?" in source


def _is_get_ipython(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_ipython"


def _ipython_call(stmt: ast.stmt) -> tuple[str, list[str]] | None:
    """`get_ipython().KIND('a', 'b')` as a statement: (KIND, ['a', 'b'])."""
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return None
    func = stmt.value.func
    if not (isinstance(func, ast.Attribute) and _is_get_ipython(func.value)):
        return None
    args = [a.value for a in stmt.value.args if isinstance(a, ast.Constant)]
    if len(args) != len(stmt.value.args) or not all(isinstance(a, str) for a in args):
        return None
    return func.attr, [str(a) for a in args]


def _translate_magic(
    kind: str, args: list[str], location: CellLocation, diagnostics: list[Diagnostic], offset: int
) -> str:
    """The Python a magic stands for ("\n" when dropped, to keep line numbers)."""
    if kind == "run_line_magic":
        name, arg = args[0], args[1] if len(args) > 1 else ""
        shown = f"%{name} {arg}".strip()
        if name in UNWRAPPED_MAGICS:
            return _python_source(arg, location, diagnostics, offset) + "\n"
        if name in INTERACTIVE_LINE_MAGICS:
            diagnostics.append(
                Diagnostic(f"dropped {shown!r} (only matters interactively)", location)
            )
            return "\n"  # keep the cell's line numbers
        raise _magic_error(shown, location)
    if kind == "run_cell_magic":
        name, line, body = [*args, "", "", ""][:3]
        if name in UNWRAPPED_MAGICS:
            if name == "capture" and line.strip():
                diagnostics.append(
                    Diagnostic(
                        f"'%%capture {line}' unwrapped: its output variable is not set", location
                    )
                )
            # The body starts on the line after the `%%magic` line.
            return "\n" + _python_source(body, location, diagnostics, offset + 1)
        raise _magic_error(f"%%{name} {line}".strip(), location)
    if kind == "system" and args and _PACKAGE_INSTALL.match(args[0]):
        diagnostics.append(
            Diagnostic(f"dropped '!{args[0]}' (install packages outside the pipeline)", location)
        )
        return "\n"
    shown = f"!{args[0]}" if kind == "system" and args else kind
    raise _magic_error(shown, location)


def _magic_error(shown: str, location: CellLocation) -> MagicError:
    return MagicError(
        f"IPython syntax {shown.strip()!r} has no Python equivalent in exported code",
        location=location,
        fix="write it in plain Python (e.g. subprocess.run for shell commands), "
        "or move it to an untagged cell",
    )


def _import_bindings(tree: ast.Module) -> tuple[list[ImportBinding], bool]:
    bindings: list[ImportBinding] = []
    star = False
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    text, name = f"import {alias.name} as {alias.asname}", alias.asname
                else:
                    text, name = f"import {alias.name}", alias.name.split(".")[0]
                bindings.append(ImportBinding(name, text, alias.name, stmt.lineno))
        elif isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            for alias in stmt.names:
                if alias.name == "*":
                    star = True
                    continue
                name = alias.asname or alias.name
                suffix = f" as {alias.asname}" if alias.asname else ""
                text = f"from {module} import {alias.name}{suffix}"
                bindings.append(ImportBinding(name, text, module, stmt.lineno))
    return bindings, star


def is_display_only(stmt: ast.stmt) -> bool:
    """Whether a statement only shows a value: `df`, `df.head()`, `display(x)`, `X.shape`."""
    if not isinstance(stmt, ast.Expr):
        return False
    return _is_display_value(stmt.value)


def _is_display_value(node: ast.expr) -> bool:
    if isinstance(node, ast.Name | ast.Constant):
        return True
    if isinstance(node, ast.Attribute):
        return _is_display_value(node.value)
    if isinstance(node, ast.Subscript):
        return _is_display_value(node.value) and _is_pure(node.slice)
    if isinstance(node, ast.Tuple):
        return all(_is_display_value(e) for e in node.elts)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "display":
            return True
        return isinstance(func, ast.Attribute) and func.attr in DISPLAY_METHODS
    return False


def _is_pure(node: ast.expr) -> bool:
    return not any(isinstance(n, ast.Call | ast.NamedExpr | ast.Await) for n in ast.walk(node))


def slice_statements(code: str, all_stmts: Sequence[ast.stmt], kept: Sequence[ast.stmt]) -> str:
    """The code of the kept statements, comments and layout included.

    When a left-out statement shares a line with a kept one (`import os; x = 1`), the kept
    statements are unparsed instead, which loses their comments.
    """
    if len(kept) == len(all_stmts):
        return code
    kept_ids = {id(s) for s in kept}
    lines = code.splitlines(keepends=True)
    drop: set[int] = set()
    kept_lines: set[int] = set()
    for stmt in all_stmts:
        span = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
        (kept_lines if id(stmt) in kept_ids else drop).update(span)
    if drop & kept_lines:
        return "\n".join(ast.unparse(s) for s in kept) + ("\n" if kept else "")
    # Decorators start before a statement's lineno: keep them with their definition.
    for stmt in kept:
        for dec in getattr(stmt, "decorator_list", []):
            drop.difference_update(range(dec.lineno, stmt.lineno))
    return "".join(line for n, line in enumerate(lines, start=1) if n not in drop)
