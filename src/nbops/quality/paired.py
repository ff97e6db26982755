"""Paired comparison of two classifiers' predictions on the same rows: is B better than A?

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
  `slices.classification._count_metric` from confusion counts.
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
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nbops.errors import QualityInputError
from nbops.quality.slices.classification import _COUNT_REASONS, _count_metric, _encode_labels
from nbops.quality.slices.inputs import _as_array, _no_missing, _same_length

PAIRED_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
EXACT_BELOW = 25
"""McNemar uses the exact binomial test when there are fewer discordant rows than this."""
_CHUNK_DRAWS = 1 << 22  # row indices drawn per chunk (whole replicates, at least one)
_Array = npt.NDArray[Any]


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
    mcnemar: McNemar
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
            "mcnemar": self.mcnemar.to_dict(),
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


def _resolve(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    if metrics is None:
        return PAIRED_METRICS
    chosen = [metrics] if isinstance(metrics, str) else list(dict.fromkeys(metrics))
    unknown = [name for name in chosen if name not in PAIRED_METRICS]
    if unknown or not chosen:
        what = f"unknown metric(s) {', '.join(map(repr, unknown))}" if unknown else "no metric"
        raise QualityInputError(
            f"paired comparison: {what}", fix=f"choose from {', '.join(PAIRED_METRICS)}"
        )
    return tuple(chosen)


def _check_options(n_resamples: int, confidence: float, codes: Any, n_slices: int, n: int) -> Any:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
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
    metrics: str | Sequence[str] | None = None,
    codes: Any = None,
    n_slices: int = 0,
    n_resamples: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
) -> PairedResult:
    """Compare classifier B with A on the same rows by a paired bootstrap over rows.

    `metrics`: a name or names from PAIRED_METRICS (None: all). `codes` (one integer in
    [0, n_slices) per row) adds the same comparison per slice. Returns a PairedResult;
    see the module docstring for the definitions."""
    chosen = _resolve(metrics)
    true, a, b = _label_arrays(y_true, pred_a, pred_b)
    n = len(true)
    slice_codes = _check_options(n_resamples, confidence, codes, n_slices, n)
    n_groups = max(n_slices, 1)
    # one encoding for both models: classes from y_true and both predictions together
    both_true, both_pred, classes, positive = _encode_labels(
        np.concatenate([true, true]), np.concatenate([a, b]), labels, pos_label
    )
    k = len(classes)
    code_true, code_a, code_b = both_true[:n], both_pred[:n], both_pred[n:]
    joint = ((slice_codes * k + code_true) * k + code_a) * k + code_b
    cells, row_cell = np.unique(joint, return_inverse=True)
    row_cell = row_cell.reshape(-1)
    cell_b = cells % k
    cell_a = (cells // k) % k
    cell_conf = cells // (k * k)  # slice * k + true class
    to_a = cell_conf * k + cell_a  # index into a (slices, k, k) confusion
    to_b = cell_conf * k + cell_b
    width = n_groups * k * k

    def confusions(counts: _Array) -> tuple[_Array, _Array]:
        """(replicates, slices, k, k) confusions of A and B from per-cell counts."""
        reps = counts.shape[0]
        offsets = (np.arange(reps) * width)[:, None]
        shape = (reps, n_groups, k, k)
        conf_a = np.bincount((offsets + to_a).ravel(), counts.ravel(), reps * width)
        conf_b = np.bincount((offsets + to_b).ravel(), counts.ravel(), reps * width)
        return conf_a.reshape(shape), conf_b.reshape(shape)

    full_a, full_b = confusions(np.bincount(row_cell, minlength=len(cells))[None, :])
    # replicate differences, per metric: (n_resamples, 1 + n_slices); column 0 is overall
    deltas = {name: np.empty((n_resamples, 1 + n_slices)) for name in chosen}
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_DRAWS // n)
    m = len(cells)
    for start in range(0, n_resamples, per_chunk):
        reps = min(per_chunk, n_resamples - start)
        index = rng.integers(0, n, size=(reps, n))
        drawn = row_cell[index]
        drawn += (np.arange(reps) * m)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=reps * m).reshape(reps, m)
        conf_a, conf_b = confusions(counts)
        for name in chosen:
            out = deltas[name][start : start + reps]
            out[:, 0] = _difference(conf_a.sum(axis=1), conf_b.sum(axis=1), name, positive)
            if n_slices:
                out[:, 1:] = _difference(conf_a, conf_b, name, positive)

    level = float(confidence)
    overall = {}
    slices: list[dict[str, PairedMetric]] = [{} for _ in range(n_slices)]
    for name in chosen:
        values_a = _count_metric(full_a[0], name, positive)
        values_b = _count_metric(full_b[0], name, positive)
        overall[name] = _summarise(
            name,
            _count_metric(full_a[0].sum(axis=0), name, positive),
            _count_metric(full_b[0].sum(axis=0), name, positive),
            deltas[name][:, 0],
            n,
            level,
        )
        rows = full_a[0].sum(axis=(1, 2))
        for s in range(n_slices):
            slices[s][name] = _summarise(
                name, values_a[s], values_b[s], deltas[name][:, 1 + s], int(rows[s]), level
            )
    correct_a = code_a == code_true
    correct_b = code_b == code_true
    test = _mcnemar_counts(int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum()))
    return PairedResult(
        overall=overall,
        slices=tuple(slices),
        mcnemar=test,
        classes=tuple(classes),
        n_resamples=n_resamples,
        confidence=level,
        seed=seed,
        metrics=chosen,
    )


def _difference(conf_a: _Array, conf_b: _Array, metric: str, positive: int | None) -> _Array:
    with np.errstate(invalid="ignore"):
        return _count_metric(conf_b, metric, positive) - _count_metric(conf_a, metric, positive)


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
        reason = _COUNT_REASONS[metric] if rows else "the slice is empty"
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
