"""The performance section of a monitor report: calibration on the reference, estimates
(overall, per slice, per time window), realised metrics when labels came, alerts, and how
they render (a dict for --json, HTML tables and an SVG plot for --html).

Alert rule (`max_drop`): a metric estimated (overall or in a window of at least `MIN_SIZE`
rows) below the reference's realised value minus `max_drop` is an alert, as is a realised
value below it; an interval whose low end is below it, or a slice estimated below its own
reference minus `max_drop`, is a warning.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from nbops.quality.estimate.calibration import CalibrationReport
from nbops.quality.estimate.cbpe import MIN_SIZE, GroupMetrics
from nbops.quality.estimate.realised import Comparison
from nbops.quality.report import _row_style, _table, weak_segments_html

LOWER_IS_BETTER = ("mae", "rmse")


@dataclass
class Window:
    """One time (or row-count) window of the request log and its overall estimate."""

    label: str
    start: str | None
    end: str | None
    estimate: GroupMetrics
    realised: GroupMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "estimate": self.estimate.to_dict(),
            "realised": self.realised.to_dict() if self.realised else None,
        }


@dataclass
class PerformanceReport:
    task: str  # "classification" or "regression"
    metrics: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    positive: Any = None
    max_drop: float = 0.05
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    calibration: CalibrationReport | None = None
    reference: list[GroupMetrics] = field(default_factory=list)  # realised on the reference
    estimate: list[GroupMetrics] = field(default_factory=list)  # overall, then slices
    windows: list[Window] = field(default_factory=list)
    realised: list[GroupMetrics] = field(default_factory=list)  # with --labels
    comparisons: list[Comparison] = field(default_factory=list)
    labels_matched: int | None = None
    labels_unmatched: int | None = None
    plots: list[tuple[str, str]] = field(default_factory=list)  # (metric, SVG text)
    weak: list[Any] = field(default_factory=list)  # weak segments on the labelled rows

    def reference_value(self, metric: str, group: str = "overall") -> float | None:
        for g in self.reference:
            if g.name == group and metric in g.metrics:
                return g.metrics[metric].value
        return None

    def threshold(self, metric: str, group: str = "overall") -> float | None:
        value = self.reference_value(metric, group)
        return None if value is None else value - self.max_drop

    @property
    def alerts(self) -> list[str]:
        found = []
        scopes = [("estimated", "overall", self.estimate[:1])]
        scopes += [("estimated", f"window {w.label}", [w.estimate]) for w in self.windows]
        scopes += [("realised", "overall", self.realised[:1])]
        for kind, where, groups in scopes:
            for group in groups:
                if group.too_small and where != "overall":
                    continue
                for metric, interval in group.metrics.items():
                    bound = self.threshold(metric)
                    if metric in LOWER_IS_BETTER:
                        continue  # an absolute drop means nothing in the label's units
                    if bound is not None and interval.value is not None and interval.value < bound:
                        found.append(
                            f"{kind} {metric} {interval.value:.3f} ({where}) is below the "
                            f"reference {bound + self.max_drop:.3f} - max drop {self.max_drop}"
                        )
        return found

    @property
    def cautions(self) -> list[str]:
        """Warnings: the overall (or a window's) interval reaching below the threshold, a
        slice estimated below its own reference minus `max_drop`."""
        found = list(self.warnings)
        overall = [("overall", g) for g in self.estimate[:1]]
        overall += [(f"window {w.label}", w.estimate) for w in self.windows]
        for where, group in overall:
            for metric, interval in group.metrics.items():
                bound = self.threshold(metric)
                low = interval.ci_low
                if bound is None or interval.value is None or interval.value < bound:
                    continue
                if low is not None and low < bound and not group.too_small:
                    found.append(
                        f"estimated {metric} ({where}) {interval.value:.3f}: its interval "
                        f"reaches {low:.3f}, below {bound:.3f}"
                    )
        for group in self.estimate[1:]:
            if group.too_small:
                continue
            for metric, interval in group.metrics.items():
                bound = self.threshold(metric, group.name)
                if bound is not None and interval.value is not None and interval.value < bound:
                    found.append(
                        f"estimated {metric} on {group.name} {interval.value:.3f} is below its "
                        f"reference {bound + self.max_drop:.3f} - {self.max_drop}"
                    )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metrics": self.metrics,
            "classes": self.classes,
            "positive": self.positive,
            "max_drop": self.max_drop,
            "notes": self.notes,
            "alerts": self.alerts,
            "warnings": self.cautions,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "reference": [g.to_dict() for g in self.reference],
            "estimate": [g.to_dict() for g in self.estimate],
            "windows": [w.to_dict() for w in self.windows],
            "realised": [g.to_dict() for g in self.realised],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "labels": {"matched": self.labels_matched, "unmatched": self.labels_unmatched},
            "weak_segments": [w.model_dump(mode="json") for w in self.weak],
        }

    # -- HTML ------------------------------------------------------------------------------

    def to_html(self) -> str:
        parts = [f"<p>{html.escape(n)}</p>" for n in self.notes]
        parts += [f"<p>&#9888; {html.escape(w)}</p>" for w in self.cautions]
        if self.calibration is not None:
            c = self.calibration
            after = (
                f"; after {html.escape(c.method)} calibration (cross-fitted): ECE "
                f"{c.ece_after:.4f}, p {c.p_after:.3f}"
                if c.ece_after is not None and c.p_after is not None
                else "; calibrated, used as is"
            )
            parts.append(
                f"<h3>Calibration</h3><p>{c.rows} reference rows: ECE {c.ece_before:.4f}, "
                f"consistency p {c.p_before:.3f}{after}.</p>"
            )
        if self.estimate:
            parts.append("<h3>Estimate (no labels)</h3>" + self._groups_table(self.estimate))
        if self.windows:
            head = (
                "<tr><th>window</th><th>rows</th>"
                + "".join(f"<th>{html.escape(m)}</th>" for m in self.metrics)
                + "</tr>"
            )
            rows = []
            for w in self.windows:
                cells = "".join(
                    f"<td>{_interval(w.estimate.metrics.get(m))}</td>" for m in self.metrics
                )
                status = "skipped" if w.estimate.too_small else self._status(w.estimate)
                rows.append(
                    f"<tr style='{_row_style(status)}'><td>{html.escape(w.label)}</td>"
                    f"<td>{w.estimate.rows}</td>{cells}</tr>"
                )
            parts.append("<h3>Over time</h3>" + _table(head, rows))
        parts += [f"<div class='plot'>{svg}</div>" for _, svg in self.plots]
        if self.comparisons:
            head = (
                "<tr><th>slice</th><th>metric</th><th>rows</th><th>realised</th>"
                "<th>reference</th><th>diff</th><th>estimate</th><th>interval</th>"
                "<th>inside</th></tr>"
            )
            rows = []
            for row in self.comparisons:
                tint = None if row.inside is None else "pass" if row.inside else "warn"
                interval = (
                    f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
                    if row.ci_low is not None and row.ci_high is not None
                    else ""
                )
                rows.append(
                    f"<tr style='{_row_style(tint)}'><td>{html.escape(row.name)}</td>"
                    f"<td>{html.escape(row.metric)}</td><td>{row.rows}</td><td>{_num(row.realised)}</td>"
                    f"<td>{_num(row.reference)}</td><td>{_num(row.diff, signed=True)}</td>"
                    f"<td>{_num(row.estimate)}</td><td>{interval}</td>"
                    f"<td>{'' if row.inside is None else 'yes' if row.inside else 'no'}</td></tr>"
                )
            labelled = (
                f"<p>{self.labels_matched} logged rows matched a label, "
                f"{self.labels_unmatched} did not.</p>"
            )
            parts.append("<h3>Realised (with labels)</h3>" + labelled + _table(head, rows))
        if self.weak:
            parts.append(weak_segments_html(self.weak))
        return "".join(parts)

    def _status(self, group: GroupMetrics) -> str:
        status = "pass"
        for metric, interval in group.metrics.items():
            bound = self.threshold(metric, group.name)
            if bound is None or interval.value is None:
                continue
            if interval.value < bound:
                return "fail"
            if interval.ci_low is not None and interval.ci_low < bound:
                status = "warn"
        return status

    def _groups_table(self, groups: list[GroupMetrics]) -> str:
        head = (
            "<tr><th>slice</th><th>rows</th>"
            + "".join(f"<th>{html.escape(m)}</th><th>reference</th>" for m in self.metrics)
            + "</tr>"
        )
        rows = []
        for g in groups:
            cells = "".join(
                f"<td>{_interval(g.metrics.get(m))}</td><td>{_num(self.reference_value(m, g.name))}</td>"
                for m in self.metrics
            )
            status = "skipped" if g.too_small else self._status(g)
            rows.append(
                f"<tr style='{_row_style(status)}'><td>{html.escape(g.name)}</td>"
                f"<td>{g.rows}{' (too few)' if g.too_small else ''}</td>{cells}</tr>"
            )
        return _table(head, rows)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _interval(interval: Any) -> str:
    if interval is None or interval.value is None:
        return ""
    if interval.ci_low is None:
        return f"{interval.value:.3f}"
    return f"{interval.value:.3f} [{interval.ci_low:.3f}, {interval.ci_high:.3f}]"


__all__ = ["MIN_SIZE", "PerformanceReport", "Window"]
