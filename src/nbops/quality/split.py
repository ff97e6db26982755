"""A train/test split that stays put as data grows: a row's side comes from hashing its key.

`hash_split(df, key, test_size=0.2, *, salt="")` returns `(train, test)`, two slices of `df` in
its own row order (index kept). A row goes to test when

    int.from_bytes(blake2b((salt + text).encode("utf-8"), digest_size=8).digest(), "big")
        / 2**64 < test_size

(encoded with "surrogatepass", so a lone surrogate in text data hashes rather than raising)

where `text` is the row's key in canonical text form. So a row's side depends only on its key
value(s), the salt and `test_size`: never on the other rows, their order, the process
(PYTHONHASHSEED plays no part), the machine, or the pandas/numpy version. Appending rows never
moves an existing row; the test share tends to `test_size` as rows grow.

Canonical text of one key value (what the value prints as, so dtypes that print the same agree):
- text: itself (`"3"` and the integer `3` hash the same, so an id column read as text in one
  place and as numbers in another splits the same way);
- integers (Python or numpy): decimal digits, e.g. `-12`;
- floats: an integral finite float as the integer (`3.0` -> `"3"`, so an int column that
  became float after a merge keeps its sides); any other float as its shortest round-trip
  text in its own precision, written as Python's `repr` of that decimal (`0.1` -> `"0.1"`,
  float32 included), `inf`, `-inf`;
- booleans: `True` / `False`;
- dates and times (`datetime`, `date`, `pandas.Timestamp`): ISO 8601 (`isoformat()`, with the
  UTC offset when the value carries one);
- anything else: `str(value)`.
Several key columns: their texts joined by the unit separator `\\x1f`, in the order given.

A null key (None, NaN, NaT, pd.NA) has no stable side: QualityInputError (exit 26) naming the
column, as for a missing key column, an empty frame, or a test_size outside (0, 1).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from nbops.errors import QualityInputError

if TYPE_CHECKING:
    import pandas as pd

_SEPARATOR = "\x1f"
_SCALE = float(2**64)


def key_text(value: Any) -> str:
    """The canonical text of one (non-null) key value; see the module docstring."""
    import numpy as np

    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        as_float = float(value)
        if math.isfinite(as_float) and as_float.is_integer():
            return str(int(as_float))
        if isinstance(value, np.floating) and not isinstance(value, np.float64):
            # float32/float16: the shortest decimal that round-trips in the value's own
            # precision, then written as a Python float would be (float32 0.1 -> "0.1").
            return repr(float(np.format_float_positional(value, unique=True)))
        return repr(as_float)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    return str(value)


def hash_split(
    df: pd.DataFrame,
    key: Hashable | Sequence[Hashable],
    test_size: float = 0.2,
    *,
    salt: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `df` into (train, test) by hashing `key` (a column name, or a list of them).

    Each row's side depends only on its key value(s), `salt` and `test_size`, so the split
    is the same in every process and on every machine, and appending rows never moves an
    existing row. Use a different `salt` for an independent split of the same keys.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise QualityInputError(
            f"hash_split: expected a pandas DataFrame, got {type(df).__name__}",
            fix="pass the frame to split, e.g. hash_split(df, key='id')",
        )
    columns = _key_columns(df, key)
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, int | float)
        or not 0 < test_size < 1
    ):
        raise QualityInputError(
            f"hash_split: test_size must be a fraction strictly between 0 and 1, got {test_size!r}",
            fix="pass e.g. test_size=0.2 for a fifth of the keys in test",
        )
    if not isinstance(salt, str):
        raise QualityInputError(
            f"hash_split: salt must be text, got {type(salt).__name__}",
            fix="pass salt='...' (any string; '' is the default)",
        )
    if len(df) == 0:
        raise QualityInputError(
            "hash_split: the frame has no rows", fix="load the data before splitting it"
        )
    texts: list[list[str]] = []
    for column in columns:
        series = df[column]
        nulls = series.isna()
        if bool(nulls.any()):
            count = int(nulls.sum())
            first = series.index[nulls.to_numpy()][0]
            raise QualityInputError(
                f"hash_split: key column {column!r} has {count} null value(s) "
                f"(first at index {first!r}); a row with no key has no stable side",
                fix=f"drop or fill them first, e.g. df.dropna(subset=[{column!r}])",
            )
        dtype = series.dtype
        # tolist() widens float32 to Python floats (0.1 -> 0.10000000149011612): keep the
        # numpy scalars of a narrow float column so each prints as its own shortest decimal.
        narrow_float = getattr(dtype, "kind", "") == "f" and getattr(dtype, "itemsize", 8) < 8
        values = list(series.to_numpy()) if narrow_float else series.tolist()
        if getattr(dtype, "kind", "") in "iu":  # fast path, same text: tolist() gives ints
            texts.append([str(v) for v in values])
        else:
            texts.append([key_text(v) for v in values])
    keys = (
        texts[0]
        if len(texts) == 1
        else [_SEPARATOR.join(parts) for parts in zip(*texts, strict=True)]
    )
    # "surrogatepass": a lone surrogate in text data hashes instead of raising (valid text
    # encodes exactly as plain UTF-8).
    blake2b, prefix = hashlib.blake2b, salt.encode("utf-8", "surrogatepass")
    is_test = [
        int.from_bytes(
            blake2b(prefix + text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
        )
        / _SCALE
        < test_size
        for text in keys
    ]
    mask = pd.Series(is_test, index=df.index, dtype=bool).to_numpy()
    return df.loc[~mask], df.loc[mask]


def _key_columns(df: pd.DataFrame, key: Hashable | Sequence[Hashable]) -> list[Hashable]:
    columns: list[Hashable] = (
        [key] if isinstance(key, str) or not isinstance(key, Sequence) else list(key)
    )
    if not columns:
        raise QualityInputError(
            "hash_split: key names no column",
            fix="pass key='id' or key=['customer', 'day'] (the columns that identify a row)",
        )
    available = list(df.columns)
    for column in columns:
        if column not in available:
            shown = ", ".join(repr(c) for c in available[:10])
            more = f" and {len(available) - 10} more" if len(available) > 10 else ""
            raise QualityInputError(
                f"hash_split: no key column {column!r} in the frame (columns: {shown}{more})",
                fix="pass key= the name of the column(s) that identify a row",
            )
        if available.count(column) > 1:
            raise QualityInputError(
                f"hash_split: the frame has {available.count(column)} columns named {column!r}",
                fix="rename or drop the duplicates first, so the key names one column",
            )
    return columns
