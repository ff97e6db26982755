"""One conversion of Python values into strict JSON values, for every caller.

    json_safe(value)                                    # the bundle build (manifest, card)
    json_safe(value, iso_dates=True, missing_as_null=True)   # the server's answers
    json_safe(value, fallback=repr)                     # the lab server's API

The rules all callers share: a mapping is a dict with text keys; a list or tuple is a list; a
set is a list sorted by repr (stable from run to run); a NumPy array is a list and a NumPy
scalar its Python value (a datetime64 in ns is its integer, as NumPy gives it); NaN and
infinities are None; None, bool, int, float and str are kept; a path is its POSIX text.
Anything else is `fallback(value)`: its text (`str`, the default) or, where the reader wants
the Python literal it is (the lab panel showing a parameter default), its `repr`.

The options are the callers' real differences:

- `iso_dates`: datetimes, dates and pandas Timestamps as ISO 8601 text (otherwise they go to
  `fallback`: "2024-01-02 03:04:05" with `str`).
- `missing_as_null`: pandas' missing markers (NA, NaT, a NaN Decimal) as None (otherwise
  they go to `fallback`: "<NA>", "NaT").

No import cost: NumPy and pandas are looked up in `sys.modules`, never imported here (a value
of theirs cannot exist before they are imported).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

__all__ = ["json_safe"]


def json_safe(
    value: Any,
    *,
    fallback: Callable[[Any], Any] = str,
    iso_dates: bool = False,
    missing_as_null: bool = False,
) -> Any:
    """`value` as plain JSON values, by the module's rules and these options."""

    def convert(item: Any) -> Any:
        if item is None or isinstance(item, bool | int | str):
            return item
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        np = sys.modules.get("numpy")
        if np is not None:
            if isinstance(item, np.ndarray):
                return [convert(v) for v in item.tolist()]
            if isinstance(item, np.generic):
                return convert(item.item())
        if isinstance(item, Mapping):
            return {str(k): convert(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [convert(v) for v in item]
        if isinstance(item, set | frozenset):
            return [convert(v) for v in sorted(item, key=repr)]
        if isinstance(item, PurePath):
            return item.as_posix()
        if missing_as_null:  # before the dates: pandas' NaT is a datetime
            pd = sys.modules.get("pandas")
            if pd is not None:
                with contextlib.suppress(TypeError, ValueError):
                    if pd.isna(item):
                        return None
        if iso_dates and isinstance(item, datetime | date):
            return item.isoformat()
        return fallback(item)

    return convert(value)
