"""Values as reports show them: the first offending row positions, texts, timestamps aligned
to a column's time zone, JSON-safe scalars, an error as one line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import JsonValue

from nbops.quality.schema.model import _timestamp

CHUNK = 1 << 18
EXAMPLES = 5


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _first_rows(mask: np.ndarray, k: int = EXAMPLES) -> list[int]:
    """Positions of the first k True values, scanning in blocks (no full index array)."""
    out: list[int] = []
    block = 1 << 16
    for start in range(0, mask.size, block):
        found = np.flatnonzero(mask[start : start + block])
        if found.size:
            out.extend((found[: k - len(out)] + start).tolist())
            if len(out) >= k:
                break
    return out


def _texts(index: pd.Index) -> pd.Index:
    """An index's values as text (what the schema's categories hold)."""
    if isinstance(index.dtype, pd.StringDtype):
        return index
    return pd.Index([str(v) for v in index], dtype=object)


def _aligned_timestamp(bound: Any, dtype: Any) -> pd.Timestamp | None:
    if bound is None:
        return None
    stamp = _timestamp(bound)
    tz = getattr(dtype, "tz", None)
    if tz is not None and stamp.tz is None:
        return stamp.tz_localize(tz)
    if tz is None and stamp.tz is not None:
        return stamp.tz_convert(None)
    return stamp


def _json_value(value: Any) -> JsonValue:
    """A value as JSON can hold it (numpy scalars unwrapped, timestamps as ISO text)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        return str(pd.Timestamp(value)) if isinstance(value, np.datetime64) else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
