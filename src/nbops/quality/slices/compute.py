"""Per-slice model metrics: how a model does on each subgroup of the data, not just overall.

    report = slice_metrics(y_true, y_pred, y_score, data=frame, slices=["sex", "island"],
                           cross=[("sex", "island")], bins={"body_mass_g": 4})
    report.worst("recall")          # the slice where recall is lowest (among large-enough ones)
    report.gate_values()            # {"slices.recall.min": 0.71, "overall.recall": 0.88, ...}

A slice is a serialisable predicate (`island == "Biscoe"`, `body_mass_g in (3550.0, 4050.0]`,
`sex is missing`, or a conjunction of those for crossed columns), so a later run or a monitor
can recompute exactly the same rows with `predicate.mask(frame)`.

Every metric is computed for all slices of a column at once: labels are encoded to integers
once, per-slice confusion counts come from one `np.bincount`, and roc_auc is the
Mann-Whitney statistic with average ranks for ties (what scikit-learn's trapezoidal ROC area
equals), computed from per-slice score histograms or one sort by (slice, score).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nbops.errors import QualityInputError, SchemaVersionError

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
LOWER_IS_BETTER: frozenset[str] = frozenset({"mae", "rmse"})
MAX_SLICES_PER_COLUMN = 10_000
"""A slice column (or a cross of columns) with more distinct values than this is refused."""

Task = Literal["classification", "regression"]
CiMethod = Literal["wilson", "bootstrap"]
Scalar = bool | int | float | str
_Array = npt.NDArray[Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


# --- slice predicates -------------------------------------------------------------------


def _literal(value: Scalar) -> str:
    """How a value is written in an expression: strings JSON-quoted, numbers as Python does."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _frame_column(frame: pd.DataFrame, column: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise QualityInputError(
            f"a slice predicate needs a pandas DataFrame, not {type(frame).__name__}"
        )
    if column not in frame.columns:
        raise QualityInputError(
            f"column {column!r} of the slice predicate is not in the frame",
            fix=f"the frame has columns {list(frame.columns)}",
        )
    series = frame[column]
    if isinstance(series, pd.DataFrame):
        raise QualityInputError(f"the frame has more than one column named {column!r}")
    return series


def _bool_array(values: Any) -> npt.NDArray[np.bool_]:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(values, dtype=bool)


class Equals(_Model):
    """Rows whose `column` equals `value`: `island == "Biscoe"`."""

    op: Literal["=="] = "=="
    column: str
    value: Scalar

    def to_expression(self) -> str:
        """The condition as text, e.g. `island == "Biscoe"`."""
        return f"{self.column} == {_literal(self.value)}"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the condition holds (missing: False)."""
        series = _frame_column(frame, self.column)
        try:
            return _bool_array(series.eq(self.value))
        except TypeError:  # a value of another type than the column's: no row matches
            return np.zeros(len(series), dtype=bool)


class InInterval(_Model):
    """Rows whose numeric `column` lies in an interval: `age in (30.0, 40.0]`.

    `closed="right"` is `(lower, upper]`, `closed="both"` is `[lower, upper]` (the lowest
    quantile bin, as `pd.qcut` makes it)."""

    op: Literal["in"] = "in"
    column: str
    lower: float
    upper: float
    closed: Literal["right", "both"] = "right"

    def to_expression(self) -> str:
        """The condition as text, e.g. `age in (30.0, 40.0]`."""
        left = "[" if self.closed == "both" else "("
        return f"{self.column} in {left}{self.lower!r}, {self.upper!r}]"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the value is in the interval."""
        values = _numeric_values(_frame_column(frame, self.column), self.column)
        above = values >= self.lower if self.closed == "both" else values > self.lower
        return np.asarray(above & (values <= self.upper), dtype=bool)


class IsMissing(_Model):
    """Rows where `column` is missing (None, NaN, NaT, pd.NA): `sex is missing`."""

    op: Literal["is missing"] = "is missing"
    column: str

    def to_expression(self) -> str:
        """The condition as text, e.g. `sex is missing`."""
        return f"{self.column} is missing"

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`: True where the value is missing."""
        return _bool_array(_frame_column(frame, self.column).isna())


Condition = Annotated[Equals | InInterval | IsMissing, Field(discriminator="op")]


class SlicePredicate(_Model):
    """A slice: the rows where every condition holds (one condition, or one per crossed column)."""

    conditions: list[Condition] = Field(min_length=1)

    @property
    def columns(self) -> list[str]:
        """The columns the predicate reads, in order."""
        return list(dict.fromkeys(condition.column for condition in self.conditions))

    def to_expression(self) -> str:
        """The predicate as text: `sex == "male" and island == "Biscoe"`."""
        return " and ".join(condition.to_expression() for condition in self.conditions)

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """One boolean per row of `frame`, True for the rows of this slice.

        Raises QualityInputError when the frame lacks a column the predicate reads, or an
        interval's column is not numeric."""
        result = np.ones(len(frame), dtype=bool)
        for condition in self.conditions:
            result &= condition.mask(frame)
        return result


# --- the report -----------------------------------------------------------------------------


class SliceMetric(_Model):
    """One metric on one slice.

    `value` is None when the metric is undefined on the slice (`reason` says why). `gap` is
    `value - overall`. `too_small` flags a slice with fewer than `min_size` rows: it is
    reported, but left out of `worst`, `max_gap` and `gate_values`."""

    slice: SlicePredicate
    name: str = Field(description="the slice as text, slice.to_expression()")
    metric: str
    value: float | None
    reason: str | None = None
    count: int = Field(description="rows in the slice")
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: CiMethod | None = None
    gap: float | None = None
    too_small: bool = False


class SliceReport(_Model):
    """Metrics overall and on every slice, JSON round-trippable (`model_dump_json` /
    `model_validate_json`)."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.slices"] = "nbops.slices"
    task: Task
    metrics: list[str]
    labels: list[Scalar] | None = Field(
        default=None, description="the classes, in the order of y_score's columns"
    )
    pos_label: Scalar | None = Field(default=None, description="binary tasks: the positive class")
    n_rows: int
    min_size: int
    ci: CiMethod | None = None
    confidence: float = 0.95
    overall: dict[str, float | None]
    rows: list[SliceMetric] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _readable_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("schema_version", 1)
            if isinstance(version, int) and not isinstance(version, bool) and version > 1:
                raise SchemaVersionError(
                    f"this slice report has schema version {version}; this nbops reads 1",
                    fix="upgrade nbops to read it",
                )
        return data

    def _reliable(self, metric: str) -> list[SliceMetric]:
        if metric not in self.metrics:
            raise QualityInputError(
                f"the report has no metric {metric!r}", fix=f"it has {', '.join(self.metrics)}"
            )
        return [
            row
            for row in self.rows
            if row.metric == metric and not row.too_small and row.value is not None
        ]

    def worst(self, metric: str) -> SliceMetric | None:
        """The slice where `metric` is worst: the lowest value, or the highest for error
        metrics (mae, rmse). Only slices that are not too_small and have a value count;
        None when there are none. Raises QualityInputError for a metric not in the report."""
        rows = self._reliable(metric)
        if not rows:
            return None
        if metric in LOWER_IS_BETTER:
            return max(rows, key=lambda row: row.value or 0.0)
        return min(rows, key=lambda row: row.value or 0.0)

    def max_gap(self, metric: str) -> float | None:
        """The largest |value - overall| over slices that are not too_small (None if none).
        Raises QualityInputError for a metric not in the report."""
        gaps = [abs(row.gap) for row in self._reliable(metric) if row.gap is not None]
        return max(gaps) if gaps else None

    def to_frame(self) -> pd.DataFrame:
        """One row per (slice, metric): slice, columns, metric, value, count, ci_low, ci_high,
        gap, too_small, reason. Undefined values are NaN."""
        columns = [
            "slice",
            "columns",
            "metric",
            "value",
            "count",
            "ci_low",
            "ci_high",
            "gap",
            "too_small",
            "reason",
        ]
        records = [
            {
                "slice": row.name,
                "columns": ", ".join(row.slice.columns),
                "metric": row.metric,
                "value": row.value,
                "count": row.count,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "gap": row.gap,
                "too_small": row.too_small,
                "reason": row.reason,
            }
            for row in self.rows
        ]
        frame = pd.DataFrame.from_records(records, columns=columns)
        floats = {name: "float64" for name in ("value", "ci_low", "ci_high", "gap")}
        return frame.astype({**floats, "count": "int64", "too_small": "bool"})

    def gate_values(self) -> dict[str, float]:
        """Flat values for CI gates: `overall.<metric>`, and over the slices that are not
        too_small, `slices.<metric>.min`, `.max` and `.max_gap` (largest |gap|). A name
        with no value (an undefined metric, no large-enough slice) is left out."""
        values: dict[str, float] = {}
        for metric in self.metrics:
            overall = self.overall.get(metric)
            if overall is not None:
                values[f"overall.{metric}"] = overall
            rows = self._reliable(metric)
            if rows:
                numbers = [row.value for row in rows if row.value is not None]
                values[f"slices.{metric}.min"] = min(numbers)
                values[f"slices.{metric}.max"] = max(numbers)
                gap = self.max_gap(metric)
                if gap is not None:
                    values[f"slices.{metric}.max_gap"] = gap
        return values


# --- input checks ------------------------------------------------------------------------------


def _as_array(name: str, values: Any) -> _Array:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise QualityInputError(f"{name} must be one column, not a {values.shape} frame")
        values = values.iloc[:, 0]
    is_pandas = isinstance(values, pd.Series | pd.Index)
    array = values.to_numpy() if is_pandas else np.asarray(values)
    if array.ndim != 1:
        raise QualityInputError(f"{name} must be one-dimensional, not of shape {array.shape}")
    if len(array) == 0:
        raise QualityInputError(f"{name} is empty: there is nothing to compute metrics on")
    return array


def _count_missing(array: _Array) -> int:
    kind = array.dtype.kind
    if kind in "biu":
        return 0
    if kind in "fc":
        return int(np.isnan(array).sum())
    return int(np.asarray(pd.isna(array)).sum())


def _no_missing(name: str, array: _Array) -> None:
    missing = _count_missing(array)
    if missing:
        raise QualityInputError(
            f"{name} has {missing} missing value(s) (NaN/None)",
            fix="drop or fill those rows before computing slice metrics",
        )


def _same_length(name: str, length: int, other: str, other_length: int) -> None:
    if length != other_length:
        raise QualityInputError(
            f"{name} has {length} rows but {other} has {other_length}",
            fix="they must be the same length (rows are matched by position)",
        )


def _numeric_values(series: pd.Series, column: str) -> npt.NDArray[np.float64]:
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        raise QualityInputError(
            f"column {column!r} is not numeric ({series.dtype}), so it cannot be binned",
            fix="bin only numeric columns",
        )
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _regression_values(name: str, array: _Array) -> npt.NDArray[np.float64]:
    kind = array.dtype.kind
    if kind == "O" and pd.api.types.infer_dtype(array, skipna=False) in (
        "integer",
        "floating",
        "mixed-integer-float",
        "decimal",
    ):
        return array.astype(np.float64)
    if kind not in "biuf":
        raise QualityInputError(
            f"{name} is not numeric ({array.dtype}): regression metrics need numbers",
            fix="pass task='classification' for class labels",
        )
    return array.astype(np.float64, copy=False)


def _python_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _resolve_metrics(task: str, metrics: Sequence[str] | None, has_score: bool) -> list[str]:
    if task not in ("classification", "regression"):
        raise QualityInputError(
            f"unknown task {task!r}", fix="task is 'classification' or 'regression'"
        )
    valid = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metrics is None:
        return [name for name in valid if name != "roc_auc" or has_score]
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = list(dict.fromkeys(metrics))
    unknown = [name for name in chosen if name not in valid]
    if unknown:
        raise QualityInputError(
            f"unknown {task} metric(s) {', '.join(map(repr, unknown))}",
            fix=f"valid metrics are {', '.join(valid)}",
        )
    if not chosen:
        raise QualityInputError("metrics is empty", fix=f"choose from {', '.join(valid)}")
    if "roc_auc" in chosen and not has_score:
        raise QualityInputError(
            "roc_auc needs y_score", fix="pass the model's scores or probabilities as y_score"
        )
    return chosen


# --- slice columns ------------------------------------------------------------------------


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


def _column_family(series: pd.Series, column: str, n_bins: int | None) -> _Family:
    if n_bins is not None:
        return _binned_family(series, column, n_bins)
    try:
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    except TypeError:  # values of types that cannot be ordered
        codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    has_missing = bool(missing.any())
    _too_many(f"column {column!r}", len(uniques) + has_missing)
    predicates = [
        SlicePredicate(conditions=[Equals(column=column, value=_slice_value(column, value))])
        for value in uniques
    ]
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


def _cross_family(parts: list[_Family], names: Sequence[str]) -> _Family:
    sizes = [part.size for part in parts]
    combined = np.zeros(len(parts[0].codes), dtype=np.int64)
    for part in parts:
        combined *= part.size
        combined += part.codes
    total = math.prod(sizes)
    if total <= 4 * len(combined) + 1024:
        seen = np.flatnonzero(np.bincount(combined, minlength=total))
        lookup = np.zeros(total, dtype=np.int64)
        lookup[seen] = np.arange(len(seen))
        codes = lookup[combined]
    else:
        seen, inverse = np.unique(combined, return_inverse=True)
        codes = inverse.astype(np.int64).reshape(-1)
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


# --- classification -------------------------------------------------------------------


def _sorted_classes(values: list[Any], what: str) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        raise QualityInputError(
            f"the {what} mix types that cannot be ordered ({values[:5]})",
            fix="pass labels=[...] (and pos_label= for a binary task) to fix their order",
        ) from None


def _encode_labels(
    y_true: _Array, y_pred: _Array, labels: Sequence[Any] | None, pos_label: Any
) -> tuple[_Array, _Array, list[Any], int | None]:
    """Integer codes of y_true and y_pred, the classes, and the positive class's index
    (None for a multiclass task)."""
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise QualityInputError(
                f"{name} holds non-integer numbers, which look like scores, not class labels",
                fix="pass class labels as y_pred and scores or probabilities as y_score, "
                "or task='regression'",
            )
    codes_true, uniques_true = pd.factorize(y_true)
    codes_pred, uniques_pred = pd.factorize(y_pred)
    uniques_true = np.asarray(uniques_true, dtype=object)
    uniques_pred = np.asarray(uniques_pred, dtype=object)
    if labels is not None:
        classes = [_python_scalar(value) for value in labels]
        if len(set(classes)) != len(classes) or not classes:
            raise QualityInputError(f"labels must be distinct and not empty: {classes}")
    else:
        seen = pd.unique(np.concatenate([uniques_true, uniques_pred]))
        classes = _sorted_classes([_python_scalar(value) for value in seen], "labels")
    positive: int | None = None
    if pos_label is not None:
        pos_label = _python_scalar(pos_label)
        if pos_label not in classes:
            if labels is not None:
                raise QualityInputError(f"pos_label {pos_label!r} is not one of labels {classes}")
            classes = _sorted_classes([*classes, pos_label], "labels")
        if len(classes) > 2:
            raise QualityInputError(
                f"pos_label is for binary labels, but there are {len(classes)} classes",
                fix="leave pos_label out: multiclass metrics are macro averages",
            )
        positive = classes.index(pos_label)
    elif len(classes) <= 2:
        positive = classes.index(_sorted_classes(list(classes), "labels")[-1])
    index = pd.Index(classes, dtype=object)
    encoded = []
    for name, codes, uniques in (
        ("y_true", codes_true, uniques_true),
        ("y_pred", codes_pred, uniques_pred),
    ):
        lookup = index.get_indexer(pd.Index(uniques, dtype=object))
        if (lookup < 0).any():
            unknown = [_python_scalar(value) for value in uniques[lookup < 0][:5]]
            raise QualityInputError(
                f"{name} has values not in labels: {unknown}", fix="add them to labels="
            )
        encoded.append(lookup.astype(np.int64)[codes])
    return encoded[0], encoded[1], classes, positive


def _divide(numerator: _Array, denominator: _Array) -> npt.NDArray[np.float64]:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def _count_metric(confusion: _Array, metric: str, positive: int | None) -> _Array:
    """A metric from confusion counts of shape (..., true class, predicted class); NaN where
    it is undefined. Binary (positive given): the positive class's score. Multiclass: the
    macro average over the classes present in y_true or y_pred (as scikit-learn does), an
    undefined per-class value counting as 0."""
    counts = confusion.sum(axis=(-2, -1))
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    if metric == "accuracy":
        return _divide(true_positive.sum(axis=-1), counts)
    actual = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    if positive is not None:
        tp, n_actual, n_predicted = (
            true_positive[..., positive],
            actual[..., positive],
            predicted[..., positive],
        )
        if metric == "precision":
            return _divide(tp, n_predicted)
        if metric == "recall":
            return _divide(tp, n_actual)
        return _divide(2 * tp, n_actual + n_predicted)
    denominator = {"precision": predicted, "recall": actual, "f1": actual + predicted}[metric]
    numerator = 2 * true_positive if metric == "f1" else true_positive
    per_class = np.nan_to_num(_divide(numerator, denominator), nan=0.0)
    present = (actual + predicted) > 0
    return _divide((per_class * present).sum(axis=-1), present.sum(axis=-1))


_COUNT_REASONS = {
    "accuracy": "the slice is empty",
    "precision": "no predicted positives in the slice",
    "recall": "no actual positives in the slice",
    "f1": "no actual or predicted positives in the slice",
}


def _dense_ranks(
    score: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], int, _Array | None]:
    """Each score's rank among the distinct scores (0 = lowest), how many there are, and the
    rows in score order if they had to be sorted."""
    sample = score[:: max(1, len(score) // 50_000)]
    if len(np.unique(sample)) <= 5_000:  # few distinct scores: hashing beats sorting
        codes, uniques = pd.factorize(score, sort=True)
        return np.asarray(codes, dtype=np.int64), len(uniques), None
    order = np.argsort(score)
    ordered = score[order]
    ranks_in_order = np.zeros(len(score), dtype=np.int64)
    np.cumsum(ordered[1:] != ordered[:-1], out=ranks_in_order[1:])
    ranks = np.empty_like(ranks_in_order)
    ranks[order] = ranks_in_order
    return ranks, int(ranks_in_order[-1]) + 1, order


class _Ranking:
    """One binary ranking problem for roc_auc: which rows are positive, and the rank of each
    row's score. `key` = 2 * rank + positive, so one integer carries both."""

    def __init__(self, positive: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> None:
        ranks, self.n_unique, self._order = _dense_ranks(score + 0.0)  # -0.0 becomes 0.0
        self.key = ranks * 2 + positive

    def order(self) -> _Array:
        """Rows sorted by score (computed once)."""
        if self._order is None:
            self._order = np.argsort(self.key)
        return self._order


@dataclass
class _AucCells:
    """Per-slice counts of positives and negatives at each distinct score, in score order:
    slice `s` owns cells start[s]:start[s+1]."""

    positives: _Array
    negatives: _Array
    start: _Array


def _auc_from_counts(positives: _Array, negatives: _Array) -> _Array:
    """roc_auc from positives/negatives counted at each distinct score (last axis, ascending):
    the Mann-Whitney U with ties counted half, over n_pos * n_neg. NaN with only one class."""
    below = 2 * np.cumsum(negatives, axis=-1) - negatives  # 2 * (lower) + (tied) negatives
    twice_u = (positives * below).sum(axis=-1)
    pairs = positives.sum(axis=-1) * negatives.sum(axis=-1)
    return _divide(twice_u, 2 * pairs)


def _auc(
    ranking: _Ranking, codes: _Array | None, n_slices: int, want_cells: bool
) -> tuple[_Array, _AucCells | None]:
    """roc_auc of every slice (NaN where a slice has one class), and the cells a bootstrap
    resamples."""
    width = 2 * ranking.n_unique
    n_rows = len(ranking.key)
    if n_slices * ranking.n_unique <= max(n_rows, 1 << 16):
        key = ranking.key if codes is None else codes * width + ranking.key
        histogram = np.bincount(key, minlength=n_slices * width).reshape(n_slices, -1, 2)
        positives, negatives = histogram[:, :, 1], histogram[:, :, 0]
        values = _auc_from_counts(positives, negatives)
        cells = None
        if want_cells:
            slice_of, rank_of = np.nonzero(positives + negatives)
            start = np.searchsorted(slice_of, np.arange(n_slices + 1))
            cells = _AucCells(positives[slice_of, rank_of], negatives[slice_of, rank_of], start)
        return values, cells
    # many slices times many distinct scores: sort rows by (slice, score) instead
    assert codes is not None
    order = ranking.order()
    by_score = codes[order]
    if n_slices < 1 << 16:
        by_score = by_score.astype(np.uint16)  # a stable sort of uint16 is a radix sort
    regroup = np.argsort(by_score, kind="stable")
    slice_of = by_score[regroup].astype(np.int64)
    key = ranking.key[order[regroup]]
    rank = key >> 1
    boundary = np.ones(n_rows, dtype=bool)
    boundary[1:] = (slice_of[1:] != slice_of[:-1]) | (rank[1:] != rank[:-1])
    start = np.flatnonzero(boundary)
    end = np.append(start[1:], n_rows)
    cumulative = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(key & 1, out=cumulative[1:])
    positives = cumulative[end] - cumulative[start]
    negatives = (end - start) - positives
    group_slice = slice_of[start]
    negatives_before = np.cumsum(negatives) - negatives
    first = np.searchsorted(group_slice, np.arange(n_slices + 1))
    negatives_before -= negatives_before[first[:-1]][group_slice]
    twice_u = np.bincount(
        group_slice, weights=positives * (2 * negatives_before + negatives), minlength=n_slices
    )
    n_positive = np.bincount(group_slice, weights=positives, minlength=n_slices)
    n_negative = np.bincount(group_slice, weights=negatives, minlength=n_slices)
    values = _divide(twice_u, 2 * n_positive * n_negative)
    cells = _AucCells(positives, negatives, first) if want_cells else None
    return values, cells


@dataclass
class _Classification:
    true: _Array
    pred: _Array
    classes: list[Any]
    positive: int | None
    pair: _Array  # true * K + pred
    rankings: list[_Ranking]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _prepare_classification(
    y_true: _Array,
    y_pred: _Array,
    y_score: Any,
    labels: Sequence[Any] | None,
    pos_label: Any,
    want_auc: bool,
) -> _Classification:
    true, pred, classes, positive = _encode_labels(y_true, y_pred, labels, pos_label)
    n_classes = len(classes)
    rankings: list[_Ranking] = []
    if y_score is not None:
        score = _score_array(y_score, len(true))
        if positive is not None:
            if score.ndim == 2:
                if score.shape[1] != 2:
                    raise QualityInputError(
                        f"y_score has {score.shape[1]} columns but the labels are binary",
                        fix="pass the positive class's score (1-d) or two columns",
                    )
                score = score[:, positive if n_classes == 2 else 1]
            if want_auc:
                rankings = [_Ranking(true == positive, score)]
        else:
            if score.ndim != 2 or score.shape[1] != n_classes:
                raise QualityInputError(
                    f"y_score has shape {score.shape}, but there are {n_classes} classes "
                    f"({classes})",
                    fix="multiclass roc_auc needs one score column per class, "
                    "in the order of labels= (sorted classes by default)",
                )
            if want_auc:
                rankings = [_Ranking(true == k, score[:, k]) for k in range(n_classes)]
    return _Classification(true, pred, classes, positive, true * n_classes + pred, rankings)


def _score_array(y_score: Any, n_rows: int) -> npt.NDArray[np.float64]:
    if isinstance(y_score, pd.DataFrame | pd.Series):
        y_score = y_score.to_numpy()
    score = np.asarray(y_score)
    if score.ndim not in (1, 2) or len(score) == 0:
        raise QualityInputError(f"y_score must be 1-d or 2-d and not empty, not {score.shape}")
    _same_length("y_true", n_rows, "y_score", len(score))
    if score.dtype.kind not in "biuf":
        try:
            score = score.astype(np.float64)
        except (TypeError, ValueError):
            raise QualityInputError(f"y_score is not numeric ({score.dtype})") from None
    score = score.astype(np.float64, copy=False)
    _no_missing("y_score", score.reshape(-1))
    return score


# --- regression ---------------------------------------------------------------------------


@dataclass
class _Regression:
    true: npt.NDArray[np.float64]
    error: npt.NDArray[np.float64]  # y_pred - y_true
    absolute: npt.NDArray[np.float64]
    squared: npt.NDArray[np.float64]


def _regression_metrics(
    data: _Regression, codes: _Array, n_slices: int, metrics: list[str]
) -> tuple[_Array, dict[str, tuple[_Array, list[str | None]]]]:
    counts = np.bincount(codes, minlength=n_slices)
    out: dict[str, tuple[_Array, list[str | None]]] = {}
    none: list[str | None] = [None] * n_slices
    if "mae" in metrics:
        out["mae"] = (np.bincount(codes, data.absolute, n_slices) / counts, none)
    squared = np.bincount(codes, data.squared, n_slices)
    if "rmse" in metrics:
        out["rmse"] = (np.sqrt(squared / counts), none)
    if "r2" in metrics:
        mean = np.bincount(codes, data.true, n_slices) / counts
        total = np.bincount(codes, (data.true - mean[codes]) ** 2, n_slices)
        low = np.full(n_slices, np.inf)
        high = np.full(n_slices, -np.inf)
        np.minimum.at(low, codes, data.true)
        np.maximum.at(high, codes, data.true)
        constant = low == high
        reasons: list[str | None] = [
            "fewer than two rows in the slice"
            if count < 2
            else "y_true is constant in the slice"
            if flat
            else None
            for count, flat in zip(counts.tolist(), constant.tolist(), strict=True)
        ]
        defined = (counts >= 2) & ~constant & (total > 0)
        r2 = np.full(n_slices, np.nan)
        r2[defined] = 1.0 - squared[defined] / total[defined]
        out["r2"] = (r2, reasons)
    return counts, out


# --- confidence intervals ------------------------------------------------------------------


def _wilson(successes: _Array, trials: _Array, z: float) -> tuple[_Array, _Array]:
    """Wilson score interval of successes/trials (statsmodels' `proportion_confint(...,
    method="wilson")`); NaN where there are no trials."""
    trials = trials.astype(np.float64)
    p = _divide(successes, trials)
    safe = np.where(trials > 0, trials, 1.0)
    denominator = 1 + z**2 / safe
    center = (p + z**2 / (2 * safe)) / denominator
    half = z * np.sqrt(p * (1 - p) / safe + z**2 / (4 * safe**2)) / denominator
    # the bounds are exactly 0 and 1 at p = 0 and p = 1; floating point can miss by 1e-16
    low = np.where(successes == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(successes == trials, 1.0, np.clip(center + half, 0.0, 1.0))
    return low, high


_CHUNK_DRAWS = 4_000_000


def _bootstrap(
    rng: np.random.Generator,
    cells: _Array,
    n_boot: int,
    evaluate: Callable[[_Array], _Array],
) -> _Array:
    """`evaluate` on n_boot resamples: each draws sum(cells) rows with replacement, and is
    passed as counts per cell (shape (b, len(cells)))."""
    total = int(cells.sum())
    width = len(cells)
    if width <= 64:
        return evaluate(rng.multinomial(total, cells / total, size=n_boot))
    ones = bool((cells == 1).all())
    cdf = np.cumsum(cells) / total
    values = []
    step = max(1, _CHUNK_DRAWS // max(total, width))
    for begin in range(0, n_boot, step):
        size = min(step, n_boot - begin)
        if ones:
            draws = rng.integers(0, width, size=(size, total))
        else:
            draws = np.minimum(
                np.searchsorted(cdf, rng.random((size, total)), side="right"), width - 1
            )
        draws += (np.arange(size) * width)[:, None]
        counts = np.bincount(draws.reshape(-1), minlength=size * width).reshape(size, width)
        values.append(evaluate(counts))
    return np.concatenate(values)


def _percentile_interval(replicates: _Array, confidence: float) -> tuple[float, float] | None:
    replicates = replicates[~np.isnan(replicates)]
    if len(replicates) == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def _rows_by_slice(codes: _Array, n_slices: int) -> tuple[_Array, _Array]:
    order = np.argsort(codes, kind="stable")
    start = np.searchsorted(codes[order], np.arange(n_slices + 1))
    return order, start


def _multiclass_auc_evaluator(rankings: list[_Ranking], rows: _Array) -> Callable[[_Array], _Array]:
    """roc_auc (one-vs-rest macro) of resampled rows, given as counts per row of `rows`."""
    plans = []
    for ranking in rankings:
        key = ranking.key[rows]
        order = np.argsort(key >> 1, kind="stable")
        ranks = key[order] >> 1
        start = np.flatnonzero(np.r_[True, ranks[1:] != ranks[:-1]])
        plans.append((order, start, (key[order] & 1).astype(bool)))

    def evaluate(counts: _Array) -> _Array:
        per_class = []
        for order, start, positive in plans:
            weights = counts[:, order]
            positives = np.add.reduceat(np.where(positive, weights, 0), start, axis=1)
            negatives = np.add.reduceat(np.where(positive, 0, weights), start, axis=1)
            per_class.append(_auc_from_counts(positives, negatives))
        return np.mean(per_class, axis=0)

    return evaluate


def _regression_evaluator(
    data: _Regression, rows: _Array, *, metric: str
) -> Callable[[_Array], _Array]:
    """mae, rmse or r2 of resampled rows, given as counts per row of `rows`."""
    n = len(rows)
    absolute, squared = data.absolute[rows], data.squared[rows]
    centered = data.true[rows] - data.true[rows].mean()

    def evaluate(counts: _Array) -> _Array:
        weights = counts.astype(np.float64)
        if metric == "mae":
            return weights @ absolute / n
        if metric == "rmse":
            return np.sqrt(weights @ squared / n)
        total_y = weights @ centered
        total_y2 = weights @ centered**2
        total = total_y2 - total_y**2 / n
        defined = total > 1e-12 * total_y2
        return 1.0 - _divide(weights @ squared, np.where(defined, total, 0.0))

    return evaluate


# --- the entry point ------------------------------------------------------------------------


@dataclass
class _MetricResult:
    values: _Array
    reasons: list[str | None]
    ci_low: _Array
    ci_high: _Array
    ci_method: CiMethod | None


def slice_metrics(
    y_true: npt.ArrayLike | pd.Series,
    y_pred: npt.ArrayLike | pd.Series,
    y_score: npt.ArrayLike | pd.Series | pd.DataFrame | None = None,
    slices: pd.DataFrame | pd.Series | Sequence[str] | str | None = None,
    *,
    data: pd.DataFrame | None = None,
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    cross: Sequence[Sequence[str]] | None = None,
    bins: Mapping[str, int] | None = None,
    min_size: int = 30,
    ci: CiMethod | None = "wilson",
    n_boot: int = 200,
    seed: int = 0,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    confidence: float = 0.95,
) -> SliceReport:
    """Model metrics overall and on every slice of the data.

    Slices: every value of each column of `slices` (a DataFrame, or column names of `data`)
    is one slice, missing values forming their own (`sex is missing`); `cross=[("sex",
    "island")]` adds one slice per combination present; `bins={"age": 4}` cuts a numeric
    column into quantile bins (pd.qcut, duplicate edges dropped) wherever it is used. Rows
    are matched to y_true by position, not by index.

    Metrics (`metrics=None` means all of the task's): classification accuracy, precision,
    recall, f1 and roc_auc (only when y_score is given). With two classes, precision,
    recall and f1 are the positive class's (`pos_label`, by default the larger label) and
    y_score is the positive class's score (1-d, or the column of a 2-d array); with more,
    they are scikit-learn's macro averages over the classes present in the slice, and
    roc_auc is one-vs-rest macro from an (n, n_classes) y_score whose columns follow
    `labels` (sorted classes by default). Regression: mae, rmse, r2.

    Returns a SliceReport: overall values and one SliceMetric per (slice, metric) with its
    value (None, with a `reason`, where undefined: roc_auc with one class in the slice, r2
    on one row or a constant y_true, precision with no predicted positives...), row count,
    gap to overall, `too_small` flag (count < min_size; reported, not hidden) and a
    confidence interval: Wilson for accuracy, and binary precision and recall, whenever
    `ci` is set; a percentile bootstrap (n_boot resamples of the slice's rows, reproducible
    with `seed`) for the others when `ci="bootstrap"`. The bootstrap costs about n_boot
    passes over the data.

    Raises QualityInputError for unusable input: y_true, y_pred, y_score or the slice frame
    of different lengths, empty input, missing values in y_true, y_pred or y_score,
    non-numeric regression targets, float "labels" that look like scores, an unknown metric
    or task, roc_auc without y_score, y_score of the wrong shape, a slice column not in the
    frame, bins on a non-numeric column, or more than 10,000 slices from one column.
    """
    metric_names = _resolve_metrics(task, metrics, y_score is not None)
    if ci not in ("wilson", "bootstrap", None):
        raise QualityInputError(f"unknown ci {ci!r}", fix="ci is 'wilson', 'bootstrap' or None")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise QualityInputError(f"min_size must be a whole number >= 0, not {min_size!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise QualityInputError(f"n_boot must be a whole number >= 1, not {n_boot!r}")
    if not 0 < confidence < 1:
        raise QualityInputError(f"confidence must be between 0 and 1, not {confidence!r}")
    true = _as_array("y_true", y_true)
    pred = _as_array("y_pred", y_pred)
    _same_length("y_true", len(true), "y_pred", len(pred))
    _no_missing("y_true", true)
    _no_missing("y_pred", pred)
    n_rows = len(true)
    frame, columns = _slice_frame(slices, data, n_rows)
    families = _families(frame, columns, cross, bins)

    classification: _Classification | None = None
    regression: _Regression | None = None
    if task == "classification":
        classification = _prepare_classification(
            true, pred, y_score, labels, pos_label, "roc_auc" in metric_names
        )
    else:
        if y_score is not None:
            raise QualityInputError(
                "y_score is only for classification", fix="leave it out for regression"
            )
        target = _regression_values("y_true", true)
        error = _regression_values("y_pred", pred) - target
        regression = _Regression(target, error, np.abs(error), error**2)

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    rng = np.random.default_rng(seed)

    def compute(
        codes: _Array | None, n_slices: int, method: CiMethod | None
    ) -> tuple[_Array, dict[str, _MetricResult]]:
        intervals = _Intervals(method, z, confidence, rng, n_boot)
        if classification is not None:
            return _classification_family(classification, codes, n_slices, metric_names, intervals)
        assert regression is not None
        return _regression_family(regression, codes, n_slices, metric_names, intervals)

    _, overall_results = compute(None, 1, None)
    overall = {
        name: (None if math.isnan(result.values[0]) else float(result.values[0]))
        for name, result in overall_results.items()
    }
    rows: list[SliceMetric] = []
    for family in families:
        counts, results = compute(family.codes, family.size, ci)
        for index, predicate in enumerate(family.predicates):
            name = predicate.to_expression()
            count = int(counts[index])
            for metric in metric_names:
                result = results[metric]
                value = float(result.values[index])
                defined = not math.isnan(value)
                low, high = float(result.ci_low[index]), float(result.ci_high[index])
                has_ci = defined and not math.isnan(low)
                base = overall[metric]
                rows.append(
                    SliceMetric(
                        slice=predicate,
                        name=name,
                        metric=metric,
                        value=value if defined else None,
                        reason=None if defined else result.reasons[index],
                        count=count,
                        ci_low=low if has_ci else None,
                        ci_high=high if has_ci else None,
                        ci_method=result.ci_method if has_ci else None,
                        gap=value - base if defined and base is not None else None,
                        too_small=count < min_size,
                    )
                )
    return SliceReport(
        task=task,
        metrics=metric_names,
        labels=classification.classes if classification is not None else None,
        pos_label=(
            classification.classes[classification.positive]
            if classification is not None and classification.positive is not None
            else None
        ),
        n_rows=n_rows,
        min_size=min_size,
        ci=ci,
        confidence=confidence,
        overall=overall,
        rows=rows,
    )


def _no_interval(n_slices: int) -> tuple[_Array, _Array]:
    return np.full(n_slices, np.nan), np.full(n_slices, np.nan)


# A bootstrap plan: for slice s, the cells to resample and the metric of resampled counts.
_Plan = Callable[[int], tuple[_Array, Callable[[_Array], _Array]]]


@dataclass
class _Intervals:
    """How confidence intervals are computed for one family of slices."""

    method: CiMethod | None
    z: float
    confidence: float
    rng: np.random.Generator
    n_boot: int

    def bootstrap(self, values: _Array, plan: _Plan) -> tuple[_Array, _Array]:
        """Percentile bootstrap interval of each slice with a value (NaN elsewhere)."""
        low, high = _no_interval(len(values))
        for s in np.flatnonzero(~np.isnan(values)):
            cells, evaluate = plan(int(s))
            replicates = _bootstrap(self.rng, cells, self.n_boot, evaluate)
            interval = _percentile_interval(replicates, self.confidence)
            if interval is not None:
                low[s], high[s] = interval
        return low, high


def _count_plan(confusion: _Array, metric: str, positive: int | None) -> _Plan:
    """Resample a slice's confusion cells (K x K); the metric from the resampled counts."""
    k = confusion.shape[-1]

    def evaluate(counts: _Array) -> _Array:
        return _count_metric(counts.reshape(-1, k, k), metric, positive)

    return lambda s: (confusion[s].reshape(-1), evaluate)


def _binary_auc_plan(cells: _AucCells) -> _Plan:
    """Resample a slice's (class, distinct score) cells; roc_auc from the resampled counts."""

    def plan(s: int) -> tuple[_Array, Callable[[_Array], _Array]]:
        part = slice(cells.start[s], cells.start[s + 1])
        width = part.stop - part.start

        def evaluate(counts: _Array) -> _Array:
            return _auc_from_counts(counts[:, :width], counts[:, width:])

        return np.concatenate([cells.positives[part], cells.negatives[part]]), evaluate

    return plan


def _rows_plan(
    codes: _Array, n_slices: int, evaluator: Callable[[_Array], Callable[[_Array], _Array]]
) -> _Plan:
    """Resample a slice's rows; `evaluator(rows)` gives the metric of counts per row."""
    order, start = _rows_by_slice(codes, n_slices)

    def plan(s: int) -> tuple[_Array, Callable[[_Array], _Array]]:
        members = order[start[s] : start[s + 1]]
        return np.ones(len(members), dtype=np.int64), evaluator(members)

    return plan


def _classification_family(
    data: _Classification, codes: _Array | None, n_slices: int, metrics: list[str], ci: _Intervals
) -> tuple[_Array, dict[str, _MetricResult]]:
    k = data.n_classes
    key = data.pair if codes is None else codes * (k * k) + data.pair
    confusion = np.bincount(key, minlength=n_slices * k * k).reshape(n_slices, k, k)
    counts = confusion.sum(axis=(1, 2))
    positive = data.positive
    results: dict[str, _MetricResult] = {}
    for metric in metrics:
        low, high = _no_interval(n_slices)
        method: CiMethod | None = None
        if metric == "roc_auc":
            bootstrap = ci.method == "bootstrap"
            per_class = [_auc(r, codes, n_slices, bootstrap) for r in data.rankings]
            values = np.mean([auc for auc, _ in per_class], axis=0)
            if positive is not None:
                reasons: list[str | None] = ["only one class in y_true in the slice"] * n_slices
            else:
                absent = confusion.sum(axis=2) == 0
                reasons = [
                    "roc_auc needs every class in y_true; the slice has no "
                    + ", ".join(repr(data.classes[c]) for c in np.flatnonzero(absent[s]))
                    for s in range(n_slices)
                ]
            if bootstrap:
                method = "bootstrap"
                cells = per_class[0][1]
                if positive is not None and cells is not None:
                    plan = _binary_auc_plan(cells)
                else:
                    rows = _codes_or_zero(codes, len(key))
                    plan = _rows_plan(
                        rows,
                        n_slices,
                        lambda members: _multiclass_auc_evaluator(data.rankings, members),
                    )
                low, high = ci.bootstrap(values, plan)
        else:
            values = _count_metric(confusion, metric, positive)
            reasons = [_COUNT_REASONS[metric]] * n_slices
            proportion = metric == "accuracy" or (
                positive is not None and metric in ("precision", "recall")
            )
            if ci.method is not None and proportion:
                method = "wilson"
                tp = np.diagonal(confusion, axis1=1, axis2=2)
                if metric == "accuracy":
                    low, high = _wilson(tp.sum(axis=1), counts, ci.z)
                else:  # binary precision (of predicted positives), recall (of actual ones)
                    assert positive is not None
                    axis = 1 if metric == "precision" else 2
                    trials = confusion.sum(axis=axis)[:, positive]
                    low, high = _wilson(tp[:, positive], trials, ci.z)
            elif ci.method == "bootstrap":
                method = "bootstrap"
                low, high = ci.bootstrap(values, _count_plan(confusion, metric, positive))
        results[metric] = _MetricResult(values, reasons, low, high, method)
    return counts, results


def _codes_or_zero(codes: _Array | None, n_rows: int) -> _Array:
    return np.zeros(n_rows, dtype=np.int64) if codes is None else codes


def _regression_family(
    data: _Regression, codes: _Array | None, n_slices: int, metrics: list[str], ci: _Intervals
) -> tuple[_Array, dict[str, _MetricResult]]:
    codes = _codes_or_zero(codes, len(data.true))
    counts, computed = _regression_metrics(data, codes, n_slices, metrics)
    results: dict[str, _MetricResult] = {}
    for metric in metrics:
        values, reasons = computed[metric]
        low, high = _no_interval(n_slices)
        method: CiMethod | None = None
        if ci.method == "bootstrap":
            method = "bootstrap"
            plan = _rows_plan(codes, n_slices, partial(_regression_evaluator, data, metric=metric))
            low, high = ci.bootstrap(values, plan)
        results[metric] = _MetricResult(values, reasons, low, high, method)
    return counts, results
