"""`nbops bundle compare`: both bundles' metrics side by side and the gates' verdict on the
challenger, the champion as `baseline.NAME`. A failed verdict is a bundle error with its own
exit code (40), not a run's gate failure (`nbops ci`'s 24)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from nbops.bundle.compare import compare_on_data
from nbops.errors import BundleError, BundleGateFailedError
from nbops.quality.slices import slice_metrics
from tests.helpers import run_nbops

from .conftest import Built


def _compare(
    champion: Path, challenger: Path, *gates: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    args = [a for g in gates for a in ("--gate", g)]
    return subprocess.run(
        [sys.executable, "-m", "nbops", "bundle", "compare", str(champion), str(challenger), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def report(built: Built) -> dict[str, Any]:
    """A real slice report of the fixture's model, as nbops.slice_metrics makes it."""
    predicted = built.model.predict(built.features)
    made = slice_metrics(built.raw["label"], predicted, data=built.raw, slices=["c"])
    return made.model_dump(mode="json")


@pytest.fixture(scope="module")
def champion(
    built: Built, report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A champion with accuracy 0.9 and a real slice report, built once (compare only reads it)."""
    return built.build(
        tmp_path_factory.mktemp("champion"), metrics={"accuracy": 0.9}, slice_metrics=report
    )


def test_the_verdict_error_is_a_bundle_error_with_exit_code_40() -> None:
    assert issubclass(BundleGateFailedError, BundleError)
    assert BundleGateFailedError.exit_code == 40


def test_a_challenger_failing_a_gate_exits_40_with_one_line(
    built: Built, report: dict[str, Any], champion: Path, tmp_path: Path
) -> None:
    challenger = built.build(tmp_path / "b", metrics={"accuracy": 0.7}, slice_metrics=report)
    result = _compare(champion, challenger, "accuracy >= baseline.accuracy", cwd=tmp_path)
    assert result.returncode == 40, result.stderr
    assert result.stderr.strip() == (
        "nbops: error: the challenger fails 1 of 1 gates; keep the champion"
    ), result.stderr
    assert "FAIL  accuracy >= baseline.accuracy" in result.stdout


def test_a_challenger_passing_every_gate_exits_0(
    built: Built, report: dict[str, Any], champion: Path, tmp_path: Path
) -> None:
    challenger = built.build(tmp_path / "b", metrics={"accuracy": 0.95}, slice_metrics=report)
    gate = "overall.accuracy >= baseline.overall.accuracy"
    result = _compare(champion, challenger, "accuracy >= baseline.accuracy", gate, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the challenger passes all 2 gates" in result.stdout


def test_slice_metrics_that_are_not_a_slice_report_add_no_gate_values(
    built: Built, tmp_path: Path
) -> None:
    """The fixture's slice metrics are a hand-made dict (build_bundle takes any mapping):
    the comparison still runs on the metrics, where it died with a pydantic traceback."""
    challenger = built.build(tmp_path / "b", metrics={"accuracy": 0.95})
    result = _compare(built.folder, challenger, "accuracy >= baseline.accuracy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "the challenger passes all 1 gates" in result.stdout


# --- champion vs challenger on labelled data (--data) ---------------------------------------


@dataclass
class Pair:
    """A weak champion (one-hot of `c` only) and the fixture's model as challenger, and the
    labelled rows both score."""

    champion: Path
    challenger: Path
    labelled: Path
    frame: pd.DataFrame
    y: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray


@pytest.fixture(scope="module")
def pair(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("pair")
    weak = Pipeline(
        [
            ("prep", ColumnTransformer([("cat", OneHotEncoder(), ["c"])])),
            ("clf", LogisticRegression()),
        ]
    ).fit(built.features, built.raw["label"])
    champion = built.build(root / "champion", model=weak, name="tiny")
    labelled = root / "labelled.csv"
    built.raw.to_csv(labelled, index=False)
    return Pair(
        champion,
        built.folder,
        labelled,
        built.raw,
        built.raw["label"].to_numpy(),
        weak.predict(built.features),
        built.model.predict(built.features),
    )


def _hand_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Any, resamples: int, seed: int
) -> tuple[float, float]:
    """The paired percentile interval by a plain loop with scikit-learn's metric."""
    index = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    deltas = [metric(y[i], b[i]) - metric(y[i], a[i]) for i in index]
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


def test_the_diffs_and_intervals_equal_a_hand_computation_with_sklearn(pair: Pair) -> None:
    result = compare_on_data(
        pair.champion, pair.challenger, pair.frame, slices=["c"], n_resamples=300, seed=4
    )
    y, a, b = pair.y, pair.pred_a, pair.pred_b
    for name, metric in (("accuracy", accuracy_score), ("f1", f1_score)):
        m = result.metrics[name]
        assert m.champion == pytest.approx(metric(y, a), abs=1e-12)
        assert m.diff == pytest.approx(metric(y, b) - metric(y, a), abs=1e-12)
        low, high = _hand_bootstrap(y, a, b, metric, 300, 4)
        assert (m.ci_low, m.ci_high) == pytest.approx((low, high), abs=1e-12)
    table = [
        [int(((a == y) & (b == y)).sum()), int(((a == y) & (b != y)).sum())],
        [int(((a != y) & (b == y)).sum()), int(((a != y) & (b != y)).sum())],
    ]
    assert result.mcnemar.p_value == pytest.approx(sm_mcnemar(table, exact=False).pvalue, abs=1e-12)
    assert result.metrics["accuracy"].mcnemar_p == result.mcnemar.p_value
    x = next(s for s in result.slices if s.name == 'c == "x"')
    mask = (pair.frame["c"] == "x").to_numpy()
    assert x.rows == int(mask.sum())
    assert x.metrics["recall"].diff == pytest.approx(
        recall_score(y[mask], b[mask]) - recall_score(y[mask], a[mask]), abs=1e-12
    )


def test_the_better_challenger_is_significant_and_passes_the_default_gate(pair: Pair) -> None:
    result = compare_on_data(pair.champion, pair.challenger, pair.frame, n_resamples=400)
    accuracy = result.metrics["accuracy"]
    assert accuracy.significant and accuracy.better is True and accuracy.ci_low > 0
    assert [g.gate for g in result.gates] == ["diff.accuracy.ci_low > 0"]
    assert result.passed
    summary = result.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["passed"] is True and summary["headline"].startswith("diff.accuracy +")


def test_a_challenger_equal_to_the_champion_is_not_significant(pair: Pair) -> None:
    result = compare_on_data(
        pair.challenger, pair.challenger, pair.frame, slices=["c"], n_resamples=200
    )
    for m in result.metrics.values():
        assert (m.diff, m.ci_low, m.ci_high, m.significant) == (0.0, 0.0, 0.0, False)
    assert result.mcnemar.p_value == 1.0
    assert not result.passed  # the default gate wants a real improvement


def test_gates_name_diffs_intervals_p_values_and_slices(pair: Pair) -> None:
    gates = [
        "diff.accuracy.ci_low > 0",
        "diff.accuracy.mcnemar_p < 0.05",
        "diff.f1.significant == 1",
        "slices.accuracy.min_diff >= -0.02",
        "slices.accuracy.worse_count == 0",
        "challenger.accuracy >= baseline.accuracy - 0.5",
        "diff.recall.p_value < 0.05",
    ]
    result = compare_on_data(
        pair.champion, pair.challenger, pair.frame, slices=["c"], n_resamples=300, gates=gates
    )
    assert [g.gate for g in result.gates] == gates
    values = result.values
    slice_diffs = [s.metrics["accuracy"].diff for s in result.slices]
    assert values["slices.accuracy.min_diff"] == min(slice_diffs)
    assert values["diff.accuracy.significant"] == 1.0
    failed = {g.gate for g in result.failed_gates}
    expected = {g for g in gates if not _holds(g, values)}
    assert failed == expected


def _holds(gate: str, values: dict[str, float]) -> bool:
    left, op, right = gate.split(" ", 2)
    if op == ">=" and " - " in right:
        name, minus = right.split(" - ")
        return values[left] >= values[name] - float(minus)
    bound = float(right)
    return {
        "<": values[left] < bound,
        ">": values[left] > bound,
        ">=": values[left] >= bound,
        "==": values[left] == bound,
    }[op]


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line (after the bundles' unsigned warnings), and no traceback."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("nbops: warning")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_nbops("bundle", "compare", *args, cwd=cwd)


def test_cli_compare_on_data_reports_the_sklearn_diffs_and_passes(
    pair: Pair, tmp_path: Path
) -> None:
    report = tmp_path / "out" / "comparison.json"
    result = _cli(
        str(pair.champion),
        str(pair.challenger),
        "--data",
        str(pair.labelled),
        "--slice",
        "c",
        "--n-resamples",
        "300",
        "--seed",
        "1",
        "--json",
        str(report),
        "--gate",
        "slices.accuracy.min_diff >= -0.5",
        "--weak",
        "--html",
        str(tmp_path / "comparison.html"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Weak segments of the challenger" in result.stdout
    assert "<h2>Metrics</h2>" in (tmp_path / "comparison.html").read_text()
    assert "Challenger - champion" in result.stdout and "McNemar (accuracy)" in result.stdout
    assert "PASS  diff.accuracy.ci_low > 0" not in result.stdout  # a --gate replaces defaults
    assert "Verdict: the challenger passes all 1 gates." in result.stdout
    written = json.loads(report.read_text())
    y, a, b = pair.y, pair.pred_a, pair.pred_b
    assert written["metrics"]["accuracy"]["diff"] == pytest.approx(
        accuracy_score(y, b) - accuracy_score(y, a), abs=1e-12
    )
    low, high = _hand_bootstrap(y, a, b, accuracy_score, 300, 1)
    assert written["metrics"]["accuracy"]["ci_low"] == pytest.approx(low, abs=1e-12)
    assert written["metrics"]["accuracy"]["ci_high"] == pytest.approx(high, abs=1e-12)
    assert {s["slice"] for s in written["slices"]} == {'c == "x"', 'c == "y"', 'c == "z"'}
    assert written["weak"] and written["weak"][0]["champion"] is not None


def test_cli_a_worse_challenger_exits_40(pair: Pair, tmp_path: Path) -> None:
    result = _cli(
        str(pair.challenger),
        str(pair.champion),
        "--data",
        str(pair.labelled),
        "--n-resamples",
        "200",
        cwd=tmp_path,
    )
    assert result.returncode == 40, result.stderr
    assert "FAIL  diff.accuracy.ci_low > 0" in result.stdout
    assert _error_line(result) == (
        "nbops: error: the challenger fails 1 of 1 gates; keep the champion"
    )


def test_cli_data_without_the_label_column_exits_26_naming_label(
    pair: Pair, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    pair.frame.drop(columns=["label"]).to_csv(unlabelled, index=False)
    result = _cli(str(pair.champion), str(pair.challenger), "--data", str(unlabelled), cwd=tmp_path)
    assert result.returncode == 26, result.stderr
    line = _error_line(result)
    assert "has no label column 'label'" in line and "--label" in line


def test_cli_a_row_a_bundle_refuses_exits_28_naming_the_row(pair: Pair, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    frame = pair.frame.copy()
    frame["c"] = frame["c"].astype(object)
    frame.loc[6, "c"] = None
    frame.to_csv(broken, index=False)
    result = _cli(str(pair.champion), str(pair.challenger), "--data", str(broken), cwd=tmp_path)
    assert result.returncode == 28, result.stderr
    line = _error_line(result)
    assert f"the champion (tiny v1) refuses row 7 of {broken} (line 8)" in line, line


def test_weak_segments_of_the_challenger_carry_the_champion_value(pair: Pair) -> None:
    result = compare_on_data(
        pair.champion, pair.challenger, pair.frame, n_resamples=100, weak={"top_k": 3}
    )
    assert len(result.weak) == 3
    y, a, b = pair.y, pair.pred_a, pair.pred_b
    for row in result.weak:
        assert "label" not in row.slice.columns
        mask = row.slice.mask(pair.frame)
        assert row.value == pytest.approx(accuracy_score(y[mask], b[mask]), abs=1e-12)
        champion = result.weak_champion[row.name]
        assert champion == pytest.approx(accuracy_score(y[mask], a[mask]), abs=1e-12)
    page = result.to_html()
    assert "<h2>Weak segments of the challenger</h2>" in page
    assert html.escape(result.weak[0].name) in page and "<h2>Metrics</h2>" in page


def test_regressors_are_compared_on_mae_rmse_r2_with_the_rmse_default_gate(
    built: Built, pair: Pair, tmp_path: Path
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def fitted(model: Any) -> Any:
        prep = ColumnTransformer(
            [("num", StandardScaler(), ["a", "ratio"]), ("cat", OneHotEncoder(), ["c"])]
        )
        return Pipeline([("prep", prep), ("reg", model)]).fit(built.features, built.raw["a"])

    worse, better = fitted(DummyRegressor()), fitted(LinearRegression())
    champion = built.build(tmp_path / "a", model=worse)
    challenger = built.build(tmp_path / "b", model=better)
    result = compare_on_data(champion, challenger, pair.frame, label="a", n_resamples=200)
    assert result.task == "regression" and list(result.metrics) == ["mae", "rmse", "r2"]
    y = pair.frame["a"].to_numpy()
    rmse = result.metrics["rmse"]
    expected = np.sqrt(np.mean((better.predict(built.features) - y) ** 2)) - np.sqrt(
        np.mean((worse.predict(built.features) - y) ** 2)
    )
    assert rmse.diff == pytest.approx(expected, abs=1e-12)
    assert rmse.better is True
    assert [g.gate for g in result.gates] == ["diff.rmse.ci_high < 0"] and result.passed


# -- nbops promote --if-better ------------------------------------------------------------------


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    return tmp_path


def test_promote_if_better_moves_the_alias_and_records_the_comparison(
    pair: Pair, tmp_path: Path
) -> None:
    from nbops.runs.registry import Registry
    from nbops.runs.store import RunStore

    root = _project(tmp_path)
    result = run_nbops(
        "promote", str(pair.challenger), "--alias", "production",
        "--if-better", str(pair.champion), "--data", str(pair.labelled), "--n-resamples", "200",
        cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    registry = Registry(RunStore(root / ".nbops"))
    name = json.loads((pair.challenger / "manifest.json").read_text())["name"]
    production = registry.get(name, "production")
    assert Path(production.bundle_path).resolve() == pair.challenger.resolve()
    [event] = [e for e in registry.history(name, "production") if e.action == "promote"]
    accuracy = event.detail["comparison"]["metrics"]["accuracy"]
    y, a, b = pair.y, pair.pred_a, pair.pred_b
    assert accuracy["diff"] == pytest.approx(accuracy_score(y, b) - accuracy_score(y, a))
    assert accuracy["ci_low"] > 0
    assert event.reason is not None and event.reason.startswith("better than ")


def test_promote_if_better_refuses_a_worse_bundle_and_leaves_the_alias(
    pair: Pair, tmp_path: Path
) -> None:
    from nbops.runs.registry import Registry
    from nbops.runs.store import RunStore

    root = _project(tmp_path)
    result = run_nbops(
        "promote", str(pair.champion), "--alias", "production",
        "--if-better", str(pair.challenger), "--data", str(pair.labelled), "--n-resamples", "200",
        cwd=root,
    )  # fmt: skip
    assert result.returncode == 40, result.stderr
    line = _error_line(result)
    assert "is not promoted to production" in line and "diff.accuracy.ci_low > 0" in line
    registry = Registry(RunStore(root / ".nbops"))
    name = json.loads((pair.champion / "manifest.json").read_text())["name"]
    assert [e.action for e in registry.history(name)] == ["register", "refused"]
    assert registry.alias_version(name, "production") is None


def test_promote_if_better_needs_data(pair: Pair, tmp_path: Path) -> None:
    result = run_nbops(
        "promote", str(pair.challenger), "--alias", "production", "--if-better",
        str(pair.champion), cwd=_project(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert "go together" in " ".join(result.stderr.replace("│", " ").split())


def test_text_in_a_number_column_names_its_row_not_the_first(pair: Pair, tmp_path: Path) -> None:
    """One "abc" makes a CSV column text for every row: halving the frame would blame row
    1, so the row holding the text is named."""
    broken = tmp_path / "text.csv"
    frame = pair.frame.astype({"a": object})
    frame.loc[9, "a"] = "abc"
    frame.to_csv(broken, index=False)
    with pytest.raises(BundleError) as caught:
        compare_on_data(pair.champion, pair.challenger, broken, n_resamples=10)
    assert f"refuses row 10 of {broken} (line 11): column 'a' holds 'abc', not a number" in str(
        caught.value
    )
    assert caught.value.exit_code == 28


def test_the_projects_promote_gates_replace_the_default(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\n\n[tool.nbops]\n'
        'promote_gates = ["diff.accuracy.ci_low > 0.5", "diff.f1.significant == 1"]\n'
    )
    monkeypatch.chdir(tmp_path)
    result = compare_on_data(pair.champion, pair.challenger, pair.frame, n_resamples=100)
    assert [(g.gate, g.passed) for g in result.gates] == [
        ("diff.accuracy.ci_low > 0.5", False),
        ("diff.f1.significant == 1", True),
    ]
    assert not result.passed
