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

No import cost: NumPy and pandas are used only once something else imported them (a value of
theirs cannot exist before); `_loaded` then imports them again, which waits for another thread
still running that import instead of reading a half-initialised module.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

__all__ = ["json_safe"]


def _loaded(name: str) -> Any:
    """The module `name` if something imported it already (complete), else None."""
    if name not in sys.modules:
        return None
    return importlib.import_module(name)


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
        np = _loaded("numpy")
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
            pd = _loaded("pandas")
            if pd is not None:
                with contextlib.suppress(TypeError, ValueError):
                    if pd.isna(item):
                        return None
        if iso_dates and isinstance(item, datetime | date):
            return item.isoformat()
        return fallback(item)

    return convert(value)
