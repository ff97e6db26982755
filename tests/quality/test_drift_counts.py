"""Numeric drift counts the values at or below the reference's points (bin edges and CDF
grid) without sorting the column (`PointCounter`, and `np.bincount` for whole numbers in a
short span). The counts, and so PSI, the chi-square p-value, the KS gap and every verdict,
must equal what comparing each value with each point gives, and what the chunk-sorting
count the validation used before gives (`_sorted_counts_at_or_below`, kept for points that
are not all finite), whatever the dtype, nulls, NaN, infinities and ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.quality.schema import infer_schema
from nbops.quality.validate import validate
from nbops.quality.validate.columns import _ColumnChecks
from nbops.quality.validate.drift import (
    BLOCK,
    PointCounter,
    _counts_at_or_below,
    _sorted_counts_at_or_below,
    drift_from_counts,
)

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 1e300, -1e300, 2.0**53, 3.0]


def _brute(s: pd.Series, points: np.ndarray) -> np.ndarray:
    """Each value (as float64, nulls dropped) compared with each point."""
    x = s.to_numpy(dtype=np.float64, na_value=np.nan)
    x = x[~np.isnan(x)]
    return np.array([int(np.count_nonzero(x <= p)) for p in points], dtype=np.int64)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
# values near the points: ties with them, the cells' edges and long runs of equal values
values = st.one_of(finite, st.sampled_from(SPECIAL), st.integers(-5, 5).map(float))


@st.composite
def points_and_values(draw: st.DrawFn) -> tuple[np.ndarray, list[float]]:
    points = np.union1d(draw(st.lists(values, min_size=1, max_size=40)), [])
    pool = [*points.tolist(), np.nan, np.inf, -np.inf]
    xs = draw(st.lists(st.one_of(values, st.sampled_from(pool)), max_size=300))
    return points, xs


@settings(max_examples=300, deadline=None)
@given(points_and_values())
def test_float_counts_equal_each_value_compared_with_each_point(
    case: tuple[np.ndarray, list[float]],
) -> None:
    points, xs = case
    s = pd.Series(np.asarray(xs, dtype=np.float64))
    expected = _brute(s, points)
    assert np.array_equal(_counts_at_or_below(s, points), expected)
    assert np.array_equal(_sorted_counts_at_or_below(s, points), expected)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=200),
    st.lists(st.integers(-40, 40), min_size=1, max_size=20),
    st.sampled_from(["int64", "int32", "uint8", "Int64", "int64[pyarrow]"]),
    st.booleans(),
)
def test_integer_counts_equal_each_value_compared_with_each_point(
    wide: list[int], narrow: list[int], dtype: str, short_span: bool
) -> None:
    ints = [abs(v) % 200 for v in narrow] if dtype == "uint8" else narrow if short_span else wide
    s = pd.Series(ints).astype(dtype)
    if dtype == "Int64":
        s.iloc[::3] = pd.NA
    points = np.union1d(np.asarray(narrow, dtype=np.float64) + 0.5, [float(ints[0])])
    expected = _brute(s, points)
    assert np.array_equal(_counts_at_or_below(s, points), expected)
    assert np.array_equal(_sorted_counts_at_or_below(s, points), expected)


@pytest.mark.parametrize("dtype", ["Float64", "float64[pyarrow]", "float32"])
def test_nullable_and_narrow_float_columns_count_like_float64(dtype: str) -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=3 * BLOCK + 17), 2)
    s = pd.Series(x).astype(dtype)
    if dtype != "float32":
        s.iloc[::7] = None
    points = np.union1d(np.quantile(x, np.linspace(0, 1, 101)), [0.0])
    assert np.array_equal(_counts_at_or_below(s, points), _brute(s, points))


def test_points_crowded_in_one_cell_are_searched_within_it() -> None:
    # 300 points within 1e-6 of 0 and one at 1e6: one grid cell holds 300 of them
    points = np.union1d(np.linspace(0, 1e-6, 300), [1e6])
    counter = PointCounter(points)
    assert len(counter.steps) > 1
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-1e-7, 1.1e-6, 5000), points, [np.nan, np.inf, 2e6]])
    counter.add(x)
    assert np.array_equal(counter.at_or_below(), _brute(pd.Series(x), points))


def test_an_empty_column_counts_nothing() -> None:
    s = pd.Series([], dtype=np.float64)
    assert np.array_equal(_counts_at_or_below(s, np.array([0.0, 1.0])), [0, 0])


def test_counts_across_blocks_equal_one_block() -> None:
    rng = np.random.default_rng(11)
    x = np.round(rng.lognormal(3, 1, 2 * BLOCK + 5), 1)
    x[rng.random(x.size) < 0.02] = np.nan
    points = np.union1d(np.nanquantile(x, np.linspace(0, 1, 1000)), [])
    assert np.array_equal(_counts_at_or_below(pd.Series(x), points), _brute(pd.Series(x), points))


@settings(max_examples=300, deadline=None)
@given(points_and_values(), st.floats(0.0, 3.0), st.sampled_from(["float64", "float32"]))
def test_float_counts_with_the_values_range_equal_each_value_compared_with_each_point(
    case: tuple[np.ndarray, list[float]], widen: float, dtype: str
) -> None:
    """The range check's min and max (or any range holding the values) spare the clipping
    of grid cells: the counts stay exact, with NaN told by the null count or not."""
    points, xs = case
    with np.errstate(over="ignore"):  # 1e300 as float32: inf
        s = pd.Series(np.asarray(xs, dtype=np.float64)).astype(dtype)
    x = s.to_numpy(dtype=np.float64)
    finite = x[~np.isnan(x)]
    if not finite.size:
        return
    low, high = float(finite.min()), float(finite.max())
    pad = widen * (high - low) if np.isfinite(high - low) else 0.0
    nulls = int(np.count_nonzero(np.isnan(x)))
    expected = _brute(s, points)
    for value_range in ((low, high), (low - pad, high + pad)):
        assert np.array_equal(_counts_at_or_below(s, points, value_range, nulls), expected)
    counter = PointCounter(points.astype(np.float64), (low, high), nan=nulls > 0)
    counter.add(x)
    assert np.array_equal(counter.at_or_below(), expected)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-50, 5000), min_size=1, max_size=200),
    st.lists(st.floats(-60, 5100, allow_nan=False), min_size=1, max_size=30),
    st.sampled_from(["int64", "int32", "uint16"]),
)
def test_integer_counts_with_the_values_range_equal_each_value_compared_with_each_point(
    ints: list[int], raw_points: list[float], dtype: str
) -> None:
    """Whole numbers at or above 0 are counted as they are (no shift), others shifted."""
    if dtype == "uint16":
        ints = [abs(v) for v in ints]
    s = pd.Series(ints).astype(dtype)
    points = np.union1d(raw_points, [])
    x = s.to_numpy()
    got = _counts_at_or_below(s, points, (x.min(), x.max()), 0)
    assert np.array_equal(got, _brute(s, points))


def test_crowded_points_get_a_finer_grid() -> None:
    # lognormal quantiles: two share a cell of a 2**16 grid, none of a 2**18 one
    rng = np.random.default_rng(20240601)
    x = rng.lognormal(3.0, 1.0, 200_000)
    points = np.union1d(np.quantile(x, np.linspace(0, 1, 1000)), [])
    counter = PointCounter(points, (float(x.min()), float(x.max())), nan=False)
    assert counter.steps == [1] and counter.last + 1 > 1 << 16
    counter.add(x)
    assert np.array_equal(counter.at_or_below(), _brute(pd.Series(x), points))


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    floats = np.round(rng.normal(shift, 1.0, n), 1)  # ties
    floats[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "ints": rng.integers(0, 30, n) + int(shift * 3),
            "wide": rng.integers(-(2**40), 2**40, n),
            "floats": floats,
            "heavy": rng.pareto(1.5, n),
            "constant": np.full(n, 7.5),
            "empty": np.full(n, np.nan),
            "city": pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype="str"),
            "flag": rng.random(n) < 0.3 + shift / 10,
        }
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.05, 0.5]))
def test_validate_drift_checks_equal_those_of_each_value_compared_with_each_point(
    seed: int, shift: float
) -> None:
    rng = np.random.default_rng(seed)
    reference, new = _frame(rng, 3000, 0.0), _frame(rng, 2000, shift)
    schema = infer_schema(reference)
    report = validate(new, schema, workers=1)
    drift = {c.name: c for c in report.checks if c.kind in ("drift_psi", "drift_ks")}
    expected_names = set()
    for column in schema.columns:
        ref = column.reference
        if column.kind not in ("integer", "float") or ref is None:
            continue
        s = new[column.name]
        if s.isna().all():
            continue
        checker = _ColumnChecks(column, s, ref)
        checker.nulls = int(s.isna().sum())
        points = np.union1d(ref.bin_edges or [], ref.cdf_values or [])
        for want in drift_from_counts(checker, ref, points, _brute(s, points)):
            expected_names.add(want.name)
            got = drift[want.name]
            # the family judgement (Holm) only adds to stats and message
            assert {k: got.stats[k] for k in want.stats} == want.stats
            assert got.message.startswith(want.message)
            if got.stats["significant"]:
                assert got.status == want.status
    assert expected_names == set(drift)
