"""The inspector: data validation, slice metrics and gates, as a report and as a widget.

`inspection(...)` computes everything with plain library functions and returns an
InspectionReport — testable without a browser, and `report.to_html()` renders the same
content as a static page for CI. `inspect(...)` shows it in the notebook as an ipywidgets
widget with Data, Slices and Gates tabs and an "Export bundle" button, disabled while a gate
fails unless the override box is ticked (the override is recorded in the bundle).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from nbops.runs.gates import GateResult, evaluate_gate, parse_gate

if TYPE_CHECKING:
    from nbops.quality.slices import Task

_STATUS_COLOUR = {"pass": "#d1fae5", "warn": "#fef3c7", "fail": "#fee2e2", "skipped": "#f3f4f6"}


@dataclass
class ExportRequest:
    """What the Export bundle button hands to the bundle builder."""

    report: InspectionReport
    model: Any
    override: bool
    failed_gates: list[str]


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
            colour = _STATUS_COLOUR.get(check.status, "#ffffff")
            examples = ", ".join(html.escape(repr(v)) for v in (check.examples or [])[:5])
            fraction = f"{check.fraction:.2%}" if check.fraction is not None else ""
            rows.append(
                f"<tr style='background:{colour}'><td>{html.escape(check.status)}</td>"
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
            colour = "#f3f4f6" if small else "#ffffff"
            cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in record.values())
            rows.append(f"<tr style='background:{colour}'>{cells}</tr>")
        return _table(f"<tr>{head}</tr>", rows) + _images(self.slice_plots)

    def gates_html(self) -> str:
        colour = {"pass": "#059669", "fail": "#dc2626"}.get(self.verdict, "#6b7280")
        parts = [f"<h3 style='color:{colour}'>Verdict: {html.escape(self.verdict)}</h3>"]
        rows = []
        for g in self.gates:
            status = "pass" if g.passed else "fail"
            rows.append(
                f"<tr style='background:{_STATUS_COLOUR[status]}'><td>{status}</td>"
                f"<td><code>{html.escape(g.gate)}</code></td><td>{html.escape(g.reason)}</td></tr>"
            )
        for text, reason in self.skipped_gates:
            rows.append(
                f"<tr style='background:{_STATUS_COLOUR['skipped']}'><td>skipped</td>"
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
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em}"
            "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
            "td,th{border:1px solid #d1d5db;padding:3px 6px;text-align:left}"
            "img{margin:4px}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>"
            f"<h2>Gates</h2>{self.gates_html()}"
            f"<h2>Data</h2>{self.data_html()}"
            f"<h2>Slices</h2>{self.slices_html()}"
            "</body></html>\n"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _table(head: str, rows: Sequence[str]) -> str:
    return f"<table>{head}{''.join(rows)}</table>"


def _images(plots: Sequence[tuple[str, bytes]]) -> str:
    return "".join(
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        for name, png in plots
    )


# -- computing a report ------------------------------------------------------------------------


def inspection(
    data: Any = None,
    reference: Any = None,
    *,
    schema: Any = None,
    model: Any = None,
    X: Any = None,
    y: Any = None,
    y_pred: Any = None,
    y_score: Any = None,
    slices: Sequence[str] | Any = None,
    task: str | None = None,
    gates: Sequence[str] | None = None,
    environment: str = "training",
    min_size: int = 30,
    plots: bool = True,
    title: str = "nbops inspection",
) -> InspectionReport:
    """Validate `data` (against `schema`, or one inferred from `reference`), compute slice
    metrics of `model` on `X`/`y` (or of given predictions), and check the gates.

    `gates` default to `[tool.nbops] gates` of the project. A gate naming a value this
    inspection does not compute (a metric only the notebook logs) is skipped, with why.
    """
    from nbops.quality.api import slice_metrics, validate
    from nbops.runs.capture import log_report

    report = InspectionReport(title=title)
    if data is not None and (schema is not None or reference is not None):
        if schema is None:
            from nbops.quality.schema import infer_schema

            schema = infer_schema(reference)
        report.validation = validate(data, schema, environment=environment)
        if plots:
            report.drift_plots = _drift_plots(report.validation, schema, data)
    if y is not None and (model is not None or y_pred is not None):
        if y_pred is None:
            y_pred = model.predict(X)
            if y_score is None and hasattr(model, "predict_proba") and task != "regression":
                y_score = model.predict_proba(X)
        task = task or (
            "classification" if y_score is not None or _is_discrete(y) else "regression"
        )
        slice_frame = _slice_frame(slices, X, data)
        report.slices = slice_metrics(
            y,
            y_pred,
            y_score,
            slices=slice_frame,
            task=cast("Task", task),  # an unknown task is refused by slice_metrics
            min_size=min_size,
        )
    values = _gate_values(report)
    for text in gates if gates is not None else _project_gates():
        gate = parse_gate(text)
        missing = [n for n in gate.names if n not in values]
        if missing:
            report.skipped_gates.append(
                (gate.text, f"needs {missing[0]!r}, which this inspection does not compute")
            )
        else:
            report.gates.append(evaluate_gate(gate, values))
    if report.gates or report.skipped_gates:
        results = [g.to_dict() for g in report.gates]
        log_report("gates", "inspection", {"gates": results, "verdict": report.verdict}, {})
    if plots and report.slices is not None:
        report.slice_plots = _slice_plots(report)
    return report


def _is_discrete(y: Any) -> bool:
    import numpy as np

    values = np.asarray(y)
    return values.dtype.kind in "biuOUS" or len(np.unique(values)) <= 20


def _slice_frame(slices: Any, X: Any, data: Any) -> Any:
    import pandas as pd

    if slices is None or isinstance(slices, pd.DataFrame):
        return slices
    names = list(slices)
    for frame in (X, data):
        if isinstance(frame, pd.DataFrame) and all(n in frame.columns for n in names):
            return frame[names].reset_index(drop=True)
    from nbops.errors import QualityInputError

    raise QualityInputError(
        f"slice columns {names} are not all in X (or data)",
        fix="pass slices= as column names of X, or as a DataFrame aligned with y",
    )


def _gate_values(report: InspectionReport) -> dict[str, float]:
    values: dict[str, float] = {}
    if report.validation is not None:
        values.update(report.validation.gate_values())
    if report.slices is not None:
        slice_values = report.slices.gate_values()
        values.update(slice_values)
        # The overall metrics also go by their bare names, as `nbops ci` gates name them.
        for name, value in slice_values.items():
            if name.startswith("overall."):
                values.setdefault(name.removeprefix("overall."), value)
    return values


def _project_gates() -> list[str]:
    try:
        from nbops.config import load_project

        return list(load_project().config.gates)
    except Exception:
        return []


def _drift_plots(validation: Any, schema: Any, data: Any) -> list[tuple[str, bytes]]:
    from nbops.quality.driftview import drift_distributions
    from nbops.quality.plots import distribution_plot

    plots = []
    for column in sorted(
        {
            c.column
            for c in validation.checks
            if c.kind.startswith("drift") and c.status != "pass" and c.column
        }
    ):
        found = drift_distributions(schema, data, column)
        if found is None:
            continue
        labels, reference, current = found
        status = (
            "fail"
            if any(c.column == column and c.status == "fail" for c in validation.checks)
            else "warn"
        )
        plots.append((column, distribution_plot(column, labels, reference, current, status)))
    return plots


def _slice_plots(report: InspectionReport) -> list[tuple[str, bytes]]:
    from nbops.quality.plots import slice_plots

    return slice_plots(report.slices, _thresholds(report.gates))  # type: ignore[arg-type]


def _thresholds(gates: list[GateResult]) -> dict[str, float]:
    """`slices.recall.min >= 0.8` → {"recall": 0.8}: the line drawn on that metric's chart."""
    found: dict[str, float] = {}
    for g in gates:
        parts = g.gate.split()
        if len(parts) == 3 and parts[0].startswith("slices.") and parts[0].endswith(".min"):
            try:
                found[parts[0].split(".")[1]] = float(parts[2])
            except ValueError:
                continue
    return found


# -- the widget --------------------------------------------------------------------------------


class Inspector:
    """The widget `nbops.inspect` shows; `.report` holds what it shows."""

    def __init__(
        self,
        report: InspectionReport,
        model: Any = None,
        on_export: Callable[[ExportRequest], str] | None = None,
    ) -> None:
        import ipywidgets as widgets

        self.report = report
        self.model = model
        self.on_export = on_export or export_bundle
        tabs = widgets.Tab(
            children=[
                widgets.HTML(report.data_html()),
                widgets.HTML(report.slices_html()),
                widgets.HTML(report.gates_html()),
            ]
        )
        for index, name in enumerate(["Data", "Slices", "Gates"]):
            tabs.set_title(index, name)
        self.button = widgets.Button(
            description="Export bundle", icon="box", button_style="primary"
        )
        self.override = widgets.Checkbox(
            value=False,
            description="Override failing gates (recorded in the bundle)",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self.reason = widgets.HTML()
        self.message = widgets.HTML()
        self.button.on_click(self._export)
        self.override.observe(lambda change: self._refresh(), names="value")
        self.override.layout.display = "" if report.failed_gates else "none"
        self.widget = widgets.VBox(
            [tabs, widgets.HBox([self.button, self.override]), self.reason, self.message]
        )
        self._refresh()

    def _refresh(self) -> None:
        enabled, reason = self.report.export_state(self.override.value)
        self.button.disabled = not enabled
        colour = (
            "#059669"
            if enabled and not self.override.value
            else "#b45309"
            if enabled
            else "#dc2626"
        )
        self.reason.value = f"<span style='color:{colour}'>{html.escape(reason)}</span>"

    def _export(self, _: Any = None) -> None:
        enabled, _reason = self.report.export_state(self.override.value)
        if not enabled:
            return
        request = ExportRequest(
            self.report,
            self.model,
            self.override.value and bool(self.report.failed_gates),
            [g.gate for g in self.report.failed_gates],
        )
        self.message.value = html.escape(self.on_export(request))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def export_bundle(request: ExportRequest) -> str:
    """The default action of the Export bundle button: bundle the model in hand with the
    notebook's serving step (the notebook Jupyter says this kernel serves), its parameter
    defaults, this report's slice metrics and gate results, and the override if ticked."""
    import os

    notebook = os.environ.get("JPY_SESSION_NAME")
    if request.model is None:
        return "No model to bundle: pass model= to nbops.inspect."
    if not notebook or not os.path.exists(notebook):
        return (
            "Cannot tell which notebook this kernel runs, so its serving code is unknown: "
            "log the model with nbops.log_model and run `nbops bundle --run RUN_ID`."
        )
    from pathlib import Path

    from nbops.bundle.from_run import build_from
    from nbops.notebook.read import read_notebook
    from nbops.runs.parameters import parameter_specs

    try:
        defaults = {s.name: s.default for s in parameter_specs(read_notebook(notebook))}
        folder = build_from(
            Path(notebook),
            request.model,
            defaults,
            gates=[g.to_dict() for g in request.report.gates],
            slice_report=request.report.slices.model_dump(mode="json")
            if request.report.slices
            else None,
            override=request.override,
        )
    except Exception as exc:  # shown in the widget; the kernel stays usable
        return f"Export failed: {exc}"
    note = " (gate override recorded)" if request.override else ""
    return f"Bundle written to {folder}{note}."


def inspect(
    data: Any = None,
    reference: Any = None,
    *,
    model: Any = None,
    X: Any = None,
    y: Any = None,
    slices: Sequence[str] | Any = None,
    on_export: Callable[[ExportRequest], str] | None = None,
    **options: Any,
) -> Inspector:
    """Show the inspector for this data and model in the notebook (see `inspection` for the
    arguments); returns it, with the computed `.report`."""
    report = inspection(data, reference, model=model, X=X, y=y, slices=slices, **options)
    return Inspector(report, model=model, on_export=on_export)
