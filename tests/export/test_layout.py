"""nbops.export.layout reads a module's statement layout from its lines instead of its syntax
tree. The manifest's cell spans depend on it, so it must equal the tree's answer exactly:
on generated programs full of what a line reader can get wrong (strings and comments that
look like code, brackets and backslashes joining lines, decorators, clauses, a final
`return`), on the same programs formatted by ruff (what it reads in an export), on the
standard library's modules, and on every module exported from the test notebooks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import NbopsError
from nbops.export import formatting, layout
from nbops.export.exporter import export_notebook

ROOT = Path(__file__).resolve().parents[2]

# Simple statements; NAME is replaced by a fresh name. Each one is valid at any indentation.
SIMPLE = [
    "NAME = 1",
    "NAME = f(1, 2)",
    "NAME = (\n    1,\n    2,\n)",
    "NAME = [\n    1,  # a comment inside\n    # a comment line inside\n    2]",
    "NAME = {'a': 1,\n 'b': [2,\n 3]}",
    'NAME = """text\n# not a comment\n  return 1\n"""',
    'NAME = """a\n# ends like a comment"""',
    "NAME = '''it''' 's'",
    "NAME = 'a # not a comment' + \"b ' c\"",
    "NAME = 'abc\\\ndef'",
    "NAME = 1 + \\\n    2",
    "NAME = 1 + \\\n2",  # the joined line no deeper than the statement
    "NAME = f(1) \\\n    # a comment after a backslash\n",
    'NAME = r"\\"" + b"x" + rb"\\\\"',
    "NAME = f'{1}' + f\"{'x'}\"",
    "NAME: int = 3",
    "assert NAME_OK, \\\n    'message'",
    "pass",
    "print('return 1')",
    "returned = 1",
    "x[\n    0\n] = NAME_OK",
    "NAME = lambda: (\n    1\n)",
    "import os",
    "from os import (\n    path,\n    sep,\n)",
    "del NAME",
]
# Compound statements; BODY is replaced by an indented block.
COMPOUND = [
    "if NAME_OK:\nBODY",
    "if NAME_OK:\nBODY\nelif NAME_OK:\nBODY\nelse:\nBODY",
    "for NAME in range(3):\nBODY\nelse:\nBODY",
    "while False:\nBODY",
    "if NAME_OK and \\\nNAME_OK:\nBODY",
    "try:\nBODY\nexcept ValueError:\nBODY\nelse:\nBODY\nfinally:\nBODY",
    "with open(\n    'f'\n) as NAME:\nBODY",
    "class NAME:\nBODY",
    "@decorator\nclass NAME:\nBODY",
    "def NAME():\nBODY",
    "def NAME(\n    a,\n    b,\n) -> int:\nBODY",
    "@decorator(\n    1\n)\n@other\ndef NAME():\nBODY",
    "async def NAME():\nBODY",
    "match NAME_OK:\n    case 1:\nBODY2\n    case _:\nBODY2",
]
EXTRAS = ["", "# a comment", "    # an indented comment", "\n"]

Program = tuple[str, int]


def _indented(text: str, levels: int = 1) -> str:
    return "\n".join("    " * levels + line if line else line for line in text.split("\n"))


def _render(draw: st.DrawFn, depth: int, names: list[int], in_function: bool) -> str:
    """One statement (maybe compound), as text at indentation 0."""
    if depth < 2 and draw(st.booleans()):
        template = draw(st.sampled_from(COMPOUND))
        inner = "def " in template or (in_function and "class " not in template)
        parts = re.split(r"(BODY2|BODY)", template)
        text = ""
        for part in parts:
            if part in ("BODY", "BODY2"):
                body = _block(draw, depth + 1, names, inner)
                text += _indented(body, 2 if part == "BODY2" else 1)
            else:
                text += part
    else:
        text = draw(st.sampled_from(SIMPLE))
    text = text.replace("NAME_OK", "True")
    while "NAME" in text:
        names[0] += 1
        text = text.replace("NAME", f"n{names[0]}", 1)
    return text


def _block(draw: st.DrawFn, depth: int, names: list[int], in_function: bool) -> str:
    statements = draw(st.integers(min_value=1, max_value=4))
    lines = []
    for _ in range(statements):
        lines.append(_render(draw, depth, names, in_function))
        if draw(st.integers(0, 3)) == 0:
            lines.append(draw(st.sampled_from(EXTRAS)))
    if in_function and draw(st.booleans()):
        lines.append(draw(st.sampled_from(["return", "return 1", "return (\n    1\n)"])))
    return "\n".join(lines)


@st.composite
def programs(draw: st.DrawFn) -> str:
    """A valid module: top-level statements and functions (some ending with `return`)."""
    names = [0]
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        if draw(st.booleans()):
            decorators = draw(st.sampled_from(["", "@decorator\n", "@a.b(\n    1\n)\n"]))
            body = _indented(_block(draw, 1, names, True))
            names[0] += 1
            parts.append(f"{decorators}def step{names[0]}(x):\n{body}")
        else:
            parts.append(_render(draw, 0, names, False))
        parts.append(draw(st.sampled_from(["", "\n", "# between"])))
    text = "\n".join(parts) + draw(st.sampled_from(["", "\n", "\n\n"]))
    ast.parse(text)  # valid, or the test is wrong
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_the_line_reading_equals_the_syntax_tree(text: str) -> None:
    expected = layout.parsed_blocks(text)
    scanned = layout.scanned_blocks(text)
    if scanned is not None:
        assert scanned == expected
    assert layout.statement_blocks(text) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_only_what_it_cannot_read_goes_to_the_parser(text: str) -> None:
    """The fast path is the usual one: only the documented cases fall back."""
    if ";" in text or "\t" in text:
        return
    if sys.version_info >= (3, 12) and layout._FSTRING.search(text):
        return
    assert layout.scanned_blocks(text) is not None, text


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(programs(), min_size=5, max_size=20))
def test_ruff_formatted_programs_read_as_the_tree_says(
    texts: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """In an export the text read is ruff's output: format a batch with ruff, then compare."""
    folder = tmp_path_factory.mktemp("formatted")
    for i, text in enumerate(texts):
        (folder / f"m{i}.py").write_text(text)
    subprocess.run(
        [formatting._ruff(), "format", "--isolated", "--quiet", "--no-cache", "."],
        cwd=folder,
        check=True,
    )
    for i in range(len(texts)):
        text = (folder / f"m{i}.py").read_text()
        assert layout.scanned_blocks(text) == layout.parsed_blocks(text), text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a = 1; b = 2\n", "a semicolon"),
        ("if True:\n\tx = 1\n", "a tab"),
        ("def f(): return 1\n", "a body on the header's line"),
        ("def f(\n    a,\n): return a\n", "a body on a wrapped header's last line"),
        ("x = 1\r\ny = 2\r\n", "carriage returns"),
        ("x = 1\n\x0cy = 2\n", "a form feed"),
        ("\\\nx = 1\n", "a line that is only a backslash"),
    ],
)
def test_what_the_line_reading_leaves_to_the_parser(text: str, why: str) -> None:
    assert layout.scanned_blocks(text) is None, why
    assert layout.statement_blocks(text) == layout.parsed_blocks(text)


def test_the_layout_of_a_step_module() -> None:
    text = (
        "import os\n\n\ndef step() -> int:\n    # cell a\n    x = 1\n    y = (\n        2\n"
        "    )\n    return x + y\n\n\n@dec\ndef other() -> None:\n    pass\n"
    )
    blocks = layout.statement_blocks(text)
    assert layout.scanned_blocks(text) == blocks == layout.parsed_blocks(text)
    assert blocks[0][:2] == (4, 10)  # the function, its `return` left out of the statements
    assert blocks[0][2:] == ([6, 7], [6, 9])
    assert blocks[1][:2] == (14, 15)
    assert blocks[2][2:] == ([1, 4, 13], [1, 10, 15])  # module level: `other` from `@dec`


def test_the_standard_librarys_modules_read_as_the_tree_says() -> None:
    """A large body of real code in many styles: the standard library's top-level modules
    and a few of its packages."""
    folder = Path(subprocess.__file__).parent
    paths = [
        *folder.glob("*.py"),
        *(folder / "email").glob("*.py"),
        *(folder / "json").glob("*.py"),
    ]
    checked = scanned = 0
    for path in sorted(paths):
        try:
            text = path.read_text("utf-8")
            expected = layout.parsed_blocks(text)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        result = layout.scanned_blocks(text)
        checked += 1
        if result is not None:
            scanned += 1
            assert result == expected, path
    assert checked > 100
    assert scanned > 0.9 * checked


def test_every_module_exported_from_the_test_notebooks(tmp_path: Path) -> None:
    notebooks = sorted((ROOT / "example_notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "tests" / "fixtures").glob("**/*.ipynb")
    )
    assert len(notebooks) >= 10
    modules = 0
    for i, notebook in enumerate(notebooks):
        try:
            result = export_notebook(notebook, tmp_path / f"out{i}")
        except NbopsError:  # a notebook the exporter refuses has no modules
            continue
        for path in result.package_dir.rglob("*.py"):
            text = path.read_text("utf-8")
            scanned = layout.scanned_blocks(text)
            assert scanned is not None, path
            assert scanned == layout.parsed_blocks(text), path
            modules += 1
    assert modules >= 30
