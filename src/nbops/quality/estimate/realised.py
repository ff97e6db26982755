"""Realised metrics once labels arrive, overall and per slice, and how they compare with
the reference's realised metrics (diff) and with the label-free estimate (inside its
interval or not).

Classification metrics come from confusion counts through `_count_metric`, the definitions
of `slice_metrics` (binary: the positive class's; multiclass: macro); regression gives mae,
rmse and r2. Slices are the `Slicer.families` of `cbpe`, so realised and estimated rows
line up by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nbops.quality.estimate.cbpe import (
    METRICS,
    MIN_SIZE,
    GroupMetrics,
    Interval,
    _Groups,
    _positive,
)
from nbops.quality.slices.classification import _count_metric

REGRESSION_METRICS = ("mae", "rmse", "r2")


def realised_classification(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    n_classes: int,
    *,
    families: Sequence[tuple[list[str], npt.NDArray[np.int64]]] = (),
    metrics: Sequence[str] = METRICS,
    positive: int | None = None,
    min_size: int = MIN_SIZE,
) -> list[GroupMetrics]:
    """Metrics of class indices `y` against predicted indices `yhat`, overall then per slice."""
    y_codes = np.asarray(y, dtype=np.int64)
    p_codes = np.asarray(yhat, dtype=np.int64)
    k = n_classes
    groups = _Groups(len(y_codes), families)
    G = len(groups.names)
    joint = groups.group * k * k + y_codes[groups.rows] * k + p_codes[groups.rows]
    counts = np.bincount(joint, minlength=G * k * k).reshape(G, k, k)
    pos = _positive(k, positive)
    values = {m: _count_metric(counts, m, pos) for m in metrics}
    return [
        GroupMetrics(
            name,
            int(groups.sizes[g]),
            int(groups.sizes[g]) < min_size,
            {
                m: Interval(None if values[m][g] != values[m][g] else float(values[m][g]))
                for m in metrics
            },
        )
        for g, name in enumerate(groups.names)
    ]


def realised_regression(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    *,
    families: Sequence[tuple[list[str], npt.NDArray[np.int64]]] = (),
    min_size: int = MIN_SIZE,
) -> list[GroupMetrics]:
    """mae, rmse and r2 of numbers `y` against `yhat`, overall then per slice."""
    truth = np.asarray(y, dtype=np.float64)
    pred = np.asarray(yhat, dtype=np.float64)
    groups = _Groups(len(truth), families)
    G = len(groups.names)
    t, p = truth[groups.rows], pred[groups.rows]
    sizes = groups.sizes.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_sum = np.bincount(groups.group, weights=np.abs(t - p), minlength=G)
        sq_sum = np.bincount(groups.group, weights=(t - p) ** 2, minlength=G)
        mean = np.bincount(groups.group, weights=t, minlength=G) / sizes
        total = np.bincount(groups.group, weights=(t - mean[groups.group]) ** 2, minlength=G)
        values = {
            "mae": abs_sum / sizes,
            "rmse": np.sqrt(sq_sum / sizes),
            "r2": np.where(total > 0, 1 - sq_sum / np.where(total > 0, total, 1), np.nan),
        }
    return [
        GroupMetrics(
            name,
            int(groups.sizes[g]),
            int(groups.sizes[g]) < min_size,
            {
                m: Interval(None if values[m][g] != values[m][g] else float(values[m][g]))
                for m in REGRESSION_METRICS
            },
        )
        for g, name in enumerate(groups.names)
    ]


@dataclass(frozen=True)
class Comparison:
    """One group's realised metric next to the reference's and the estimate's."""

    name: str
    metric: str
    rows: int
    realised: float | None
    reference: float | None
    diff: float | None  # realised - reference
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    inside: bool | None  # realised within the estimate's interval

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare_realised(
    realised: Sequence[GroupMetrics],
    reference: Sequence[GroupMetrics] = (),
    estimated: Sequence[GroupMetrics] = (),
) -> list[Comparison]:
    """Realised metrics by group name, with the reference's value (diff) and the estimate's
    interval (inside or not) where those have the same group and metric."""
    by_ref = {g.name: g for g in reference}
    by_est = {g.name: g for g in estimated}
    rows = []
    for group in realised:
        for metric, value in group.metrics.items():
            ref = by_ref.get(group.name)
            est = by_est.get(group.name)
            ref_value = ref.metrics[metric].value if ref and metric in ref.metrics else None
            interval = est.metrics.get(metric) if est else None
            diff = None
            if value.value is not None and ref_value is not None:
                diff = value.value - ref_value
            inside = None
            if value.value is not None and interval and interval.ci_low is not None:
                assert interval.ci_high is not None
                inside = interval.ci_low - 1e-12 <= value.value <= interval.ci_high + 1e-12
            rows.append(
                Comparison(
                    group.name,
                    metric,
                    group.rows,
                    value.value,
                    ref_value,
                    diff,
                    interval.value if interval else None,
                    interval.ci_low if interval else None,
                    interval.ci_high if interval else None,
                    inside,
                )
            )
    return rows
