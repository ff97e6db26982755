"""Paired comparison of two models' predictions on the same rows: is B better than A?

    result = paired_bootstrap(y_true, pred_a, pred_b, metrics=["accuracy", "f1"], seed=0)
    result.overall["accuracy"].diff        # accuracy(B) - accuracy(A) on all rows
    result.overall["accuracy"].ci_low      # percentile interval of the paired bootstrap
    result.overall["accuracy"].significant # the interval excludes 0
    mcnemar(y_true, pred_a, pred_b).p_value

Contract:
- A is the champion, B the challenger; every difference is B - A.
- Metrics are slice_metrics' count metrics (accuracy, precision, recall, f1) with the same
  definitions: binary labels give the positive class's score (pos_label, else the larger
  class), multiclass gives the macro average over the classes present, computed by
  `slices.classification._count_metric` from confusion counts. task="regression": mae,
  rmse and r2 (better is lower for mae and rmse, so there an improvement is a negative
  diff); r2 is undefined with fewer than two rows or a constant y_true.
- The bootstrap resamples rows with `np.random.default_rng(seed).integers(0, n, (B, n))`,
  drawn in chunks of whole replicates (the stream does not depend on the chunk size), and
  scores A and B on the same resampled rows. This is the draw `scipy.stats.bootstrap(...,
  paired=True)` makes with the same generator, so the replicates equal scipy's.
  CI = `np.percentile` (linear) of the replicate differences at (1 -+ confidence) / 2;
  p_value = min(1, 2 * min(P(delta <= 0), P(delta >= 0))); significant = CI excludes 0.
- Per slice (codes=, n_slices=): the same resamples of the whole data; a replicate where the
  metric is undefined in the slice (no rows, no positives...) is dropped; with fewer than
  half the replicates valid there is no interval (`reason` says why).
- mcnemar: b = A right and B wrong, c = A wrong and B right; exact two-sided binomial test
  when b + c < 25, else chi-square with continuity correction, (|b - c| - 1)^2 / (b + c).
- Bad input (lengths differ, empty arrays, missing labels, an unknown metric, a confidence
  outside (0, 1)) raises QualityInputError with one line.
Pure numpy/scipy; results are frozen dataclasses with a JSON-safe `to_dict()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nbops.errors import QualityInputError
from nbops.quality.slices._common import REGRESSION_METRICS, Task
from nbops.quality.slices.classification import _COUNT_REASONS, _count_metric, _encode_labels
from nbops.quality.slices.inputs import (
    _as_array,
    _no_missing,
    _regression_values,
    _same_length,
)

PAIRED_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
EXACT_BELOW = 25
"""McNemar uses the exact binomial test when there are fewer discordant rows than this."""
_CHUNK_DRAWS = 1 << 22  # row indices drawn per chunk (whole replicates, at least one)
_BLOCK_VALUES = 1 << 23  # regression: largest rows x 7 x slices block matrix (64 MiB)
_MATMUL_SLICES = 64  # regression sums by matrix products up to this many slices
_Array = npt.NDArray[Any]
_REASONS = {**_COUNT_REASONS, "r2": "fewer than two rows, or y_true is constant in the slice"}


def _float(value: float) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired correctness: b = rows only A gets right, c = only B."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: Literal["exact", "chi2"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "b": self.b,
            "c": self.c,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "method": self.method,
        }


@dataclass(frozen=True)
class PairedMetric:
    """One metric of A and B on the same rows, their difference B - A and its interval.
    Values are None where the metric is undefined; the interval is None with a reason."""

    metric: str
    value_a: float | None
    value_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    rows: int
    valid_resamples: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value_a": self.value_a,
            "value_b": self.value_b,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "rows": self.rows,
            "valid_resamples": self.valid_resamples,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PairedResult:
    """Every metric overall, per slice (slice code order), and McNemar's test overall."""

    overall: dict[str, PairedMetric]
    slices: tuple[dict[str, PairedMetric], ...]
    mcnemar: McNemar | None
    classes: tuple[Any, ...]
    n_resamples: int
    confidence: float
    seed: int | None
    metrics: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metrics),
            "overall": {name: value.to_dict() for name, value in self.overall.items()},
            "slices": [
                {name: value.to_dict() for name, value in one.items()} for one in self.slices
            ],
            "mcnemar": None if self.mcnemar is None else self.mcnemar.to_dict(),
            "classes": [_json_scalar(value) for value in self.classes],
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "seed": self.seed,
        }


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float(value)
    return str(value)


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> McNemar:
    """McNemar's test of A against B on the same rows (see the module docstring)."""
    true, a, b = _label_arrays(y_true, pred_a, pred_b)
    return _mcnemar_counts(
        int(((a == true) & (b != true)).sum()), int(((a != true) & (b == true)).sum())
    )


def _mcnemar_counts(b: int, c: int) -> McNemar:
    from scipy import stats

    if b + c < EXACT_BELOW:
        statistic = min(b, c)
        p_value = min(1.0, 2.0 * float(stats.binom.cdf(statistic, b + c, 0.5)))
        return McNemar(b, c, float(statistic), p_value, "exact")
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemar(b, c, float(chi2), float(stats.chi2.sf(chi2, 1)), "chi2")


def _label_arrays(y_true: Any, pred_a: Any, pred_b: Any) -> tuple[_Array, _Array, _Array]:
    true = _as_array("y_true", y_true)
    a = _as_array("pred_a", pred_a)
    b = _as_array("pred_b", pred_b)
    _same_length("y_true", len(true), "pred_a", len(a))
    _same_length("y_true", len(true), "pred_b", len(b))
    for name, array in (("y_true", true), ("pred_a", a), ("pred_b", b)):
        _no_missing(name, array)
    return true, a, b


def _number_arrays(y_true: Any, pred_a: Any, pred_b: Any) -> tuple[_Array, _Array, _Array]:
    arrays = _label_arrays(y_true, pred_a, pred_b)
    return tuple(  # type: ignore[return-value]
        _regression_values(name, array)
        for name, array in zip(("y_true", "pred_a", "pred_b"), arrays, strict=True)
    )


def _resolve(task: str, metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    if task not in ("classification", "regression"):
        raise QualityInputError(
            f"unknown task {task!r}", fix="task is 'classification' or 'regression'"
        )
    valid = PAIRED_METRICS if task == "classification" else REGRESSION_METRICS
    if metrics is None:
        return valid
    chosen = [metrics] if isinstance(metrics, str) else list(dict.fromkeys(metrics))
    unknown = [name for name in chosen if name not in valid]
    if unknown or not chosen:
        what = f"unknown metric(s) {', '.join(map(repr, unknown))}" if unknown else "no metric"
        raise QualityInputError(
            f"paired comparison: {what} for {task}", fix=f"choose from {', '.join(valid)}"
        )
    return tuple(chosen)


def _check_options(n_resamples: int, confidence: float, codes: Any, n_slices: int, n: int) -> Any:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise QualityInputError(
            f"n_resamples must be a positive integer, not {n_resamples!r}", fix="e.g. 2000"
        )
    if not 0.0 < float(confidence) < 1.0:
        raise QualityInputError(
            f"confidence must be between 0 and 1 (exclusive), not {confidence!r}", fix="e.g. 0.95"
        )
    if codes is None:
        if n_slices:
            raise QualityInputError("n_slices is given without codes", fix="pass codes= too")
        return np.zeros(n, dtype=np.int64)
    array = _as_array("codes", codes)
    _same_length("y_true", n, "codes", len(array))
    if array.dtype.kind not in "iu" or n_slices < 1 or array.min() < 0 or array.max() >= n_slices:
        raise QualityInputError(
            f"codes must be integers in [0, n_slices={n_slices})",
            fix="pass each row's slice number as codes= and the number of slices as n_slices=",
        )
    return array.astype(np.int64)


def paired_bootstrap(
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    *,
    task: Task = "classification",
    metrics: str | Sequence[str] | None = None,
    codes: Any = None,
    n_slices: int = 0,
    n_resamples: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> PairedResult:
    """Compare model B with A on the same rows by a paired bootstrap over rows.

    `metrics`: a name or names of the task's metrics (None: all; classification:
    PAIRED_METRICS, regression: mae, rmse, r2). `codes` (one integer in [0, n_slices) per
    row) adds the same comparison per slice. Returns a PairedResult; see the module
    docstring for the definitions."""
    chosen = _resolve(task, metrics)
    if task == "regression":
        true, a, b = _number_arrays(y_true, pred_a, pred_b)
    else:
        true, a, b = _label_arrays(y_true, pred_a, pred_b)
    n = len(true)
    slice_codes = _check_options(n_resamples, confidence, codes, n_slices, n)
    n_resamples = int(n_resamples)
    rng = np.random.default_rng(seed)
    # per metric: values of A and B, (1 + n_slices,), and replicate differences
    # (n_resamples, 1 + n_slices); index 0 is overall, 1 + s is slice s
    deltas = {name: np.empty((n_resamples, 1 + n_slices)) for name in chosen}
    test: McNemar | None = None
    classes: list[Any] = []
    if task == "regression":
        sums = _RegressionSums(true, a, b, slice_codes, max(n_slices, 1))
        point, rows = sums.metrics(sums.sums(np.ones((1, n))), chosen)
        for start, reps in _chunks(n_resamples, n):
            index = rng.integers(0, n, size=(reps, n))
            weights = np.bincount(
                (index + (np.arange(reps) * n)[:, None]).ravel(), minlength=reps * n
            )
            values, _ = sums.metrics(sums.sums(weights.reshape(reps, n)), chosen)
            for name in chosen:
                value_a, value_b = values[name]
                deltas[name][start : start + reps] = _keep_slices(value_b - value_a, n_slices)
    else:
        counts = _ClassCounts(true, a, b, slice_codes, max(n_slices, 1), labels, pos_label)
        classes = counts.classes
        point, rows = counts.metrics(counts.full(), chosen)
        # confusions of a chunk hold replicates x slices x classes^2 counts: bound them too
        for start, reps in _chunks(n_resamples, max(n, counts.n_groups * counts.k**2)):
            index = rng.integers(0, n, size=(reps, n))
            values, _ = counts.metrics(counts.resampled(index), chosen)
            for name in chosen:
                value_a, value_b = values[name]
                deltas[name][start : start + reps] = _keep_slices(value_b - value_a, n_slices)
        test = _mcnemar_counts(*counts.discordant())
    level = float(confidence)
    summaries = {
        name: [
            _summarise(
                name,
                point[name][0][0, j],
                point[name][1][0, j],
                deltas[name][:, j],
                int(rows[0, j]),
                level,
            )
            for j in range(1 + n_slices)
        ]
        for name in chosen
    }
    return PairedResult(
        overall={name: summaries[name][0] for name in chosen},
        slices=tuple({name: summaries[name][1 + s] for name in chosen} for s in range(n_slices)),
        mcnemar=test,
        classes=tuple(classes),
        n_resamples=n_resamples,
        confidence=level,
        seed=None if seed is None else int(seed),
        metrics=chosen,
    )


def _chunks(n_resamples: int, per_replicate: int) -> list[tuple[int, int]]:
    """(first replicate, replicates) of each chunk: whole replicates, about _CHUNK_DRAWS
    values per chunk, at least one replicate."""
    size = max(1, _CHUNK_DRAWS // per_replicate)
    return [(start, min(size, n_resamples - start)) for start in range(0, n_resamples, size)]


def _keep_slices(values: _Array, n_slices: int) -> _Array:
    """(replicates, 1 + groups) values: drop the one group column when there are no slices."""
    return values[:, :1] if n_slices == 0 else values


class _ClassCounts:
    """Confusion counts of A and B per slice, from counts of the distinct (slice, true, A,
    B) cells: a resample is one gather and one bincount."""

    def __init__(
        self,
        true: _Array,
        a: _Array,
        b: _Array,
        slice_codes: _Array,
        n_groups: int,
        labels: Sequence[Any] | None,
        pos_label: Any,
    ) -> None:
        n = len(true)
        # one encoding for both models: classes from y_true and both predictions together
        both_true, both_pred, self.classes, self.positive = _encode_labels(
            np.concatenate([true, true]), np.concatenate([a, b]), labels, pos_label
        )
        k = self.k = len(self.classes)
        self.code_true, self.code_a, self.code_b = both_true[:n], both_pred[:n], both_pred[n:]
        joint = ((slice_codes * k + self.code_true) * k + self.code_a) * k + self.code_b
        cells, row_cell = np.unique(joint, return_inverse=True)
        self.row_cell = row_cell.reshape(-1)
        self.m = len(cells)
        cell_conf = cells // (k * k)  # slice * k + true class
        self.to_a = cell_conf * k + (cells // k) % k  # index into a (slices, k, k) confusion
        self.to_b = cell_conf * k + cells % k
        self.n_groups = n_groups

    def full(self) -> _Array:
        return np.bincount(self.row_cell, minlength=self.m)[None, :]

    def resampled(self, index: _Array) -> _Array:
        reps = index.shape[0]
        drawn = self.row_cell[index]
        drawn += (np.arange(reps) * self.m)[:, None]
        return np.bincount(drawn.ravel(), minlength=reps * self.m).reshape(reps, self.m)

    def metrics(
        self, counts: _Array, chosen: Sequence[str]
    ) -> tuple[dict[str, tuple[_Array, _Array]], _Array]:
        """Per metric, A's and B's values (replicates, 1 + groups), and the rows counted."""
        reps, k = counts.shape[0], self.k
        width = self.n_groups * k * k
        offsets = (np.arange(reps) * width)[:, None]
        shape = (reps, self.n_groups, k, k)
        conf_a = np.bincount((offsets + self.to_a).ravel(), counts.ravel(), reps * width)
        conf_b = np.bincount((offsets + self.to_b).ravel(), counts.ravel(), reps * width)
        conf_a, conf_b = conf_a.reshape(shape), conf_b.reshape(shape)
        conf_a = np.concatenate([conf_a.sum(axis=1, keepdims=True), conf_a], axis=1)
        conf_b = np.concatenate([conf_b.sum(axis=1, keepdims=True), conf_b], axis=1)
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for name in chosen:
                out[name] = (
                    _count_metric(conf_a, name, self.positive),
                    _count_metric(conf_b, name, self.positive),
                )
        return out, conf_a.sum(axis=(-2, -1))

    def discordant(self) -> tuple[int, int]:
        right_a = self.code_a == self.code_true
        right_b = self.code_b == self.code_true
        return int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())


class _RegressionSums:
    """Per-slice weighted sums for mae, rmse and r2 of A and B; a resample is the rows'
    multiplicities as weights. Few slices: one matrix product with a block matrix (a
    slice's quantities in its own columns); more: rows sorted by slice, one product (or
    `np.add.reduceat`) per slice segment. y is centred on its mean to keep r2's sums
    accurate."""

    def __init__(
        self, true: _Array, a: _Array, b: _Array, slice_codes: _Array, n_groups: int
    ) -> None:
        self.order = np.argsort(slice_codes, kind="stable")
        per_group = np.bincount(slice_codes, minlength=n_groups)
        self.present = np.flatnonzero(per_group)
        self.starts = np.searchsorted(slice_codes[self.order], self.present)
        self.n_groups = n_groups
        centred = true - true.mean()
        error_a, error_b = a - true, b - true
        quantities = np.stack(
            [
                np.ones_like(true),
                np.abs(error_a),
                np.abs(error_b),
                error_a**2,
                error_b**2,
                centred,
                centred**2,
            ],
            axis=1,
        )
        n, width = quantities.shape
        self.block: _Array | None = None
        if n * width * n_groups <= _BLOCK_VALUES:  # few slices: one product for all of them
            self.block = np.zeros((n, n_groups * width))
            columns = slice_codes[:, None] * width + np.arange(width)
            self.block[np.arange(n)[:, None], columns] = quantities
        self.quantities = quantities[self.order]

    def sums(self, weights: _Array) -> _Array:
        """(replicates, 1 + groups, 7) weighted sums; groups without rows are 0."""
        weights = weights.astype(np.float64)
        reps, width = weights.shape[0], self.quantities.shape[1]
        out = np.zeros((reps, 1 + self.n_groups, width))
        if self.block is not None:
            out[:, 1:] = (weights @ self.block).reshape(reps, self.n_groups, width)
            out[:, 0] = out[:, 1:].sum(axis=1)
            return out
        weighted = weights[:, self.order]
        if len(self.present) <= _MATMUL_SLICES:  # one matrix product per slice (BLAS)
            ends = [*self.starts[1:], len(self.order)]
            for group, start, end in zip(self.present, self.starts, ends, strict=True):
                out[:, 1 + group] = weighted[:, start:end] @ self.quantities[start:end]
        else:
            for q in range(self.quantities.shape[1]):
                per_slice = np.add.reduceat(weighted * self.quantities[:, q], self.starts, axis=1)
                out[:, 1 + self.present, q] = per_slice
        out[:, 0] = out[:, 1:].sum(axis=1)
        return out

    def metrics(
        self, sums: _Array, chosen: Sequence[str]
    ) -> tuple[dict[str, tuple[_Array, _Array]], _Array]:
        count = sums[..., 0]
        out: dict[str, tuple[_Array, _Array]] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            total = sums[..., 6] - sums[..., 5] ** 2 / count
            constant = (count < 2) | ~(total > 1e-10 * sums[..., 6])
            for name in chosen:
                pair = []
                for absolute, squared in ((1, 3), (2, 4)):
                    if name == "mae":
                        value = sums[..., absolute] / count
                    elif name == "rmse":
                        value = np.sqrt(sums[..., squared] / count)
                    else:
                        value = np.where(constant, np.nan, 1.0 - sums[..., squared] / total)
                    pair.append(np.where(count > 0, value, np.nan))
                out[name] = (pair[0], pair[1])
        return out, count


def _summarise(
    metric: str, value_a: Any, value_b: Any, delta: _Array, rows: int, confidence: float
) -> PairedMetric:
    a, b = _float(value_a), _float(value_b)
    diff = None if a is None or b is None else b - a
    valid = delta[~np.isnan(delta)]
    common: dict[str, Any] = {
        "metric": metric,
        "value_a": a,
        "value_b": b,
        "diff": diff,
        "rows": rows,
        "valid_resamples": len(valid),
    }
    if diff is None:
        reason = _REASONS.get(metric, "") if rows else "the slice is empty"
        return PairedMetric(
            **common,
            ci_low=None,
            ci_high=None,
            p_value=None,
            significant=False,
            reason=f"undefined: {reason}",
        )
    if 2 * len(valid) < len(delta):
        return PairedMetric(
            **common,
            ci_low=None,
            ci_high=None,
            p_value=None,
            significant=False,
            reason=f"only {len(valid)} of {len(delta)} resamples define {metric} here",
        )
    tail = (1.0 - confidence) / 2
    low, high = np.percentile(valid, [100 * tail, 100 * (1 - tail)])
    p_value = min(1.0, 2.0 * min(float(np.mean(valid <= 0)), float(np.mean(valid >= 0))))
    return PairedMetric(
        **common,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p_value,
        significant=bool(low > 0 or high < 0),
    )


__all__ = [
    "EXACT_BELOW",
    "PAIRED_METRICS",
    "McNemar",
    "PairedMetric",
    "PairedResult",
    "mcnemar",
    "paired_bootstrap",
]
