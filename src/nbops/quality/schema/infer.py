"""Inference: `infer_schema` learns a Schema from a reference frame (kinds, nulls, ranges
and their tolerance, categories, drift references), with the column statistics validation
recomputes (`column_family`, `null_count`, `value_counts`, `reference_for`, ...).

Range tolerance (`learn_range_tolerance`): how far a new value may fall past the observed
max before the range check fails whatever the number of such values. Measured in tail gaps
(`max - q0.95`, or `max - q0.75`, `max - q0.5` when that is 0, as `model.tail_gap` says):
on `TOLERANCE_SPLITS` random halves of the reference (at most `TOLERANCE_SAMPLE` of its
values, drawn with seed `TOLERANCE_SEED`), c = (held-out max - fit max) / fit's tail gap;
`high = 2 * max(1, 98th percentile of c) * the reference's tail gap`; the same for `low`
with the min. Heavy tails give large c, so wide bounds; light ones the floor of 2 gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from nbops.errors import QualityInputError
from nbops.quality.schema.model import (
    DEFAULT_KS_PVALUE,
    DEFAULT_KS_STATISTIC_FAIL,
    DEFAULT_NEW_CATEGORY_SHARE,
    DEFAULT_PSI_FAIL,
    DEFAULT_PSI_WARN,
    DEFAULT_RANGE_ALPHA,
    FALLBACK_TOLERANCE_FACTOR,
    NUMERIC_KINDS,
    TAIL_QUANTILES_HIGH,
    TAIL_QUANTILES_LOW,
    ColumnSchema,
    Environment,
    Kind,
    RangeTolerance,
    ReferenceStats,
    Schema,
    tail_gap,
)

KS_POINTS = 1000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_ROUND = 8  # decimals kept for proportions and CDF values in the file
TOLERANCE_SPLITS = 50
TOLERANCE_SAMPLE = 20_000
TOLERANCE_SEED = 0
TOLERANCE_PERCENTILE = 98.0


def _scalar_kind(dtype: Any) -> Literal["boolean", "integer", "float", "datetime"] | None:
    """The kind of a boolean, integer, float or datetime dtype; None for any other."""
    if ptypes.is_bool_dtype(dtype):
        return "boolean"
    if ptypes.is_integer_dtype(dtype):
        return "integer"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    return None


def column_family(s: pd.Series) -> str:
    """What a column holds, from its dtype: a kind, "category", "object-boolean" or "other:..."."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if (kind := _scalar_kind(dtype)) is not None:
        return kind
    if isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and ptypes.is_string_dtype(dtype)
    ):
        return "string"
    if dtype == np.dtype(object):
        inferred = ptypes.infer_dtype(s, skipna=True)
        if inferred in ("string", "empty"):
            return "string"
        if inferred == "boolean":
            return "object-boolean"
        return f"other:{inferred}"
    return f"other:{dtype}"


def null_count(s: pd.Series) -> int:
    """Nulls in a column, without building more than one boolean array."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iub":
            return 0
        if dtype.kind == "f":
            return int(np.count_nonzero(np.isnan(s.to_numpy())))
    return int(np.count_nonzero(np.asarray(s.isna())))


def _check_frame(df: Any, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise QualityInputError(f"{what} needs a pandas DataFrame, not {type(df).__name__}")
    if df.shape[1] == 0:
        raise QualityInputError(f"{what}: the frame has no columns")
    if len(df) == 0:
        raise QualityInputError(f"{what}: the frame has no rows")
    names = list(df.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise QualityInputError(
            f"{what}: column names must be strings, not {bad[0]!r}",
            fix="rename them, e.g. df.columns = df.columns.astype(str)",
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise QualityInputError(f"{what}: column {dup!r} appears twice")
    return df


def infer_schema(
    reference: pd.DataFrame,
    *,
    label: str | None = None,
    key: str | Sequence[str] | None = None,
    categorical_max: int = 50,
    bins: int = 10,
    name: str | None = None,
) -> Schema:
    """Infer a schema, with drift references, from a reference frame (e.g. the training data)."""
    df = _check_frame(reference, "infer_schema")
    if (
        isinstance(categorical_max, bool)
        or not isinstance(categorical_max, int)
        or categorical_max < 1
    ):
        raise QualityInputError(
            f"categorical_max must be a positive integer, not {categorical_max!r}"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= KS_POINTS:
        raise QualityInputError(f"bins must be an integer from 2 to {KS_POINTS}, not {bins!r}")
    if label is not None and label not in df.columns:
        raise QualityInputError(f"label {label!r} is not a column of the frame")
    keys = [key] if isinstance(key, str) else list(key) if key is not None else None
    if keys is not None:
        missing = [k for k in keys if k not in df.columns]
        if not keys or missing:
            raise QualityInputError(f"key {missing or keys!r} is not a column of the frame")
        duplicates = int(np.count_nonzero(df.duplicated(subset=keys).to_numpy()))
        if duplicates:
            raise QualityInputError(
                f"key {keys} is not unique in the frame: {duplicates} duplicate row(s)",
                fix="give columns that identify a row, or no key",
            )
    columns = [
        _infer_column(c, df[c], categorical_max, bins, is_key=c in (keys or ())) for c in df.columns
    ]
    environments = {
        "training": Environment(),
        "serving": Environment(absent=[label] if label is not None else []),
    }
    return Schema(
        name=name,
        rows=len(df),
        key=keys,
        label=label,
        environments=environments,
        columns=columns,
    )


def _infer_column(
    name: str, s: pd.Series, categorical_max: int, bins: int, *, is_key: bool = False
) -> ColumnSchema:
    n = len(s)
    nulls = null_count(s)
    fraction = nulls / n
    base: dict[str, Any] = {
        "name": name,
        "dtype": str(s.dtype),
        "nullable": nulls > 0,
        "null_fraction": round(fraction, 6),
        "max_null_fraction": min(1.0, round(1.5 * fraction + 0.01, 6)) if nulls else None,
    }
    family = column_family(s)
    if is_key and family in (*NUMERIC_KINDS, "string", "category", "datetime"):
        # a key identifies rows: new data brings new keys, so no range, categories or drift
        return ColumnSchema(kind=_KEY_KINDS[family], **base)
    if family in NUMERIC_KINDS:
        values = sorted_finite(s)
        if values.size:
            lo, hi = values[0].item(), values[-1].item()
            base.update(min=lo, max=hi, quantiles=_quantiles(values))
            base.update(range_tolerance=learn_range_tolerance(values))
            base.update(range_alpha=DEFAULT_RANGE_ALPHA)
            base.update(reference=numeric_reference(values, bins), **_numeric_thresholds())
        return ColumnSchema(kind="integer" if family == "integer" else "float", **base)
    if family in ("boolean", "object-boolean"):
        reference = boolean_reference(s)
        if reference is not None:
            base.update(reference=reference, psi_warn=DEFAULT_PSI_WARN, psi_fail=DEFAULT_PSI_FAIL)
        return ColumnSchema(kind="boolean", **base)
    if family == "datetime":
        return ColumnSchema(kind="datetime", **base)
    if family in ("string", "category"):
        observed = value_counts(s)
        is_category = isinstance(s.dtype, pd.CategoricalDtype)
        if len(observed) > categorical_max or (
            is_category and len(s.dtype.categories) > categorical_max
        ):
            return ColumnSchema(kind="string", **base)
        counts = counts_by_text(observed)
        declared = [str(c) for c in s.dtype.categories] if is_category else sorted(counts)
        total = sum(counts.values())
        if total:
            frequencies = {k: round(v / total, _ROUND) for k, v in counts.items()}
            base["reference"] = ReferenceStats(rows=total, frequencies=frequencies)
            base.update(
                psi_warn=DEFAULT_PSI_WARN,
                psi_fail=DEFAULT_PSI_FAIL,
                new_category_share=DEFAULT_NEW_CATEGORY_SHARE,
            )
        return ColumnSchema(kind="categorical", categories=declared, **base)
    raise QualityInputError(
        f"column {name!r} holds {family.removeprefix('other:')} values, which nbops cannot check",
        fix="convert it (e.g. astype('str') or pd.to_datetime) or drop it before inferring",
    )


_KEY_KINDS: dict[str, Kind] = {
    "integer": "integer",
    "float": "float",
    "string": "string",
    "category": "string",
    "datetime": "datetime",
}


def _numeric_thresholds() -> dict[str, float]:
    return {
        "psi_warn": DEFAULT_PSI_WARN,
        "psi_fail": DEFAULT_PSI_FAIL,
        "ks_pvalue": DEFAULT_KS_PVALUE,
        "ks_statistic_fail": DEFAULT_KS_STATISTIC_FAIL,
    }


def sorted_finite(s: pd.Series) -> np.ndarray:
    """A column's finite values, sorted (one copy of the column)."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        x = s.to_numpy()
        counted = _counting_sort(x)
        return np.sort(x) if counted is None else counted
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        x = s.to_numpy()
        values = x[np.isfinite(x)]
    elif ptypes.is_integer_dtype(dtype):
        values = s.dropna().to_numpy(dtype=np.int64)
    else:
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        values = x[np.isfinite(x)]
    values.sort()
    return values


def _counting_sort(x: np.ndarray) -> np.ndarray | None:
    """Whole numbers within a span no longer than the column, sorted by counting each value
    (`np.bincount`, a chunk at a time) instead of comparing them: `np.sort(x)` exactly, in
    linear time. None when the span is too wide."""
    if not x.size:
        return None
    low, high = int(x.min()), int(x.max())
    span = high - low + 1
    if span > max(x.size, 1 << 16) or low < -(2**62) or high > 2**62:
        return None
    counts = np.zeros(span, dtype=np.int64)
    for start in range(0, x.size, 1 << 18):
        part = np.subtract(x[start : start + (1 << 18)], low, dtype=np.intp)
        counts += np.bincount(part, minlength=span)
    return np.repeat(np.arange(low, high + 1).astype(x.dtype), counts)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    """Linear-interpolated quantiles (numpy's default method) of sorted values."""
    positions = np.asarray(QUANTILES) * (values.size - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, values.size - 1)
    low, high = values[below].astype(np.float64), values[above].astype(np.float64)
    result = low + (positions - below) * (high - low)
    return {str(q): float(v) for q, v in zip(QUANTILES, result, strict=True)}


def _tail_gaps(values: np.ndarray) -> tuple[float, float]:
    """The low and high tail gaps of sorted values (see `model.tail_gap`)."""
    q = _quantiles(values)
    lo, hi = float(values[0]), float(values[-1])
    return tail_gap(lo, q, TAIL_QUANTILES_LOW), tail_gap(hi, q, TAIL_QUANTILES_HIGH)


def learn_range_tolerance(values: np.ndarray) -> RangeTolerance:
    """The range tolerance of sorted finite values, learnt on random half splits (see the
    module docstring); deterministic (seeded), and bounded in cost by `TOLERANCE_SAMPLE`."""
    rng = np.random.default_rng(TOLERANCE_SEED)
    x = values.astype(np.float64, copy=False)
    if x.size > TOLERANCE_SAMPLE:
        x = np.sort(x[rng.choice(x.size, TOLERANCE_SAMPLE, replace=False)])
    gap_low, gap_high = _tail_gaps(values)
    c_low, c_high = 1.0, 1.0
    if x.size >= 10:
        masks = rng.random((TOLERANCE_SPLITS, x.size)) < 0.5
        keep = (masks.sum(axis=1) >= 2) & ~masks.all(axis=1)
        if keep.any():
            low, high = _split_excess(x, masks[keep], gap_low, gap_high)
            c_low = max(1.0, float(np.percentile(low, TOLERANCE_PERCENTILE)))
            c_high = max(1.0, float(np.percentile(high, TOLERANCE_PERCENTILE)))
    factor = FALLBACK_TOLERANCE_FACTOR
    return RangeTolerance(
        low=_round_up(factor * c_low * gap_low), high=_round_up(factor * c_high * gap_high)
    )


def _split_excess(
    x: np.ndarray, masks: np.ndarray, gap_low: float, gap_high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per split (a row of `masks`: True = fit, False = held out; `x` sorted): how many of
    the fit's tail gaps the held-out min and max went past the fit's (0 when not past).
    Vectorised over splits: the fit's k-th value is found by a search in its running count."""
    splits, n = masks.shape
    rows = np.arange(splits)
    counts = np.cumsum(masks, axis=1)
    sizes = counts[:, -1]
    base = rows * (n + 1)  # each row's running counts shifted into a range of its own
    flat = (counts + base[:, None]).ravel()

    def fit_value(rank: np.ndarray) -> np.ndarray:  # the fit's rank-th value (from 0)
        return x[np.searchsorted(flat, rank + 1 + base) - rows * n]

    def fit_quantile(q: float) -> np.ndarray:  # linear interpolation, as `_quantiles`
        position = q * (sizes - 1)
        below = np.floor(position).astype(np.int64)
        low, high = fit_value(below), fit_value(np.minimum(below + 1, sizes - 1))
        return low + (position - below) * (high - low)

    fit_min, fit_max = fit_value(np.zeros_like(sizes)), fit_value(sizes - 1)
    held_min = x[np.argmin(masks, axis=1)]
    held_max = x[n - 1 - np.argmin(masks[:, ::-1], axis=1)]
    quantiles = {
        key: fit_quantile(float(key)) for key in {*TAIL_QUANTILES_LOW, *TAIL_QUANTILES_HIGH}
    }
    return (
        _excess(fit_min - held_min, _gaps(fit_min, quantiles, TAIL_QUANTILES_LOW), gap_low),
        _excess(held_max - fit_max, _gaps(fit_max, quantiles, TAIL_QUANTILES_HIGH), gap_high),
    )


def _gaps(
    extreme: np.ndarray, quantiles: dict[str, np.ndarray], keys: tuple[str, ...]
) -> np.ndarray:
    """`model.tail_gap`, per split."""
    gaps = np.zeros_like(extreme)
    for key in keys:
        gaps = np.where(gaps > 0, gaps, np.abs(extreme - quantiles[key]))
    return gaps


def _excess(beyond: np.ndarray, gaps: np.ndarray, fallback: float) -> np.ndarray:
    """`beyond` in tail gaps (the reference's gap where a split's is 0; 0 without any)."""
    gaps = np.where(gaps > 0, gaps, fallback)
    safe = np.where(gaps > 0, gaps, 1.0)
    return np.where(gaps > 0, np.maximum(beyond, 0.0) / safe, 0.0)


def _round_up(value: float) -> float:
    """8 significant digits, rounded away from zero (the bound never shrinks)."""
    if value <= 0 or not np.isfinite(value):
        return 0.0
    digits = 7 - int(np.floor(np.log10(value)))
    scale = 10.0**digits
    return float(np.ceil(value * scale) / scale)


def numeric_reference(values: np.ndarray, bins: int) -> ReferenceStats:
    """Bins and CDF points of sorted finite values (see the module docstring)."""
    n = values.size
    x = values.astype(np.float64, copy=False)
    cuts = np.ceil(np.arange(1, bins) / bins * n).astype(np.int64) - 1
    edges = np.unique(x[np.clip(cuts, 0, n - 1)])
    below = np.searchsorted(x, edges, side="right")
    proportions = np.diff(np.concatenate(([0], below, [n]))) / n
    points = min(KS_POINTS, n)
    grid_at = np.ceil(np.arange(1, points + 1) / points * n).astype(np.int64) - 1
    grid = np.unique(x[np.clip(grid_at, 0, n - 1)])
    cdf = np.searchsorted(x, grid, side="right") / n
    return ReferenceStats(
        rows=n,
        bin_edges=edges.tolist(),
        proportions=np.round(proportions, _ROUND).tolist(),
        cdf_values=grid.tolist(),
        cdf=np.round(cdf, _ROUND).tolist(),
    )


def value_counts(s: pd.Series) -> pd.Series:
    """Non-null values' counts, most frequent first, values never seen left out (one pass)."""
    counts = s.value_counts(dropna=True, sort=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        counts = counts[counts.to_numpy() > 0]
    return counts


def counts_by_text(counts: pd.Series) -> dict[str, int]:
    """Value counts keyed by each value's text (what the schema's categories hold)."""
    out: dict[str, int] = {}
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        key = str(value)
        out[key] = out.get(key, 0) + int(count)
    return out


def category_counts(s: pd.Series) -> dict[str, int]:
    return counts_by_text(value_counts(s))


def boolean_reference(s: pd.Series) -> ReferenceStats | None:
    counts = boolean_counts(s)
    total = sum(counts.values())
    if not total:
        return None
    frequencies = {k: round(v / total, _ROUND) for k, v in counts.items()}
    return ReferenceStats(rows=total, frequencies=frequencies)


def boolean_counts(s: pd.Series) -> dict[str, int]:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
        trues = int(np.count_nonzero(s.to_numpy()))
        return {"False": len(s) - trues, "True": trues}
    counts = category_counts(s)
    return {"False": counts.get("False", 0), "True": counts.get("True", 0)} | counts


def reference_for(column: ColumnSchema, s: pd.Series, bins: int = 10) -> ReferenceStats | None:
    """Drift reference statistics of a column of another frame, for `column`'s kind."""
    if column.kind in NUMERIC_KINDS:
        if column_family(s) not in NUMERIC_KINDS:
            return None
        values = sorted_finite(s)
        edges = column.reference.bin_edges if column.reference else None
        n_bins = len(edges) + 1 if edges else bins
        return numeric_reference(values, max(2, n_bins)) if values.size else None
    if column.kind == "boolean":
        return boolean_reference(s)
    if column.kind == "categorical":
        counts = category_counts(s)
        total = sum(counts.values())
        if not total:
            return None
        return ReferenceStats(rows=total, frequencies={k: v / total for k, v in counts.items()})
    return None
