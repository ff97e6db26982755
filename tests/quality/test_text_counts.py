"""Counts of the known categories in a text column (`known_text_counts`: a 64-bit key per
value read from the Arrow buffers, and a small perfect hash; the checker's `text_counts`
for every text dtype) must equal counting each value by its text: whatever the values'
lengths (empty, up to 7 bytes, 8, longer, sharing prefixes with a known one, holding NUL or
multi-byte UTF-8), nulls, Arrow types, slices and chunks, and unseen categories."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.quality.schema.model import ColumnSchema, ReferenceStats
from nbops.quality.validate.columns import _ColumnChecks
from nbops.quality.validate.text_counts import (
    BLOCK,
    MAX_KNOWN,
    MAX_KNOWN_BYTES,
    known_text_counts,
)

# values that differ from a known one in the last byte, the length, past the 7th byte, ...
POOL = [
    "",
    "a",
    "ab",
    "abc",
    "abcdefg",
    "abcdefh",
    "abcdefgh",
    "abcdefgX",
    "abcdefghijk",
    "a\x00",
    "\x00",
    "\x00\x00\x00\x00\x00\x00\x00",
    "\t",
    "é",
    "日本",
    "Oslo",
    "Oslo ",
    "oslo",
    "\x08",
    "\x09",
    "\x09bcdefgh",
    "\x01bcdefgh",
]
SHORT = [v for v in POOL if len(v.encode()) <= MAX_KNOWN_BYTES]
texts = st.one_of(st.sampled_from(POOL), st.text(max_size=10))


def _expected(values: list[str | None], known: list[str]) -> list[int]:
    counts = Counter(v for v in values if v is not None)
    rest = sum(c for v, c in counts.items() if v not in set(known))
    return [counts.get(k, 0) for k in known] + [rest]


@st.composite
def arrow_case(draw: st.DrawFn) -> tuple[pa.ChunkedArray, list[str | None], list[str]]:
    values = draw(st.lists(st.one_of(texts, st.none()), max_size=120))
    known = draw(st.lists(st.sampled_from(SHORT), unique=True, max_size=12))
    kind = draw(st.sampled_from([pa.string(), pa.large_string()]))
    array = pa.array(values, type=kind)
    lo = draw(st.integers(0, len(values)))
    hi = draw(st.integers(lo, len(values)))
    cut = draw(st.integers(lo, hi))
    # a slice (offsets not starting at 0, bytes before and after it) in up to two chunks
    chunked = pa.chunked_array([array.slice(lo, cut - lo), array.slice(cut, hi - cut)], kind)
    return chunked, values[lo:hi], known


@settings(max_examples=400, deadline=None)
@given(arrow_case())
def test_known_counts_equal_counting_each_value(
    case: tuple[pa.ChunkedArray, list[str | None], list[str]],
) -> None:
    data, values, known = case
    counts = known_text_counts(data, known)
    assert counts is not None
    assert counts.tolist() == _expected(values, known)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2 * BLOCK), st.booleans())
def test_known_counts_over_several_blocks(seed: int, extra: int, long_tail: bool) -> None:
    """Several blocks, nulls among them, and (`long_tail`) a run of empty strings ending the
    buffer, so that many values start within its last 8 bytes."""
    rng = np.random.default_rng(seed)
    pool = np.array([*SHORT[:6], "abcdefgh", "Oslo"], dtype=object)
    values: list[str | None] = list(rng.choice(pool, size=BLOCK + extra))
    for i in rng.integers(0, len(values), size=len(values) // 50):
        values[i] = None
    if long_tail:
        values += [""] * (BLOCK // 2)
    known = ["a", "", "abc", "Oslo"]
    counts = known_text_counts(pa.array(values, type=pa.large_string()), known)
    assert counts is not None and counts.tolist() == _expected(values, known)


def test_a_long_known_category_or_another_type_is_left_to_hashing() -> None:
    data = pa.array(["abcdefgh", "x"])
    assert known_text_counts(data, ["abcdefgh"]) is None
    assert known_text_counts(pa.array([b"x"], type=pa.binary()), ["x"]) is None
    assert known_text_counts(pa.array(["x"]).dictionary_encode(), ["x"]) is None
    counts = known_text_counts(data, [])
    assert counts is not None and counts.tolist() == [2]
    many = [f"{i:x}" for i in range(MAX_KNOWN + 1)]
    assert known_text_counts(pa.array(many), many) is None


def test_as_many_known_categories_as_the_table_takes() -> None:
    known = [f"{i:x}" for i in range(MAX_KNOWN)]
    values = [*known, *known[::3], "zz", None, "1000"]
    counts = known_text_counts(pa.array(values), known)
    assert counts is not None and counts.tolist() == _expected(values, known)


def _series(values: list[str | None], dtype: str) -> pd.Series:
    if dtype == "str":
        return pd.Series(values, dtype="str")
    if dtype == "arrow":
        return pd.Series(values, dtype=pd.ArrowDtype(pa.string()))
    if dtype == "category":
        return pd.Series(values, dtype="category")
    if dtype == "object-nan":  # missing values as NaN in an object column
        return pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.Series(values, dtype=object)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(POOL), st.none()), min_size=1, max_size=80),
    st.lists(st.sampled_from(POOL), unique=True, max_size=6),
    st.lists(st.sampled_from(POOL), unique=True, min_size=1, max_size=6),
    st.sampled_from(["str", "arrow", "category", "object", "object-nan"]),
)
def test_checker_text_counts_for_every_text_dtype(
    values: list[str | None], allowed: list[str], seen: list[str], dtype: str
) -> None:
    """The categories check and the category drift share these counts: the schema's
    categories and the reference's (long ones too), values never seen among the rest."""
    column = ColumnSchema(name="c", kind="categorical", categories=allowed or None)
    reference = ReferenceStats(rows=10, frequencies={k: 1 / len(seen) for k in seen})
    checker = _ColumnChecks(column, _series(values, dtype), reference)
    checker.run()
    known = list(dict.fromkeys([*allowed, *seen]))
    counts, rest = checker.text_counts()
    assert [counts[k] for k in known] + [rest] == _expected(values, known)


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_values_at_the_end_of_a_short_buffer(kind: pa.DataType) -> None:
    values = ["ab", "", None, "abc", "", "b"]
    for stop in range(len(values) + 1):
        part = values[:stop]
        counts = known_text_counts(pa.array(part, type=kind), ["", "ab", "b"])
        assert counts is not None and counts.tolist() == _expected(part, ["", "ab", "b"])
