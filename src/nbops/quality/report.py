"""The inspection report: data validation, slice metrics and gate results for one model and
data set, as HTML fragments and as a self-contained page.

Pure data in, HTML out: the inspector (nbops.workbench.inspector) computes and shows it,
`nbops validate --html` and the monitor report (nbops.bundle.monitor) render its Data section.

The fragments carry their colours inline as JupyterLab theme variables with light fallbacks
(`var(--jp-layout-color1, #ffffff)`): in JupyterLab they follow its light or dark theme (a
row is the theme's background tinted by its status, its text the theme's text colour), and
outside JupyterLab (a saved page, a CI artifact) the fallbacks give the light look.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nbops.gates import GateResult

# A row's status tint, mixed into the theme's background: pale on white, deep on dark grey.
_STATUS_TINT = {"pass": "#10b981", "warn": "#f59e0b", "fail": "#ef4444", "skipped": "#6b7280"}
# The light look without the theme variables (a browser without color-mix, a saved page).
_STATUS_FALLBACK = {"pass": "#d1fae5", "warn": "#fef3c7", "fail": "#fee2e2", "skipped": "#f3f4f6"}
_BACKGROUND = "var(--jp-layout-color1, #ffffff)"
_TEXT = "var(--jp-content-font-color1, #111827)"
_BORDER = "var(--jp-border-color1, #d1d5db)"
_VERDICT_COLOUR = {
    "pass": "var(--jp-success-color1, #059669)",
    "fail": "var(--jp-error-color1, #dc2626)",
}
_TABLE_STYLE = f"border-collapse:collapse;margin:.5em 0;color:{_TEXT};background:{_BACKGROUND}"
_CELL_STYLE = f"border:1px solid {_BORDER};padding:3px 6px;text-align:left;vertical-align:top"


def _row_style(status: str | None) -> str:
    """A row's inline style: the theme's text on the theme's background, tinted by status."""
    if status is None:
        return f"background:{_BACKGROUND};color:{_TEXT}"
    tint = _STATUS_TINT.get(status, _STATUS_TINT["skipped"])
    fallback = _STATUS_FALLBACK.get(status, _STATUS_FALLBACK["skipped"])
    return (
        f"background:{fallback};"
        f"background:color-mix(in srgb, {tint} 18%, {_BACKGROUND});color:{_TEXT}"
    )


@dataclass
class InspectionReport:
    """Validation, slice metrics and gate results for one model and data set."""

    validation: Any | None = None  # nbops.quality.validate.ValidationReport
    slices: Any | None = None  # nbops.quality.slices.SliceReport
    gates: list[GateResult] = field(default_factory=list)
    skipped_gates: list[tuple[str, str]] = field(default_factory=list)
    drift_plots: list[tuple[str, bytes]] = field(default_factory=list)
    slice_plots: list[tuple[str, bytes]] = field(default_factory=list)
    title: str = "nbops inspection"

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def verdict(self) -> str:
        """`pass`, `fail`, or `no gates` when nothing was checked."""
        if not self.gates:
            return "no gates"
        return "fail" if self.failed_gates else "pass"

    def export_state(self, override: bool = False) -> tuple[bool, str]:
        """Whether the Export bundle button is enabled, and the reason shown beside it."""
        failed = self.failed_gates
        if not failed:
            return True, "all gates pass" if self.gates else "no gates to check"
        names = "; ".join(f"{g.gate} ({g.reason})" for g in failed)
        if override:
            return True, f"override: exporting although {len(failed)} gate(s) fail: {names}"
        return False, f"blocked by {len(failed)} failing gate(s): {names}"

    # -- HTML fragments, shared by the widget and the static page --------------------------

    def data_html(self) -> str:
        if self.validation is None:
            return (
                "<p>No data was validated (pass <code>data=</code> and a schema or reference).</p>"
            )
        rows = []
        for check in self.validation.checks:
            examples = ", ".join(html.escape(repr(v)) for v in (check.examples or [])[:5])
            fraction = f"{check.fraction:.2%}" if check.fraction is not None else ""
            rows.append(
                f"<tr style='{_row_style(check.status)}'><td>{html.escape(check.status)}</td>"
                f"<td>{html.escape(check.kind)}</td><td>{html.escape(check.column or '')}</td>"
                f"<td>{check.count if check.count is not None else ''}</td><td>{fraction}</td>"
                f"<td>{html.escape(check.message)}</td><td>{examples}</td></tr>"
            )
        head = "<tr><th>status</th><th>check</th><th>column</th><th>rows</th><th>share</th><th>detail</th><th>examples</th></tr>"
        summary = (
            f"<p>{len(self.validation.checks)} checks: "
            f"{self.validation.gate_values()['data.failed_checks']:.0f} failed, "
            f"{self.validation.gate_values()['data.warned_checks']:.0f} warned; "
            f"{self.validation.gate_values()['data.drifted_columns']:.0f} drifted columns.</p>"
        )
        return summary + _table(head, rows) + _images(self.drift_plots)

    def slices_html(self) -> str:
        if self.slices is None:
            return "<p>No slice metrics (pass <code>model=</code>, <code>X=</code>, <code>y=</code> and <code>slices=</code>).</p>"
        frame = self.slices.to_frame()
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        rows = []
        for record in frame.to_dict("records"):
            small = bool(record.get("too_small"))
            cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in record.values())
            rows.append(f"<tr style='{_row_style('skipped' if small else None)}'>{cells}</tr>")
        table = _table(f"<tr>{head}</tr>", rows)
        return table + weak_segments_html(self.slices.weak) + _images(self.slice_plots)

    def gates_html(self) -> str:
        colour = _VERDICT_COLOUR.get(self.verdict, "var(--jp-ui-font-color2, #6b7280)")
        parts = [f"<h3 style='color:{colour}'>Verdict: {html.escape(self.verdict)}</h3>"]
        rows = []
        for g in self.gates:
            status = "pass" if g.passed else "fail"
            rows.append(
                f"<tr style='{_row_style(status)}'><td>{status}</td>"
                f"<td><code>{html.escape(g.gate)}</code></td><td>{html.escape(g.reason)}</td></tr>"
            )
        for text, reason in self.skipped_gates:
            rows.append(
                f"<tr style='{_row_style('skipped')}'><td>skipped</td>"
                f"<td><code>{html.escape(text)}</code></td><td>{html.escape(reason)}</td></tr>"
            )
        if rows:
            parts.append(_table("<tr><th>result</th><th>gate</th><th>why</th></tr>", rows))
        else:
            parts.append(
                "<p>No gates: add them to [tool.nbops] gates or pass <code>gates=</code>.</p>"
            )
        return "".join(parts)

    def to_html(self) -> str:
        """A self-contained HTML page (plots inlined) with the Data, Slices and Gates sections."""
        return html_page(
            self.title,
            f"<h2>Gates</h2>{self.gates_html()}"
            f"<h2>Data</h2>{self.data_html()}"
            f"<h2>Slices</h2>{self.slices_html()}",
        )


def html_page(title: str, body: str) -> str:
    """A self-contained page: the title (escaped) as heading, then `body` (HTML)."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
        "td,th{border:1px solid #d1d5db;padding:3px 6px;text-align:left}"
        "img{margin:4px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def html_table(header: Sequence[str], rows: Sequence[tuple[Sequence[str], str | None]]) -> str:
    """A theme-aware table of text cells (escaped here): each row is (cells, status), the
    status (pass, warn, fail, skipped or None) tinting the row as the report's tables do."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = [
        f"<tr style='{_row_style(status)}'>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        + "</tr>"
        for cells, status in rows
    ]
    return _table(head, body)


def weak_segments_html(weak: Sequence[Any]) -> str:
    """The "Weak segments" table of a slice report's `weak` rows (nothing when empty)."""
    if not weak:
        return ""
    rows = [
        (
            [
                str(rank),
                row.name,
                row.metric,
                _fmt(row.value),
                f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]",
                str(row.count),
                _fmt(row.gap),
            ],
            "warn",
        )
        for rank, row in enumerate(weak, start=1)
    ]
    header = ["rank", "segment", "metric", "value", "interval", "rows", "gap"]
    return (
        "<h3>Weak segments</h3><p>Where the model does worst, searched over single columns "
        "and pairs (numbers in quantile bins), ranked by the pessimistic end of the interval."
        "</p>" + html_table(header, rows)
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _table(head: str, rows: Sequence[str]) -> str:
    """A table with its theme colours and cell borders inline (no page stylesheet needed)."""
    body = head + "".join(rows)
    body = re.sub(r"<(td|th)>", rf"<\1 style='{_CELL_STYLE}'>", body)
    return f"<table style='{_TABLE_STYLE}'>{body}</table>"


def _images(plots: Sequence[tuple[str, bytes]]) -> str:
    return "".join(
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        for name, png in plots
    )
