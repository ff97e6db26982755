"""Confidence intervals: Wilson intervals for count metrics, and a percentile bootstrap
(resampling each slice's rows, in bounded chunks of draws) for the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nbops.quality.slices._common import _Array
from nbops.quality.slices.classification import _auc_from_counts, _divide, _Ranking
from nbops.quality.slices.regression import _Regression


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
