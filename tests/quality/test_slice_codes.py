"""Integer labels and integer slice columns are coded by counting instead of hashing: the
codes and values equal pd.factorize(sort=True)'s (in a new array, or a read-only view of
int64 values that are their own codes), and a slice family built that way equals the one
from hashing; confusion counts taken chunk by chunk equal one count of all rows."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nbops.quality.slices import classification
from nbops.quality.slices.classification import _prepare_classification
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
    assert codes.dtype == np.int64
    if np.shares_memory(codes, values):  # values that are already their codes: not copied
        assert not codes.flags.writeable and values.dtype == np.int64
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


def test_int64_values_that_are_their_own_codes_are_viewed_read_only() -> None:
    values = np.array([2, 0, 1, 1, 0], dtype=np.int64)
    counted = _small_int_codes(values)
    assert counted is not None
    codes, uniques = counted
    assert np.shares_memory(codes, values) and not codes.flags.writeable
    assert values.flags.writeable  # the caller's array is untouched
    assert uniques.tolist() == [0, 1, 2]
    gapped = _small_int_codes(np.array([3, 0, 3], dtype=np.int64))
    assert gapped is not None and gapped[0].tolist() == [1, 0, 1] and gapped[0].flags.writeable


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 300),
    n_classes=st.integers(2, 4),
    n_slices=st.integers(1, 9),
    chunk=st.sampled_from([1, 2, 7, 64, 1 << 16]),
    overall=st.booleans(),
)
def test_confusion_counts_by_chunks_equal_one_count_of_all_rows(
    seed: int, n_rows: int, n_classes: int, n_slices: int, chunk: int, overall: bool
) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n_rows)
    y_pred = rng.integers(0, n_classes, n_rows)
    codes = rng.integers(0, n_slices, n_rows)
    data = _prepare_classification(y_true, y_pred, None, None, None, want_auc=False)
    k = data.n_classes  # the classes present in y_true or y_pred
    if overall:
        codes, n_slices = np.zeros(n_rows, dtype=np.int64), 1
    expected = np.bincount((codes * k + data.true) * k + data.pred, minlength=n_slices * k * k)
    with mock.patch.object(classification, "_CHUNK", chunk):
        confusion = data.confusion(None if overall else codes, n_slices)
    assert confusion.shape == (n_slices, k, k)
    assert np.array_equal(confusion.reshape(-1), expected)
