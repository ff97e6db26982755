"""roc_auc per slice from the one sort of all scores (many distinct scores): equal to
scikit-learn on every slice, with and without ties, on one-class and tiny slices; and the
sort itself (packed integer keys) equal to a plain sort, whatever the scores."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from nbops.quality.slices import slice_metrics
from nbops.quality.slices.classification import _sort_by_score

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sklearn_auc(t: np.ndarray, s: np.ndarray) -> float:
    if len(np.unique(t)) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(roc_auc_score(t, s))


def assert_equal_to_sklearn(
    y: np.ndarray, score: np.ndarray, frame: pd.DataFrame, **options: object
) -> None:
    report = slice_metrics(
        y, (score > 0.5).astype(int), score, data=frame, metrics=["roc_auc"], ci=None, **options
    )
    overall, expected_overall = report.overall["roc_auc"], sklearn_auc(y, score)
    if math.isnan(expected_overall):
        assert overall is None
    else:
        assert overall is not None and math.isclose(overall, expected_overall, rel_tol=1e-12)
    assert report.rows
    for row in report.rows:
        mask = row.slice.mask(frame)
        expected = sklearn_auc(y[mask], score[mask])
        if math.isnan(expected):
            assert row.value is None and row.reason is not None
        else:
            assert row.value is not None
            assert math.isclose(row.value, expected, rel_tol=1e-12, abs_tol=1e-12), row.name


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(6_000, 20_000),
    n_slices=st.integers(1, 300),
    tied_share=st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.9]),
    one_class_slice=st.booleans(),
)
def test_sorted_scores_give_sklearns_roc_auc_on_every_slice(
    seed: int, n_rows: int, n_slices: int, tied_share: float, one_class_slice: bool
) -> None:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_slices, n_rows)
    y = rng.integers(0, 2, n_rows)
    score = rng.random(n_rows) + 0.3 * y
    tied = rng.random(n_rows) < tied_share
    score[tied] = np.round(score[tied], 2)  # ties within and across classes
    if one_class_slice and n_slices > 1:
        y[group == 0] = 1
    group[: min(3, n_rows)] = n_slices  # a slice of three rows
    assert_equal_to_sklearn(y, score, pd.DataFrame({"g": group}), slices=["g"])


def test_crossed_slices_of_distinct_scores_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    frame = pd.DataFrame({"a": rng.integers(0, 5, n), "b": rng.integers(0, 11, n)})
    y = rng.integers(0, 2, n)
    score = rng.normal(size=n) + y  # negative scores too
    assert_equal_to_sklearn(y, score, frame, cross=[("a", "b")])


def test_scores_closer_than_the_packed_bits_are_still_ordered_exactly() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    y = rng.integers(0, 2, n)
    base = rng.random(n // 2)
    score = np.concatenate([base, np.nextafter(base, 2.0)])  # pairs one ulp apart
    order = rng.permutation(n)
    frame = pd.DataFrame({"g": rng.integers(0, 40, n)})
    assert_equal_to_sklearn(y, score[order], frame, slices=["g"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, width=64),
            st.sampled_from([0.0, -0.0, 1.0, 1.0 + 2**-52, -1e-300, 5e-324]),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_the_packed_sort_orders_like_a_plain_sort_and_finds_every_tie(values: list[float]) -> None:
    score = np.array(values, dtype=np.float64) + 0.0
    order, tie = _sort_by_score(score)
    assert sorted(order.tolist()) == list(range(len(score)))
    expected = np.sort(score)
    assert np.array_equal(score[order], expected)
    ties = expected[1:] == expected[:-1]
    assert np.array_equal(np.zeros_like(ties) if tie is None else tie, ties)
