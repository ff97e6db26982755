"""The faster value_types (export/types.py) gives what the implementation it replaced gives
(tests/export/reference_value_types.py, kept as it was): on every notebook of the repository
and on generated notebooks that reach each of its rules. And the step bodies indented at once
(render._indent_parts) equal the cells indented one by one with a full tokenize."""

from __future__ import annotations

import ast
import io
import tempfile
import tokenize
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import NbopsError
from nbops.export import render, types
from nbops.notebook.analysis import StepGraph, analyse
from nbops.notebook.read import read_notebook
from tests.export import reference_value_types as reference
from tests.helpers import REPO, build_notebook

_NOTEBOOKS = sorted(
    [*REPO.joinpath("example_notebooks").glob("*.ipynb"), *REPO.joinpath("tests").rglob("*.ipynb")]
)


def _graph(path: Path) -> StepGraph | None:
    try:
        return analyse(read_notebook(path), problems=[])
    except NbopsError:
        return None


def _plain(found: dict[str, types.ValueType] | dict[str, reference.ValueType]) -> dict[str, object]:
    return {name: (kind.text, kind.needs) for name, kind in found.items()}


def _same_types(graph: StepGraph) -> None:
    """Equal, in the same order (the two modules have a ValueType class each)."""
    found, expected = types.value_types(graph), reference.value_types(graph)
    assert list(found) == list(expected)
    assert _plain(found) == _plain(expected)


def test_every_notebook_gets_the_reference_types() -> None:
    """Every notebook of the repository that nbops analyses (the others have no tags)."""
    analysed = 0
    for path in _NOTEBOOKS:
        graph = _graph(path)
        if graph is not None:
            _same_types(graph)
            analysed += 1
    assert analysed >= 6, f"only {analysed} of {len(_NOTEBOOKS)} notebooks analysed"


_SETUP = [
    "import pandas as pd",
    "import numpy as np",
    "import math",
    "from math import sqrt",
    "from sklearn.model_selection import train_test_split",
    "from sklearn.linear_model import LinearRegression",
    "from sklearn.metrics import accuracy_score, mean_squared_error",
    "COLS = ['a', 'b']",
    "TARGET = 'y'",
    "def load() -> pd.DataFrame:\n    return pd.DataFrame({'a': [1]})",
    "def arr() -> np.ndarray:\n    return np.zeros(3)",
    "def count() -> int:\n    return 1",
]
_NAMES = ["df", "X", "y", "model", "s", "v", "w", "pred"]
_EXPRESSIONS = [
    "1", "2.5", "'text'", "True", "None", "[1, 2]", "{'a': 1}", "[i for i in range(3)]",
    "{k: 1 for k in 'ab'}", "(1, 2)", "NAME", "pd.read_csv('f.csv')", "pd.DataFrame({'a': [1]})",
    "pd.concat([NAME, NAME])", "NAME.drop(columns=['a'])", "NAME.drop(columns=['a'], inplace=True)",
    "NAME.copy()", "NAME.head()", "NAME['a']", "NAME[['a', 'b']]", "NAME[COLS]", "NAME[TARGET]",
    "NAME[0]", "NAME[n]", "NAME[['a', 1]]", "float(NAME)", "int(3.2)", "round(NAME)",
    "round(NAME, 2)", "len(NAME)", "str(NAME)", "LinearRegression()", "LinearRegression().fit(X, y)",
    "NAME.fit(X, y)", "NAME.predict(X)", "NAME.predict_proba(X)", "NAME.score(X, y)",
    "accuracy_score(y, NAME)", "mean_squared_error(y, NAME)", "sqrt(2)", "math.sqrt(NAME)",
    "load()", "arr()", "count()", "train_test_split(X, y)", "NAME + 1", "np.zeros(3)",
    "NAME.sample(2)", "NAME.values", "(w := 3)", "f(NAME)", "NAME.fit(X, y).predict(X)",
]  # fmt: skip


def _own_names(step: int) -> list[str]:
    """Names only step `step` binds (one producer each: their types are kept more often)."""
    return [f"{n}{step}" for n in _NAMES[:4]]


@st.composite
def _statement(draw: st.DrawFn, step: int) -> str:
    def name() -> str:  # bound: a shared name or one of the step's own
        return draw(st.sampled_from([*_NAMES, *_own_names(step)]))

    def read() -> str:  # read: also the names earlier steps bound
        return draw(
            st.sampled_from([*_NAMES, *(n for k in range(step + 1) for n in _own_names(k))])
        )

    def expression() -> str:
        return draw(st.sampled_from(_EXPRESSIONS)).replace("NAME", read())

    forms = [
        *[lambda: f"{name()} = {expression()}"] * 6,
        lambda: f"{name()}, {name()} = {expression()}, {expression()}",
        lambda: f"{name()}, {name()} = {expression()}",
        lambda: f"[{name()}, {name()}] = {expression()}, {expression()}",
        lambda: f"{name()}, {name()}, {name()}, {name()} = train_test_split({name()}, {name()})",
        lambda: f"{name()}, {name()} = train_test_split({name()})",
        lambda: f"{name()}, *{name()} = {expression()}",
        lambda: f"{name()}: int = {expression()}",
        lambda: f"{name()} += {expression()}",
        lambda: f"{name()}['a'] = {expression()}",
        lambda: f"{name()} = {name()} = {expression()}",
        lambda: f"for {name()} in {expression()}:\n    pass",
        lambda: f"with {expression()} as {name()}:\n    pass",
        lambda: f"if {expression()}:\n    {name()} = {expression()}",
        lambda: expression(),
        lambda: "import os",
        lambda: f"del {name()}",
        lambda: "def helper() -> pd.Series:\n    return pd.Series([1])",
        lambda: "def helper2() -> float:\n    return 1.0",
        lambda: f"{name()} = helper()",
        lambda: f"{name()} = helper2()",
    ]
    return draw(st.sampled_from(forms))()


def _cell(step: int) -> st.SearchStrategy[str]:
    return st.lists(_statement(step), min_size=1, max_size=3).map("\n".join)


_TAGS = ["transform:a", "transform:b", "train", "evaluate"]


@st.composite
def _notebook(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    setup = draw(st.lists(st.sampled_from(_SETUP), min_size=3, max_size=12, unique=True))
    setup.sort(key=_SETUP.index)  # the definitions after the imports they read
    cells = [("\n".join(setup), ["setup"])]
    cells.append(("n = 2\nrate = 0.5\nlabel = 'x'", ["parameters"]))
    for step, tag in enumerate(_TAGS):
        for source in draw(st.lists(_cell(step), min_size=1, max_size=3)):
            cells.append((source, [tag]))
    # Every value is read at the end: each step returns the names it binds.
    every = [*_NAMES, *(n for k in range(len(_TAGS)) for n in _own_names(k))]
    cells.append((f"print({', '.join(every)})", ["evaluate"]))
    return cells


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_notebook())
def test_generated_notebooks_get_the_reference_types(cells: list[tuple[str, list[str]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        graph = _graph(build_notebook(Path(folder) / "nb.ipynb", cells))
        if graph is not None:
            _same_types(graph)


@pytest.mark.parametrize(
    "source",
    [
        "x = 1.5\nx: int = 2\ny = x",
        "x = 1.5\nx += 1\ny = x",
        "x = 1.5\nfor x in range(2):\n    pass\ny = x",
        "x = pd.read_csv('f')\nx.drop(columns=['a'], inplace=True)\ny = x.copy()",
        "x = 1.5\ny = x = z = 2\nw = y",
        "def f() -> pd.DataFrame:\n    pass\nx = f()\ny = x[['a']]\nz = x[COLS]\nw = x[TARGET]",
        "x = f()\ndef f() -> float:\n    pass\ny = f()",
        "x, y = 1, 'a'\nz, w = [1.5], {}\nv = (x, y)",
        "x, y = train_test_split(pd.DataFrame(), np.zeros(2))\nz = x.fit(y)",
        "x = LinearRegression()\ny = x.fit(1, 2)\nz = y.predict(3)\nw = y.score(1, 2)",
        "import os\nx = 1\nx",
        "x = [i for i in range(3)]\ny = (z := 2)",
    ],
)
def test_written_cells_get_the_reference_types(source: str) -> None:
    cells = [
        ("import pandas as pd\nimport numpy as np\nfrom sklearn.linear_model import "
         "LinearRegression\nfrom sklearn.model_selection import train_test_split\n"
         "COLS = ['a']\nTARGET = 'a'", ["setup"]),
        (source, ["transform:a"]),
        ("print(x, y, z, w, v)", ["train"]),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        graph = _graph(build_notebook(Path(folder) / "nb.ipynb", cells))
    assert graph is not None
    _same_types(graph)


def test_the_generated_notebooks_reach_the_typed_rules() -> None:
    """The generator above makes notebooks whose values get types other than Any (else the
    comparison would hold whatever the rules did)."""
    cells = [
        ("import pandas as pd\nimport numpy as np\nfrom sklearn.linear_model import "
         "LinearRegression\nfrom sklearn.model_selection import train_test_split", ["setup"]),
        ("n = 2", ["parameters"]),
        ("df = pd.read_csv('f.csv')\nX = df[['a', 'b']]\ny = df['a']", ["transform:a"]),
        ("X_train, X_test, y_train, y_test = train_test_split(X, y)", ["transform:b"]),
        ("model = LinearRegression().fit(X_train, y_train)", ["train"]),
        ("pred = model.predict(X_test)\nv = model.score(X_test, y_test)", ["evaluate"]),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        graph = _graph(build_notebook(Path(folder) / "nb.ipynb", cells))
    assert graph is not None
    _same_types(graph)
    found = types.value_types(graph)
    assert {k: v.text for k, v in found.items() if v != types.ANY} == {
        "X": "pd.DataFrame",
        "y": "pd.Series",
        "X_train": "pd.DataFrame",
        "X_test": "pd.DataFrame",
        "y_train": "pd.Series",
        "y_test": "pd.Series",
        "model": "LinearRegression",
        "pred": "np.ndarray",
        "v": "float",
    }


def _indent_tokenized(code: str, prefix: str = "    ") -> str:
    """render._indent as it was before any shortcut: every cell tokenized."""
    in_string: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        tokens = []
    start_row = None
    for tok in tokens:
        if tok.type == tokenize.STRING:
            in_string.update(range(tok.start[0] + 1, tok.end[0] + 1))
        elif tok.type == getattr(tokenize, "FSTRING_START", -1):
            start_row = tok.start[0]
        elif tok.type == getattr(tokenize, "FSTRING_END", -1) and start_row is not None:
            in_string.update(range(start_row + 1, tok.end[0] + 1))
            start_row = None
    lines = code.splitlines(keepends=True)
    return "".join(
        line if (n in in_string or not line.strip()) else prefix + line
        for n, line in enumerate(lines, start=1)
    )


_pieces = st.sampled_from(
    ["x = 1", '"""', "'''", 's = """a\nb"""', "t = f'''{x}\n'''", "u = 'a\\\nb'", '"', "'", "\\", "\r", "\n", "\r\n", " ", "\t", "\x0c", "\u2028",
     "\x1f", "é", "a", "f", "(", ")", "#", "f'{", "}'", "y"]
)  # fmt: skip
# Each part ends in a line break, as every cell's text and every call line of pipeline.py.
_part = st.lists(_pieces, max_size=8).map(lambda p: "".join(p) + "\n")


@settings(max_examples=600, deadline=None)
@given(st.lists(_part, max_size=5))
def test_parts_indented_at_once_equal_parts_indented_one_by_one(parts: list[str]) -> None:
    expected = "".join(_indent_tokenized(part) for part in parts)
    assert render._indent_parts(parts) == expected
    for part in parts:
        assert render._indent(part) == _indent_tokenized(part)


def _module_sources() -> list[str]:
    """Real code: nbops's export modules and the cells of the repository's notebooks."""
    sources = [p.read_text("utf-8") for p in sorted(REPO.joinpath("src/nbops/export").glob("*.py"))]
    for path in _NOTEBOOKS:
        graph = _graph(path)
        if graph is not None:
            sources += [a.code.source for a in graph.setup]
            sources += [a.code.source for s in graph.steps for a in s.cells]
    return sources


def test_the_walk_finds_what_ast_walk_finds_in_its_order() -> None:
    for source in _module_sources():
        tree = ast.parse(source)
        assert render._walk(tree) == list(ast.walk(tree))


def _nbops_attributes(tree: ast.AST) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "nbops"
    }


_code_pieces = st.sampled_from(
    ["nbops", "ｎｂｏｐｓ", "nbop", "s", "nb", "ops", ".", "log_metric", "x", " = ", "\n", "1",
     "(", ")", "#", "'", "ｘ", "_"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_code_pieces, max_size=10).map("".join))
def test_a_cell_skipped_for_not_naming_nbops_reads_no_nbops_attribute(source: str) -> None:
    """_only_logs walks only the cells _may_name_nbops keeps: the others read no `nbops.x`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    if not render._may_name_nbops(source):
        assert _nbops_attributes(tree) == set()


@pytest.mark.parametrize("source", ["ｎｂｏｐｓ.log_metric('a', 1)", "nbops.log_param('a', 1)"])
def test_the_nbops_name_is_found_however_it_is_written(source: str) -> None:
    assert render._may_name_nbops(source)
    assert _nbops_attributes(ast.parse(source))
