"""MODEL_CARD.md shows data-derived text as text: a class label, a column name, a slice
predicate, a metric or parameter name that holds HTML or Markdown (`<script>`, `|`, a line
break, a heading) renders as those characters, never as an element, a cell or a heading.

The card is rendered as a viewer would (markdown-it, CommonMark with raw HTML allowed, plus
GFM tables), and the rendered HTML is read back with the standard library's parser.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from nbformat.v4 import new_code_cell, new_notebook

from nbops.bundle.manifest import ServingSpec
from nbops.export.exporter import export_notebook
from nbops.quality.schema import infer_schema

from .conftest import Built, import_package, png_bytes

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Class labels, column names and the label column: HTML, pipes, a line break with a heading,
# backticks that would close a code span, emphasis and a link.
CLASSES = [f"{SCRIPT}|yes", "no|\n# injected heading", "`code` **bold** [x](javascript:1)"]
COLUMNS = [f"{IMG}|a", "b`|`<b>bold</b>"]
LABEL = "target|<i>x</i>"
NOTEBOOK_NAME = "nb <script>x</script>|.ipynb"

LOAD = f"""\
rng = np.random.default_rng(0)
x = rng.normal(size=n_rows)
raw = pd.DataFrame({{{COLUMNS[0]!r}: x, {COLUMNS[1]!r}: rng.normal(size=n_rows)}})
raw[{LABEL!r}] = np.array({CLASSES!r})[np.digitize(x, [-0.5, 0.5])]
"""
FEATURES = f"feats = raw[[{COLUMNS[0]!r}, {COLUMNS[1]!r}]]\n"
TRAIN = f"model = DecisionTreeClassifier(max_depth=3).fit(feats, raw[{LABEL!r}])\n"
METRIC = f"acc|{SCRIPT}"
PREDICATE = f'{COLUMNS[1]} == "{SCRIPT}|"'
PARAMETER = f"p|{SCRIPT}"
PARAMETER_VALUE = "v\n\n## injected\n| x | y |"
GATE = f"{METRIC} >= 0.5"


def write_hostile_notebook(path: Path) -> Path:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    cells = [
        ("import numpy as np\nimport pandas as pd\n"
         "from sklearn.tree import DecisionTreeClassifier\n", "setup"),
        ("n_rows = 90\n", "parameters"),
        (LOAD, "transform:load"),
        (FEATURES, "transform:features"),
        (TRAIN, "train"),
    ]  # fmt: skip
    for source, tag in cells:
        cell = new_code_cell(source)
        cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory, built: Built) -> str:
    """The model card of a bundle built from the hostile notebook, with a run's hostile
    metrics, slices, gates, parameters and data fingerprints."""
    root = tmp_path_factory.mktemp("hostile-card")
    notebook = write_hostile_notebook(root / "hostile.ipynb")
    export = export_notebook(notebook, root / "pipelines")
    results = import_package(export.folder, export.name).run()
    raw, model = results.raw, results.model
    assert sorted(model.classes_) == sorted(CLASSES)
    spec = ServingSpec.from_export(
        export.manifest, "transform:features", request_columns=COLUMNS, label=LABEL
    )
    slices = {
        "kind": "nbops.slices",
        "metrics": [METRIC],
        "n_rows": 90,
        "overall": {METRIC: 0.9},
        "rows": [{"name": PREDICATE, "metric": METRIC, "value": 0.8, "count": 30, "gap": -0.1,
                  "reason": f"reason {SCRIPT}"}],
    }  # fmt: skip
    folder = built.build(
        root / "bundles",
        name="hostile",
        model=model,
        export_folder=export.folder,
        serving=spec,
        schema=infer_schema(raw, label=LABEL, name="hostile"),
        source={
            "notebook": NOTEBOOK_NAME,
            "run_id": f"run|{SCRIPT}",
            "parameters": {PARAMETER: PARAMETER_VALUE, "n_rows": 90},
            "data": [{"name": f"raw|{IMG}", "type": "dataframe", "sha256": "ab" * 32}],
            "git_commit": "0123456789abcdef",
        },
        metrics={METRIC: 0.9},
        slice_metrics=slices,
        gates=[{"gate": GATE, "passed": False, "reason": f"0.9 < 0.5 {SCRIPT}"}],
        override=True,
        failed_gates=[GATE],
        requirements=list(export.manifest.requirements),
        plots=[(f"plot {SCRIPT}", png_bytes())],
    )
    return (folder / "MODEL_CARD.md").read_text(encoding="utf-8")


def render(markdown: str) -> str:
    """HTML as a permissive viewer makes it: CommonMark, raw HTML passed through, tables."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


class Page(HTMLParser):
    """The elements of rendered HTML, the text of its headings and its tables' cells."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._text: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        if tag in ("h1", "h2", "h3", "th", "td"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if self._text is None:
            return
        text = "".join(self._text)
        if tag in ("h1", "h2", "h3"):
            self.headings.append(text)
            self._text = None
        elif tag in ("th", "td"):
            self.tables[-1][-1].append(text)
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


# The elements a card is made of; anything else came from the data.
CARD_ELEMENTS = {"h1", "h2", "h3", "p", "ul", "li", "code", "strong", "img",
                 "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip


def test_no_html_element_of_the_data_survives_rendering(card: str) -> None:
    page = Page(render(card))
    tags = {tag for tag, _ in page.elements}
    assert tags <= CARD_ELEMENTS, tags - CARD_ELEMENTS
    for tag, attrs in page.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert str(attrs["src"]).startswith("card/"), attrs
    assert "<script" not in render(card)


def shown_text(html_text: str) -> str:
    """The text a reader sees in rendered HTML (elements dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def test_data_shows_as_its_own_characters(card: str) -> None:
    shown = shown_text(render(card))
    for value in [CLASSES[0], CLASSES[2], *COLUMNS, LABEL, NOTEBOOK_NAME, METRIC, GATE]:
        assert value in shown, value
    assert "no| # injected heading" in shown  # the line break became a space


def test_tables_keep_their_columns_and_each_value_stays_in_its_cell(card: str) -> None:
    page = Page(render(card))
    by_header = {tuple(table[0]): table[1:] for table in page.tables}
    for header, rows in by_header.items():
        assert all(len(row) == len(header) for row in rows), (header, rows)
    assert by_header[("metric", "value")] == [[METRIC, "0.9"]]
    assert [PARAMETER, "v ## injected | x | y |"] in by_header[("parameter", "value")]
    assert by_header[("gate", "result", "reason")] == [[GATE, "FAIL", f"0.9 < 0.5 {SCRIPT}"]]
    slices = by_header[("slice", "metric", "value", "rows", "CI", "gap / note")]
    assert [PREDICATE, METRIC, "0.8", "30", "", f"reason {SCRIPT}"] in slices
    assert by_header[("data", "type", "sha256", "rows", "columns")][0][:2] == [
        f"raw|{IMG}",
        "dataframe",
    ]


def test_data_adds_no_heading(card: str) -> None:
    assert Page(render(card)).headings == [
        "hostile — model card (bundle v1)",
        "Purpose",
        "Model",
        "Data",
        "Metrics",
        "Slice metrics",
        "Plots",
        "Quality gates",
        "Provenance",
    ]


# -- the escaping helper, on any text ---------------------------------------------------------


def _as_shown(text: str) -> str:
    """What a viewer shows for `text` inline: line breaks and control characters as spaces,
    surrounding spaces trimmed."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip(" ")


TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("<>&|`*_[]()!#\\$~\n"),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.booleans())
def test_md_text_renders_as_itself_inline(text: str, code: bool) -> None:
    from nbops._markdown import inline as _md

    rendered = render(f"x {_md(text, code=code)} y")
    tags = {tag for tag, _ in Page(rendered).elements}
    assert tags <= {"p", "code"}, (text, tags)
    shown = shown_text(rendered).strip()
    expected = re.sub(" +", " ", f"x {_as_shown(text)} y")
    assert re.sub(" +", " ", shown.replace("\n", " ")) == expected


@settings(max_examples=300, deadline=None)
@given(TEXT, st.booleans())
def test_md_text_stays_in_its_table_cell(text: str, code: bool) -> None:
    from nbops._markdown import inline as _md

    table = f"| a | b |\n|---|---|\n| {_md(text, code=code)} | z |\n"
    page = Page(render(table))
    assert [c.strip() for c in page.tables[0][1]] == [_as_shown(text).strip(), "z"], text
