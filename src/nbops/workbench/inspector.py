"""The inspector: data validation, slice metrics and gates, as a report and as a widget.

`inspection(...)` computes everything with plain library functions and returns an
InspectionReport (nbops.quality.report) — testable without a browser, and `report.to_html()` renders the same
content as a static page for CI. `inspect(...)` shows it in the notebook as an ipywidgets
widget with Data, Slices and Gates tabs and an "Export bundle" button, disabled while a gate
fails unless the override box is ticked (the override is recorded in the bundle).

It combines quality (checks, slices), runs (the report is recorded in the current run) and
bundle (the button builds one), so it sits in the workbench layer above all three.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from nbops.errors import QualityInputError
from nbops.gates import GateResult, evaluate_gate, parse_gate
from nbops.notebook.read import read_notebook
from nbops.quality.plots import distribution_plot, slice_plots
from nbops.quality.report import InspectionReport
from nbops.runs.capture import log_report
from nbops.runs.parameters import parameter_specs
from nbops.workbench.api import slice_metrics, validate

# Deferred imports, inside the functions that use them: quality.schema and quality.driftview
# (pandas, numpy), config (pydantic) and bundle.from_run (the bundle builder): `import nbops`
# stays light and `nbops.inspect` loads only what the call needs.

if TYPE_CHECKING:
    from nbops.quality.slices import Task


@dataclass
class ExportRequest:
    """What the Export bundle button hands to the bundle builder."""

    report: InspectionReport
    model: Any
    override: bool
    failed_gates: list[str]


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
    weak: bool | dict[str, Any] = False,
) -> InspectionReport:
    """Validate `data` (against `schema`, or one inferred from `reference`), compute slice
    metrics of `model` on `X`/`y` (or of given predictions), and check the gates.

    `weak=True` (or a dict of weak_segments options) also searches the columns of `X` (or of
    `data`, when X is not a frame) for the segments where the model does worst, shown as a
    "Weak segments" table in the Slices tab.

    `gates` default to `[tool.nbops] gates` of the project. A gate naming a value this
    inspection does not compute (a metric only the notebook logs) is skipped, with why.
    """
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
            weak_segments=_weak_options(weak, X, data),
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


def _weak_options(weak: bool | dict[str, Any], X: Any, data: Any) -> bool | dict[str, Any]:
    """slice_metrics' weak_segments option: the columns searched are X's (or data's)."""
    import pandas as pd

    if weak is False or weak is None:
        return False
    options = {} if weak is True else dict(weak)
    if "data" not in options:
        frame = X if isinstance(X, pd.DataFrame) else data
        if not isinstance(frame, pd.DataFrame):
            raise QualityInputError(
                "weak=True needs the rows' columns to search",
                fix="pass X as a DataFrame (or data=), or weak={'data': frame}",
            )
        options["data"] = frame
    return options


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
        # JupyterLab's theme colours (the light ones outside JupyterLab): read in both themes.
        colour = (
            "var(--jp-success-color1, #059669)"
            if enabled and not self.override.value
            else "var(--jp-warn-color1, #b45309)"
            if enabled
            else "var(--jp-error-color1, #dc2626)"
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
