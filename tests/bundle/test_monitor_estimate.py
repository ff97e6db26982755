"""`nbops monitor` estimates performance without labels (CBPE) on a real bundle, per time
window of the request log, and with labels joined by key gives the realised metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops import errors
from nbops.bundle.load import load_bundle
from nbops.bundle.monitor import monitor, raise_for_alerts, read_log
from nbops.bundle.performance import performance
from tests.bundle.conftest import Built
from tests.helpers import run_nbops


def rows(n: int, seed: int, near_boundary: bool = False) -> pd.DataFrame:
    """Rows from the tiny notebook's generator; `near_boundary` keeps only rows the model
    finds hard (a covariate shift: P(label | a, b, c) is unchanged)."""
    rng = np.random.default_rng(seed)
    m = n * 8 if near_boundary else n
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=m),
            "b": rng.uniform(1.0, 2.0, size=m),
            "c": rng.choice(["x", "y", "z"], size=m),
        }
    )
    score = frame.a / frame.b + (frame.c == "x") * 0.5
    frame["label"] = (score + rng.normal(0, 0.3, m) > 0).astype(int)
    if near_boundary:
        frame = frame[np.abs(score) < 0.15].head(n)
    frame.insert(0, "id", np.arange(len(frame)) + seed * 100_000)
    return frame.reset_index(drop=True)


def write_log(path: Path, frame: pd.DataFrame, bundle: object, per_line: int = 10) -> Path:
    requests = frame[["a", "b", "c"]]
    predictions = bundle.predict(requests).tolist()  # type: ignore[attr-defined]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = []
    for i in range(0, len(frame), per_line):
        part = requests.iloc[i : i + per_line]
        lines.append(
            json.dumps(
                {
                    "timestamp": (start + timedelta(minutes=6 * i // per_line)).isoformat(),
                    "model": "tiny",
                    "version": 1,
                    "records": part.to_dict("records"),
                    "predictions": predictions[i : i + per_line],
                    "keys": {"id": frame["id"].iloc[i : i + per_line].tolist()},
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bundle(built: Built):  # type: ignore[no-untyped-def]
    with load_bundle(built.folder) as loaded:
        yield loaded


def test_an_undrifted_sample_is_estimated_near_the_reference_without_alerts(bundle) -> None:  # type: ignore[no-untyped-def]
    reference, recent = rows(2000, 1), rows(1500, 2)
    predictions = bundle.predict(recent[["a", "b", "c"]])
    report = performance(bundle, recent, predictions, reference=reference, plots=False)
    estimate = report.estimate[0].metrics["accuracy"]
    realised = float(np.mean(predictions == recent.label))
    assert estimate.value == pytest.approx(realised, abs=0.03)
    assert report.calibration is not None and report.calibration.rows == 2000
    assert report.alerts == []
    assert {g.name for g in report.estimate} >= {"overall", "c == 'x'", "c == 'y'"}


def test_a_shift_toward_the_boundary_is_estimated_close_to_the_realised_drop(bundle) -> None:  # type: ignore[no-untyped-def]
    reference, recent = rows(2000, 1), rows(1000, 3, near_boundary=True)
    predictions = bundle.predict(recent[["a", "b", "c"]])
    report = performance(bundle, recent, predictions, reference=reference, plots=False)
    estimated = report.estimate[0].metrics["accuracy"].value
    realised = float(np.mean(predictions == recent.label))
    print(f"tiny bundle, near-boundary rows: estimated {estimated:.4f}, realised {realised:.4f}")
    assert realised < report.reference_value("accuracy") - 0.2  # type: ignore[operator]
    assert estimated == pytest.approx(realised, abs=0.05)
    assert any(a.startswith("estimated accuracy") for a in report.alerts)


def test_log_windows_labels_joined_on_logged_keys_and_the_html_plot(
    bundle,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    calm, shifted = rows(300, 4), rows(300, 5, near_boundary=True)
    recent = pd.concat([calm, shifted], ignore_index=True)
    logged = read_log(write_log(tmp_path / "requests.jsonl", recent, bundle))
    assert logged.keys is not None and logged.keys["id"].tolist() == recent["id"].tolist()
    labels = recent[["id", "label"]].iloc[::2]  # half the labels arrived
    report = monitor(bundle, logged.frame, logged.predictions)
    report.performance = performance(
        bundle, logged.frame, logged.predictions, reference=rows(2000, 1),
        timestamps=logged.timestamps, window="1h", labels=labels, key="id", keys=logged.keys,
    )  # fmt: skip
    perf = report.performance
    assert [w.estimate.rows for w in perf.windows] == [100] * 6  # 10 rows per 6 minutes
    first, last = perf.windows[0].estimate, perf.windows[-1].estimate
    assert last.metrics["accuracy"].value < first.metrics["accuracy"].value - 0.2
    assert (perf.labels_matched, perf.labels_unmatched) == (300, 300)
    overall = next(c for c in perf.comparisons if c.name == "overall" and c.metric == "accuracy")
    truth = recent.label.to_numpy()[::2]
    assert overall.realised == pytest.approx(np.mean(np.asarray(logged.predictions)[::2] == truth))
    assert overall.inside is not None and overall.diff == pytest.approx(
        overall.realised - perf.reference_value("accuracy")
    )
    # the weak segments of the labelled rows: values as the metric on each segment's rows
    labelled = recent.iloc[::2].reset_index(drop=True)
    predicted = np.asarray(logged.predictions)[::2]
    assert perf.weak
    for segment in perf.weak:
        mask = np.asarray(segment.slice.mask(labelled[["a", "b", "c"]]))
        assert segment.count == int(mask.sum())
        assert segment.value == pytest.approx(np.mean(predicted[mask] == truth[mask]))
        assert segment.value < overall.realised
    page = report.to_html()
    assert "<h2>Performance</h2>" in page and page.count("<svg") == 4
    assert "Weak segments" in page
    json.dumps(report.to_dict(), allow_nan=False)  # the --json content serialises
    with pytest.raises(errors.MonitorAlertError, match="estimated accuracy"):
        raise_for_alerts(report, "requests.jsonl")


def test_labels_whose_keys_match_no_logged_row_are_refused(bundle) -> None:  # type: ignore[no-untyped-def]
    recent = rows(100, 6)
    labels = pd.DataFrame({"id": [-1, -2], "label": [0, 1]})
    with pytest.raises(errors.QualityInputError, match="matches a key"):
        performance(
            bundle, recent, bundle.predict(recent[["a", "b", "c"]]), labels=labels, key="id"
        )


def test_without_a_reference_the_section_says_to_give_one(bundle) -> None:  # type: ignore[no-untyped-def]
    recent = rows(100, 7)
    report = performance(bundle, recent, bundle.predict(recent[["a", "b", "c"]]))
    assert report.estimate == [] and "give --reference" in report.notes[0]


def test_cli_exits_31_on_an_estimated_drop_and_0_without_drift(
    built: Built, bundle_copy: Path, tmp_path: Path
) -> None:
    rows(1000, 1).to_csv(tmp_path / "reference.csv", index=False)
    built.requests.to_csv(tmp_path / "calm.csv", index=False)  # the training rows: no drift
    hard = rows(2000, 9, near_boundary=True)
    inside = hard.a.between(built.raw.a.min(), built.raw.a.max()) & hard.b.between(
        built.raw.b.min(), built.raw.b.max()
    )  # within the schema's ranges: only the estimate can alert
    hard[inside].head(400)[["a", "b", "c"]].to_csv(tmp_path / "hard.csv", index=False)
    common = ["monitor", str(bundle_copy), "--reference", "reference.csv", "--label", "label"]
    calm = run_nbops(*common, "--data", "calm.csv", "--json", "calm.json", cwd=tmp_path)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "Estimated performance" in calm.stdout
    stored = json.loads((tmp_path / "calm.json").read_text())
    assert stored["performance"]["estimate"][0]["name"] == "overall"
    hard = run_nbops(*common, "--data", "hard.csv", "--windows", "2", "--html", "m.html",
                     cwd=tmp_path)  # fmt: skip
    assert hard.returncode == errors.MonitorAlertError.exit_code, hard.stdout + hard.stderr
    assert "estimated accuracy" in hard.stderr and "Traceback" not in hard.stderr
    assert "<svg" in (tmp_path / "m.html").read_text()


def test_windows_by_time_span_by_rows_and_a_bad_span_refused() -> None:
    from nbops.bundle.performance import segments

    stamps = [f"2026-11-01T00:{m:02d}:00+00:00" for m in range(0, 60, 5)] + [
        "2026-11-01T02:10:00+00:00"
    ]
    by_time = segments(len(stamps), stamps, "30min", None)
    assert [len(rows) for *_, rows in by_time] == [6, 6, 1]  # the empty hour is skipped
    assert [len(rows) for *_, rows in segments(13, stamps, "5", None)] == [5, 5, 3]
    assert [len(rows) for *_, rows in segments(13, None, None, 2)] == [7, 6]
    with pytest.raises(errors.QualityInputError, match="neither a number of rows"):
        segments(13, stamps, "fortnightly-ish", None)
    with pytest.raises(errors.QualityInputError, match="needs timestamps"):
        segments(13, None, "1h", None)


def test_a_regressor_gets_a_note_and_realised_metrics_with_labels(
    built: Built, tmp_path: Path
) -> None:
    from sklearn.base import clone
    from sklearn.linear_model import Ridge

    model = clone(built.model).set_params(clf=Ridge())
    model.fit(built.features, built.raw["a"] * 2.0)
    with load_bundle(built.build(tmp_path / "bundles", model=model)) as regressor:
        recent = rows(200, 10)
        predictions = regressor.predict(recent[["a", "b", "c"]])
        labels = recent.assign(target=recent.a * 2.0)[["id", "target"]]
        report = performance(
            regressor, recent, predictions, reference=rows(300, 11).assign(target=lambda f: f.a * 2),
            label="target", labels=labels, key="id",
        )  # fmt: skip
    assert report.task == "regression" and report.estimate == []
    assert "estimation needs class probabilities" in report.notes[0]
    mae = report.realised[0].metrics["mae"].value
    assert mae == pytest.approx(np.mean(np.abs(predictions - recent.a * 2.0)))
    assert report.alerts == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.lists(json_values, max_size=5), keys_form=st.sampled_from(["columns", "rows", "none"])
)
def test_the_log_reader_keeps_whole_lines_and_skips_any_other_json(
    tmp_path: Path, junk: list[object], keys_form: str
) -> None:
    good = {"timestamp": "2026-11-01T00:00:00+00:00", "version": 1,
            "records": [{"a": 1.0, "b": 1.5, "c": "x"}, {"a": 0.0, "b": 1.2, "c": "y"}],
            "predictions": [1, 0]}  # fmt: skip
    if keys_form == "columns":
        good["keys"] = {"id": [7, 8]}
    elif keys_form == "rows":
        good["keys"] = [{"id": 7}, {"id": 8}]
    odd = {"records": [1, "x"], "predictions": [0, 1]}  # records that are not objects
    lines = [json.dumps(j) for j in [*junk, odd]] + [json.dumps(good), "{cut short"]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    try:
        logged = read_log(path)
    except errors.QualityInputError:
        return  # junk that looked like records but was not: refused, one line
    assert logged.frame.shape[0] == len(logged.predictions) == len(logged.timestamps)
    assert logged.predictions[-2:] == [1, 0]
    if keys_form != "none":
        assert logged.keys is not None and logged.keys["id"].tolist()[-2:] == [7, 8]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["b"]), "lacks the request column"),
        (lambda f: f.assign(label="yes"), "not classes of the model"),
        (lambda f: f.drop(columns=["label"]), "no label column 'label'"),
    ],
    ids=["no request column", "unknown classes", "no label"],
)
def test_an_unusable_reference_is_one_clear_error(bundle, change, message) -> None:  # type: ignore[no-untyped-def]
    recent = rows(50, 12)
    with pytest.raises(errors.QualityInputError, match=message):
        performance(
            bundle, recent, bundle.predict(recent[["a", "b", "c"]]),
            reference=change(rows(100, 13)), label="label",
        )  # fmt: skip
