"""value_types skips the walk for names bound other than by a plain assignment when the code
plainly has none (types._plain_bindings_only): it must never skip a cell that has one."""

from __future__ import annotations

import ast
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.export import render, types


def _walked(code: str) -> set[str]:
    """The names the full walk finds bound other than by a plain top-level assignment."""
    tree = ast.parse(code)
    plain = {id(t) for stmt in tree.body for t in types._plain_targets(stmt)}
    return {n.id for n in types._bound_names(tree) if id(n) not in plain}


def _check(code: str) -> None:
    tree = ast.parse(code)
    parsed = types._parsed(code, tree)
    assert parsed is not None
    assert set(parsed.other_bindings) == _walked(code)
    if types._plain_bindings_only(tree, code):
        assert _walked(code) == set()
    # _parsed's one pass over the statements (types._scan) decides as _plain_bindings_only.
    scanned = types._scan(tree, cell=False)
    assert scanned is not None
    assert (scanned[1] and not types._may_bind_inside(code)) == types._plain_bindings_only(
        tree, code
    )


@pytest.mark.parametrize(
    "code",
    [
        "x = 1",
        "x, y = 1, 2",
        "[a, b] = c",
        "a = b = 1",
        "a, *b = c",
        "(a, b), c = d",
        "x += 1",
        "x: int = 1",
        "df['a'] = 1",
        "del x",
        "y = [i for i in range(3)]",
        "y = [(i)for i in range(3)]",
        "y = (z := 3)",
        "y = f(lambda: (w := 1))",
        "with open(p) as fh:\n    t = fh.read()",
        "for i in range(3):\n    pass",
        "if c:\n    x = 1",
        "def f():\n    x = 1",
        "class K:\n    x = 1",
        "try:\n    x = 1\nexcept E as e:\n    pass",
        "import os\nx = os.sep  # for later",
        "x = 'for'",
        "transform = 1\nformat_ = transform",
        "x = {k: v for k, v in d.items()}",
        "print(x)\nx = y",
        "pass",
        "match x:\n    case [a]:\n        pass",
    ],
)
def test_the_shortcut_agrees_with_the_walk(code: str) -> None:
    _check(code)


_names = st.sampled_from(["a", "b", "df", "transform", "x1"])
_expressions = st.sampled_from(
    [
        "1",
        "a + b",
        "f(a)",
        "[i for i in a]",
        "{k: 1 for k in b}",
        "(c := 2)",
        "lambda q: q",
        "'for with del'",
        "a[b]",
        "g(*a, key=b)",
        "[(i)for i in a]",
    ]
)


@st.composite
def _statement(draw: st.DrawFn) -> str:
    target = draw(_names)
    value = draw(_expressions)
    form = draw(st.integers(0, 9))
    forms = [
        f"{target} = {value}",
        f"{target}, other = {value}, 1",
        f"{value}",
        f"{target} += {value}",
        f"{target}[0] = {value}",
        f"del {target}",
        f"for {target} in {value}:\n    pass",
        f"with {value} as {target}:\n    pass",
        f"if {value}:\n    {target} = 1",
        f"{target} = yet = {value}",
    ]
    return forms[form]


@settings(max_examples=300, deadline=None)
@given(st.lists(_statement(), min_size=1, max_size=4))
def test_generated_cells_agree_with_the_walk(statements: list[str]) -> None:
    _check("\n".join(statements) + "\n")


_KEYWORD_REGEX = re.compile(r"(?<![A-Za-z_])(?:for|with|del)(?![A-Za-z0-9_])|:=")
_pieces = st.sampled_from(
    ["for", "with", "del", ":", "=", " ", "_", "a", "Z", "1", "é", "\n", "(", "x1", "form"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_pieces, max_size=12).map("".join))
def test_the_keyword_search_is_the_regex(code: str) -> None:
    """_may_bind_inside finds what the regex it replaced finds: a binding keyword not part
    of a name (ASCII letters, digits and `_` around it), or `:=`."""
    assert types._may_bind_inside(code) == bool(_KEYWORD_REGEX.search(code))


_SPAN_REGEX = re.compile(r'"""|' + r"'''|\\\r?\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(['"', "'", "\\", "\r", "\n", "a", "f"]), max_size=10).map("".join))
def test_the_spanning_string_test_is_the_regex(code: str) -> None:
    if sys.version_info < (3, 12):  # 3.12 adds f-strings, tested through the regex it keeps
        assert render._may_span_lines(code) == bool(_SPAN_REGEX.search(code))
