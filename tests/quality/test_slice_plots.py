"""The slice charts the inspector shows and the bundle's model card holds: one bar chart per
metric, a bar per slice, the overall value as a line; the inspector adds the threshold of a
`slices.<metric>.min` gate and reds the slices below it."""

from __future__ import annotations

from nbops.bundle.from_run import _slice_plots as bundle_slice_plots
from nbops.gates import evaluate_gate, parse_gate
from nbops.quality.plots import slice_bar_chart
from nbops.quality.report import InspectionReport
from nbops.quality.slices import SliceReport, slice_metrics
from nbops.workbench.inspector import _slice_plots as inspector_slice_plots

from .conftest import Predictions


def _report(penguins: Predictions) -> SliceReport:
    return slice_metrics(
        penguins.y_true,
        penguins.y_pred,
        penguins.y_score,
        penguins.frame[["island", "sex"]],
        metrics=["accuracy", "recall"],
    )


def _rows(report: SliceReport, metric: str) -> tuple[list[str], list[float | None]]:
    frame = report.to_frame()
    rows = frame[frame["metric"] == metric]
    return [str(s) for s in rows["slice"]], [None if v != v else float(v) for v in rows["value"]]


def test_the_model_card_draws_every_metric_per_slice_with_the_overall_line(
    penguins: Predictions,
) -> None:
    report = _report(penguins)
    plots = bundle_slice_plots(report.model_dump(mode="json"))
    assert [name for name, _ in plots] == ["accuracy", "recall"]
    for metric, png in plots:
        names, values = _rows(report, metric)
        expected = slice_bar_chart(
            metric, names, values, report.overall[metric], None, [False] * len(values)
        )
        assert png == expected


def test_the_model_card_draws_nothing_without_a_slice_report() -> None:
    assert bundle_slice_plots(None) == []


def test_the_inspector_draws_a_min_gate_threshold_and_reds_the_slices_below_it(
    penguins: Predictions,
) -> None:
    report = _report(penguins)
    gate = evaluate_gate(parse_gate("slices.recall.min >= 0.75"), report.gate_values())
    inspection = InspectionReport(slices=report, gates=[gate])
    plots = dict(inspector_slice_plots(inspection))
    assert list(plots) == ["accuracy", "recall"]
    names, values = _rows(report, "recall")
    failing = [v is not None and v < 0.75 for v in values]
    assert any(failing)
    assert plots["recall"] == slice_bar_chart(
        "recall", names, values, report.overall["recall"], 0.75, failing
    )
    names, values = _rows(report, "accuracy")
    assert plots["accuracy"] == slice_bar_chart(
        "accuracy", names, values, report.overall["accuracy"], None, [False] * len(values)
    )
