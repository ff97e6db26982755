"""Slice columns: each slice column (binned, crossed) becomes a family of slices, as one
integer code per row plus the predicate of each code; empty slices are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import MAX_SLICES_PER_COLUMN, Scalar
from nbops.quality.slices.inputs import (
    _numeric_values,
    _python_scalar,
    _same_length,
    _small_int_codes,
)
from nbops.quality.slices.predicates import Equals, InInterval, IsMissing, SlicePredicate


@dataclass
class _Family:
    """One way of cutting the rows: every row has one slice code in 0..len(predicates)-1."""

    codes: npt.NDArray[np.int64]
    predicates: list[SlicePredicate]

    @property
    def size(self) -> int:
        return len(self.predicates)


def _too_many(name: str, count: int) -> None:
    if count > MAX_SLICES_PER_COLUMN:
        raise QualityInputError(
            f"{name} makes {count} slices, more than {MAX_SLICES_PER_COLUMN}",
            fix="bin a numeric column with bins={column: n}, or slice on a coarser column",
        )


def _slice_value(column: str, value: Any) -> Scalar:
    value = _python_scalar(value)
    if isinstance(value, bool | int | float | str):
        return value
    raise QualityInputError(
        f"slice column {column!r} holds {type(value).__name__} values; a slice predicate "
        "holds strings, numbers or booleans",
        fix="convert the column (e.g. .astype(str)) or bin it with bins=",
    )


def _without_empty(family: _Family) -> _Family:
    counts = np.bincount(family.codes, minlength=family.size)
    if counts.all():
        return family
    keep = np.flatnonzero(counts)
    remap = np.full(family.size, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return _Family(remap[family.codes], [family.predicates[i] for i in keep])


def _equals(column: str, value: Any) -> SlicePredicate:
    return SlicePredicate(conditions=[Equals(column=column, value=_slice_value(column, value))])


def _column_family(series: pd.Series, column: str, n_bins: int | None) -> _Family:
    if n_bins is not None:
        return _binned_family(series, column, n_bins)
    counted = None
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":  # no missing values
        counted = _small_int_codes(series.to_numpy())
    if counted is not None:  # every value present, in increasing order: no empty slice
        codes, uniques = counted
        _too_many(f"column {column!r}", len(uniques))
        return _Family(codes, [_equals(column, value) for value in uniques])
    try:
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    except TypeError:  # values of types that cannot be ordered
        codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    has_missing = bool(missing.any())
    _too_many(f"column {column!r}", len(uniques) + has_missing)
    predicates = [_equals(column, value) for value in uniques]
    if has_missing:
        codes[missing] = len(predicates)
        predicates.append(SlicePredicate(conditions=[IsMissing(column=column)]))
    return _without_empty(_Family(codes, predicates))


def _binned_family(series: pd.Series, column: str, n_bins: int) -> _Family:
    values = _numeric_values(series, column)
    missing = np.isnan(values)
    present = values[~missing]
    predicates: list[SlicePredicate] = []
    codes = np.zeros(len(values), dtype=np.int64)
    if len(present):
        _, edges = pd.qcut(present, n_bins, labels=False, retbins=True, duplicates="drop")
        edges = np.asarray(edges, dtype=np.float64)
        if len(edges) < 2:  # every value is the same: one closed interval
            edges = np.array([edges[0], edges[0]])
        # pd.cut's rule: (e_i, e_i+1], with the lowest edge itself in the first bin
        codes = np.clip(np.searchsorted(edges, values, side="left") - 1, 0, len(edges) - 2)
        predicates = [
            SlicePredicate(
                conditions=[
                    InInterval(
                        column=column,
                        lower=float(edges[i]),
                        upper=float(edges[i + 1]),
                        closed="both" if i == 0 else "right",
                    )
                ]
            )
            for i in range(len(edges) - 1)
        ]
    if missing.any():
        codes[missing] = len(predicates)
        predicates.append(SlicePredicate(conditions=[IsMissing(column=column)]))
    return _without_empty(_Family(codes.astype(np.int64, copy=False), predicates))


def cross_codes(codes: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The crosses of several columns' slice codes (code i of column j below sizes[j]) that
    occur, as mixed-radix numbers in increasing order, and each row's position among them
    (counted by `np.bincount` when the crosses are few, else by `np.unique`). The in-memory
    and the streamed slice metrics cross columns here."""
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for part_codes, size in zip(codes, sizes, strict=True):
        combined *= size
        combined += part_codes
    total = math.prod(sizes)
    if total <= 4 * len(combined) + 1024:
        present = np.flatnonzero(np.bincount(combined, minlength=total))
        position = np.zeros(total, dtype=np.int64)
        position[present] = np.arange(len(present))
        return present, position[combined]
    present, inverse = np.unique(combined, return_inverse=True)
    return present, inverse.astype(np.int64).reshape(-1)


def _cross_family(parts: list[_Family], names: Sequence[str]) -> _Family:
    sizes = [part.size for part in parts]
    seen, codes = cross_codes([part.codes for part in parts], sizes)
    _too_many(f"the cross of {', '.join(names)}", len(seen))
    indexes = np.unravel_index(seen, sizes)
    predicates = [
        SlicePredicate(
            conditions=[
                condition
                for part, index in zip(parts, indexes, strict=True)
                for condition in part.predicates[int(index[i])].conditions
            ]
        )
        for i in range(len(seen))
    ]
    return _Family(codes, predicates)


def _slice_frame(
    slices: pd.DataFrame | pd.Series | Sequence[str] | str | None,
    data: pd.DataFrame | None,
    n_rows: int,
) -> tuple[pd.DataFrame | None, list[str]]:
    """The frame slice columns are read from, and the columns sliced one by one."""
    if isinstance(slices, pd.Series):
        slices = slices.to_frame(name=slices.name if slices.name is not None else "slice")
    if isinstance(slices, pd.DataFrame):
        if data is not None:
            raise QualityInputError(
                "slices is a frame and data= is given too",
                fix="pass slice columns as a frame, or as column names with data=",
            )
        frame, columns = slices, list(slices.columns)
        label = "the slices frame"
    else:
        if data is not None and not isinstance(data, pd.DataFrame):
            raise QualityInputError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        names = [slices] if isinstance(slices, str) else list(slices or [])
        if names and data is None:
            raise QualityInputError(
                "slices names columns but no data= frame is given",
                fix="pass the frame holding those columns as data=",
            )
        frame, columns = data, names
        label = "data"
    if frame is None:
        return None, columns
    _same_length(label, len(frame), "y_true", n_rows)
    for column in frame.columns:
        if not isinstance(column, str):
            raise QualityInputError(
                f"slice column names must be strings; {column!r} is {type(column).__name__}",
                fix="rename the column, e.g. frame.columns = frame.columns.astype(str)",
            )
    if len(set(frame.columns)) != len(frame.columns):
        raise QualityInputError(f"{label} has duplicate column names")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise QualityInputError(
            f"slice column(s) {missing} not in {label}", fix=f"it has {list(frame.columns)}"
        )
    return frame.reset_index(drop=True), columns


def _families(
    frame: pd.DataFrame | None,
    columns: list[str],
    cross: Sequence[Sequence[str]] | None,
    bins: Mapping[str, int] | None,
) -> list[_Family]:
    crosses: list[tuple[str, ...]] = []
    for item in cross or []:
        names = (item,) if isinstance(item, str) else tuple(item)
        if len(names) < 2 or len(set(names)) != len(names):
            raise QualityInputError(
                f"cross {item!r} must name two or more different columns",
                fix='e.g. cross=[("sex", "island")]',
            )
        crosses.append(names)
    used = list(dict.fromkeys([*columns, *(name for names in crosses for name in names)]))
    bins = dict(bins or {})
    if frame is None:
        if used or bins:
            raise QualityInputError(
                "cross= or bins= names columns but there is no slice frame",
                fix="pass slices= as a frame, or column names with data=",
            )
        return []
    absent = [name for name in used if name not in frame.columns]
    if absent:
        raise QualityInputError(
            f"crossed column(s) {absent} not in the slice frame",
            fix=f"it has {list(frame.columns)}",
        )
    for name, count in bins.items():
        if name not in used:
            raise QualityInputError(
                f"bins names column {name!r}, which is not sliced on",
                fix="add it to slices= or cross=",
            )
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise QualityInputError(
                f"bins[{name!r}] must be a whole number of quantile bins >= 1, not {count!r}"
            )
    base = {name: _column_family(frame[name], name, bins.get(name)) for name in used}
    families = [base[name] for name in columns]
    families += [_cross_family([base[name] for name in names], names) for names in crosses]
    return families
