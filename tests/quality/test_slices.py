"""Slice metrics: equal to scikit-learn slice by slice, predicates that recompute their rows,
confidence intervals, and one clear error for each kind of bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from nbops.errors import QualityInputError, SchemaVersionError
from nbops.quality.slices import (
    Equals,
    InInterval,
    IsMissing,
    SliceMetric,
    SlicePredicate,
    SliceReport,
    slice_metrics,
)

from .conftest import Predictions

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(actual: float | None, expected: float) -> bool:
    """None stands for an undefined metric, which scikit-learn reports as NaN."""
    if actual is None:
        return math.isnan(expected)
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def rows_by_slice(report: SliceReport) -> dict[str, dict[str, SliceMetric]]:
    out: dict[str, dict[str, SliceMetric]] = {}
    for row in report.rows:
        out.setdefault(row.name, {})[row.metric] = row
    return out


# --- equal to scikit-learn ---------------------------------------------------------------


def sklearn_binary(t: np.ndarray, p: np.ndarray, s: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(t, p),
        "precision": precision_score(t, p, zero_division=np.nan),
        "recall": recall_score(t, p, zero_division=np.nan),
        "f1": f1_score(t, p, zero_division=np.nan),
        "roc_auc": roc_auc_score(t, s) if len(np.unique(t)) == 2 else np.nan,
    }


def sklearn_multiclass(t: np.ndarray, p: np.ndarray, s: np.ndarray) -> dict[str, float]:
    classes = [0, 1, 2]
    every_class = set(np.unique(t)) == set(classes)
    return {
        "accuracy": accuracy_score(t, p),
        "precision": precision_score(t, p, average="macro", zero_division=0),
        "recall": recall_score(t, p, average="macro", zero_division=0),
        "f1": f1_score(t, p, average="macro", zero_division=0),
        "roc_auc": (
            roc_auc_score(t, s, multi_class="ovr", labels=classes) if every_class else np.nan
        ),
    }


@st.composite
def classification_case(draw: st.DrawFn, n_classes: int) -> tuple[Any, ...]:
    n = draw(st.integers(1, 70))
    labels = st.integers(0, n_classes - 1)
    y_true = np.array(draw(st.lists(labels, min_size=n, max_size=n)))
    y_pred = np.array(draw(st.lists(labels, min_size=n, max_size=n)))
    group = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n))
    kind = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    frame = pd.DataFrame({"group": pd.Series(group, dtype=object), "kind": kind})
    if n_classes == 2:  # few distinct scores: many ties
        y_score = np.array(
            draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n))
        )
    else:  # probabilities from small integer weights: ties within and across rows
        weights = np.array(
            draw(st.lists(st.integers(1, 3), min_size=3 * n, max_size=3 * n)), dtype=float
        ).reshape(n, 3)
        y_score = weights / weights.sum(axis=1, keepdims=True)
    return frame, y_true, y_pred, y_score


def check_against(
    report: SliceReport,
    frame: pd.DataFrame,
    expected: Any,
    arrays: tuple[np.ndarray, ...],
) -> None:
    everything = np.ones(len(frame), dtype=bool)
    reference = expected(*(array[everything] for array in arrays))
    for metric, value in report.overall.items():
        assert same(value, reference[metric]), (metric, value, reference[metric])
    assert report.rows
    for name, metrics in rows_by_slice(report).items():
        row = next(iter(metrics.values()))
        mask = row.slice.mask(frame)
        assert row.count == mask.sum()
        reference = expected(*(array[mask] for array in arrays))
        for metric, result in metrics.items():
            assert same(result.value, reference[metric]), (name, metric, result, reference)
            assert (result.value is None) == (result.reason is not None)


@SETTINGS
@given(classification_case(n_classes=2))
def test_binary_metrics_equal_scikit_learn_per_slice_and_overall(case: tuple[Any, ...]) -> None:
    frame, y_true, y_pred, y_score = case
    report = slice_metrics(
        y_true,
        y_pred,
        y_score,
        frame,
        cross=[("group", "kind")],
        min_size=0,
        ci=None,
        pos_label=1,
    )
    assert report.metrics == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    check_against(report, frame, sklearn_binary, (y_true, y_pred, y_score))


@SETTINGS
@given(classification_case(n_classes=3))
def test_multiclass_macro_metrics_equal_scikit_learn_per_slice_and_overall(
    case: tuple[Any, ...],
) -> None:
    frame, y_true, y_pred, y_score = case
    report = slice_metrics(y_true, y_pred, y_score, frame, min_size=0, ci=None, labels=[0, 1, 2])
    check_against(report, frame, sklearn_multiclass, (y_true, y_pred, y_score))


def sklearn_regression(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "mae": mean_absolute_error(t, p),
        "rmse": root_mean_squared_error(t, p),
        "r2": r2_score(t, p) if len(np.unique(t)) > 1 else np.nan,
    }


@SETTINGS
@given(st.data())
def test_regression_metrics_equal_scikit_learn_per_slice_and_overall(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70))
    halves = st.integers(-8, 8).map(lambda v: v / 2)
    y_true = np.array(data.draw(st.lists(halves, min_size=n, max_size=n)))
    y_pred = np.array(data.draw(st.lists(halves, min_size=n, max_size=n)))
    group = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    frame = pd.DataFrame({"group": group})
    report = slice_metrics(y_true, y_pred, slices=frame, task="regression", min_size=0, ci=None)
    assert report.metrics == ["mae", "rmse", "r2"]
    check_against(report, frame, sklearn_regression, (y_true, y_pred))
    for metrics in rows_by_slice(report).values():
        r2 = metrics["r2"]
        if r2.count < 2:
            assert r2.reason == "fewer than two rows in the slice"
        elif r2.value is None:
            assert r2.reason == "y_true is constant in the slice"


def test_many_slices_of_distinct_scores_take_the_sorting_path_and_still_match() -> None:
    # 20,000 distinct-ish scores x 8 slices is past the histogram's size limit
    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame({"g": rng.integers(0, 8, n)})
    y_true = rng.integers(0, 2, n)
    y_score = rng.random(n) + 0.3 * y_true
    y_score[: n // 2] = np.round(y_score[: n // 2], 2)  # half of them tie
    y_pred = (y_score > 0.6).astype(int)
    report = slice_metrics(y_true, y_pred, y_score, frame, ci=None)
    check_against(report, frame, sklearn_binary, (y_true, y_pred, y_score))

    y_multi = rng.integers(0, 3, n)
    weights = rng.random((n, 3)) + np.eye(3)[y_multi]
    weights[: n // 2] = np.round(weights[: n // 2], 1)
    probabilities = weights / weights.sum(axis=1, keepdims=True)
    report = slice_metrics(y_multi, probabilities.argmax(axis=1), probabilities, frame, ci=None)
    check_against(
        report, frame, sklearn_multiclass, (y_multi, probabilities.argmax(1), probabilities)
    )


def test_the_positive_class_is_the_larger_label_unless_pos_label_says_otherwise() -> None:
    y_true = np.array(["no", "yes", "yes", "no", "yes"])
    y_pred = np.array(["no", "yes", "no", "no", "no"])
    report = slice_metrics(y_true, y_pred, metrics=["precision", "recall"])
    assert report.pos_label == "yes"
    assert report.overall == {"precision": 1.0, "recall": pytest.approx(1 / 3)}
    flipped = slice_metrics(y_true, y_pred, metrics=["recall"], pos_label="no")
    assert flipped.pos_label == "no"
    assert flipped.overall["recall"] == recall_score(y_true, y_pred, pos_label="no")


def test_a_two_column_binary_score_uses_the_positive_class_column(penguins: Predictions) -> None:
    both = np.column_stack([1 - penguins.y_score, penguins.y_score])
    one = slice_metrics(penguins.y_true, penguins.y_pred, penguins.y_score, metrics=["roc_auc"])
    two = slice_metrics(penguins.y_true, penguins.y_pred, both, metrics=["roc_auc"])
    assert one.overall == two.overall


def test_default_metrics_leave_roc_auc_out_without_scores(penguins: Predictions) -> None:
    report = slice_metrics(penguins.y_true, penguins.y_pred)
    assert report.metrics == ["accuracy", "precision", "recall", "f1"]
    assert report.rows == []  # no slices asked for: overall only


# --- predicates ------------------------------------------------------------------------------


def test_each_slice_is_a_predicate_that_round_trips_and_selects_the_same_rows(
    penguins: Predictions,
) -> None:
    frame = penguins.frame
    report = slice_metrics(
        penguins.y_true,
        penguins.y_pred,
        penguins.y_score,
        frame,
        bins={"body_mass_g": 4},
        ci=None,
    )
    names = list(rows_by_slice(report))
    assert 'island == "Biscoe"' in names
    assert "sex is missing" in names
    assert "year == 2008" in names
    assert "body_mass_g is missing" in names
    assert any(name.startswith("body_mass_g in [") for name in names)
    for row in report.rows:
        text = row.slice.model_dump_json()
        back = SlicePredicate.model_validate_json(text)
        assert back == row.slice
        assert back.to_expression() == row.name
        assert back.mask(frame).sum() == row.count
        assert np.array_equal(back.mask(frame), row.slice.mask(frame))
    # the missing slice is exactly the missing rows
    missing = next(row for row in report.rows if row.name == "sex is missing")
    assert np.array_equal(missing.slice.mask(frame), frame["sex"].isna().to_numpy())


def test_predicate_values_keep_their_type_through_json() -> None:
    frame = pd.DataFrame({"s": ["x"], "i": [3], "f": [2.5], "b": [True]})
    for column, value in (("s", "x"), ("i", 3), ("f", 2.5), ("b", True)):
        predicate = SlicePredicate(conditions=[Equals(column=column, value=value)])
        back = SlicePredicate.model_validate_json(predicate.model_dump_json())
        condition = back.conditions[0]
        assert isinstance(condition, Equals)
        assert type(condition.value) is type(value)
        assert back.mask(frame).tolist() == [True]
    assert Equals(column="island", value="Biscoe").to_expression() == 'island == "Biscoe"'
    interval = InInterval(column="age", lower=30.0, upper=40.0)
    assert interval.to_expression() == "age in (30.0, 40.0]"
    assert InInterval(column="age", lower=30, upper=40, closed="both").to_expression() == (
        "age in [30.0, 40.0]"
    )
    assert IsMissing(column="sex").to_expression() == "sex is missing"
    ages = pd.DataFrame({"age": [29.0, 30.0, 35.0, 40.0, 41.0, np.nan]})
    assert interval.mask(ages).tolist() == [False, False, True, True, False, False]


def test_a_predicate_on_a_frame_without_its_column_is_a_clear_error() -> None:
    predicate = SlicePredicate(conditions=[Equals(column="island", value="Biscoe")])
    with pytest.raises(QualityInputError, match="'island'"):
        predicate.mask(pd.DataFrame({"sex": ["male"]}))


def test_crossed_slices_are_conjunctions_over_the_combinations_present(
    penguins: Predictions,
) -> None:
    frame = penguins.frame
    report = slice_metrics(
        penguins.y_true,
        penguins.y_pred,
        penguins.y_score,
        ["island"],
        data=frame,
        cross=[("sex", "island")],
        ci=None,
    )
    slices = rows_by_slice(report)
    crossed = [name for name in slices if " and " in name]
    combos = frame.assign(sex=frame["sex"].fillna("<missing>")).groupby(["sex", "island"]).size()
    assert len(crossed) == len(combos)
    assert len(slices) == 3 + len(combos)  # island alone, then the cross (sex not alone)
    assert 'sex == "male" and island == "Dream"' in crossed
    assert 'sex is missing and island == "Biscoe"' in crossed
    row = slices['sex == "male" and island == "Dream"']["f1"]
    assert row.slice.columns == ["sex", "island"]
    manual = (frame["sex"] == "male").to_numpy() & (frame["island"] == "Dream").to_numpy()
    assert np.array_equal(row.slice.mask(frame), manual)
    assert row.value == f1_score(penguins.y_true[manual], penguins.y_pred[manual])


def test_quantile_bins_follow_pd_qcut(penguins: Predictions) -> None:
    frame = penguins.frame
    report = slice_metrics(
        penguins.y_true, penguins.y_pred, slices=frame[["body_mass_g"]], bins={"body_mass_g": 4}
    )
    intervals = [
        row.slice for row in report.rows if row.metric == "accuracy" and " in " in row.name
    ]
    assert len(intervals) == 4
    first = intervals[0].conditions[0]
    assert isinstance(first, InInterval) and first.closed == "both"
    expected = pd.qcut(frame["body_mass_g"], 4, labels=False, duplicates="drop")
    for code, predicate in enumerate(intervals):
        assert np.array_equal(predicate.mask(frame), (expected == code).to_numpy())


def test_quantile_bins_of_a_constant_column_make_one_slice() -> None:
    frame = pd.DataFrame({"x": [5.0] * 6})
    report = slice_metrics([0, 1, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0], slices=frame, bins={"x": 3})
    assert {row.name for row in report.rows} == {"x in [5.0, 5.0]"}


def test_a_slice_column_with_one_value_is_one_slice_not_an_error() -> None:
    report = slice_metrics([0, 1, 1], [0, 1, 0], slices=pd.DataFrame({"site": ["a"] * 3}))
    assert {row.name for row in report.rows} == {'site == "a"'}
    assert all(row.gap == 0.0 for row in report.rows)


# --- flags, intervals, report helpers ---------------------------------------------------------


def test_small_slices_are_flagged_not_hidden_and_left_out_of_worst_and_gates(
    penguins: Predictions,
) -> None:
    report = slice_metrics(
        penguins.y_true, penguins.y_pred, slices=penguins.frame[["island"]], min_size=100
    )
    small = [row for row in report.rows if row.too_small]
    assert small and {row.name for row in small} == {'island == "Torgersen"'}
    assert all(row.value is not None for row in small)
    reliable = [r for r in report.rows if r.metric == "recall" and not r.too_small]
    worst = report.worst("recall")
    assert worst is not None and worst.value == min(r.value or 0 for r in reliable)
    assert report.max_gap("recall") == max(abs(r.gap or 0) for r in reliable)
    values = report.gate_values()
    assert values["slices.recall.min"] == worst.value


def wilson_reference(successes: int, trials: int) -> tuple[float, float]:
    """statsmodels' proportion_confint(method="wilson"), written out."""
    crit = norm.isf(0.05 / 2.0)
    q = successes / trials
    denom = 1 + crit**2 / trials
    center = (q + crit**2 / (2 * trials)) / denom
    dist = crit * np.sqrt(q * (1.0 - q) / trials + crit**2 / (4.0 * trials**2)) / denom
    return center - dist, center + dist


def test_wilson_intervals_for_accuracy_precision_and_recall(penguins: Predictions) -> None:
    t, p = penguins.y_true, penguins.y_pred
    report = slice_metrics(t, p, penguins.y_score, penguins.frame[["island"]], ci="wilson")
    for row in report.rows:
        mask = row.slice.mask(penguins.frame)
        tm, pm = t[mask], p[mask]
        tp = int(((tm == 1) & (pm == 1)).sum())
        trials = {
            "accuracy": (int((tm == pm).sum()), len(tm)),
            "precision": (tp, int((pm == 1).sum())),
            "recall": (tp, int((tm == 1).sum())),
        }
        if row.metric in trials:
            assert row.ci_method == "wilson"
            low, high = wilson_reference(*trials[row.metric])
            assert row.ci_low == pytest.approx(low, abs=1e-12)
            assert row.ci_high == pytest.approx(high, abs=1e-12)
        else:  # f1 and roc_auc are not proportions
            assert row.ci_low is None and row.ci_method is None


def test_bootstrap_intervals_contain_the_estimate_and_repeat_with_a_seed(
    penguins: Predictions,
) -> None:
    args = (penguins.y_true, penguins.y_pred, penguins.y_score, penguins.frame[["island"]])
    report = slice_metrics(*args, ci="bootstrap", n_boot=100, seed=1)
    again = slice_metrics(*args, ci="bootstrap", n_boot=100, seed=1)
    other = slice_metrics(*args, ci="bootstrap", n_boot=100, seed=2)
    assert report == again
    assert report != other
    for row in report.rows:
        assert row.ci_low is not None and row.ci_high is not None and row.value is not None
        assert row.ci_method == ("bootstrap" if row.metric in ("f1", "roc_auc") else "wilson")
        assert row.ci_low <= row.value <= row.ci_high


def test_bootstrap_intervals_for_multiclass_and_regression() -> None:
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n)})
    y_true = rng.integers(0, 3, n)
    weights = rng.random((n, 3)) + 0.4 * np.eye(3)[y_true]
    probabilities = np.round(weights / weights.sum(axis=1, keepdims=True), 2)
    y_pred = probabilities.argmax(axis=1)
    report = slice_metrics(y_true, y_pred, probabilities, frame, ci="bootstrap", n_boot=80)
    for row in report.rows:
        assert row.value is not None and row.ci_low is not None and row.ci_high is not None
        expected = "wilson" if row.metric == "accuracy" else "bootstrap"  # macro: not a proportion
        assert row.ci_method == expected
        assert row.ci_low <= row.value <= row.ci_high

    y = rng.normal(size=n)
    prediction = y + rng.normal(scale=0.5, size=n)
    report = slice_metrics(y, prediction, slices=frame, task="regression", ci="bootstrap")
    for row in report.rows:
        assert row.ci_method == "bootstrap"
        assert row.value is not None and row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= row.value <= row.ci_high
    assert report == slice_metrics(y, prediction, slices=frame, task="regression", ci="bootstrap")


def test_ci_none_gives_no_intervals(penguins: Predictions) -> None:
    report = slice_metrics(
        penguins.y_true, penguins.y_pred, slices=penguins.frame[["island"]], ci=None
    )
    assert all(row.ci_low is None and row.ci_high is None for row in report.rows)


def test_gate_values_have_flat_names_for_every_metric(penguins: Predictions) -> None:
    report = slice_metrics(
        penguins.y_true, penguins.y_pred, penguins.y_score, penguins.frame[["island"]]
    )
    expected = {
        f"{prefix}.{metric}{suffix}"
        for metric in ("accuracy", "precision", "recall", "f1", "roc_auc")
        for prefix, suffix in (
            ("overall", ""),
            ("slices", ".min"),
            ("slices", ".max"),
            ("slices", ".max_gap"),
        )
    }
    values = report.gate_values()
    assert set(values) == expected
    assert all(isinstance(value, float) for value in values.values())
    assert values["overall.f1"] == report.overall["f1"]
    assert values["slices.f1.max"] >= values["slices.f1.min"]


def test_worst_of_an_error_metric_is_its_largest_value() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"]})
    report = slice_metrics(
        [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 5.0, 4.0], slices=frame, task="regression", min_size=0
    )
    worst = report.worst("rmse")
    assert worst is not None and worst.name == 'g == "b"'
    best_r2 = report.worst("r2")
    assert best_r2 is not None and best_r2.name == 'g == "b"'
    with pytest.raises(QualityInputError, match="no metric 'f1'"):
        report.worst("f1")


def test_the_report_round_trips_through_json_and_becomes_a_frame(penguins: Predictions) -> None:
    report = slice_metrics(
        penguins.y_true,
        penguins.y_pred,
        penguins.y_score,
        penguins.frame,
        cross=[("sex", "island")],
        bins={"body_mass_g": 3},
    )
    text = report.model_dump_json()
    assert json.loads(text)["schema_version"] == 1
    assert SliceReport.model_validate_json(text) == report
    frame = report.to_frame()
    assert list(frame.columns) == [
        "slice", "columns", "metric", "value", "count",
        "ci_low", "ci_high", "gap", "too_small", "reason",
    ]  # fmt: skip
    assert len(frame) == len(report.rows)
    assert frame["value"].dtype == np.float64


def test_a_report_from_a_newer_nbops_is_refused_by_version() -> None:
    report = slice_metrics([0, 1], [0, 1])
    data = json.loads(report.model_dump_json())
    data["schema_version"] = 2
    with pytest.raises(SchemaVersionError, match="schema version 2"):
        SliceReport.model_validate_json(json.dumps(data))


def test_rows_are_matched_by_position_not_index() -> None:
    y_true = pd.Series([1, 0, 1, 1], index=[10, 11, 12, 13])
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"]}, index=[3, 2, 1, 0])
    report = slice_metrics(y_true, [1, 0, 0, 0], slices=frame, metrics=["accuracy"])
    values = {row.name: row.value for row in report.rows}
    assert values == {'g == "a"': 1.0, 'g == "b"': 0.0}


# --- undefined metrics and bad input ----------------------------------------------------------


def test_a_slice_with_one_class_has_no_roc_auc_and_says_why() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"]})
    report = slice_metrics([1, 1, 0, 1], [1, 0, 0, 1], [0.9, 0.4, 0.2, 0.8], frame)
    row = rows_by_slice(report)['g == "a"']["roc_auc"]
    assert row.value is None and row.gap is None
    assert row.reason == "only one class in y_true in the slice"
    only_one = slice_metrics([1, 1, 1], [1, 0, 1], [0.2, 0.3, 0.4])
    assert only_one.overall["roc_auc"] is None


def test_multiclass_roc_auc_needs_every_class_in_the_slice() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "a", "b", "b", "b"]})
    scores = np.full((6, 3), 1 / 3)
    report = slice_metrics([0, 1, 2, 0, 1, 1], [0, 1, 2, 0, 1, 1], scores, frame)
    row = rows_by_slice(report)['g == "b"']["roc_auc"]
    assert row.value is None
    assert row.reason == "roc_auc needs every class in y_true; the slice has no 2"
    assert rows_by_slice(report)['g == "a"']["roc_auc"].value == 0.5


def test_mismatched_lengths_name_both() -> None:
    with pytest.raises(QualityInputError, match="y_true has 3 rows but y_pred has 2"):
        slice_metrics([0, 1, 0], [0, 1])
    with pytest.raises(QualityInputError, match="y_true has 2 rows but y_score has 3"):
        slice_metrics([0, 1], [0, 1], [0.1, 0.2, 0.3])


def test_a_slice_frame_of_another_length_is_refused() -> None:
    with pytest.raises(QualityInputError, match="the slices frame has 3 rows but y_true has 2"):
        slice_metrics([0, 1], [0, 1], slices=pd.DataFrame({"g": ["a", "b", "c"]}))
    with pytest.raises(QualityInputError, match="data has 1 rows but y_true has 2"):
        slice_metrics([0, 1], [0, 1], slices=["g"], data=pd.DataFrame({"g": ["a"]}))


def test_empty_input_is_refused() -> None:
    with pytest.raises(QualityInputError, match="y_true is empty"):
        slice_metrics([], [])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "y_score", "where"),
    [
        ([0, 1], [0.0, np.nan], None, "y_pred has 1 missing"),
        ([0, None], [0, 1], None, "y_true has 1 missing"),
        ([0, 1], [0, 1], [0.2, np.nan], "y_score has 1 missing"),
        ([0, 1], [0, 1], [[0.8, 0.2], [np.nan, 0.5]], "y_score has 1 missing"),
    ],
)
def test_missing_values_in_labels_predictions_or_scores_are_refused(
    y_true: list[Any], y_pred: list[Any], y_score: Any, where: str
) -> None:
    with pytest.raises(QualityInputError, match=where):
        slice_metrics(y_true, y_pred, y_score)


def test_regression_on_non_numeric_values_is_refused() -> None:
    with pytest.raises(QualityInputError, match="y_true is not numeric"):
        slice_metrics(["a", "b"], [1.0, 2.0], task="regression")
    with pytest.raises(QualityInputError, match="y_score is only for classification"):
        slice_metrics([1.0, 2.0], [1.0, 2.0], [0.1, 0.2], task="regression")


def test_an_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(QualityInputError) as caught:
        slice_metrics([0, 1], [0, 1], metrics=["accuracy", "auc"])
    assert "'auc'" in str(caught.value)
    assert "accuracy, precision, recall, f1, roc_auc" in str(caught.value)
    with pytest.raises(QualityInputError, match="valid metrics are mae, rmse, r2"):
        slice_metrics([0.0, 1.0], [0.0, 1.0], task="regression", metrics=["accuracy"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["roc_auc"]}, "roc_auc needs y_score"),
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"ci": "exact"}, "unknown ci 'exact'"),
        ({"min_size": -1}, "min_size"),
        ({"n_boot": 0}, "n_boot"),
        ({"slices": ["g"]}, "no data= frame"),
        ({"cross": [("a", "b")]}, "no slice frame"),
        ({"labels": [0, 2]}, r"y_true has values not in labels: \[1\]"),
        ({"y_score": np.ones((2, 3))}, "y_score has 3 columns but the labels are binary"),
        ({"y_pred": [0.2, 0.7]}, "look like scores"),
        ({"pos_label": 5, "labels": [0, 1]}, "pos_label 5 is not one of labels"),
    ],
)
def test_each_bad_option_is_one_clear_error(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"y_true": [0, 1], "y_pred": [0, 1], **kwargs}
    with pytest.raises(QualityInputError, match=message):
        slice_metrics(**arguments)


def test_bad_slice_columns_are_clear_errors() -> None:
    frame = pd.DataFrame({"g": ["a", "b"], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(QualityInputError, match=r"slice column\(s\) \['nope'\] not in data"):
        slice_metrics([0, 1], [0, 1], slices=["nope"], data=frame)
    with pytest.raises(QualityInputError, match="'g' is not numeric"):
        slice_metrics([0, 1], [0, 1], slices=["g"], data=frame, bins={"g": 2})
    with pytest.raises(QualityInputError, match="holds Timestamp values"):
        slice_metrics([0, 1], [0, 1], slices=["when"], data=frame)
    with pytest.raises(QualityInputError, match="two or more different columns"):
        slice_metrics([0, 1], [0, 1], data=frame, cross=[("g",)])
    with pytest.raises(QualityInputError, match="which is not sliced on"):
        slice_metrics([0, 1], [0, 1], slices=["g"], data=frame, bins={"when": 2})


def test_multiclass_scores_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(QualityInputError, match=r"shape \(3,\), but there are 3 classes"):
        slice_metrics([0, 1, 2], [0, 1, 2], [0.1, 0.2, 0.3])


def test_a_column_with_too_many_values_asks_for_bins() -> None:
    n = 10_001
    frame = pd.DataFrame({"id": np.arange(n)})
    with pytest.raises(QualityInputError, match=r"10001 slices.*bins=") as caught:
        slice_metrics(np.zeros(n, dtype=int), np.zeros(n, dtype=int), slices=frame)
    assert "column 'id'" in str(caught.value)
    binned = slice_metrics(
        np.zeros(n, dtype=int), np.zeros(n, dtype=int), slices=frame, bins={"id": 10}
    )
    assert len(binned.rows) == 10 * 4
