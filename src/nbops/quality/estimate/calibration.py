"""Is a classifier's probability calibrated on labelled reference data, and if not, a fix.

- `expected_calibration_error(confidence, correct)`: ECE over equal-count bins (10) of the
  predicted class's probability: sum over bins of share * |accuracy - mean confidence|.
- `check_calibration(P, y, yhat)`: ECE on the reference and its significance by consistency
  resampling (Broecker & Smith 2007): R label sets drawn from the probabilities themselves
  (y* ~ Categorical(P_i), so "y* == yhat" ~ Bernoulli(P[i, yhat_i])); p = share of
  resampled ECEs >= the observed one. Calibrated when p >= alpha (0.05).
- `fit_calibrator(P, y)`: one-vs-rest per probability column, isotonic regression (n >= 1000
  rows) or Platt scaling (a logistic regression on logit(p), C=1e6) below, rows renormalised
  to sum 1. Fitted with 5-fold cross-fitting to report an honest ECE after calibration, then
  refitted on all rows for use.

Calibration from fewer than `FEW_ROWS` (200) reference rows is noisy: the result says so.
Pure numpy, with scikit-learn imported inside the fitting functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nbops.errors import QualityInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_BINS = 10
N_RESAMPLES = 500
ALPHA = 0.05
ISOTONIC_MIN_ROWS = 1000
FEW_ROWS = 200
_EPS = 1e-6
_CHUNK = 4_000_000  # resampled values held at once


def _bin_edges(confidence: FloatArray, n_bins: int) -> tuple[IntArray, IntArray]:
    """The order that sorts `confidence` and the start of each equal-count bin in it."""
    order = np.argsort(confidence, kind="stable")
    n_bins = max(1, min(n_bins, len(confidence)))
    starts = np.array([len(confidence) * b // n_bins for b in range(n_bins)], dtype=np.int64)
    return order.astype(np.int64), np.unique(starts)


def _ece_sorted(correct: npt.NDArray[Any], conf_sums: FloatArray, starts: IntArray, n: int) -> Any:
    """ECE from correctness already in confidence order; `correct` may be (R, n)."""
    hits = np.add.reduceat(correct, starts, axis=-1)
    return np.abs(hits - conf_sums).sum(axis=-1) / n


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = N_BINS
) -> float:
    """ECE over `n_bins` equal-count bins of `confidence` (the predicted class's
    probability); `correct` says whether each prediction was right."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != right.shape or not len(conf):
        raise QualityInputError("confidence and correct must be 1-d, of one non-zero length")
    order, starts = _bin_edges(conf, n_bins)
    sums = np.add.reduceat(conf[order], starts)
    return float(_ece_sorted(right[order], sums, starts, len(conf)))


@dataclass
class CalibrationCheck:
    """ECE and its consistency-resampling p-value; calibrated when p >= alpha."""

    ece: float
    p_value: float
    rows: int
    calibrated: bool


def check_calibration(
    probabilities: npt.ArrayLike,
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
    n_bins: int = N_BINS,
) -> CalibrationCheck:
    """ECE of probabilities P (n x K) for labels `y` and predictions `yhat` (class indices
    into P's columns), with its significance by consistency resampling."""
    P, y_codes, yhat_codes = _checked(probabilities, y, yhat)
    n = len(y_codes)
    conf = P[np.arange(n), yhat_codes]
    order, starts = _bin_edges(conf, n_bins)
    conf_sorted = conf[order]
    sums = np.add.reduceat(conf_sorted, starts)
    observed = float(
        _ece_sorted((y_codes == yhat_codes)[order].astype(np.float64), sums, starts, n)
    )
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // max(n, 1))
    resampled = []
    for start in range(0, n_resamples, step):
        r = min(step, n_resamples - start)
        correct = (rng.random((r, n)) < conf_sorted).astype(np.float64)
        resampled.append(_ece_sorted(correct, sums, starts, n))
    eces = np.concatenate(resampled)
    p_value = float(np.mean(eces >= observed - 1e-12))
    return CalibrationCheck(observed, p_value, n, p_value >= alpha)


def _checked(
    probabilities: npt.ArrayLike, y: npt.ArrayLike, yhat: npt.ArrayLike
) -> tuple[FloatArray, IntArray, IntArray]:
    P = np.asarray(probabilities, dtype=np.float64)
    y_codes = np.asarray(y, dtype=np.int64)
    yhat_codes = np.asarray(yhat, dtype=np.int64)
    if P.ndim != 2 or P.shape[1] < 2 or not len(P):
        raise QualityInputError(
            f"probabilities must be a non-empty (rows x classes) array, got shape {P.shape}",
            fix="pass the model's predict_proba output",
        )
    if y_codes.shape != (len(P),) or yhat_codes.shape != (len(P),):
        raise QualityInputError(
            f"{len(P)} rows of probabilities but {y_codes.size} labels and "
            f"{yhat_codes.size} predictions"
        )
    k = P.shape[1]
    for name, codes in (("labels", y_codes), ("predictions", yhat_codes)):
        if codes.min() < 0 or codes.max() >= k:
            raise QualityInputError(f"{name} must be class indices in 0..{k - 1}")
    if not np.isfinite(P).all():
        raise QualityInputError("probabilities hold NaN or infinite values")
    return P, y_codes, yhat_codes


class Calibrator:
    """One-vs-rest calibration maps, one per probability column, and the renormalisation."""

    def __init__(self, method: str, maps: list[Any]) -> None:
        self.method = method
        self.maps = maps

    @staticmethod
    def fit(P: FloatArray, y: IntArray, method: str) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        maps: list[Any] = []
        for k in range(P.shape[1]):
            target = (y == k).astype(np.int64)
            if target.min() == target.max():  # one outcome only: a constant
                maps.append(float(target[0]))
            elif method == "isotonic":
                maps.append(
                    IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
                        P[:, k], target
                    )
                )
            else:
                maps.append(LogisticRegression(C=1e6).fit(_logit(P[:, k])[:, None], target))
        return Calibrator(method, maps)

    def transform(self, probabilities: npt.ArrayLike) -> FloatArray:
        P = np.asarray(probabilities, dtype=np.float64)
        columns = []
        for k, fitted in enumerate(self.maps):
            if isinstance(fitted, float):
                columns.append(np.full(len(P), fitted))
            elif self.method == "isotonic":
                columns.append(np.asarray(fitted.predict(P[:, k]), dtype=np.float64))
            else:
                columns.append(fitted.predict_proba(_logit(P[:, k])[:, None])[:, 1])
        Q = np.column_stack(columns)
        total = Q.sum(axis=1, keepdims=True)
        flat = total[:, 0] <= 0  # every map said 0: keep the model's own row
        Q[flat] = P[flat]
        total[flat] = P[flat].sum(axis=1, keepdims=True)
        return Q / total


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


@dataclass
class CalibrationReport:
    """The reference check, what was done about it, and the ECE after (cross-fitted)."""

    rows: int
    ece_before: float
    p_before: float
    calibrated_before: bool
    method: str  # "none" (kept as is), "isotonic" or "platt"
    ece_after: float | None = None
    p_after: float | None = None
    warnings: list[str] = field(default_factory=list)
    calibrator: Calibrator | None = field(default=None, repr=False)

    def apply(self, probabilities: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities (the model's own when no calibration was needed)."""
        P = np.asarray(probabilities, dtype=np.float64)
        return P if self.calibrator is None else self.calibrator.transform(P)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("calibrator")
        return out


def calibrate(
    probabilities: npt.ArrayLike,
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
    folds: int = 5,
    method: str | None = None,
) -> CalibrationReport:
    """Check calibration on the reference; when it fails (or `method` is given), fit a
    calibrator with cross-fitting for an honest after-ECE, then on all rows for use."""
    P, y_codes, yhat_codes = _checked(probabilities, y, yhat)
    n = len(P)
    before = check_calibration(
        P, y_codes, yhat_codes, n_resamples=n_resamples, seed=seed, alpha=alpha
    )
    warnings = []
    if n < FEW_ROWS:
        warnings.append(
            f"calibration checked on {n} reference rows (< {FEW_ROWS}): ECE and its "
            "significance are noisy; give a larger labelled reference"
        )
    report = CalibrationReport(n, before.ece, before.p_value, before.calibrated, "none",
                               warnings=warnings)  # fmt: skip
    if before.calibrated and method is None:
        return report
    chosen = method or ("isotonic" if n >= ISOTONIC_MIN_ROWS else "platt")
    if chosen not in ("isotonic", "platt"):
        raise QualityInputError(f"unknown calibration method {chosen!r}: isotonic or platt")
    folds = max(2, min(folds, n))
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    crossed = np.empty_like(P)
    for f in range(folds):
        held = fold_of == f
        crossed[held] = Calibrator.fit(P[~held], y_codes[~held], chosen).transform(P[held])
    after = check_calibration(
        crossed, y_codes, yhat_codes, n_resamples=n_resamples, seed=seed, alpha=alpha
    )
    report.method = chosen
    report.ece_after, report.p_after = after.ece, after.p_value
    report.calibrator = Calibrator.fit(P, y_codes, chosen)
    return report
