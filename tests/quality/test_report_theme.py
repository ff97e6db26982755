"""The inspection report's tables read in JupyterLab's light and dark themes and outside
JupyterLab: each row's colours are theme variables with fallbacks, and resolved (with
JupyterLab Dark's values, or with the fallbacks a saved page uses) the text keeps a 4.5:1
contrast with its row, while failing and passing rows stay apart.

The browser test (tests/browser/test_polish_theme.py) measures the same in a real lab.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from nbops.gates import GateResult
from nbops.quality.report import InspectionReport
from nbops.quality.schema import infer_schema
from nbops.quality.slices import slice_metrics
from nbops.quality.validate import validate

# JupyterLab Dark's values of the variables the report uses (theme-dark-extension).
DARK = {
    "--jp-layout-color1": "#212121",
    "--jp-content-font-color1": "#ffffff",
    "--jp-border-color1": "#616161",
    "--jp-success-color1": "#4caf50",
    "--jp-error-color1": "#f44336",
    "--jp-ui-font-color2": "#8a8a8a",  # rgba(255,255,255,.54) on #111
}
OUTSIDE: dict[str, str] = {}  # no theme variables: the fallbacks apply

VAR = re.compile(r"var\((--[\w-]+),\s*([^()]+?)\)")
MIX = re.compile(r"color-mix\(in srgb,\s*(#[0-9a-f]{6})\s+(\d+)%,\s*(#[0-9a-f]{6})\)")


def resolve(value: str, theme: dict[str, str]) -> str:
    """CSS var() with fallbacks and srgb color-mix(), as a browser computes them."""
    value = VAR.sub(lambda m: theme.get(m.group(1), m.group(2).strip()), value)

    def mix(m: re.Match[str]) -> str:
        a, share, b = rgb(m.group(1)), int(m.group(2)) / 100, rgb(m.group(3))
        return "#" + "".join(
            f"{round(x * share + y * (1 - share)):02x}" for x, y in zip(a, b, strict=True)
        )

    return MIX.sub(mix, value).strip()


def rgb(colour: str) -> tuple[int, int, int]:
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [c / 255 for c in rgb(colour)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    x, y = sorted([luminance(a), luminance(b)], reverse=True)
    return (x + 0.05) / (y + 0.05)


def declarations(style: str) -> dict[str, str]:
    """The style attribute's declarations; a repeated property keeps its last value (the
    one a browser that understands it uses)."""
    found = {}
    for part in style.split(";"):
        if ":" in part:
            name, value = part.split(":", 1)
            found[name.strip()] = value.strip()
    return found


class Rows(HTMLParser):
    """Each body row's style and the text of its first cell (the status); every table's
    and every cell's style."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self.tables: list[str] = []
        self.cells: list[str] = []
        self._style: str | None = None
        self._first = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        style = dict(attrs).get("style") or ""
        if tag == "table":
            self.tables.append(style)
        elif tag == "tr":
            self._style, self._first = style, False
        elif tag in ("td", "th"):
            self.cells.append(style)
            # A body row (not the header): its status is its first cell's text.
            self._first = tag == "td" and self._style is not None

    def handle_data(self, data: str) -> None:
        if self._first and self._style is not None and data.strip():
            self.rows.append((self._style, data.strip()))
            self._style = None


@pytest.fixture(scope="module")
def report() -> InspectionReport:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=200), "size": rng.normal(10, 1, size=200)})
    current = reference.copy()
    current["size"] = current["size"] + 3
    y = pd.Series((reference["x"] > 0).astype(int))
    slices = slice_metrics(y, y, slices=pd.DataFrame({"g": ["a", "b"] * 100}), min_size=150)
    return InspectionReport(
        validation=validate(current, infer_schema(reference)),
        slices=slices,
        gates=[
            GateResult(gate="acc >= 0.9", passed=False, left=0.5, right=0.9, reason="0.5 < 0.9"),
            GateResult(gate="rows > 0", passed=True, left=1, right=0, reason="1 > 0"),
        ],
        skipped_gates=[("f1 >= 0.5", "needs 'f1'")],
    )


@pytest.mark.parametrize("section", ["data_html", "gates_html", "slices_html"])
def test_every_row_takes_its_colours_from_theme_variables_with_fallbacks(
    report: InspectionReport, section: str
) -> None:
    parsed = Rows(getattr(report, section)())
    assert parsed.rows
    for style, status in parsed.rows:
        found = declarations(style)
        assert found["color"] == "var(--jp-content-font-color1, #111827)", (status, style)
        assert "var(--jp-layout-color1, #ffffff)" in found["background"], (status, style)
    for style in parsed.cells:
        assert "var(--jp-border-color1, #d1d5db)" in style


@pytest.mark.parametrize("theme", [DARK, OUTSIDE], ids=["jupyterlab-dark", "outside-jupyterlab"])
@pytest.mark.parametrize("section", ["data_html", "gates_html", "slices_html"])
def test_row_text_reads_on_its_row_and_statuses_stay_apart(
    report: InspectionReport, theme: dict[str, str], section: str
) -> None:
    parsed = Rows(getattr(report, section)())
    background: dict[str, set[str]] = {}
    for style, status in parsed.rows:
        found = declarations(style)
        text, row = resolve(found["color"], theme), resolve(found["background"], theme)
        assert contrast(text, row) >= 4.5, (status, text, row)
        background.setdefault(status, set()).add(row)
    if section != "slices_html":
        assert background["pass"].isdisjoint(background["fail"])
        assert len(background["pass"] | background["fail"]) == 2


def test_a_browser_without_color_mix_gets_the_light_status_colours(
    report: InspectionReport,
) -> None:
    """The first background declaration is a plain colour: a browser that does not know
    color-mix() keeps it (and the page still reads, on the light fallback text colour)."""
    for style, status in Rows(report.gates_html()).rows:
        plain = re.match(r"background:(#[0-9a-f]{6});background:color-mix", style)
        assert plain, style
        assert contrast(plain.group(1), "#111827") >= 4.5, status


@pytest.mark.parametrize(
    ("gates", "variable"),
    [
        ([GateResult(gate="a", passed=True, left=1, right=0, reason="")], "--jp-success-color1"),
        ([GateResult(gate="a", passed=False, left=0, right=1, reason="")], "--jp-error-color1"),
        ([], "--jp-ui-font-color2"),
    ],
)
def test_the_verdict_is_coloured_by_the_theme(gates: list[GateResult], variable: str) -> None:
    page = InspectionReport(gates=gates).gates_html()
    heading = re.search(r"<h3 style='color:([^']+)'>Verdict", page)
    assert heading and heading.group(1).startswith(f"var({variable}, #")
    colour = resolve(heading.group(1), DARK)
    assert contrast(colour, "#111111") >= 3  # large text on JupyterLab Dark's background
