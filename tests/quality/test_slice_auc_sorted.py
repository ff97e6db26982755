"""roc_auc per slice from the one sort of all scores (many distinct scores): equal to
scikit-learn on every slice, with and without ties, on one-class and tiny slices; the sort
itself (packed integer keys) equal to a plain sort, whatever the scores; and the positives'
positions in their slices, summed chunk by chunk, equal to a direct count whatever the
chunk size."""

from __future__ import annotations

import math
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from nbops.errors import QualityInputError
from nbops.quality.slices import classification, slice_metrics
from nbops.quality.slices.classification import _positions_in_slices, _sort_by_score

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


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, width=64),
            st.sampled_from([0.0, -0.0, 1.0, 1.0 + 2**-52, -1e-300, 5e-324, np.inf, -np.inf]),
        ),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([1, 3, 64, 1 << 16]),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_the_packed_sort_orders_like_a_plain_sort_and_finds_every_tie(
    values: list[float], chunk: int, seed: int, with_flags: bool
) -> None:
    score = np.array(values, dtype=np.float64)  # -0.0 as given: it ties with 0.0
    positive = np.random.default_rng(seed).random(len(score)) < 0.5 if with_flags else None
    with mock.patch.object(classification, "_CHUNK", chunk):  # keys built chunk by chunk
        order, tie, in_order = _sort_by_score(score, positive)
    assert sorted(order.tolist()) == list(range(len(score)))
    expected = np.sort(score)
    assert np.array_equal(score[order], expected)
    ties = expected[1:] == expected[:-1]
    assert np.array_equal(np.zeros_like(ties) if tie is None else tie, ties)
    if positive is None:
        assert in_order is None
    else:  # the flags carried through the sort are the rows' own
        assert in_order is not None and np.array_equal(in_order, positive[order])


@settings(max_examples=100, deadline=None)
@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    width=st.sampled_from([0.0, 1e-12, 1e-6, 1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_packed_sort_is_exact_for_scores_packed_in_a_narrow_range(
    low: float, width: float, seed: int
) -> None:
    """The keys are shifted up over the bits a narrow range leaves unused: scores in
    [low, low + width] (a few ulps apart at the narrowest) still come out in exact order."""
    rng = np.random.default_rng(seed)
    score = low + width * rng.random(500)
    score[rng.random(500) < 0.1] = low
    positive = rng.random(500) < 0.3
    with mock.patch.object(classification, "_CHUNK", 64):
        order, tie, in_order = _sort_by_score(score, positive)
    expected = np.sort(score)
    assert np.array_equal(score[order], expected)
    assert in_order is not None and np.array_equal(in_order, positive[order])
    ties = expected[1:] == expected[:-1]
    assert np.array_equal(np.zeros_like(ties) if tie is None else tie, ties)


def test_the_packed_sort_leaves_the_scores_as_they_were() -> None:
    score = np.array([0.5, -0.0, -2.0, 0.0, np.inf, -np.inf, 0.5, 1e-300])
    before = score.copy()
    order, tie, _ = _sort_by_score(score)
    assert np.array_equal(score, before) and np.array_equal(np.signbit(score), np.signbit(before))
    assert score[order].tolist() == [-np.inf, -2.0, 0.0, 0.0, 1e-300, 0.5, 0.5, np.inf]
    assert tie is not None and tie.tolist() == [False, False, True, False, False, True, False]


def positions_by_brute_force(
    positive: np.ndarray, order: np.ndarray, codes: np.ndarray, n_slices: int
) -> tuple[list[int], list[int], list[int]]:
    total, n_positive, counts = [0] * n_slices, [0] * n_slices, [0] * n_slices
    for row in order.tolist():  # rows in score order
        s = int(codes[row])
        if positive[row]:
            total[s] += counts[s]  # the slice's rows before this one
            n_positive[s] += 1
        counts[s] += 1
    return total, n_positive, counts


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 400),
    n_slices=st.integers(1, 12),
    positive_share=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    chunk=st.sampled_from([1, 2, 3, 7, 64, 1 << 16]),
    one_slice=st.booleans(),
)
def test_positions_in_slices_equal_a_direct_count_whatever_the_chunk(
    seed: int,
    n_rows: int,
    n_slices: int,
    positive_share: float,
    chunk: int,
    one_slice: bool,
) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_slices, n_rows)
    codes[rng.random(n_rows) < 0.3] = 0  # an uneven share per slice, some slices empty
    positive = rng.random(n_rows) < positive_share
    order = rng.permutation(n_rows)
    if one_slice:
        codes, n_slices = np.zeros(n_rows, dtype=np.int64), 1
    expected = positions_by_brute_force(positive, order, codes, n_slices)
    with mock.patch.object(classification, "_CHUNK", chunk):
        total, n_positive, counts = _positions_in_slices(
            positive[order], order, None if one_slice else codes.astype(np.uint8), n_slices
        )
    assert (total.tolist(), n_positive.tolist(), counts.tolist()) == expected


def mann_whitney_auc(y: np.ndarray, score: np.ndarray) -> float:
    """roc_auc from average ranks (scipy), which also ranks infinite scores."""
    n_positive = int(y.sum())
    n_negative = len(y) - n_positive
    if n_positive == 0 or n_negative == 0:
        return math.nan
    u = rankdata(score)[y == 1].sum() - n_positive * (n_positive + 1) / 2
    return float(u / (n_positive * n_negative))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(9_000, 14_000),
    n_slices=st.integers(1, 60),
    specials=st.sets(
        st.sampled_from(["signed zeros", "infinities", "negatives", "ties", "one class"])
    ),
    chunk=st.sampled_from([997, 4096, 1 << 16]),
)
def test_sorted_roc_auc_ranks_special_scores_like_average_ranks(
    seed: int, n_rows: int, n_slices: int, specials: set[str], chunk: int
) -> None:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_slices, n_rows)
    y = rng.integers(0, 2, n_rows)
    score = rng.random(n_rows) + 0.2 * y
    if "negatives" in specials:
        score -= 0.6
    if "signed zeros" in specials:  # -0.0 and 0.0 tie with each other
        zeros = rng.random(n_rows) < 0.05
        score[zeros] = np.where(rng.random(int(zeros.sum())) < 0.5, -0.0, 0.0)
    if "infinities" in specials:
        ends = rng.random(n_rows) < 0.02
        score[ends] = np.where(rng.random(int(ends.sum())) < 0.5, -np.inf, np.inf)
    if "ties" in specials:
        tied = rng.random(n_rows) < 0.2
        score[tied] = np.round(score[tied], 2)
    if "one class" in specials and n_slices > 1:
        y[group == 1] = 0
    frame = pd.DataFrame({"g": group})
    assert classification._Ranking(y == 1, score).sorted  # the one-sort path, not hashing
    with mock.patch.object(classification, "_CHUNK", chunk):
        report = slice_metrics(
            y, (score > 0).astype(int), score, data=frame, metrics=["roc_auc"], ci=None, slices="g"
        )
    expected_overall = mann_whitney_auc(y, score)
    assert report.overall["roc_auc"] is not None
    assert math.isclose(report.overall["roc_auc"], expected_overall, rel_tol=1e-12)
    for row in report.rows:
        mask = row.slice.mask(frame)
        expected = mann_whitney_auc(y[mask], score[mask])
        if math.isnan(expected):
            assert row.value is None
        else:
            assert row.value is not None
            assert math.isclose(row.value, expected, rel_tol=1e-12, abs_tol=1e-12), row.name


def test_a_nan_score_is_refused_on_the_sorted_path_too() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(10_000)
    score[1234] = np.nan
    y = rng.integers(0, 2, 10_000)
    with pytest.raises(QualityInputError, match="y_score has 1 missing value"):
        slice_metrics(y, y, score, metrics=["roc_auc"], ci=None)
