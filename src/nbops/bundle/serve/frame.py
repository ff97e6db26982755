"""From validated records to the model's frame, and from its answers back to JSON.

`_checked_column` turns one request column's validated values into an array of the dtype
the model was fit on, refusing (a `RecordError` naming the record) a value the dtype cannot
hold; `_json_values` turns predictions back into JSON-safe Python values.
"""

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from nbops._jsonsafe import json_safe
from nbops.bundle.serve.body import RecordError, _printable
from nbops.quality.schema import ColumnSchema


def _numpy_dtype(text: str | None) -> np.dtype[Any] | None:
    if not text:
        return None
    try:
        dtype = np.dtype(text)
    except TypeError:
        return None
    return dtype


def _column_values(column: ColumnSchema, values: list[Any]) -> Any:
    """One column of the frame, from validated values, in the dtype the model was fit on."""
    kind = column.kind
    has_null = column.nullable and any(v is None for v in values)
    if kind == "float":
        dtype = _numpy_dtype(column.dtype)
        return np.array(values, dtype=dtype if dtype is not None and dtype.kind == "f" else float)
    if kind == "integer":
        dtype = _numpy_dtype(column.dtype)
        if dtype is None and column.dtype:  # an extension dtype such as Int64
            with contextlib.suppress(TypeError, ValueError):
                return pd.array(values, dtype=column.dtype)
        if has_null:
            return np.array(values, dtype=float)
        return np.array(values, dtype=dtype if dtype is not None and dtype.kind in "iu" else int)
    if kind == "boolean":
        return np.array(values, dtype=object if has_null else bool)
    if kind in ("string", "categorical"):
        if column.dtype == "category":  # a category the training data lacked stays a value
            known = list(column.categories or [])
            seen = set(known)
            extra = [v for v in dict.fromkeys(values) if v is not None and v not in seen]
            return pd.Categorical(values, categories=known + extra)
        return values
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    reference = str(column.dtype or "")
    if reference.startswith("datetime64") and "," not in reference:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy() if "," not in reference else stamps.array


def _json_values(values: np.ndarray) -> list[Any]:
    """An array as JSON-safe Python values: NaN and infinities → None, numpy scalars → Python."""
    kind = values.dtype.kind
    if kind in "biuUS":
        return list(values.tolist())
    if kind == "f":
        out: list[Any] = values.tolist()
        return out if bool(np.isfinite(values).all()) else [_json_safe(v) for v in out]
    return [_json_safe(v) for v in values.tolist()]


def _json_safe(value: Any) -> Any:
    """A value as JSON for an answer: the shared rules, dates as ISO 8601 text and pandas'
    missing markers (NA, NaT) as null."""
    return json_safe(value, iso_dates=True, missing_as_null=True)


def _checked_column(column: ColumnSchema, values: list[Any]) -> Any:
    """`_column_values`, refusing values the column's dtype cannot hold (a RecordError)."""
    try:
        with np.errstate(over="ignore"):
            array = _column_values(column, values)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as e:
        record = _first_bad_value(column, values)
        loc: list[str | int] = ["body", "records"]
        if record is not None:
            loc += [record, column.name]
        raise RecordError(
            f"column {column.name!r}: a value the model's dtype ({column.dtype}) cannot hold "
            f"({type(e).__name__}: {_printable(str(e))[:200]})",
            loc=loc,
            kind="value_out_of_range",
        ) from None
    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
        infinite = np.isinf(array)
        if infinite.any():
            record = int(np.argmax(infinite))
            raise RecordError(
                f"column {column.name!r}: {values[record]!r} is beyond the range of the "
                f"model's dtype ({array.dtype})",
                loc=["body", "records", record, column.name],
                kind="value_out_of_range",
            )
    return array


def _first_bad_value(column: ColumnSchema, values: list[Any]) -> int | None:
    for i, value in enumerate(values):
        try:
            with np.errstate(over="ignore"):
                _column_values(column, [value])
        except Exception:
            return i
    return None
