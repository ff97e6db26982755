"""Paired comparison of two classifiers: equal to reference computations (statsmodels'
McNemar, scipy's paired bootstrap, scikit-learn metrics on the same resampled rows, a hand
case), plus properties every paired comparison must have."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

import nbops.quality.paired as paired
from nbops.errors import QualityInputError
from nbops.quality.paired import mcnemar, paired_bootstrap


def _from_table(both: int, b: int, c: int, neither: int) -> tuple[np.ndarray, ...]:
    """Labels and two models' predictions with the given 2x2 table of correctness:
    `both` rows both right, b only A right, c only B right, `neither` both wrong."""
    y = np.zeros(both + b + c + neither, dtype=int)
    right_a = np.array([True] * both + [True] * b + [False] * c + [False] * neither)
    right_b = np.array([True] * both + [False] * b + [True] * c + [False] * neither)
    return y, np.where(right_a, 0, 1), np.where(right_b, 0, 1)


def _two_models(n: int, seed: int, accuracy_a: float = 0.8, accuracy_b: float = 0.85):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < accuracy_a, y, 1 - y)
    b = np.where(rng.random(n) < accuracy_b, y, 1 - y)
    return y, a, b


# --- McNemar ---------------------------------------------------------------------------


def test_mcnemar_hand_case_b3_c12_is_exact_binomial() -> None:
    result = mcnemar(*_from_table(40, 3, 12, 5))
    assert (result.b, result.c, result.method) == (3, 12, "exact")
    assert result.p_value == pytest.approx(1152 / 32768, abs=1e-15)  # 0.03515625


@settings(max_examples=150, deadline=None)
@given(
    both=st.integers(0, 50),
    b=st.integers(0, 500),
    c=st.integers(0, 500),
    neither=st.integers(0, 50),
)
def test_mcnemar_equals_statsmodels(both: int, b: int, c: int, neither: int) -> None:
    if both + b + c + neither == 0:
        return
    result = mcnemar(*_from_table(both, b, c, neither))
    table = [[both, b], [c, neither]]
    exact = b + c < 25
    reference = sm_mcnemar(table, exact=exact, correction=True)
    assert result.method == ("exact" if exact else "chi2")
    assert result.statistic == pytest.approx(float(reference.statistic), rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("b", "c", "method"), [(10, 14, "exact"), (10, 15, "chi2")])
def test_mcnemar_switches_to_chi_square_at_25_discordant_rows(b: int, c: int, method: str) -> None:
    result = mcnemar(*_from_table(30, b, c, 5))
    reference = sm_mcnemar([[30, b], [c, 5]], exact=method == "exact", correction=True)
    assert result.method == method
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-12)


def test_mcnemar_with_no_discordant_rows_has_p_one() -> None:
    assert mcnemar(*_from_table(10, 0, 0, 3)).p_value == 1.0


# --- the bootstrap against references ----------------------------------------------------


def test_bootstrap_accuracy_equals_scipy_paired_percentile_bootstrap() -> None:
    """scipy.stats.bootstrap(paired=True) draws rng.integers(0, n, (B, n)) from the same
    generator, so the replicates and the percentile interval are exactly equal."""
    y, a, b = _two_models(120, seed=3)
    ours = paired_bootstrap(y, a, b, metrics="accuracy", n_resamples=400, seed=11)
    correct_a, correct_b = (a == y).astype(float), (b == y).astype(float)
    reference = stats.bootstrap(
        (correct_a, correct_b),
        lambda x, z: z.mean() - x.mean(),
        paired=True,
        method="percentile",
        n_resamples=400,
        rng=np.random.default_rng(11),
        vectorized=False,
        batch=None,
        confidence_level=0.95,
    )
    metric = ours.overall["accuracy"]
    assert metric.ci_low == reference.confidence_interval.low
    assert metric.ci_high == reference.confidence_interval.high


def test_bootstrap_f1_equals_scipy_with_sklearn_statistic() -> None:
    y, a, b = _two_models(80, seed=5)
    ours = paired_bootstrap(y, a, b, metrics="f1", n_resamples=200, seed=2, confidence=0.9)

    def f1_diff(true: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> float:
        return float(f1_score(true, pb, zero_division=0) - f1_score(true, pa, zero_division=0))

    reference = stats.bootstrap(
        (y, a, b),
        f1_diff,
        paired=True,
        method="percentile",
        n_resamples=200,
        rng=np.random.default_rng(2),
        vectorized=False,
        confidence_level=0.9,
    )
    metric = ours.overall["f1"]
    assert metric.ci_low == pytest.approx(reference.confidence_interval.low, abs=1e-12)
    assert metric.ci_high == pytest.approx(reference.confidence_interval.high, abs=1e-12)


def test_bootstrap_multiclass_macro_metrics_equal_sklearn_on_the_same_resamples() -> None:
    rng = np.random.default_rng(9)
    n, n_resamples = 150, 120
    y = rng.choice(["adelie", "chinstrap", "gentoo"], n)
    a = np.where(rng.random(n) < 0.7, y, rng.choice(["adelie", "chinstrap", "gentoo"], n))
    b = np.where(rng.random(n) < 0.8, y, rng.choice(["adelie", "chinstrap", "gentoo"], n))
    ours = paired_bootstrap(y, a, b, n_resamples=n_resamples, seed=4)
    index = np.random.default_rng(4).integers(0, n, size=(n_resamples, n))
    scorers = {
        "accuracy": accuracy_score,
        "precision": lambda t, p: precision_score(t, p, average="macro", zero_division=0),
        "recall": lambda t, p: recall_score(t, p, average="macro", zero_division=0),
        "f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0),
    }
    for name, scorer in scorers.items():
        deltas = np.array([scorer(y[i], b[i]) - scorer(y[i], a[i]) for i in index])
        low, high = np.percentile(deltas, [2.5, 97.5])
        metric = ours.overall[name]
        assert metric.value_a == pytest.approx(scorer(y, a), abs=1e-12), name
        assert metric.diff == pytest.approx(scorer(y, b) - scorer(y, a), abs=1e-12), name
        assert metric.ci_low == pytest.approx(low, abs=1e-12), name
        assert metric.ci_high == pytest.approx(high, abs=1e-12), name


def test_bootstrap_per_slice_equals_sklearn_on_the_slice_rows_of_each_resample() -> None:
    y, a, b = _two_models(200, seed=8)
    codes = np.random.default_rng(1).integers(0, 3, 200)
    ours = paired_bootstrap(
        y, a, b, metrics="recall", codes=codes, n_slices=3, n_resamples=150, seed=6
    )
    index = np.random.default_rng(6).integers(0, 200, size=(150, 200))
    for s in range(3):
        deltas = []
        for rows in index:
            rows = rows[codes[rows] == s]
            deltas.append(recall_score(y[rows], b[rows]) - recall_score(y[rows], a[rows]))
        low, high = np.percentile(deltas, [2.5, 97.5])
        metric = ours.slices[s]["recall"]
        assert metric.rows == int((codes == s).sum())
        assert metric.ci_low == pytest.approx(low, abs=1e-12)
        assert metric.ci_high == pytest.approx(high, abs=1e-12)


def test_results_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    y, a, b = _two_models(300, seed=2)
    whole = paired_bootstrap(y, a, b, n_resamples=250, seed=1)
    monkeypatch.setattr(paired, "_CHUNK_DRAWS", 300 * 7)  # 7 replicates per chunk
    chunked = paired_bootstrap(y, a, b, n_resamples=250, seed=1)
    assert chunked.to_dict() == whole.to_dict()


# --- decisions ---------------------------------------------------------------------------


def test_a_challenger_fixing_30_of_400_errors_is_significant() -> None:
    y, a, b = _from_table(1000, 0, 30, 370)
    result = paired_bootstrap(y, a, b, metrics="accuracy", n_resamples=1000)
    metric = result.overall["accuracy"]
    assert metric.diff == pytest.approx(30 / 1400)
    assert metric.significant and metric.ci_low is not None and metric.ci_low > 0
    assert result.mcnemar.p_value < 1e-6


def test_a_small_noisy_difference_is_not_significant() -> None:
    y, a, b = _from_table(50, 6, 8, 10)
    metric = paired_bootstrap(y, a, b, metrics="accuracy", n_resamples=1000).overall["accuracy"]
    assert metric.ci_low is not None and metric.ci_low < 0 < metric.ci_high  # type: ignore[operator]
    assert not metric.significant


def test_an_undefined_slice_metric_has_no_interval_and_a_reason() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    a = np.array([0, 0, 0, 1, 0, 1])
    codes = np.array([0, 0, 0, 1, 1, 1])  # slice 0 has no actual positives
    result = paired_bootstrap(y, a, a, metrics="recall", codes=codes, n_slices=2, n_resamples=50)
    metric = result.slices[0]["recall"]
    assert metric.diff is None and metric.ci_low is None and not metric.significant
    assert "no actual positives" in (metric.reason or "")
    json.dumps(result.to_dict(), allow_nan=False)


def test_to_dict_is_json_safe_and_complete() -> None:
    y, a, b = _two_models(100, seed=0)
    result = paired_bootstrap(y, a, b, n_resamples=100)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data["overall"]) == {"accuracy", "precision", "recall", "f1"}
    assert data["overall"]["accuracy"]["diff"] == result.overall["accuracy"].diff
    assert data["mcnemar"]["method"] in ("exact", "chi2")


# --- properties ----------------------------------------------------------------------------

_labels = st.lists(st.integers(0, 2), min_size=5, max_size=60)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), metric=st.sampled_from(["accuracy", "precision", "recall", "f1"]))
def test_swapping_a_and_b_negates_the_difference_and_mirrors_the_interval(
    data: st.DataObject, metric: str
) -> None:
    y = np.array(data.draw(_labels))
    n = len(y)
    a = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    b = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    ab = paired_bootstrap(y, a, b, metrics=metric, n_resamples=99).overall[metric]
    ba = paired_bootstrap(y, b, a, metrics=metric, n_resamples=99).overall[metric]
    if ab.diff is None:  # undefined for one model (e.g. no predicted positives)
        assert ba.diff is None
        return
    assert ab.diff == pytest.approx(-ba.diff, abs=1e-12)  # type: ignore[operator]
    if ab.ci_low is None:
        assert ba.ci_low is None
        return
    assert ab.ci_low == pytest.approx(-ba.ci_high, abs=1e-12)  # type: ignore[operator]
    assert ab.ci_high == pytest.approx(-ba.ci_low, abs=1e-12)  # type: ignore[operator]
    assert ab.significant == ba.significant


@settings(max_examples=30, deadline=None)
@given(y=_labels, seed=st.integers(0, 2**32 - 1))
def test_identical_predictions_differ_by_zero_and_are_not_significant(
    y: list[int], seed: int
) -> None:
    pred = np.roll(np.array(y), 1)
    result = paired_bootstrap(y, pred, pred, n_resamples=50, seed=seed)
    for metric in result.overall.values():
        assert metric.diff in (0.0, None)
        assert not metric.significant
        if metric.ci_low is not None:
            assert (metric.ci_low, metric.ci_high) == (0.0, 0.0)
    assert result.mcnemar.p_value == 1.0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    accuracy_a=st.floats(0.55, 0.95),
    accuracy_b=st.floats(0.55, 0.95),
)
def test_on_a_large_sample_the_interval_contains_the_observed_difference(
    seed: int, accuracy_a: float, accuracy_b: float
) -> None:
    y, a, b = _two_models(2000, seed, accuracy_a, accuracy_b)
    result = paired_bootstrap(y, a, b, n_resamples=200, seed=seed)
    for metric in result.overall.values():
        assert metric.ci_low is not None and metric.ci_high is not None and metric.diff is not None
        assert metric.ci_low <= metric.diff <= metric.ci_high


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred_b": [0, 1]}, "y_true has 3 rows but pred_b has 2"),
        ({"y_true": [], "pred_a": [], "pred_b": []}, "y_true is empty"),
        ({"metrics": "roc_auc"}, "unknown metric(s) 'roc_auc'"),
        ({"metrics": ["accuracy", "mae"]}, "unknown metric(s) 'mae'"),
        ({"confidence": 1.5}, "confidence must be between 0 and 1"),
        ({"n_resamples": 0}, "n_resamples must be a positive integer"),
        ({"codes": [0, 1, 5], "n_slices": 2}, "codes must be integers in [0, n_slices=2)"),
        ({"pred_a": [0, None, 1]}, "pred_a has 1 missing value"),
    ],
)
def test_bad_input_is_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"y_true": [0, 1, 1], "pred_a": [0, 1, 0], "pred_b": [1, 1, 0]}
    arguments.update(kwargs)
    with pytest.raises(QualityInputError) as error:
        paired_bootstrap(**arguments)  # type: ignore[arg-type]
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert error.value.exit_code == 26


def test_mcnemar_refuses_mismatched_lengths() -> None:
    with pytest.raises(QualityInputError, match="pred_a has 2"):
        mcnemar([0, 1, 1], [0, 1], [0, 1, 1])


# --- regression ----------------------------------------------------------------------------


def test_regression_metrics_equal_sklearn_on_the_same_resamples() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(12)
    n, n_resamples = 150, 100
    y = rng.normal(50, 10, n)
    a = y + rng.normal(0, 4, n)
    b = y + rng.normal(0.5, 3, n)
    codes = rng.integers(0, 2, n)
    ours = paired_bootstrap(
        y, a, b, task="regression", codes=codes, n_slices=2, n_resamples=n_resamples, seed=3
    )
    index = np.random.default_rng(3).integers(0, n, size=(n_resamples, n))
    scorers = {
        "mae": mean_absolute_error,
        "rmse": lambda t, p: float(np.sqrt(mean_squared_error(t, p))),
        "r2": r2_score,
    }
    for name, scorer in scorers.items():
        metric = ours.overall[name]
        assert metric.diff == pytest.approx(scorer(y, b) - scorer(y, a), abs=1e-9), name
        deltas = [scorer(y[i], b[i]) - scorer(y[i], a[i]) for i in index]
        assert metric.ci_low == pytest.approx(np.percentile(deltas, 2.5), abs=1e-9), name
        assert metric.ci_high == pytest.approx(np.percentile(deltas, 97.5), abs=1e-9), name
        slice_deltas = []
        for rows in index:
            rows = rows[codes[rows] == 1]
            slice_deltas.append(scorer(y[rows], b[rows]) - scorer(y[rows], a[rows]))
        one = ours.slices[1][name]
        assert one.ci_low == pytest.approx(np.percentile(slice_deltas, 2.5), abs=1e-9), name
    assert ours.mcnemar is None


def test_a_regressor_with_half_the_error_has_a_significantly_negative_rmse_diff() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(0, 1, 500)
    noise = rng.normal(0, 1, 500)
    metric = paired_bootstrap(
        y, y + noise, y + noise / 2, task="regression", metrics="rmse", n_resamples=500
    ).overall["rmse"]
    assert metric.diff is not None and metric.diff < 0
    assert metric.significant and metric.ci_high is not None and metric.ci_high < 0


def test_regression_refuses_class_labels() -> None:
    with pytest.raises(QualityInputError, match="y_true is not numeric"):
        paired_bootstrap(["a", "b"], [1.0, 2.0], [1.0, 2.0], task="regression")


def test_r2_on_a_slice_with_constant_y_is_undefined_with_a_reason() -> None:
    y = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    a = y + 0.5
    codes = np.array([0, 0, 0, 1, 1, 1])
    result = paired_bootstrap(
        y, a, a * 1.1, task="regression", metrics="r2", codes=codes, n_slices=2, n_resamples=50
    )
    metric = result.slices[1]["r2"]
    assert metric.value_a is None and metric.ci_low is None and not metric.significant
    assert "constant" in (metric.reason or "")
    assert result.slices[0]["r2"].value_a is not None


def test_binary_string_labels_use_pos_label_as_sklearn_does() -> None:
    rng = np.random.default_rng(21)
    y = rng.choice(["churn", "stay"], 200)
    a = np.where(rng.random(200) < 0.75, y, rng.choice(["churn", "stay"], 200))
    b = np.where(rng.random(200) < 0.85, y, rng.choice(["churn", "stay"], 200))
    result = paired_bootstrap(
        y, a, b, metrics=["precision", "recall"], pos_label="churn", n_resamples=np.int64(20)
    )
    for name, scorer in (("precision", precision_score), ("recall", recall_score)):
        expected = scorer(y, b, pos_label="churn") - scorer(y, a, pos_label="churn")
        assert result.overall[name].diff == pytest.approx(expected, abs=1e-12)
    assert result.classes == ("churn", "stay")
    json.dumps(result.to_dict(), allow_nan=False)


def test_many_classes_bound_the_chunk_memory_and_keep_the_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 40, 300)
    a = np.where(rng.random(300) < 0.6, y, rng.integers(0, 40, 300))
    b = np.where(rng.random(300) < 0.7, y, rng.integers(0, 40, 300))
    whole = paired_bootstrap(y, a, b, metrics="f1", n_resamples=60, seed=5)
    monkeypatch.setattr(paired, "_CHUNK_DRAWS", 40 * 40 * 3)  # 3 replicates' confusions
    assert paired_bootstrap(y, a, b, metrics="f1", n_resamples=60, seed=5) == whole


@pytest.mark.parametrize(
    ("block_values", "matmul_slices"),
    [(0, 64), (0, 0)],  # sorted rows with one product per slice; np.add.reduceat
)
def test_regression_sums_agree_on_every_path(
    monkeypatch: pytest.MonkeyPatch, block_values: int, matmul_slices: int
) -> None:
    rng = np.random.default_rng(30)
    y = rng.normal(10, 2, 240)
    a, b = y + rng.normal(0, 1, 240), y + rng.normal(0, 0.8, 240)
    codes = rng.integers(0, 4, 240)
    codes[codes == 2] = 3  # an empty slice among them
    kwargs = {"task": "regression", "codes": codes, "n_slices": 4, "n_resamples": 80, "seed": 2}
    block = paired_bootstrap(y, a, b, **kwargs).to_dict()  # type: ignore[arg-type]
    monkeypatch.setattr(paired, "_BLOCK_VALUES", block_values)
    monkeypatch.setattr(paired, "_MATMUL_SLICES", matmul_slices)
    other = paired_bootstrap(y, a, b, **kwargs).to_dict()  # type: ignore[arg-type]
    assert other["slices"][2]["mae"]["value_a"] is None
    expected_all, got_all = (
        [block["overall"], *block["slices"]],
        [other["overall"], *other["slices"]],
    )
    pairs = zip(expected_all, got_all, strict=True)
    for expected, got in pairs:
        for name, metric in got.items():
            for field in ("value_a", "value_b", "diff", "ci_low", "ci_high"):
                if expected[name][field] is None:
                    assert metric[field] is None
                else:
                    assert metric[field] == pytest.approx(expected[name][field], abs=1e-9)
