"""The statement layout of a generated module, read without building its syntax tree.

The manifest gives each cell's lines in the formatted modules (exporter._cell_spans). What
that needs from a module is small: the first and last line of each top-level statement, and
of each statement in the body of each top-level function. `ast.parse` builds a node for
every name and operator of every cell to answer that, and cost as much as reading the whole
notebook; on a first export (nothing cached) it came after ruff, on the critical path.

`statement_blocks` reads the same answer from the text's lines: strings and comments are
blanked out with one regular expression (a string that spans lines becomes a bracket pair
over the same lines), brackets are counted per line to join physical lines into logical
lines, and indentation groups logical lines into statements, as Python's tokenizer does.
Text it cannot read with certainty (semicolons, tabs in indentation, a one-line function
body, unusual line breaks, f-strings on Python 3.12+, anything inconsistent) is parsed with
`ast` instead. tests/export/test_layout.py holds the two equal on generated programs and
on every exported module of the test notebooks.
"""

from __future__ import annotations

import ast
import re
import sys

# (first line, last line, first line of each statement, last line of each statement)
Block = tuple[int, int, list[int], list[int]]

# Each string's body as runs of plain characters between escapes (and lone quotes): the
# same tokens as one alternation per character, matched in half the time. One group holds
# the whole token, so that re.split keeps the tokens (see _blanked).
_TOKENS = re.compile(
    r'("""[^"\\]*+(?:(?:\\.|"(?!""))[^"\\]*+)*+"""'
    r"|'''[^'\\]*+(?:(?:\\.|'(?!''))[^'\\]*+)*+'''"
    r'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
    r"|'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'"
    r"|#[^\n]*+"
    r"|\\\n)",
    re.DOTALL,
)
_BRACKETS = str.maketrans("[{]}", "(())")
# Line breaks Python's tokenizer does not count (str.splitlines does), and other characters
# whose handling is left to the parser.
_UNSURE = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff\x00]")
_UNSURE_ASCII = "\r\x0b\x0c\x1c\x1d\x1e\x00"  # those of them in ASCII
_FSTRING = re.compile(r"[fFtT][rR]?['\"]|[rR][fFtT]['\"]")
_CLAUSE = re.compile(r"(?:else|elif|except|finally)\b")
_CLAUSE_FIRST = ("e", "f")  # what every clause starts with: tested before _CLAUSE
_RETURN = re.compile(r"return\b")
_DEF = re.compile(r"def\s")


def statement_blocks(text: str) -> list[Block]:
    """The statement lists a cell's code can land in, as `Block`s: the body of each
    top-level function (`def`, not `async def`) without its final `return`, then the
    module's own statements (first line: a decorator's, if any). Equal to `parsed_blocks`."""
    scanned = scanned_blocks(text)
    return scanned if scanned is not None else parsed_blocks(text)


def parsed_blocks(text: str) -> list[Block]:
    """`statement_blocks` from the syntax tree: the definition the scan is held to."""
    functions: list[Block] = []
    starts: list[int] = []
    ends: list[int] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            body = node.body
            if body and isinstance(body[-1], ast.Return):
                body = body[:-1]
            last = node.end_lineno or node.lineno
            functions.append(
                (
                    node.lineno,
                    last,
                    [_first_line(s) for s in body],
                    [s.end_lineno or s.lineno for s in body],
                )
            )
        starts.append(_first_line(node))
        ends.append(node.end_lineno or node.lineno)
    return [*functions, (1, sys.maxsize, starts, ends)]


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def _blanked(text: str) -> str:
    """`text` with its strings and comments blanked out (`_blank`): the pieces between
    tokens and the tokens from one re.split, a comment (the usual token) blanked in the
    comprehension, rather than a call for each token from re.sub."""
    parts = _TOKENS.split(text)
    parts[1::2] = ["" if token[0] == "#" else _blank(token) for token in parts[1::2]]
    return "".join(parts)


def _blank(token: str) -> str:
    breaks = token.count("\n")
    if not breaks:
        return "" if token[0] == "#" else "0"
    if token == "\\\n":
        return "$\n"  # a backslash joining two lines
    return "(" + "\n" * breaks + ")"  # the lines it spans stay joined, as in a bracket


# A logical line: (first physical line, last physical line, indentation, its first physical
# line without the indentation, its last physical line), strings and comments blanked out.
_Logical = tuple[int, int, int, str, str]


def scanned_blocks(text: str) -> list[Block] | None:
    """`statement_blocks` read from the lines, or None when the text needs the parser."""
    if _unsure(text) or (sys.version_info >= (3, 12) and _FSTRING.search(text)):
        return None
    code = _blanked(text)
    if any(c in code for c in "\"';\\\t"):
        return None  # an unclosed string, a semicolon, a tab or a stray backslash
    logical = _logical_lines(code.translate(_BRACKETS).split("\n"))
    if logical is None:
        return None
    return _blocks(logical)


def _unsure(text: str) -> bool:
    """Whether `text` holds a character of `_UNSURE`: in ASCII text (the usual), one scan
    for each of those characters in ASCII, a few times faster than the expression's."""
    if text.isascii():
        return any(c in text for c in _UNSURE_ASCII)
    return _UNSURE.search(text) is not None


def _logical_lines(lines: list[str]) -> list[_Logical] | None:
    out: list[_Logical] = []
    depth = 0
    first = indent = last = 0
    head = tail = ""
    joined = False  # the line before ended with a backslash
    for number, line in enumerate(lines, start=1):
        if depth == 0 and not joined:
            stripped = line.lstrip(" ")
            if not stripped:
                continue  # blank, or a comment (blanked out)
            if stripped[0] == "$":
                return None  # a line that is only a backslash: left to the parser
            if line.count("(") == line.count(")") and not line.endswith("$"):
                # A statement on one line, the usual: as the steps below would take it.
                out.append((number, number, len(line) - len(stripped), stripped, line))
                continue
            first, indent, head = number, len(line) - len(stripped), stripped
        if line.strip(" $"):  # the last line holding a token ends the statement
            last, tail = number, line
        if "(" in line or ")" in line:
            depth += line.count("(") - line.count(")")
            if depth < 0:
                return None
        joined = line.endswith("$")
        if depth == 0 and not joined:
            out.append((first, last, indent, head, tail))
    if depth != 0 or joined:
        return None
    return out


def _blocks(logical: list[_Logical]) -> list[Block] | None:
    functions: list[Block] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(logical)
    while i < n:
        first, _, indent, head, _ = logical[i]
        if indent != 0:
            return None
        # Decorators, then the statement they decorate.
        while head.startswith("@"):
            i += 1
            if i >= n or logical[i][2] != 0:
                return None
            head = logical[i][3]
        header = logical[i]
        j = i + 1
        while j < n and (
            logical[j][2] > 0
            or (logical[j][3].startswith(_CLAUSE_FIRST) and _CLAUSE.match(logical[j][3]))
        ):
            j += 1
        last = logical[j - 1][1]
        if _DEF.match(header[3]):
            body = _function_body(logical, header, i + 1, j)
            if body is None:
                return None
            functions.append((header[0], last, *body))
        starts.append(first)
        ends.append(last)
        i = j
    return [*functions, (1, sys.maxsize, starts, ends)]


def _function_body(
    logical: list[_Logical], header: _Logical, start: int, stop: int
) -> tuple[list[int], list[int]] | None:
    """The statements of a function's body (logical lines start..stop), without a final
    `return`. None when the body is on the header's line."""
    if start >= stop or not header[4].rstrip().endswith(":"):
        return None  # `def f(): return 1`
    indent = logical[start][2]
    if indent == 0:
        return None
    starts: list[int] = []
    ends: list[int] = []
    head = ""
    i = start
    while i < stop:
        first, _, at, head, _ = logical[i]
        if at != indent:
            return None
        while head.startswith("@"):
            i += 1
            if i >= stop or logical[i][2] != indent:
                return None
            head = logical[i][3]
        j = i + 1
        while j < stop and (
            logical[j][2] > indent
            or (
                logical[j][2] == indent
                and logical[j][3].startswith(_CLAUSE_FIRST)
                and _CLAUSE.match(logical[j][3])
            )
        ):
            j += 1
        starts.append(first)
        ends.append(logical[j - 1][1])
        i = j
    if _RETURN.match(head):  # the last statement's
        starts.pop()
        ends.pop()
    return starts, ends
