"""CBPE: expected metrics from probabilities, their intervals, slices, and realised metrics
(the slice-metric definitions, checked against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from nbops.quality.estimate import (
    Slicer,
    cbpe,
    estimate_performance,
    expected_confusion,
    realised_classification,
)


def test_four_rows_by_hand() -> None:
    Q = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.3, 0.7]])
    yhat = np.array([0, 1, 0, 1])
    # E[true, predicted]: predicted 0 -> rows 0, 2; predicted 1 -> rows 1, 3
    assert expected_confusion(Q, yhat) == pytest.approx(np.array([[1.6, 0.5], [0.4, 1.5]]))
    overall = estimate_performance(Q, yhat, n_resamples=200, min_size=1)[0]
    got = {m: i.value for m, i in overall.metrics.items()}
    assert got == pytest.approx(
        {"accuracy": 3.1 / 4, "precision": 1.5 / 2.0, "recall": 1.5 / 1.9, "f1": 3.0 / 3.9}
    )


def test_expected_confusion_is_the_sum_of_probabilities_over_rows_predicted_as_each_class() -> None:
    rng = np.random.default_rng(1)
    Q = rng.dirichlet([1, 1, 1], size=200)
    yhat = rng.integers(0, 3, size=200)
    by_loop = np.zeros((3, 3))
    for i in range(200):
        for k in range(3):
            by_loop[k, yhat[i]] += Q[i, k]
    assert expected_confusion(Q, yhat) == pytest.approx(by_loop, abs=1e-12)


def test_realised_accuracy_falls_inside_the_interval_95_percent_of_the_time() -> None:
    """Labels drawn from the probabilities themselves: the 95% interval should cover the
    realised accuracy in 93-97% of 200 seeded data sets."""
    n, inside = 300, 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        p1 = 1 / (1 + np.exp(-rng.normal(0, 2, n)))
        Q = np.column_stack([1 - p1, p1])
        yhat = (p1 > 0.5).astype(int)
        y = (rng.random(n) < p1).astype(int)
        estimate = estimate_performance(Q, yhat, metrics=["accuracy"], seed=seed)[0]
        interval = estimate.metrics["accuracy"]
        realised = float(np.mean(y == yhat))
        inside += interval.ci_low <= realised <= interval.ci_high  # type: ignore[operator]
    print(f"coverage: {inside}/200")
    assert 0.93 <= inside / 200 <= 0.97, inside / 200


def _logistic(n: int, rng: np.random.Generator, spread: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0, spread, size=(n, 2))
    p = 1 / (1 + np.exp(-(2.5 * x[:, 0] - 1.5 * x[:, 1])))
    return x, (rng.random(n) < p).astype(int)


def test_covariate_shift_toward_the_boundary_lowers_the_estimate_to_the_realised_accuracy() -> None:
    rng = np.random.default_rng(7)
    x_train, y_train = _logistic(4000, rng, spread=1.5)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = _logistic(4000, rng, spread=1.5)
    x_new, y_new = _logistic(4000, rng, spread=0.4)  # most rows near the boundary
    reference = estimate_performance(model.predict_proba(x_ref), model.predict(x_ref))[0]
    shifted = estimate_performance(model.predict_proba(x_new), model.predict(x_new))[0]
    realised_ref = float(np.mean(model.predict(x_ref) == y_ref))
    realised_new = float(np.mean(model.predict(x_new) == y_new))
    print(
        f"reference: estimate {reference.metrics['accuracy'].value:.4f} realised {realised_ref:.4f}; "
        f"shifted: estimate {shifted.metrics['accuracy'].value:.4f} realised {realised_new:.4f}"
    )
    assert realised_new < realised_ref - 0.1  # the shift really costs accuracy
    assert shifted.metrics["accuracy"].value == pytest.approx(realised_new, abs=0.02)
    assert reference.metrics["accuracy"].value == pytest.approx(realised_ref, abs=0.02)


def test_a_slice_estimate_equals_the_estimate_on_that_slice_alone() -> None:
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"c": rng.choice(["a", "b"], n), "x": rng.normal(size=n)})
    Q = rng.dirichlet([2, 2, 2], size=n)
    yhat = Q.argmax(axis=1)
    slicer = Slicer.from_reference(frame)
    assert slicer.categorical == ["c"] and len(slicer.binned["x"]) == 3
    groups = estimate_performance(Q, yhat, families=slicer.families(frame), n_resamples=50)
    names = [g.name for g in groups]
    assert names[:3] == ["overall", "c == 'a'", "c == 'b'"] and len(names) == 7
    alone = estimate_performance(Q[frame.c == "a"], yhat[frame.c == "a"], n_resamples=50)[0]
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert groups[1].metrics[metric].value == pytest.approx(alone.metrics[metric].value)
    assert groups[1].rows == int((frame.c == "a").sum())


def test_the_matrix_product_and_bincount_paths_give_the_same_intervals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    Q = rng.dirichlet([1, 1, 1], size=300)
    codes = rng.integers(0, 4, size=300)
    families = [(["s0", "s1", "s2", "s3"], codes)]
    dense = estimate_performance(Q, Q.argmax(axis=1), families=families, n_resamples=300)
    monkeypatch.setattr(cbpe._Draws, "DENSE_LIMIT", 0)
    sparse = estimate_performance(Q, Q.argmax(axis=1), families=families, n_resamples=300)
    assert [g.to_dict() for g in dense] == [g.to_dict() for g in sparse]


def test_realised_metrics_equal_scikit_learn_overall_and_per_slice() -> None:
    rng = np.random.default_rng(5)
    for k in (2, 3):
        y = rng.integers(0, k, 500)
        yhat = np.where(rng.random(500) < 0.7, y, rng.integers(0, k, 500))
        codes = rng.integers(0, 2, 500)
        groups = realised_classification(y, yhat, k, families=[(["a", "b"], codes)])
        average = "binary" if k == 2 else "macro"
        for group, rows in zip(groups, [np.ones(500, bool), codes == 0, codes == 1], strict=True):
            truth, pred = y[rows], yhat[rows]
            assert group.metrics["accuracy"].value == pytest.approx(accuracy_score(truth, pred))
            for name, score in (("precision", precision_score), ("recall", recall_score),
                                ("f1", f1_score)):  # fmt: skip
                assert group.metrics[name].value == pytest.approx(
                    score(truth, pred, average=average)
                ), (k, name)


def test_realised_regression_metrics_equal_scikit_learn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from nbops.quality.estimate import realised_regression

    rng = np.random.default_rng(6)
    y, pred = rng.normal(size=300), rng.normal(size=300)
    codes = rng.integers(0, 2, 300)
    groups = realised_regression(y, pred, families=[(["a", "b"], codes)])
    for group, rows in zip(groups, [np.ones(300, bool), codes == 0, codes == 1], strict=True):
        assert group.metrics["mae"].value == pytest.approx(mean_absolute_error(y[rows], pred[rows]))
        assert group.metrics["rmse"].value == pytest.approx(
            mean_squared_error(y[rows], pred[rows]) ** 0.5
        )
        assert group.metrics["r2"].value == pytest.approx(r2_score(y[rows], pred[rows]))
