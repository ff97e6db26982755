"""nbops's other reports show data-derived text as text too: the inspector's and the
monitor's HTML pages (escaped with html.escape) and the `nbops ci` Markdown summary
(escaped with nbops._markdown.inline). A column, a slice value, a gate or a metric named
`<script>...` or holding `|` becomes no element and no table cell.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from nbops.bundle.monitor import MonitorReport, PredictionShift
from nbops.gates import GateResult
from nbops.quality.report import InspectionReport
from nbops.quality.schema import infer_schema
from nbops.quality.slices import slice_metrics
from nbops.quality.validate import validate
from nbops.runs.ci import CiReport, summary_markdown
from nbops.runs.record import MetricPoint, RunRecord

SCRIPT = "<script>alert(1)</script>"
COLUMN = f"{SCRIPT}|<img src=x onerror=alert(1)>"
VALUE = f"{SCRIPT}|v"
GATE = GateResult(gate=f"acc|{SCRIPT} >= 0.9", passed=False, left=0.5, right=0.9,
                  reason=f"0.5 < 0.9 {SCRIPT}")  # fmt: skip


class Elements(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(page: str) -> None:
    tags = Elements(page).tags
    assert "script" not in {t for t, _ in tags}
    for tag, attrs in tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert str(attrs.get("src", "")).startswith("data:image/png"), attrs


def shown(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def hostile_validation() -> object:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({COLUMN: rng.normal(size=200), "k": ["a", "b"] * 100})
    schema = infer_schema(reference, name="ref")
    recent = pd.DataFrame({COLUMN: [np.nan] * 50 + list(rng.normal(5, 1, 150)),
                           "k": [VALUE] * 200})  # fmt: skip
    return validate(recent, schema)


def test_the_inspector_page_shows_hostile_names_as_text() -> None:
    validation = hostile_validation()
    y = np.array([0, 1] * 50)
    slices = slice_metrics(y, y[::-1], slices=pd.DataFrame({COLUMN: [VALUE, "w"] * 50}))
    report = InspectionReport(
        validation=validation, slices=slices, gates=[GATE], title=f"title {SCRIPT}"
    )
    page = report.to_html()
    assert_inert(page)
    text = shown(page)
    for value in (COLUMN, VALUE, GATE.gate, GATE.reason, f"title {SCRIPT}"):
        assert value in text, value


def test_the_monitor_page_shows_hostile_names_as_text() -> None:
    shift = PredictionShift(slice=f"{COLUMN} = {VALUE}", rows=40, reference_rows=40,
                            shift=0.5, measure="tv", status="fail")  # fmt: skip
    page = MonitorReport(validation=hostile_validation(), shifts=[shift]).to_html()
    assert_inert(page)
    assert f"{COLUMN} = {VALUE}" in shown(page)


def test_the_ci_summary_keeps_its_tables_and_shows_names_as_text(tmp_path: Path) -> None:
    record = RunRecord(
        run_id="20250101-000000-abcdef",
        notebook="nb.ipynb",
        started_at="2025-01-01T00:00:00+00:00",
        status="completed",
        metrics={f"acc|{SCRIPT}": [MetricPoint(value=0.5, ts=0.0)]},
    )
    report = CiReport(record=record, gates=[GATE], error=None, junit=tmp_path / "j.xml",
                      summary=tmp_path / "s.md")  # fmt: skip
    page = (
        MarkdownIt("commonmark", {"html": True})
        .enable("table")
        .render(summary_markdown(report, f"nb {SCRIPT}|.ipynb"))
    )
    assert_inert(page)
    rows = [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", r)]
        for r in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    ]
    assert [GATE.gate, "FAIL", GATE.reason] in rows
    assert [f"acc|{SCRIPT}", "0.5"] in rows
    assert f"nb {SCRIPT}|.ipynb" in shown(page)
