"""Integer labels and integer slice columns are coded by counting instead of hashing: the
codes and values equal pd.factorize(sort=True)'s, in a new array, and a slice family built
that way equals the one from hashing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nbops.quality.slices.columns import _column_family
from nbops.quality.slices.inputs import _small_int_codes

INTEGER_DTYPES = st.sampled_from(
    [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.bool_]
)


@settings(max_examples=200, deadline=None)
@given(
    INTEGER_DTYPES.flatmap(
        lambda dtype: hnp.arrays(
            dtype, st.integers(1, 300), elements=hnp.from_dtype(np.dtype(dtype))
        )
    )
)
def test_counted_codes_equal_sorted_factorize_or_decline(values: np.ndarray) -> None:
    counted = _small_int_codes(values)
    if counted is None:  # only a range of 65,536 values or more is left to hashing
        assert int(values.max()) - int(values.min()) >= 1 << 16
        return
    codes, uniques = counted
    expected_codes, expected_uniques = pd.factorize(values, sort=True)
    assert codes.dtype == np.int64 and not np.shares_memory(codes, values)
    assert np.array_equal(codes, expected_codes)
    assert uniques.dtype == values.dtype and np.array_equal(uniques, expected_uniques)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.integers(-70_000, 70_000), min_size=1, max_size=200),
    dtype=st.sampled_from(["int64", "int32", "uint16"]),
)
def test_an_integer_slice_column_makes_the_family_that_hashing_makes(
    values: list[int], dtype: str
) -> None:
    series = pd.Series(np.asarray(values) % (1 << 16) if dtype == "uint16" else values)
    series = series.astype(dtype)
    family = _column_family(series, "g", None)
    hashed = _column_family(series.astype(object), "g", None)  # the pd.factorize path
    assert np.array_equal(family.codes, hashed.codes) and family.codes.dtype == np.int64
    assert [p.to_expression() for p in family.predicates] == [
        p.to_expression() for p in hashed.predicates
    ]


def test_empty_and_non_integer_arrays_are_left_to_hashing() -> None:
    assert _small_int_codes(np.array([], dtype=np.int64)) is None
    assert _small_int_codes(np.array([1.0, 2.0])) is None
    assert _small_int_codes(np.array([0, 2**63 - 1], dtype=np.uint64)) is None
    assert _small_int_codes(np.array(["a", "b"], dtype=object)) is None
