"""The inspector's state, its HTML report and its widget, without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.workbench.inspector import ExportRequest, Inspector, inspection


class Threshold:
    """A 'model' that predicts 1 when x > 0: perfect on group a, poor on group b."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X["x"] > 0).astype(int).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-4 * X["x"].to_numpy()))
        return np.column_stack([1 - p, p])


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    n = 600
    reference = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "group": rng.choice(["a", "b"], size=n),
            "size": rng.normal(10, 1, size=n),
        }
    )
    current = reference.copy()
    current["size"] = current["size"] + 3  # planted drift
    truth = (current["x"] > 0).astype(int)
    flip = (current["group"] == "b") & (rng.random(n) < 0.4)
    truth[flip] = 1 - truth[flip]
    return reference, current, truth


def test_a_failing_slice_gate_blocks_export_until_overridden(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current, truth = frames
    report = inspection(
        current, reference, model=Threshold(), X=current, y=truth, slices=["group"],
        gates=["slices.accuracy.min >= 0.9", "accuracy >= 0.5"], plots=False,
    )  # fmt: skip
    assert report.verdict == "fail"
    assert [g.gate for g in report.failed_gates] == ["slices.accuracy.min >= 0.9"]
    enabled, reason = report.export_state(override=False)
    assert not enabled and reason.startswith(
        "blocked by 1 failing gate(s): slices.accuracy.min >= 0.9"
    )
    enabled, reason = report.export_state(override=True)
    assert enabled and reason.startswith("override:")


def test_all_gates_passing_enables_export(frames) -> None:  # type: ignore[no-untyped-def]
    _reference, current, truth = frames
    report = inspection(
        model=Threshold(),
        X=current,
        y=truth,
        slices=["group"],
        gates=["accuracy >= 0.5"],
        plots=False,
    )
    assert report.verdict == "pass"
    assert report.export_state() == (True, "all gates pass")


def test_a_gate_on_something_not_computed_is_skipped_with_why(frames) -> None:  # type: ignore[no-untyped-def]
    _reference, current, truth = frames
    report = inspection(
        model=Threshold(), X=current, y=truth, gates=["f1_macro >= 0.5"], plots=False
    )
    assert report.gates == []
    assert report.skipped_gates == [
        ("f1_macro >= 0.5", "needs 'f1_macro', which this inspection does not compute")
    ]


def test_planted_drift_shows_as_failing_checks_with_a_plot(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current, _ = frames
    report = inspection(current, reference, gates=["data.drifted_columns == 0"])
    assert report.validation is not None
    assert "size" in report.validation.drifted_columns
    assert [name for name, _ in report.drift_plots] == ["size"]
    assert report.drift_plots[0][1].startswith(b"\x89PNG")
    assert report.verdict == "fail"


def test_the_html_report_has_every_section_with_inline_plots(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current, truth = frames
    report = inspection(
        current, reference, model=Threshold(), X=current, y=truth, slices=["group"],
        gates=["slices.accuracy.min >= 0.9"],
    )  # fmt: skip
    page = report.to_html()
    for heading in ("<h2>Gates</h2>", "<h2>Data</h2>", "<h2>Slices</h2>"):
        assert heading in page
    assert "slices.accuracy.min &gt;= 0.9" in page
    assert "group == &quot;b&quot;" in page  # the slice predicate, HTML-escaped
    assert (
        page.count("data:image/png;base64,")
        == len(report.drift_plots) + len(report.slice_plots)
        >= 2
    )


def test_the_widget_disables_export_until_the_override_is_ticked(frames) -> None:  # type: ignore[no-untyped-def]
    _reference, current, truth = frames
    report = inspection(
        model=Threshold(), X=current, y=truth, slices=["group"],
        gates=["slices.accuracy.min >= 0.9"], plots=False,
    )  # fmt: skip
    requests: list[ExportRequest] = []

    def export(request: ExportRequest) -> str:
        requests.append(request)
        return "bundle written"

    inspector = Inspector(report, model="the model", on_export=export)
    assert inspector.button.disabled
    assert "blocked by 1 failing gate" in inspector.reason.value
    inspector.override.value = True
    assert not inspector.button.disabled
    inspector.button.click()
    (request,) = requests
    assert request.override and request.failed_gates == ["slices.accuracy.min >= 0.9"]
    assert request.model == "the model"
    assert inspector.message.value == "bundle written"


def test_the_default_export_says_why_it_cannot_bundle_outside_jupyter(
    frames, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _, current, truth = frames
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    report = inspection(model=Threshold(), X=current, y=truth, gates=[], plots=False)
    inspector = Inspector(report, model=Threshold())
    assert not inspector.button.disabled
    inspector.button.click()
    assert "Cannot tell which notebook this kernel runs" in inspector.message.value
    tabs = inspector.widget.children[0]
    assert [tabs.get_title(i) for i in range(3)] == ["Data", "Slices", "Gates"]


def test_the_export_reason_takes_the_theme_colour_of_its_state(frames) -> None:  # type: ignore[no-untyped-def]
    """Blocked, overridden and clear read in JupyterLab's dark theme too: the theme's error,
    warning and success colours, with the light ones outside JupyterLab."""
    _reference, current, truth = frames
    report = inspection(
        model=Threshold(), X=current, y=truth, slices=["group"],
        gates=["slices.accuracy.min >= 0.9"], plots=False,
    )  # fmt: skip
    inspector = Inspector(report, model="the model", on_export=lambda request: "")
    assert "color:var(--jp-error-color1, #dc2626)" in inspector.reason.value
    inspector.override.value = True
    assert "color:var(--jp-warn-color1, #b45309)" in inspector.reason.value
    passing = inspection(model=Threshold(), X=current, y=truth, gates=[], plots=False)
    assert "color:var(--jp-success-color1, #059669)" in Inspector(passing).reason.value


def test_weak_true_shows_a_weak_segments_table_in_the_slices_tab(frames) -> None:  # type: ignore[no-untyped-def]
    """Group b has 40% of its labels flipped: the search over X's columns finds it (or a
    part of it) first, and the Slices tab shows it, ranked, in the theme's table style."""
    _reference, current, truth = frames
    report = inspection(
        model=Threshold(), X=current, y=truth, slices=["group"], plots=False, weak=True
    )
    assert report.slices is not None and report.slices.weak
    first = report.slices.weak[0]
    assert 'group == "b"' in first.name
    html = report.slices_html()
    table = html[html.index("<h3>Weak segments</h3>") :]
    assert "group == &quot;b&quot;" in table
    assert "var(--jp-layout-color1" in table and "var(--jp-border-color1" in table
    plain = inspection(model=Threshold(), X=current, y=truth, slices=["group"], plots=False)
    assert "Weak segments" not in plain.slices_html()
