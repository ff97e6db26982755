"""`sorted_finite` (what schema inference takes quantiles, bins and the CDF grid from) sorts
whole numbers in a short span by counting them: the result must be `np.sort`'s exactly, of
the same dtype, whatever the integer type, span and extremes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.quality.schema.infer import sorted_finite

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@st.composite
def integer_columns(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    info = np.iinfo(dtype)
    near = st.integers(max(int(info.min), -300), min(int(info.max), 300))
    anywhere = st.integers(int(info.min), int(info.max))
    values = draw(
        st.lists(st.one_of(near, anywhere) if draw(st.booleans()) else near, max_size=400)
    )
    return np.array(values, dtype=dtype)


@settings(max_examples=300, deadline=None)
@given(integer_columns())
def test_integers_sorted_by_counting_equal_np_sort(x: np.ndarray) -> None:
    got = sorted_finite(pd.Series(x, dtype=x.dtype))
    assert got.dtype == x.dtype
    assert np.array_equal(got, np.sort(x))


def test_a_short_span_of_many_values_is_sorted() -> None:
    x = np.random.default_rng(4).integers(2000, 2025, 1_000_003)
    assert np.array_equal(sorted_finite(pd.Series(x)), np.sort(x))
