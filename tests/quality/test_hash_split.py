"""`nbops.hash_split`: a row's side depends only on its key, the salt and test_size."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

import nbops
from nbops.errors import QualityInputError
from nbops.quality.split import hash_split, key_text

keys = st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.text(max_size=12),
)
key_lists = st.lists(keys, min_size=1, max_size=60, unique_by=lambda k: (type(k), k))


def _frame(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series(values, dtype=object), "x": range(len(values))})


def _test_keys(df: pd.DataFrame, key: str = "id", **kwargs: object) -> list[object]:
    _, test = hash_split(df, key, **kwargs)  # type: ignore[arg-type]
    return list(test[key])


def test_hash_split_is_public_and_lazy() -> None:
    assert nbops.hash_split is hash_split


@settings(max_examples=60, deadline=None)
@given(old=key_lists, new=key_lists)
def test_appending_rows_never_moves_an_existing_row(old: list[object], new: list[object]) -> None:
    before = _frame(old)
    after = pd.concat([before, _frame(new)], ignore_index=True)
    train_before, test_before = hash_split(before, "id")
    train_after, test_after = hash_split(after, "id")
    # Every original row (index 0..len(old)-1) sits on the same side after the append.
    assert set(test_before.index) == {i for i in test_after.index if i < len(old)}
    assert set(train_before.index) == {i for i in train_after.index if i < len(old)}


@settings(max_examples=60, deadline=None)
@given(values=key_lists, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_permuting_rows_does_not_change_any_side(values: list[object], seed: int) -> None:
    df = _frame(values)
    shuffled = df.sample(frac=1, random_state=seed)
    _, test = hash_split(df, "id")
    _, test_shuffled = hash_split(shuffled, "id")
    assert set(test.index) == set(test_shuffled.index)


@settings(max_examples=60, deadline=None)
@given(values=key_lists, salt=st.text(max_size=8), test_size=st.floats(0.01, 0.99))
def test_the_split_equals_a_plain_hashlib_loop(
    values: list[object], salt: str, test_size: float
) -> None:
    df = _frame(values)
    expected = [
        int.from_bytes(
            hashlib.blake2b((salt + str(v)).encode("utf-8"), digest_size=8).digest(), "big"
        )
        / 2**64
        < test_size
        for v in values
    ]
    _, test = hash_split(df, "id", test_size, salt=salt)
    assert list(test.index) == [i for i, t in enumerate(expected) if t]


def test_rows_keep_their_order_and_index_and_every_row_lands_once() -> None:
    df = pd.DataFrame({"id": range(500)}, index=[f"r{i}" for i in range(500)])
    train, test = hash_split(df, "id", 0.3)
    assert len(train) + len(test) == 500
    assert not set(train.index) & set(test.index)
    assert list(train.index) == [i for i in df.index if i in set(train.index)]
    assert list(test.index) == [i for i in df.index if i in set(test.index)]


def test_the_same_split_in_a_fresh_process_with_another_hash_seed() -> None:
    df = pd.DataFrame({"id": [f"user-{i}" for i in range(300)], "n": range(300)})
    _, test = hash_split(df, ["id", "n"], 0.25, salt="s1")
    probe = (
        "import json, pandas as pd, nbops\n"
        "df = pd.DataFrame({'id': [f'user-{i}' for i in range(300)], 'n': range(300)})\n"
        "_, test = nbops.hash_split(df, ['id', 'n'], 0.25, salt='s1')\n"
        "print(json.dumps([int(i) for i in test.index]))\n"
    )
    sides = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
        )
        sides.append(json.loads(out.stdout))
    assert sides[0] == sides[1] == [int(i) for i in test.index]


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.5])
def test_the_test_share_is_within_a_binomial_bound(test_size: float) -> None:
    n = 20_000
    df = pd.DataFrame({"id": np.arange(n)})
    _, test = hash_split(df, "id", test_size)
    low, high = binom.interval(0.999, n, test_size)
    assert low <= len(test) <= high


def test_a_different_salt_gives_a_different_split() -> None:
    df = pd.DataFrame({"id": range(1000)})
    assert _test_keys(df, salt="a") != _test_keys(df, salt="b")


def test_dtypes_that_print_the_same_split_the_same() -> None:
    ints = pd.DataFrame({"id": np.arange(2000, dtype="int64")})
    floats = pd.DataFrame({"id": np.arange(2000, dtype="float64")})
    int32 = pd.DataFrame({"id": np.arange(2000, dtype="int32")})
    text = pd.DataFrame({"id": [str(i) for i in range(2000)]})
    nullable = pd.DataFrame({"id": pd.array(range(2000), dtype="Int64")})
    sides = [list(hash_split(f, "id")[1].index) for f in (ints, floats, int32, text, nullable)]
    assert all(s == sides[0] for s in sides)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=80))
def test_int_and_float_columns_of_the_same_numbers_agree(values: list[int]) -> None:
    as_int = pd.DataFrame({"id": np.array(values, dtype="int64")})
    as_float = pd.DataFrame({"id": np.array(values, dtype="float64")})
    assert list(hash_split(as_int, "id")[1].index) == list(hash_split(as_float, "id")[1].index)


def test_float32_keys_split_as_the_decimals_they_print() -> None:
    values = [0.1, 2.5, 1e-10, 3.14159, -7.25]
    f32 = pd.DataFrame({"id": np.array(values, dtype="float32")})
    f64 = pd.DataFrame({"id": np.array(values, dtype="float64")})
    assert [key_text(v) for v in f32["id"].to_numpy()] == [repr(v) for v in values]
    assert list(hash_split(f32, "id", 0.5)[1].index) == list(hash_split(f64, "id", 0.5)[1].index)


def test_canonical_text_of_each_kind_of_key() -> None:
    assert key_text(3) == key_text("3") == key_text(np.int64(3)) == key_text(3.0) == "3"
    assert key_text(0.5) == "0.5"
    assert key_text(True) == "True"
    assert key_text(pd.Timestamp("2024-03-01 12:30")) == "2024-03-01T12:30:00"
    assert key_text(pd.Timestamp("2024-03-01", tz="UTC")) == "2024-03-01T00:00:00+00:00"
    assert key_text(float("inf")) == "inf"


def test_several_key_columns_are_joined_with_the_unit_separator() -> None:
    df = pd.DataFrame({"shop": ["a", "a", "b", "b"] * 100, "day": list(range(400))})
    _, test = hash_split(df, ["shop", "day"], 0.3, salt="x")
    expected = [
        i
        for i, (s, d) in enumerate(zip(df["shop"], df["day"], strict=True))
        if int.from_bytes(hashlib.blake2b(f"x{s}\x1f{d}".encode(), digest_size=8).digest(), "big")
        / 2**64
        < 0.3
    ]
    assert list(test.index) == expected


def test_rows_sharing_a_multi_column_key_land_on_the_same_side() -> None:
    df = pd.DataFrame({"user": [1, 2, 3, 4] * 250, "item": ["a", "b"] * 500, "y": range(1000)})
    _, test = hash_split(df, ["user", "item"], 0.5)
    in_test = set(zip(test["user"], test["item"], strict=True))
    train = df.drop(test.index)
    assert not in_test & set(zip(train["user"], train["item"], strict=True))


def test_a_missing_key_column_names_it_and_the_columns_there_are() -> None:
    df = pd.DataFrame({"id": [1, 2], "x": [3, 4]})
    with pytest.raises(QualityInputError) as err:
        hash_split(df, "user_id")
    assert "'user_id'" in str(err.value) and "'id', 'x'" in str(err.value)
    assert err.value.exit_code == 26 and "\n" not in str(err.value)


def test_a_missing_column_in_a_multi_column_key_is_named() -> None:
    with pytest.raises(QualityInputError, match="'day'"):
        hash_split(pd.DataFrame({"shop": ["a"]}), ["shop", "day"])


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, float("nan"), True, "0.2"])
def test_test_size_outside_zero_one_is_refused(test_size: object) -> None:
    with pytest.raises(QualityInputError, match="test_size must be a fraction"):
        hash_split(pd.DataFrame({"id": [1, 2]}), "id", test_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("null", [None, np.nan, pd.NA, pd.NaT])
def test_a_null_key_is_refused_naming_the_column_and_the_fix(null: object) -> None:
    df = pd.DataFrame({"id": pd.Series([1, null, 3, null], dtype=object), "x": range(4)})
    with pytest.raises(QualityInputError) as err:
        hash_split(df, "id")
    text = str(err.value)
    assert "'id' has 2 null value(s) (first at index 1)" in text
    assert "dropna(subset=['id'])" in text and "\n" not in text


def test_text_with_a_lone_surrogate_still_hashes() -> None:
    df = pd.DataFrame({"id": pd.Series(["ok", "bad\ud800", "also ok"], dtype=object)})
    train, test = hash_split(df, "id", 0.5)
    assert len(train) + len(test) == 3


def test_a_key_naming_two_columns_of_the_same_name_is_refused() -> None:
    df = pd.DataFrame([[1, 2]], columns=["id", "id"])
    with pytest.raises(QualityInputError, match="2 columns named 'id'"):
        hash_split(df, "id")


def test_an_empty_key_list_and_an_empty_frame_are_refused() -> None:
    with pytest.raises(QualityInputError, match="key names no column"):
        hash_split(pd.DataFrame({"id": [1]}), [])
    with pytest.raises(QualityInputError, match="no rows"):
        hash_split(pd.DataFrame({"id": []}), "id")


def test_something_other_than_a_frame_is_refused() -> None:
    with pytest.raises(QualityInputError, match="expected a pandas DataFrame, got list"):
        hash_split([1, 2, 3], "id")  # type: ignore[arg-type]
