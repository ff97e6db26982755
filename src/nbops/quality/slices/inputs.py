"""Input checks for `slice_metrics`: arrays of one length, no missing labels, numbers where
numbers are needed, and the metric names a task accepts (one clear error each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import CLASSIFICATION_METRICS, REGRESSION_METRICS, _Array


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


def _small_int_codes(values: _Array) -> tuple[_Array, _Array] | None:
    """Codes (int64) and distinct values (ascending, as pd.factorize(sort=True) gives them) of
    integers or booleans spanning fewer than 65,536 values, counted in a few vectorised passes
    instead of hashed; None for other arrays. int64 values that are already their codes (0 to
    k-1, each present) are returned as a read-only view, not copied; other codes are new."""
    kind = values.dtype.kind
    if not len(values) or not (kind in "bi" or (kind == "u" and values.itemsize < 8)):
        return None
    numbers = values.view(np.uint8) if kind == "b" else values
    low, high = int(numbers.min()), int(numbers.max())
    if high - low >= 1 << 16:
        return None
    as_is = low == 0 and numbers.dtype == np.int64
    offset = numbers if as_is else np.subtract(numbers, low, dtype=np.int64)
    if high - low <= 1:  # the smallest and the largest value: both present
        present = np.arange(high - low + 1)
    else:
        present = np.flatnonzero(np.bincount(offset, minlength=high - low + 1))
    uniques = (present + low).astype(values.dtype)
    if len(present) == high - low + 1:  # every value of the range: the offsets are the codes
        if as_is:
            offset = numbers.view()
            offset.flags.writeable = False
        return offset, uniques
    table = np.zeros(high - low + 1, dtype=np.int64)
    table[present] = np.arange(len(present))
    return table[offset], uniques


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
