"""Confidence-based performance estimation (CBPE): a classifier's accuracy, precision,
recall and F1 on unlabelled rows, from its (calibrated) probabilities.

For rows with calibrated probabilities Q (n x K) and predictions yhat (class indices):
- expected confusion E[k, j] = sum over rows i with yhat_i = j of Q[i, k] (true class k,
  predicted class j); expected accuracy = mean_i Q[i, yhat_i];
- precision, recall, F1 = `_count_metric(E)`, the definitions of `slice_metrics` (binary:
  the positive class's; multiclass: macro) applied to the expected counts (a ratio of
  expectations, as NannyML does; precision's denominator, the predicted count, is exact);
- uncertainty: R label sets y* ~ Categorical(Q_i) (seeded), each giving the metric of
  (y*, yhat); the central `confidence` interval of those is where the realised metric
  should fall if the calibration holds. Replicates where a metric is undefined are dropped;
  under half defined: no interval.
- per slice: every slice of a `Slicer` (categorical values; numbers in quantile bins of the
  reference), the same formulas on its rows, `too_small` under `min_size` rows.

Blind by design to concept drift (P(y | x) changing): the estimate trusts the reference's
calibration. Everything is vectorised: one `bincount` per block of replicates.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices.classification import _count_metric

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METRICS = ("accuracy", "precision", "recall", "f1")
N_RESAMPLES = 1000
MIN_SIZE = 30
_CHUNK = 4_000_000


@dataclass(frozen=True)
class Interval:
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass
class GroupMetrics:
    """Metrics (with intervals for estimates) of one group of rows: overall or a slice."""

    name: str
    rows: int
    too_small: bool
    metrics: dict[str, Interval] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "too_small": self.too_small,
            "metrics": {m: i.to_dict() for m, i in self.metrics.items()},
        }


@dataclass
class Slicer:
    """Slices of request columns, learnt on the reference: each value of a column with few
    distinct values (missing values their own slice), numbers in quantile bins."""

    categorical: list[str] = field(default_factory=list)
    binned: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def from_reference(
        frame: pd.DataFrame,
        columns: Sequence[str] | None = None,
        *,
        bins: int = 4,
        max_categories: int = 20,
    ) -> Slicer:
        slicer = Slicer()
        for column in columns if columns is not None else list(frame.columns):
            values = frame[column]
            if values.dtype.kind in "fiu" and values.nunique(dropna=True) > max_categories:
                edges = values.dropna().quantile(np.linspace(0, 1, bins + 1)).to_numpy()
                inner = sorted({float(e) for e in edges[1:-1]})
                if inner:
                    slicer.binned[column] = inner
            elif values.nunique(dropna=True) <= max_categories:
                slicer.categorical.append(column)
        return slicer

    def families(self, frame: pd.DataFrame) -> list[tuple[list[str], IntArray]]:
        """Per sliced column: the slice names and each row's slice (-1: none)."""
        found: list[tuple[list[str], IntArray]] = []
        for column in self.categorical:
            if column not in frame:
                continue
            values = frame[column]
            text = values.astype(str).where(values.notna(), None)
            codes, uniques = pd.factorize(text, sort=True)
            names = [f"{column} == {u!r}" for u in uniques]
            codes = np.asarray(codes, dtype=np.int64)
            if (codes < 0).any():
                names.append(f"{column} is missing")
                codes = np.where(codes < 0, len(names) - 1, codes)
            found.append((names, codes))
        for column, inner in self.binned.items():
            if column not in frame:
                continue
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
            edges = [-np.inf, *inner, np.inf]
            names = [_bin_name(column, lo, hi) for lo, hi in itertools.pairwise(edges)]
            codes = np.searchsorted(np.asarray(inner), values, side="left").astype(np.int64)
            missing = np.isnan(values)
            if missing.any():
                names.append(f"{column} is missing")
                codes = np.where(missing, len(names) - 1, codes)
            found.append((names, codes))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": self.categorical, "binned": self.binned}


def _bin_name(column: str, low: float, high: float) -> str:
    if low == -np.inf:
        return f"{column} <= {high:.4g}"
    if high == np.inf:
        return f"{column} > {low:.4g}"
    return f"{column} in ({low:.4g}, {high:.4g}]"


class _Groups:
    """Overall plus every slice as (row, group) memberships, so one bincount serves all."""

    def __init__(self, n: int, families: Sequence[tuple[list[str], IntArray]]) -> None:
        names, rows, groups = ["overall"], [np.arange(n)], [np.zeros(n, dtype=np.int64)]
        for family_names, codes in families:
            codes = np.asarray(codes, dtype=np.int64)
            if codes.shape != (n,):
                raise QualityInputError(f"slice codes for {n} rows have shape {codes.shape}")
            member = codes >= 0
            rows.append(np.flatnonzero(member))
            groups.append(codes[member] + len(names))
            names.extend(family_names)
        self.names = names
        self.rows = np.concatenate(rows)
        self.group = np.concatenate(groups)
        self.sizes = np.bincount(self.group, minlength=len(names))


class _Draws:
    """Confusion counts per group of many drawn label sets at once. Small problems: one
    float32 matrix product per class with the (row -> group, predicted class) indicator
    (exact: integer sums below 2^24); large ones: one `bincount` per block."""

    DENSE_LIMIT = 25_000_000

    def __init__(self, groups: _Groups, member_pred: IntArray, n: int, k: int) -> None:
        self.groups, self.member_pred, self.n, self.k = groups, member_pred, n, k
        self.G = len(groups.names)
        self.dense = n * self.G * k <= self.DENSE_LIMIT and n < 2**24
        self.width = len(groups.rows)
        if self.dense:
            self.indicator = np.zeros((n, self.G * k), dtype=np.float32)
            self.indicator[groups.rows, groups.group * k + member_pred] = 1.0
            self.totals = self.indicator.sum(axis=0, dtype=np.float64).reshape(self.G, k)
            self.width = self.G * k

    def confusions(self, drawn: npt.NDArray[np.int8]) -> IntArray:
        r, G, k = len(drawn), self.G, self.k
        if self.dense:
            counts = np.empty((r, G, k, k))
            for t in range(1, k):
                hits = (drawn == t).astype(np.float32) @ self.indicator
                counts[:, :, t, :] = hits.reshape(r, G, k)
            counts[:, :, 0, :] = self.totals[None] - counts[:, :, 1:, :].sum(axis=2)
            return np.rint(counts).astype(np.int64)
        joint = self.groups.group * k * k + self.member_pred
        joint = joint[None, :] + drawn[:, self.groups.rows].astype(np.int64) * k
        joint += (np.arange(r, dtype=np.int64) * G * k * k)[:, None]
        return np.bincount(joint.ravel(), minlength=r * G * k * k).reshape(r, G, k, k)


def _classes(probabilities: npt.ArrayLike, yhat: npt.ArrayLike) -> tuple[FloatArray, IntArray]:
    Q = np.asarray(probabilities, dtype=np.float64)
    codes = np.asarray(yhat, dtype=np.int64)
    if Q.ndim != 2 or Q.shape[1] < 2 or codes.shape != (len(Q),):
        raise QualityInputError(
            f"need probabilities (rows x classes) and one predicted class index per row; got "
            f"shapes {Q.shape} and {codes.shape}"
        )
    if len(codes) and (codes.min() < 0 or codes.max() >= Q.shape[1]):
        raise QualityInputError(f"predicted class indices must be in 0..{Q.shape[1] - 1}")
    return Q, codes


def expected_confusion(probabilities: npt.ArrayLike, yhat: npt.ArrayLike) -> FloatArray:
    """E[k, j] = sum of Q[i, k] over the rows predicted as j."""
    Q, codes = _classes(probabilities, yhat)
    k = Q.shape[1]
    return np.stack([np.bincount(codes, weights=Q[:, t], minlength=k) for t in range(k)]).astype(
        np.float64
    )


def _positive(k: int, positive: int | None) -> int | None:
    return (1 if positive is None else positive) if k == 2 else None


def estimate_performance(
    probabilities: npt.ArrayLike,
    yhat: npt.ArrayLike,
    *,
    families: Sequence[tuple[list[str], IntArray]] = (),
    metrics: Sequence[str] = METRICS,
    positive: int | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    min_size: int = MIN_SIZE,
) -> list[GroupMetrics]:
    """Estimated metrics with intervals: the first group is overall, then every slice of
    `families` (from `Slicer.families`). Binary: `positive` (default 1, the second column of
    the probabilities) is the positive class; more classes: macro averages."""
    Q, codes = _classes(probabilities, yhat)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise QualityInputError(f"unknown metric(s) {unknown}: CBPE estimates {list(METRICS)}")
    n, k = Q.shape
    pos = _positive(k, positive)
    groups = _Groups(n, families)
    G = len(groups.names)
    member_pred = codes[groups.rows]
    expected = np.zeros((G, k, k))
    for t in range(k):
        expected[:, t, :] = np.bincount(
            groups.group * k + member_pred, weights=Q[groups.rows, t], minlength=G * k
        ).reshape(G, k)
    point = {m: _count_metric(expected, m, pos) for m in metrics}
    samples = {m: np.empty((n_resamples, G)) for m in metrics}
    if n and n_resamples:
        cum = np.cumsum(Q, axis=1)[:, :-1]
        cum /= np.maximum(Q.sum(axis=1), 1e-300)[:, None]
        rng = np.random.default_rng(seed)
        draws = _Draws(groups, member_pred, n, k)
        step = max(1, _CHUNK // max(n * max(k - 1, 1), draws.width, 1))
        for start in range(0, n_resamples, step):
            r = min(step, n_resamples - start)
            u = rng.random((r, n))
            if k == 2:
                drawn = (u >= cum[:, 0]).astype(np.int8)
            else:
                drawn = (u[:, :, None] >= cum[None]).sum(axis=2, dtype=np.int8)
            counts = draws.confusions(drawn)
            for m in metrics:
                samples[m][start : start + r] = _count_metric(counts, m, pos)
    alpha = (1 - confidence) / 2
    result = []
    for g, name in enumerate(groups.names):
        size = int(groups.sizes[g])
        estimates = {}
        for m in metrics:
            value = float(point[m][g])
            column = samples[m][:, g] if n and n_resamples else np.empty(0)
            defined = column[~np.isnan(column)]
            if value != value:
                estimates[m] = Interval(None)
            elif len(defined) < max(1, n_resamples) / 2:
                estimates[m] = Interval(value)
            else:
                low, high = np.percentile(defined, [100 * alpha, 100 * (1 - alpha)])
                estimates[m] = Interval(value, float(low), float(high))
        result.append(GroupMetrics(name, size, size < min_size, estimates))
    return result
