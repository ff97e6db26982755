"""Regression metrics (mae, rmse, r2) for every slice at once, from per-slice sums."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nbops.quality.slices._common import _Array


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
