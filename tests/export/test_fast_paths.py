"""The faster forms of export code held equal to the code they replaced (kept here as the
reference): the layout's token expression, its test for unsure characters and its joining
of lines into logical lines (nbops.export.layout), the cell spans' bisection over the
statements' last lines, and the manifest's steps validated from their fields in one call
rather than built model by model (nbops.export.exporter)."""

from __future__ import annotations

import bisect
import hashlib
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nbops.errors import NbopsError
from nbops.export import cache, exporter, layout
from nbops.export.exporter import export_notebook
from nbops.export.manifest import CellSpan, StepEntry, StepInputEntry
from tests.export.test_layout import programs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


# -- the references: nbops.export.layout and exporter._cell_spans as they were --------------

OLD_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*+"""'
    r"|'''(?:[^'\\]|\\.|'(?!''))*+'''"
    r'|"(?:[^"\\\n]|\\.)*+"'
    r"|'(?:[^'\\\n]|\\.)*+'"
    r"|#[^\n]*+"
    r"|\\\n",
    re.DOTALL,
)


def old_blank(match: re.Match[str]) -> str:
    token = match.group()
    breaks = token.count("\n")
    if not breaks:
        return "" if token[0] == "#" else "0"
    if token == "\\\n":
        return "$\n"
    return "(" + "\n" * breaks + ")"


OLD_UNSURE = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff\x00]")


def old_logical_lines(lines: list[str]) -> list[tuple[int, int, int, str, str]] | None:
    out: list[tuple[int, int, int, str, str]] = []
    depth = 0
    first = indent = last = 0
    head = tail = ""
    joined = False
    for number, line in enumerate(lines, start=1):
        if depth == 0 and not joined:
            stripped = line.lstrip(" ")
            if not stripped:
                continue
            if stripped[0] == "$":
                return None
            first, indent, head = number, len(line) - len(stripped), stripped
        if line.strip(" $"):
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


_OLD_CLAUSE = re.compile(r"(?:else|elif|except|finally)\b")
_OLD_RETURN = re.compile(r"return\b")


def old_blocks(logical: list[tuple[int, int, int, str, str]]) -> list[layout.Block] | None:
    functions: list[layout.Block] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(logical)
    while i < n:
        first, _, indent, head, _ = logical[i]
        if indent != 0:
            return None
        while head.startswith("@"):
            i += 1
            if i >= n or logical[i][2] != 0:
                return None
            head = logical[i][3]
        header = logical[i]
        j = i + 1
        while j < n and (logical[j][2] > 0 or _OLD_CLAUSE.match(logical[j][3])):
            j += 1
        last = logical[j - 1][1]
        if re.match(r"def\s", header[3]):
            body = old_function_body(logical, header, i + 1, j)
            if body is None:
                return None
            functions.append((header[0], last, *body))
        starts.append(first)
        ends.append(last)
        i = j
    return [*functions, (1, sys.maxsize, starts, ends)]


def old_function_body(
    logical: list[tuple[int, int, int, str, str]],
    header: tuple[int, int, int, str, str],
    start: int,
    stop: int,
) -> tuple[list[int], list[int]] | None:
    if start >= stop or not header[4].rstrip().endswith(":"):
        return None
    indent = logical[start][2]
    if indent == 0:
        return None
    starts: list[int] = []
    ends: list[int] = []
    returns = False
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
            logical[j][2] > indent or (logical[j][2] == indent and _OLD_CLAUSE.match(logical[j][3]))
        ):
            j += 1
        starts.append(first)
        ends.append(logical[j - 1][1])
        returns = _OLD_RETURN.match(head) is not None
        i = j
    if returns:
        starts.pop()
        ends.pop()
    return starts, ends


def old_marker_ends(
    blocks: list[layout.Block], markers: list[tuple[int, str]], count: int
) -> list[int]:
    *functions, (_, _, module_starts, module_ends) = blocks
    firsts = [first for first, _, _, _ in functions]
    result = []
    for i, (n, _) in enumerate(markers):
        stop = markers[i + 1][0] if i + 1 < len(markers) else count + 1
        f = bisect.bisect_right(firsts, n) - 1
        if f >= 0 and n <= functions[f][1]:
            starts, ends = functions[f][2], functions[f][3]
        else:
            starts, ends = module_starts, module_ends
        inside = ends[bisect.bisect_right(starts, n) : bisect.bisect_left(starts, stop)]
        result.append(max((e for e in inside if e < stop), default=n))
    return result


# -- the layout ---------------------------------------------------------------------------------

# Pieces of text that make tokens, broken tokens and the characters between them.
_PIECES = ['"', "'", '"""', "'''", "#", "\\", "\n", " ", "a", "x = ", "\\n", '\\"', "\t"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_the_tokens_are_found_and_blanked_as_the_old_code_did(text: str) -> None:
    assert [m.span() for m in layout._TOKENS.finditer(text)] == [
        m.span() for m in OLD_TOKENS.finditer(text)
    ]
    assert layout._blanked(text) == OLD_TOKENS.sub(old_blank, text)


@settings(max_examples=1000, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from("\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\ufeff\x00\n a#("),
            st.characters(),
        ),
        max_size=30,
    )
)
def test_unsure_text_is_found_as_the_expression_finds_it(text: str) -> None:
    assert layout._unsure(text) == (OLD_UNSURE.search(text) is not None)


# Lines after blanking: spaces for indentation, brackets, `$` for a backslash, words that
# open a clause, a function, a decorator or a return.
_LINE_PIECES = [" ", "    ", "(", ")", "$", "x", "def f", ":", "@d", "return", "returned"]
_LINE_PIECES += ["else:", "elif x:", "except E:", "finally:", "elsewhere", "finally_"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_LINE_PIECES), max_size=6).map("".join), max_size=12))
def test_lines_join_into_the_logical_lines_the_old_code_made(lines: list[str]) -> None:
    new = layout._logical_lines(lines)
    assert new == old_logical_lines(lines)
    if new is not None:
        assert layout._blocks(new) == old_blocks(new)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_programs_read_step_by_step_as_the_old_code_read_them(text: str) -> None:
    """Valid programs (test_layout's): functions, decorators, clauses, final returns."""
    assert layout._unsure(text) == (OLD_UNSURE.search(text) is not None)
    code = layout._blanked(text)
    assert code == OLD_TOKENS.sub(old_blank, text)
    lines = code.translate(layout._BRACKETS).split("\n")
    logical = layout._logical_lines(lines)
    assert logical == old_logical_lines(lines)
    if logical is not None:
        assert layout._blocks(logical) == old_blocks(logical)


def test_the_layout_reads_every_exported_module_as_the_old_code(tmp_path: Path) -> None:
    """The modules of the benchmark's notebook and of the test notebooks, scanned step by
    step with the old code and the new."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_export
    finally:
        sys.path.remove(str(ROOT / "bench"))
    import nbformat

    bench = tmp_path / "bench.ipynb"
    nbformat.write(bench_export.build_notebook(120), bench)
    notebooks = [bench, *sorted((ROOT / "tests" / "fixtures").glob("**/*.ipynb"))]
    modules = 0
    for i, notebook in enumerate(notebooks):
        try:
            result = export_notebook(notebook, tmp_path / f"out{i}")
        except NbopsError:
            continue
        for path in result.package_dir.rglob("*.py"):
            text = path.read_text("utf-8")
            assert layout._unsure(text) == (OLD_UNSURE.search(text) is not None)
            code = layout._blanked(text)
            assert code == OLD_TOKENS.sub(old_blank, text)
            lines = code.translate(layout._BRACKETS).split("\n")
            logical = layout._logical_lines(lines)
            assert logical == old_logical_lines(lines), path
            if logical is not None:
                assert layout._blocks(logical) == old_blocks(logical), path
            modules += 1
    assert modules >= 20


# -- cell spans -----------------------------------------------------------------------------------


@st.composite
def _module_layouts(draw: st.DrawFn) -> tuple[list[layout.Block], list[tuple[int, str]], int]:
    """A module's statement layout (as statement_blocks gives it: statements in order, not
    overlapping; functions among the module's statements) and markers on some of its lines."""
    line = 1
    module_starts: list[int] = []
    module_ends: list[int] = []
    functions: list[layout.Block] = []
    for _ in range(draw(st.integers(0, 6))):
        line += draw(st.integers(0, 3))
        first = line
        if draw(st.booleans()):  # a function and its body
            line += 1
            starts, ends = [], []
            for _ in range(draw(st.integers(0, 5))):
                line += draw(st.integers(0, 2))
                starts.append(line)
                line += draw(st.integers(0, 3))
                ends.append(line)
                line += 1
            line += draw(st.integers(0, 1))  # a `return` left out
            functions.append((first, line, starts, ends))
        else:
            line += draw(st.integers(0, 3))
        module_starts.append(first)
        module_ends.append(line)
        line += 1
    count = line + draw(st.integers(0, 3))
    lines = draw(st.lists(st.integers(1, count), unique=True, max_size=12))
    markers = [(n, f"c{n % 4}") for n in sorted(lines)]
    return [*functions, (1, sys.maxsize, module_starts, module_ends)], markers, count


@settings(max_examples=3000, deadline=None)
@given(_module_layouts())
def test_the_cells_last_lines_are_those_the_old_code_found(
    case: tuple[list[layout.Block], list[tuple[int, str]], int],
) -> None:
    blocks, markers, count = case
    assert exporter._marker_ends(blocks, markers, count) == old_marker_ends(blocks, markers, count)


def test_a_kept_layout_whose_last_lines_do_not_ascend_is_made_again() -> None:
    marked = {"p/m.py": "x = 1\n"}
    good = [[1, 1, [2, 3], [2, 3]], [1, sys.maxsize, [1], [1]]]
    assert exporter._is_layouts({"p/m.py": good}, marked)
    bad = [[1, 1, [2, 3], [3, 2]], [1, sys.maxsize, [1], [1]]]
    assert not exporter._is_layouts({"p/m.py": bad}, marked)


# -- the manifest -------------------------------------------------------------------------------

_ANY = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans(), st.floats())


@settings(max_examples=500, deadline=None)
@given(
    spans=st.lists(
        st.fixed_dictionaries(
            {
                "index": st.one_of(st.integers(0, 9), _ANY),
                "id": st.one_of(st.text(max_size=4), _ANY),
                "file": st.text(max_size=4),
                "first_line": st.integers(1, 9),
                "last_line": st.one_of(st.integers(1, 9), _ANY),
            }
        ),
        max_size=3,
    ),
    inputs=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(max_size=3),
                "source": st.one_of(st.sampled_from(["parameter", "step", "setup"]), _ANY),
                "step": st.one_of(st.none(), st.text(max_size=3), _ANY),
            }
        ),
        max_size=3,
    ),
    outputs=st.lists(st.one_of(st.text(max_size=3), _ANY), max_size=3),
)
def test_steps_validated_from_their_fields_equal_steps_built_model_by_model(
    spans: list[dict[str, object]], inputs: list[dict[str, object]], outputs: list[object]
) -> None:
    fields = {
        "key": "train",
        "role": "train",
        "function": "train:train",
        "cells": spans,
        "inputs": inputs,
        "outputs": outputs,
    }
    try:
        built = StepEntry(
            key="train",
            role="train",
            function="train:train",
            cells=[CellSpan(**s) for s in spans],  # type: ignore[arg-type]
            inputs=[StepInputEntry(**i) for i in inputs],  # type: ignore[arg-type]
            outputs=outputs,  # type: ignore[arg-type]
        )
    except ValidationError:
        with pytest.raises(ValidationError):
            StepEntry.model_validate(fields)
        return
    validated = StepEntry.model_validate(fields)
    assert validated == built
    assert validated.model_dump_json(indent=2) == built.model_dump_json(indent=2)
    for new, old in zip(
        [validated, *validated.cells, *validated.inputs],
        [built, *built.cells, *built.inputs],
        strict=True,
    ):
        assert type(new) is type(old)
        assert new.model_fields_set == old.model_fields_set


def test_the_layout_entry_keeps_its_name() -> None:
    """The cache key is hashed piece by piece: the same bytes, so the same entry file."""
    marked = {"p/a.py": "def f():\n    # cell a\n    x = 1\n", "p/b.py": "y = 2\n"}
    digest = hashlib.sha256(f"{cache.CACHE_VERSION}\0layout\0{sys.version_info[:2]}\0".encode())
    for rel, text in marked.items():
        digest.update(rel.encode() + b"\0" + text.encode() + b"\0")
    exporter._layouts(marked)
    names = [p.stem for p in cache.cache_dir(exporter.LINES_CACHE_KIND).glob("*.json")]
    assert names == [digest.hexdigest()]
