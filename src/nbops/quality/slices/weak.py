"""Weak segments: search the data for the slices where a model does worst, not only the slices
a user named.

    segments = weak_segments(y_true, y_pred, data=frame, metric="accuracy", top_k=5)
    segments[0].name      # 'region == "north" and age in (49.9, 70.1]'
    segments[0].slice.mask(frame)   # the same rows again
    segments.skipped      # {"customer_id": "912 distinct values, more than max_categories=20"}

Contract:
- Candidates are every column of `data` (or `columns`) but `exclude` (a schema's key and
  label): numbers with more than `bins` distinct values are cut into `bins` quantile bins
  (pd.qcut, duplicate edges dropped, as slice_metrics' `bins=`); other numbers, text,
  categoricals and booleans with at most `max_categories` distinct values give one slice per
  value; missing values are a slice of their own. Other columns (datetimes, too many
  values, unhashable values) are skipped and listed in the result's `skipped`.
- Singles, then (pairs=True) every pair of candidate columns, one slice per combination
  present; with more than `max_pair_columns` (25) candidate columns only the ones whose
  single slices show the largest gap to the overall value are paired.
- A segment is reported when it holds at least `min_support` rows (default
  max(30, ceil(2% of the rows))), its value is defined and worse than the overall value.
  A pair is reported only when it is worse than both of its single parents and is not the
  same rows as one of them (else the parent says it already).
- Ranking is by the pessimistic end of the segment's confidence interval (the upper bound
  for metrics where higher is better, the lower bound for mae and rmse), so a tiny segment
  with a few errors does not win on noise: Wilson intervals for accuracy and binary
  precision and recall, a percentile bootstrap of the segment's rows (`n_boot`, seeded per
  segment from `seed`, so a segment's interval does not depend on the others) for the other
  metrics. Ties go to the worse value, then the larger segment, then the name.
- For bootstrap metrics the search bootstraps candidates from the worst value on and stops
  once the k-th best bound is already worse than every remaining candidate's value (an
  interval holds its point value), so a large search costs about top_k intervals. For mae
  and rmse (whose bootstrap resamples a slice's rows, the costly case) candidates are
  ordered by the normal approximation's bound instead and the first max(40, 4 * top_k)
  are bootstrapped: 100,000 rows and 10 columns take seconds, not a minute.
- Values are those of slice_metrics (the same metric definitions, the same predicates):
  every segment's `count` and `value` equal the metric on `segment.slice.mask(data)`.
Returns a `WeakSegments` list of `SliceMetric` rows (worst first, at most `top_k`), with
`metric`, `min_support` and `skipped`. Bad input raises QualityInputError with one line.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    CiMethod,
    Task,
    _Array,
)
from nbops.quality.slices.classification import (
    _auc,
    _auc_from_counts,
    _Classification,
    _count_metric,
    _prepare_classification,
)
from nbops.quality.slices.columns import (
    _binned_family,
    _column_family,
    _cross_family,
    _Family,
    _slice_frame,
)
from nbops.quality.slices.inputs import (
    _as_array,
    _no_missing,
    _regression_values,
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
from nbops.quality.slices.report import SliceMetric

MAX_PAIR_COLUMNS = 25
"""With more candidate columns than this, only the 25 with the largest single gaps are paired."""


class WeakSegments(list[SliceMetric]):
    """The weakest segments, worst first, and how the search was made."""

    def __init__(
        self,
        rows: Sequence[SliceMetric] = (),
        *,
        metric: str = "",
        min_support: int = 0,
        skipped: dict[str, str] | None = None,
    ) -> None:
        super().__init__(rows)
        self.metric = metric
        self.min_support = min_support
        self.skipped: dict[str, str] = dict(skipped or {})


@dataclass
class _Evaluated:
    """One family's values: rows, value and, where computed, the bounds of each slice."""

    family: _Family
    counts: _Array
    values: _Array
    state: Any  # what an interval needs: the confusion counts, the roc_auc cells...


class _Scorer:
    """The metric of every slice of a family, and a slice's confidence interval."""

    def __init__(
        self,
        metric: str,
        classification: _Classification | None,
        regression: _Regression | None,
        z: float,
        confidence: float,
        n_boot: int,
        seed: int,
    ) -> None:
        self.metric = metric
        self.classification = classification
        self.regression = regression
        self.z = z
        self.confidence = confidence
        self.n_boot = n_boot
        self.seed = seed
        positive = classification.positive if classification is not None else None
        self.wilson: bool = metric == "accuracy" or (
            positive is not None and metric in ("precision", "recall")
        )
        self.method: CiMethod = "wilson" if self.wilson else "bootstrap"

    def evaluate(self, family: _Family) -> _Evaluated:
        counts, values, state = self.values(family.codes, family.size)
        return _Evaluated(family, counts, values, state)

    def values(self, codes: _Array, n: int) -> tuple[_Array, _Array, Any]:
        """Rows and metric value of each of the n slices, and what an interval needs."""
        if self.classification is not None:
            data = self.classification
            if self.metric == "roc_auc":
                per_class = [_auc(r, codes, n, True) for r in data.rankings]
                values = np.mean([auc for auc, _ in per_class], axis=0)
                return np.bincount(codes, minlength=n), values, per_class[0][1]
            confusion = data.confusion(codes, n)
            values = _count_metric(confusion, self.metric, data.positive)
            return confusion.sum(axis=(1, 2)), values, confusion
        assert self.regression is not None
        counts, computed = _regression_metrics(self.regression, codes, n, [self.metric])
        return counts, computed[self.metric][0], None

    def wilson_bounds(self, evaluated: _Evaluated) -> tuple[_Array, _Array]:
        confusion = evaluated.state
        tp = np.diagonal(confusion, axis1=1, axis2=2)
        if self.metric == "accuracy":
            return _wilson(tp.sum(axis=1), evaluated.counts, self.z)
        assert self.classification is not None and self.classification.positive is not None
        positive = self.classification.positive
        axis = 1 if self.metric == "precision" else 2
        return _wilson(tp[:, positive], confusion.sum(axis=axis)[:, positive], self.z)

    def approximate(self, evaluated: _Evaluated) -> _Array | None:
        """mae and rmse: each slice's pessimistic bound by the normal approximation (the
        standard error of the mean of |e|, or of e^2 through the delta method); None for the
        other metrics."""
        if self.regression is None or self.metric not in ("mae", "rmse"):
            return None
        codes, n = evaluated.family.codes, evaluated.family.size
        counts = np.maximum(evaluated.counts, 1)
        squared = self.regression.squared
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.metric == "mae":
                mean = np.bincount(codes, self.regression.absolute, n) / counts
                spread = np.sqrt(np.maximum(np.bincount(codes, squared, n) / counts - mean**2, 0))
                return mean - self.z * spread / np.sqrt(counts)
            mean = np.bincount(codes, squared, n) / counts
            spread = np.sqrt(np.maximum(np.bincount(codes, squared**2, n) / counts - mean**2, 0))
            rmse = np.sqrt(mean)
            return rmse - self.z * spread / (2 * np.maximum(rmse, 1e-300) * np.sqrt(counts))

    def bootstrap_bounds(
        self, evaluated: _Evaluated, index: int, family_number: int
    ) -> tuple[float, float] | None:
        """The percentile bootstrap interval of one slice, from its own seeded stream."""
        cells, evaluate = self._plan(evaluated, index)
        rng = np.random.default_rng([self.seed, family_number, index])
        replicates = _bootstrap(rng, cells, self.n_boot, evaluate)
        return _percentile_interval(replicates, self.confidence)

    def _plan(self, evaluated: _Evaluated, index: int) -> tuple[_Array, Callable[[_Array], _Array]]:
        family = evaluated.family
        if self.classification is not None:
            data = self.classification
            if self.metric == "roc_auc":
                cells = evaluated.state
                if data.positive is not None and cells is not None:
                    part = slice(cells.start[index], cells.start[index + 1])
                    width = part.stop - part.start

                    def auc(counts: _Array) -> _Array:
                        return _auc_from_counts(counts[:, :width], counts[:, width:])

                    return np.concatenate([cells.positives[part], cells.negatives[part]]), auc
                members = _members(family, index)
                return np.ones(len(members), dtype=np.int64), _multiclass_auc_evaluator(
                    data.rankings, members
                )
            k = data.n_classes
            metric, positive = self.metric, data.positive

            def count(counts: _Array) -> _Array:
                return _count_metric(counts.reshape(-1, k, k), metric, positive)

            return evaluated.state[index].reshape(-1), count
        assert self.regression is not None
        members = _members(family, index)
        evaluator = partial(_regression_evaluator, self.regression, metric=self.metric)
        return np.ones(len(members), dtype=np.int64), evaluator(members)


def _members(family: _Family, index: int) -> _Array:
    order, start = _rows_by_slice(family.codes, family.size)
    return order[start[index] : start[index + 1]]


def _column_candidate(
    series: pd.Series, column: str, bins: int, max_categories: int
) -> _Family | str:
    """The column's family of slices, or why it is skipped."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "a datetime column (derive a number or a category from it to search it)"
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    try:
        distinct = int(series.nunique(dropna=True))
    except TypeError:
        return "unhashable values"
    if numeric and distinct > bins:
        return _binned_family(series, column, bins)
    if not numeric and distinct > max_categories:
        return f"{distinct} distinct values, more than max_categories={max_categories}"
    try:
        return _column_family(series, column, None)
    except QualityInputError as e:
        return e.message


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise QualityInputError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def weak_segments(
    y_true: npt.ArrayLike | pd.Series,
    y_pred: npt.ArrayLike | pd.Series,
    y_score: npt.ArrayLike | pd.Series | pd.DataFrame | None = None,
    *,
    data: pd.DataFrame,
    task: Task = "classification",
    metric: str | None = None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    pairs: bool = True,
    bins: int = 4,
    max_categories: int = 20,
    min_support: int | None = None,
    top_k: int = 10,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> WeakSegments:
    """The `top_k` segments of `data` (single columns and pairs) where `metric` is worst,
    ranked by the pessimistic end of their confidence interval (see the module docstring).

    `metric`: classification accuracy (default), precision, recall, f1 or roc_auc (needs
    y_score, as in slice_metrics); regression mae (default), rmse or r2. Rows of `data`
    match y_true by position."""
    valid = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if task not in ("classification", "regression"):
        raise QualityInputError(
            f"unknown task {task!r}", fix="task is 'classification' or 'regression'"
        )
    metric = metric or valid[0]
    if metric not in valid:
        raise QualityInputError(
            f"weak segments: unknown {task} metric {metric!r}",
            fix=f"choose from {', '.join(valid)}",
        )
    if metric == "roc_auc" and y_score is None:
        raise QualityInputError("roc_auc needs y_score", fix="pass the model's scores as y_score")
    bins = _check_count("bins", bins, 1)
    max_categories = _check_count("max_categories", max_categories, 1)
    top_k = _check_count("top_k", top_k, 1)
    n_boot = _check_count("n_boot", n_boot, 1)
    if not 0 < confidence < 1:
        raise QualityInputError(f"confidence must be between 0 and 1, not {confidence!r}")
    if not isinstance(data, pd.DataFrame):
        raise QualityInputError(
            f"data must be a pandas DataFrame, not {type(data).__name__}",
            fix="pass the rows the predictions are for as data=",
        )
    true = _as_array("y_true", y_true)
    pred = _as_array("y_pred", y_pred)
    _same_length("y_true", len(true), "y_pred", len(pred))
    _no_missing("y_true", true)
    _no_missing("y_pred", pred)
    n_rows = len(true)
    frame, _ = _slice_frame(data, None, n_rows)
    assert frame is not None
    support = (
        max(30, math.ceil(0.02 * n_rows))
        if min_support is None
        else _check_count("min_support", min_support, 1)
    )
    names = list(frame.columns) if columns is None else list(dict.fromkeys(columns))
    absent = [name for name in names if name not in frame.columns]
    if absent:
        raise QualityInputError(
            f"weak segments: column(s) {absent} not in data", fix=f"it has {list(frame.columns)}"
        )
    names = [name for name in names if name not in set(exclude)]

    classification: _Classification | None = None
    regression: _Regression | None = None
    if task == "classification":
        classification = _prepare_classification(
            true, pred, y_score, labels, pos_label, metric == "roc_auc"
        )
    else:
        target = _regression_values("y_true", true)
        error = _regression_values("y_pred", pred) - target
        regression = _Regression(target, error, np.abs(error), error**2)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    scorer = _Scorer(metric, classification, regression, z, confidence, n_boot, seed)
    lower_better = metric in LOWER_IS_BETTER
    overall = float(scorer.values(np.zeros(n_rows, dtype=np.int64), 1)[1][0])

    def worse(value: float, than: float) -> bool:
        return value > than if lower_better else value < than

    skipped: dict[str, str] = {}
    singles: dict[str, _Evaluated] = {}
    for name in names:
        candidate = _column_candidate(frame[name], name, bins, max_categories)
        if isinstance(candidate, str):
            skipped[name] = candidate
        else:
            singles[name] = scorer.evaluate(candidate)
    evaluated: list[_Evaluated] = list(singles.values())
    parent: dict[str, tuple[float, int]] = {}
    for item in singles.values():
        for index, predicate in enumerate(item.family.predicates):
            parent[predicate.to_expression()] = (float(item.values[index]), int(item.counts[index]))
    if pairs and len(singles) > 1 and not math.isnan(overall):
        paired = list(singles)
        if len(paired) > MAX_PAIR_COLUMNS:

            def gap(name: str) -> float:
                item = singles[name]
                usable = (item.counts >= support) & ~np.isnan(item.values)
                if not usable.any():
                    return -math.inf
                values = item.values[usable]
                return float(values.max() - overall if lower_better else overall - values.min())

            paired = sorted(paired, key=lambda name: (-gap(name), names.index(name)))
            paired = sorted(paired[:MAX_PAIR_COLUMNS], key=names.index)
        for i, first in enumerate(paired):
            for second in paired[i + 1 :]:
                family = _cross_family(
                    [singles[first].family, singles[second].family], (first, second)
                )
                evaluated.append(scorer.evaluate(family))

    # candidates: (family number, slice index, value)
    candidates: list[tuple[int, int, float]] = []
    if not math.isnan(overall):
        for number, item in enumerate(evaluated):
            single = number < len(singles)
            for found in np.flatnonzero(item.counts >= support):
                index = int(found)
                value = float(item.values[index])
                if math.isnan(value) or not worse(value, overall):
                    continue
                if not single:
                    count = int(item.counts[index])
                    conditions = item.family.predicates[index].conditions
                    parents = [parent[condition.to_expression()] for condition in conditions]
                    if any(
                        math.isnan(p_value) or not worse(value, p_value) or count == p_count
                        for p_value, p_count in parents
                    ):
                        continue
                candidates.append((number, index, value))

    sign = -1.0 if lower_better else 1.0
    ranked: list[tuple[tuple[float, float, int, str], SliceMetric]] = []
    if scorer.wilson:
        bounds = {number: scorer.wilson_bounds(evaluated[number]) for number, _, _ in candidates}
        for number, index, _ in candidates:
            low, high = float(bounds[number][0][index]), float(bounds[number][1][index])
            ranked.append(_ranked(evaluated[number], index, metric, low, high, "wilson", overall))
    else:
        approximate = {number: scorer.approximate(evaluated[number]) for number, _, _ in candidates}
        if all(bound is not None for bound in approximate.values()):
            # mae, rmse: the normal approximation's bound orders the candidates; the
            # weakest max(40, 4 * top_k) by it are bootstrapped
            limit: int | None = max(40, 4 * top_k)
            order = sorted(candidates, key=lambda c: sign * approximate[c[0]][c[1]])  # type: ignore[index]
        else:  # from the worst value on, until no candidate left can rank among the k weakest
            limit = None
            order = sorted(candidates, key=lambda c: sign * c[2])
        for position, (number, index, value) in enumerate(order):
            if limit is not None and position >= limit:
                break
            if (
                limit is None
                and len(ranked) >= top_k
                and max(key for key, _ in ranked)[0] <= sign * value
            ):
                break
            interval = scorer.bootstrap_bounds(evaluated[number], index, number)
            if interval is not None:
                low, high = interval
                ranked.append(
                    _ranked(evaluated[number], index, metric, low, high, "bootstrap", overall)
                )
                ranked = heapq.nsmallest(top_k, ranked, key=lambda item: item[0])
    ranked.sort(key=lambda item: item[0])
    return WeakSegments(
        [row for _, row in ranked[:top_k]], metric=metric, min_support=support, skipped=skipped
    )


def _ranked(
    item: _Evaluated,
    index: int,
    metric: str,
    low: float,
    high: float,
    method: CiMethod,
    overall: float,
) -> tuple[tuple[float, float, int, str], SliceMetric]:
    """A reported segment and its sort key: the pessimistic bound, the value (both signed
    so that smaller is weaker), the larger segment first, then the name."""
    predicate = item.family.predicates[index]
    value = float(item.values[index])
    lower_better = metric in LOWER_IS_BETTER
    sign = -1.0 if lower_better else 1.0
    bound = low if lower_better else high
    count = int(item.counts[index])
    name = predicate.to_expression()
    return (sign * bound, sign * value, -count, name), SliceMetric(
        slice=predicate,
        name=name,
        metric=metric,
        value=value,
        count=count,
        ci_low=low,
        ci_high=high,
        ci_method=method,
        gap=value - overall,
        too_small=False,
    )


__all__ = ["MAX_PAIR_COLUMNS", "WeakSegments", "weak_segments"]
