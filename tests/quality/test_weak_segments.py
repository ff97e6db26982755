"""Weak segments: the search finds a planted bad segment first, reports exactly the metric
sklearn gives on each segment's rows, ranks as a brute-force groupby over every single and
pair does, and does not report tiny segments however bad they look."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, recall_score
from statsmodels.stats.proportion import proportion_confint

from nbops.errors import QualityInputError
from nbops.quality.slices import InInterval, SliceReport, slice_metrics
from nbops.quality.slices.weak import weak_segments


def _planted(n: int = 2000, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Errors in 40% of the rows of `region == "north" and age in (50, 70]`, 5% elsewhere;
    age uniform on 10..90, so its quartile edges fall near 30, 50 and 70."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], n),
            "age": rng.uniform(10, 90, n),
            "plan": rng.choice(["basic", "pro"], n),
            "spend": rng.normal(size=n),
            "customer": [f"c{i}" for i in range(n)],
        }
    )
    planted = (frame.region == "north") & (frame.age > 50) & (frame.age <= 70)
    wrong = np.where(planted, rng.random(n) < 0.4, rng.random(n) < 0.05)
    y = rng.integers(0, 2, n)
    return frame, y, np.where(wrong, 1 - y, y)


def test_the_planted_segment_is_found_first() -> None:
    frame, y, pred = _planted()
    found = weak_segments(y, pred, data=frame)
    first = found[0]
    columns = {condition.column: condition for condition in first.slice.conditions}
    assert set(columns) == {"region", "age"}
    assert columns["region"].to_expression() == 'region == "north"'
    age = columns["age"]
    assert isinstance(age, InInterval)
    assert abs(age.lower - 50) < 3 and abs(age.upper - 70) < 3
    assert first.value is not None and first.value < 0.7
    assert found.skipped == {"customer": "2000 distinct values, more than max_categories=20"}


def test_a_tiny_segment_with_every_row_wrong_is_not_reported() -> None:
    """15 rows, all wrong, under the default min support (max(30, 2% of 1000) = 30)."""
    rng = np.random.default_rng(3)
    n = 1000
    frame = pd.DataFrame({"shop": ["tiny"] * 15 + list(rng.choice(["a", "b", "c"], n - 15))})
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.1, 1 - y, y)
    pred[:15] = 1 - y[:15]
    found = weak_segments(y, pred, data=frame)
    assert found.min_support == 30
    assert all("tiny" not in row.name for row in found)
    lowered = weak_segments(y, pred, data=frame, min_support=10)
    assert lowered[0].name == 'shop == "tiny"' and lowered[0].value == 0.0


_METRICS = {
    "accuracy": accuracy_score,
    "recall": lambda t, p: recall_score(t, p, pos_label=1, zero_division=np.nan),
    "f1": lambda t, p: f1_score(t, p, average="macro", labels=np.union1d(t, p)),
    "binary f1": lambda t, p: f1_score(t, p, pos_label=1, zero_division=np.nan),
}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(40, 300),
    metric=st.sampled_from(["accuracy", "f1", "recall"]),
    classes=st.sampled_from([2, 3]),
)
def test_every_segment_count_and_value_equal_sklearn_on_its_mask(
    seed: int, n: int, metric: str, classes: int
) -> None:
    if metric == "recall" and classes == 3:
        metric = "accuracy"  # recall of a multiclass task is macro: covered by f1's path
    reference = _METRICS["binary f1" if metric == "f1" and classes == 2 else metric]
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", None], n),
            "size": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "flag": rng.random(n) < 0.3,
            "count": rng.integers(0, 3, n),
        }
    )
    y = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < 0.3, rng.integers(0, classes, n), y)
    found = weak_segments(y, pred, data=frame, metric=metric, min_support=5, top_k=50)
    for row in found:
        mask = row.slice.mask(frame)
        assert row.count == int(mask.sum())
        expected = float(reference(y[mask], pred[mask]))
        assert row.value == pytest.approx(expected, abs=1e-12)
        assert row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= row.value + 1e-12 or row.ci_method == "bootstrap"


def _brute_force(
    frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray, support: int, k: int
) -> list[tuple[float, float, int, frozenset[int]]]:
    """Every single column and pair by pandas groupby (numbers in pd.qcut quartiles), the
    same filters, ranked by the Wilson upper bound (statsmodels), then value, then size."""
    right = pd.Series(y == pred)
    overall = right.mean()
    keys = {
        name: (
            pd.qcut(frame[name], 4, duplicates="drop").astype(str)
            if frame[name].dtype.kind == "f"
            else frame[name].astype(str)
        )
        for name in frame.columns
    }
    single: dict[tuple[str, str], tuple[float, int]] = {}
    found = []
    for name in frame.columns:
        for value, rows in right.groupby(keys[name]):
            single[(name, str(value))] = (rows.mean(), len(rows))
            found.append(((name, str(value)),))
    for first, second in itertools.combinations(frame.columns, 2):
        for values, _ in right.groupby([keys[first], keys[second]]):
            found.append(((first, str(values[0])), (second, str(values[1]))))
    ranked = []
    for parts in found:
        mask = np.ones(len(y), dtype=bool)
        for name, value in parts:
            mask &= (keys[name] == value).to_numpy()
        count, accuracy = int(mask.sum()), float(right[mask].mean())
        if count < support or not accuracy < overall:
            continue
        if len(parts) == 2 and any(
            not accuracy < single[part][0] or count == single[part][1] for part in parts
        ):
            continue
        _, high = proportion_confint(int(right[mask].sum()), count, alpha=0.05, method="wilson")
        ranked.append((round(float(high), 12), accuracy, count, frozenset(np.flatnonzero(mask))))
    ranked.sort(key=lambda item: (item[0], item[1], -item[2]))
    return ranked[:k]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ranking_equals_a_brute_force_groupby_over_singles_and_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1200
    frame = pd.DataFrame(
        {
            "region": rng.choice(["n", "s", "e"], n),
            "plan": rng.choice(["a", "b", "c", "d"], n),
            "age": rng.normal(40, 10, n),
        }
    )
    y = rng.integers(0, 2, n)
    error = 0.1 + 0.15 * (frame.region == "n") * (frame.plan == "d") + 0.05 * (frame.age > 50)
    pred = np.where(rng.random(n) < error, 1 - y, y)
    found = weak_segments(y, pred, data=frame, min_support=30, top_k=15)
    expected = _brute_force(frame, y, pred, 30, 15)
    got = [
        (
            round(float(row.ci_high or 0), 12),
            row.value,
            row.count,
            frozenset(np.flatnonzero(row.slice.mask(frame))),
        )
        for row in found
    ]
    assert len(got) == len(expected) > 5
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == pytest.approx(theirs[0], abs=1e-9)
        assert mine[1:3] == pytest.approx(theirs[1:3]) and mine[3] == theirs[3]


@pytest.mark.parametrize("metric", ["mae", "r2"])
def test_the_bootstrap_search_stops_early_without_changing_the_top_k(metric: str) -> None:
    """r2: candidates are bootstrapped from the worst value on until none left can rank
    among the k weakest; mae: the weakest by the normal approximation are bootstrapped.
    Either way the top 3 is the start of the full ranking."""
    rng = np.random.default_rng(5)
    n = 1500
    frame = pd.DataFrame({"a": rng.choice(list("pqrs"), n), "b": rng.normal(size=n)})
    y = rng.normal(size=n)
    pred = y + rng.normal(size=n) * (1 + (frame.a == "p") * (frame.b > 0.5))
    full = weak_segments(y, pred, data=frame, task="regression", metric=metric, top_k=1000)
    top = weak_segments(y, pred, data=frame, task="regression", metric=metric, top_k=3)
    assert [row.name for row in top] == [row.name for row in full[:3]]
    assert top[0].metric == metric and top[0].ci_method == "bootstrap"
    mask = top[0].slice.mask(frame)
    reference = mean_absolute_error if metric == "mae" else r2_score
    assert top[0].value == pytest.approx(reference(y[mask], pred[mask]), abs=1e-12)


def test_slice_metrics_stores_weak_segments_and_weakest_ranks_them_with_named_slices() -> None:
    frame, y, pred = _planted()
    report = slice_metrics(y, pred, data=frame, slices=["plan"], weak_segments={"top_k": 3})
    assert len(report.weak) == 3
    weakest = report.weakest(2)
    assert weakest[0].name == report.weak[0].name
    assert report.gate_values()["weak.accuracy.min"] == report.weak[0].value
    again = SliceReport.model_validate_json(report.model_dump_json())
    assert again.weak == report.weak
    old = report.model_dump(mode="json")
    del old["weak"]
    assert SliceReport.model_validate(old).weak == []


def test_weak_segments_refuse_unusable_options_with_one_line() -> None:
    frame, y, pred = _planted(200)
    with pytest.raises(QualityInputError, match="unknown classification metric 'mae'"):
        weak_segments(y, pred, data=frame, metric="mae")
    with pytest.raises(QualityInputError, match=r"column\(s\) \['nope'\] not in data"):
        weak_segments(y, pred, data=frame, columns=["nope"])
    with pytest.raises(QualityInputError, match="has 200 rows but y_true has 10"):
        weak_segments(y[:10], pred[:10], data=frame)
    with pytest.raises(QualityInputError, match="needs the rows' columns"):
        slice_metrics(y, pred, weak_segments=True)
