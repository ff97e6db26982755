"""Small plots for the inspector and the HTML report, as PNG bytes.

Drawn on matplotlib Figure objects directly (never pyplot), so nothing global changes in the
user's session and nothing opens a window.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbops.quality.slices import SliceReport

_PASS, _WARN, _FAIL, _GREY = "#059669", "#d97706", "#dc2626", "#9ca3af"


def _png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")  # type: ignore[attr-defined]
    return buffer.getvalue()


def distribution_plot(
    column: str,
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    status: str,
) -> bytes:
    """Reference vs current share per bin (or category), side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.2))
    ax = fig.add_subplot()
    positions = range(len(labels))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], reference, width, label="reference", color=_GREY)
    colour = {"fail": _FAIL, "warn": _WARN}.get(status, _PASS)
    ax.bar([p + width / 2 for p in positions], current, width, label="current", color=colour)
    ax.set_title(f"{column} ({status})", fontsize=9)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.set_xticks(list(positions))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=6)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def slice_bar_chart(
    metric: str,
    slices: Sequence[str],
    values: Sequence[float | None],
    overall: float | None,
    threshold: float | None,
    failing: Sequence[bool],
) -> bytes:
    """One bar per slice; the overall value and the gate's threshold as lines; failing
    slices in red, slices too small to judge in grey."""
    from matplotlib.figure import Figure

    height = max(1.6, 0.22 * len(slices) + 0.8)
    fig = Figure(figsize=(4.6, height))
    ax = fig.add_subplot()
    shown = [v if v is not None else 0.0 for v in values]
    colours = [
        _GREY if v is None else (_FAIL if bad else _PASS)
        for v, bad in zip(values, failing, strict=True)
    ]
    ax.barh(range(len(slices)), shown, color=colours)
    ax.set_yticks(range(len(slices)))
    ax.set_yticklabels(slices, fontsize=7)
    ax.invert_yaxis()
    if overall is not None:
        ax.axvline(overall, color="#111827", linewidth=1, label=f"overall {overall:.3g}")
    if threshold is not None:
        ax.axvline(
            threshold, color=_FAIL, linestyle="--", linewidth=1, label=f"gate {threshold:.3g}"
        )
    ax.set_title(metric, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    if overall is not None or threshold is not None:
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _png(fig)


def slice_plots(
    report: SliceReport, thresholds: Mapping[str, float] | None = None
) -> list[tuple[str, bytes]]:
    """One `slice_bar_chart` per metric of the report, named by the metric. `thresholds`
    (metric -> the bound of a `slices.<metric>.min` gate) draws that line and reds the
    slices below it; undefined values (NaN) show as grey bars."""
    thresholds = thresholds or {}
    frame = report.to_frame()
    plots = []
    for metric in report.metrics:
        rows = frame[frame["metric"] == metric]
        threshold = thresholds.get(metric)
        values = [None if v != v else float(v) for v in rows["value"]]  # NaN -> None
        failing = [v is not None and threshold is not None and v < threshold for v in values]
        names = [str(s) for s in rows["slice"]]
        chart = slice_bar_chart(
            metric, names, values, report.overall.get(metric), threshold, failing
        )
        plots.append((metric, chart))
    return plots


def estimate_over_windows(
    metric: str,
    windows: Sequence[str],
    values: Sequence[float | None],
    ci_low: Sequence[float | None],
    ci_high: Sequence[float | None],
    reference: float | None,
    threshold: float | None,
    realised: Sequence[float | None] | None = None,
) -> str:
    """The estimate of one metric over time windows with its interval as a band, the
    reference's value and the alert threshold as lines (and realised values as points when
    labels came): an SVG document as text, for inlining in an HTML report."""
    from matplotlib.figure import Figure

    def nan(seq: Sequence[float | None]) -> list[float]:
        return [float("nan") if v is None else float(v) for v in seq]

    fig = Figure(figsize=(6.0, 2.6))
    ax = fig.add_subplot()
    x = list(range(len(windows)))
    ax.fill_between(x, nan(ci_low), nan(ci_high), color=_PASS, alpha=0.18, label="95% interval")
    ax.plot(x, nan(values), marker="o", color=_PASS, linewidth=1.4, label="estimate")
    if realised is not None:
        ax.plot(x, nan(realised), "D", color="#111827", markersize=4, label="realised")
    if reference is not None:
        ax.axhline(reference, color=_GREY, linewidth=1, label=f"reference {reference:.3g}")
    if threshold is not None:
        ax.axhline(
            threshold,
            color=_FAIL,
            linestyle="--",
            linewidth=1,
            label=f"alert below {threshold:.3g}",
        )
    ax.set_xticks(x)
    ax.set_xticklabels(windows, rotation=30, ha="right", fontsize=6)
    ax.set_title(f"estimated {metric}", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, frameon=False, loc="best")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.find("<svg") :]
