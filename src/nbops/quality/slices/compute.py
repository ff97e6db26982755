"""`slice_metrics`, the entry point: checks the inputs, builds the slice families, computes
every metric for every family with its confidence intervals, and assembles the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import CiMethod, Task, _Array
from nbops.quality.slices.classification import (
    _COUNT_REASONS,
    _auc,
    _auc_from_counts,
    _AucCells,
    _Classification,
    _count_metric,
    _prepare_classification,
)
from nbops.quality.slices.columns import _families, _slice_frame
from nbops.quality.slices.inputs import (
    _as_array,
    _no_missing,
    _regression_values,
    _resolve_metrics,
    _same_length,
)
from nbops.quality.slices.intervals import (
    _bootstrap,
    _multiclass_auc_evaluator,
    _percentile_interval,
    _regression_evaluator,
    _rows_by_slice,
    _wilson,
)
from nbops.quality.slices.regression import _Regression, _regression_metrics
from nbops.quality.slices.report import SliceMetric, SliceReport, slice_row
from nbops.quality.slices.weak import weak_segments


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
    data: pd.DataFrame | str | Any | None = None,
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
    weak_segments: bool | Mapping[str, Any] = False,
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

    Data larger than memory: `data=` a folder or glob of Parquet files, or a Dask DataFrame,
    with y_true, y_pred, y_score and the slices naming its columns, is read in chunks
    (`nbops.quality.stream.slices`: count metrics exact, binary roc_auc from quantile
    sketches within `report.sketch_error["roc_auc"]`).

    Returns a SliceReport: overall values and one SliceMetric per (slice, metric) with its
    value (None, with a `reason`, where undefined: roc_auc with one class in the slice, r2
    on one row or a constant y_true, precision with no predicted positives...), row count,
    gap to overall, `too_small` flag (count < min_size; reported, not hidden) and a
    confidence interval: Wilson for accuracy, and binary precision and recall, whenever
    `ci` is set; a percentile bootstrap (n_boot resamples of the slice's rows, reproducible
    with `seed`) for the others when `ci="bootstrap"`. The bootstrap costs about n_boot
    passes over the data.

    `weak_segments=True` (or a dict of quality.slices.weak.weak_segments options) also
    searches every column of `data` (or of the slices frame; a `"data"` option gives another
    frame) for the segments where the model does worst, singles and pairs, and stores them in
    `report.weak` (see `report.weakest(k)`); the metric defaults to the report's first.

    Raises QualityInputError for unusable input: y_true, y_pred, y_score or the slice frame
    of different lengths, empty input, missing values in y_true, y_pred or y_score,
    non-numeric regression targets, float "labels" that look like scores, an unknown metric
    or task, roc_auc without y_score, y_score of the wrong shape, a slice column not in the
    frame, bins on a non-numeric column, or more than 10,000 slices from one column.
    """
    # Deferred import: nbops.quality.stream imports this package's modules (an import cycle)
    from nbops.quality.stream.source import is_stream_input

    if is_stream_input(data):  # partitioned Parquet or a Dask DataFrame, read in chunks
        from nbops.quality.stream.slices import stream_slice_metrics

        return stream_slice_metrics(
            y_true, y_pred, y_score, slices, data=data, task=task, metrics=metrics,
            cross=cross, bins=bins, min_size=min_size, ci=ci, labels=labels,
            pos_label=pos_label, confidence=confidence, weak_segments=weak_segments,
        )  # fmt: skip
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
                rows.append(
                    slice_row(
                        predicate,
                        name,
                        metric,
                        float(result.values[index]),
                        (float(result.ci_low[index]), float(result.ci_high[index])),
                        count=count,
                        base=overall[metric],
                        reason=result.reasons[index],
                        ci_method=result.ci_method,
                        min_size=min_size,
                    )
                )
    weak: list[SliceMetric] = []
    if weak_segments is not False and weak_segments is not None:
        weak = _weak(
            weak_segments, true, pred, y_score, data, frame, task, metric_names, labels, pos_label
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
        weak=weak,
    )


def _weak(
    options: bool | Mapping[str, Any],
    true: _Array,
    pred: _Array,
    y_score: Any,
    data: pd.DataFrame | None,
    frame: pd.DataFrame | None,
    task: Task,
    metric_names: list[str],
    labels: Sequence[Any] | None,
    pos_label: Any,
) -> list[SliceMetric]:
    if options is True:
        chosen: dict[str, Any] = {}
    elif isinstance(options, Mapping):
        chosen = dict(options)
    else:
        raise QualityInputError(
            f"weak_segments must be True, False or a dict of options, not {options!r}"
        )
    source = chosen.pop("data", None)
    source = source if source is not None else data if data is not None else frame
    if source is None:
        raise QualityInputError(
            "weak_segments needs the rows' columns to search",
            fix="pass data= (or slices= as a frame, or weak_segments={'data': frame})",
        )
    chosen.setdefault("metric", metric_names[0])
    chosen.setdefault("labels", labels)
    chosen.setdefault("pos_label", pos_label)
    return list(weak_segments(true, pred, y_score, data=source, task=task, **chosen))


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
    confusion = data.confusion(codes, n_slices)
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
                    rows = _codes_or_zero(codes, len(data.true))
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
