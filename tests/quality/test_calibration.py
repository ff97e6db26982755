"""Calibration on the reference: ECE, its consistency-resampling test, and the
isotonic/Platt fix (equal to scikit-learn's own estimators fitted by hand)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from nbops.quality.estimate import calibrate, check_calibration, expected_calibration_error


def _calibrated(n: int, rng: np.random.Generator, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    P = rng.dirichlet(np.full(k, 0.7), size=n)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)[:, :-1]).sum(axis=1)
    return P, y


def test_ece_equals_a_loop_over_ten_equal_count_bins() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, 103)
    correct = rng.random(103) < conf
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for b in range(10):
        rows = order[103 * b // 10 : 103 * (b + 1) // 10]
        total += len(rows) / 103 * abs(correct[rows].mean() - conf[rows].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(total, abs=1e-12)


def test_an_overconfident_model_is_detected_and_recalibrated() -> None:
    rng = np.random.default_rng(1)
    P, y = _calibrated(3000, rng)
    sharp = P**3 / (P**3).sum(axis=1, keepdims=True)  # overconfident
    report = calibrate(sharp, y, sharp.argmax(axis=1))
    assert not report.calibrated_before and report.p_before < 0.05
    assert report.method == "isotonic"
    assert report.ece_after is not None and report.ece_after < 0.03 < report.ece_before
    fixed = report.apply(sharp)
    assert fixed.sum(axis=1) == pytest.approx(np.ones(len(fixed)))


def test_a_calibrated_model_raises_at_most_6_percent_false_alarms() -> None:
    alarms = 0
    for seed in range(100):
        P, y = _calibrated(500, np.random.default_rng(seed), k=3)
        alarms += not check_calibration(P, y, P.argmax(axis=1), n_resamples=200).calibrated
    print(f"false alarms: {alarms}/100")
    assert alarms <= 6


def test_isotonic_calibration_equals_scikit_learn_one_vs_rest_renormalised() -> None:
    rng = np.random.default_rng(2)
    P, y = _calibrated(1500, rng, k=3)
    P = P**2 / (P**2).sum(axis=1, keepdims=True)
    report = calibrate(P, y, P.argmax(axis=1), method="isotonic")
    by_hand = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            .fit(P[:, k], (y == k).astype(int))
            .predict(P[:, k])
            for k in range(3)
        ]
    )
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    assert report.apply(P) == pytest.approx(by_hand, abs=1e-12)


def test_platt_calibration_below_1000_rows_equals_scikit_learn_on_the_logit() -> None:
    rng = np.random.default_rng(3)
    P, y = _calibrated(400, rng)
    P = P**2 / (P**2).sum(axis=1, keepdims=True)
    report = calibrate(P, y, P.argmax(axis=1))
    assert report.method == "platt"
    logit = np.log(np.clip(P, 1e-6, 1 - 1e-6) / (1 - np.clip(P, 1e-6, 1 - 1e-6)))
    by_hand = np.column_stack(
        [
            LogisticRegression(C=1e6)
            .fit(logit[:, [k]], (y == k).astype(int))
            .predict_proba(logit[:, [k]])[:, 1]
            for k in range(2)
        ]
    )
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    assert report.apply(P) == pytest.approx(by_hand, abs=1e-12)


def test_calibration_on_fewer_than_200_rows_warns_that_it_is_noisy() -> None:
    P, y = _calibrated(150, np.random.default_rng(4))
    report = calibrate(P, y, P.argmax(axis=1))
    assert any("150 reference rows" in w for w in report.warnings)
