"""`nbops bundle compare`: both bundles' metrics side by side and the gates' verdict on the
challenger, the champion as `baseline.NAME`. A failed verdict is a bundle error with its own
exit code (40), not a run's gate failure (`nbops ci`'s 24)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import BundleError, BundleGateFailedError
from nbops.quality.slices import slice_metrics

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


def test_the_verdict_error_is_a_bundle_error_with_exit_code_40() -> None:
    assert issubclass(BundleGateFailedError, BundleError)
    assert BundleGateFailedError.exit_code == 40


def test_a_challenger_failing_a_gate_exits_40_with_one_line(
    built: Built, report: dict[str, Any], tmp_path: Path
) -> None:
    champion = built.build(tmp_path / "a", metrics={"accuracy": 0.9}, slice_metrics=report)
    challenger = built.build(tmp_path / "b", metrics={"accuracy": 0.7}, slice_metrics=report)
    result = _compare(champion, challenger, "accuracy >= baseline.accuracy", cwd=tmp_path)
    assert result.returncode == 40, result.stderr
    assert result.stderr.strip() == (
        "nbops: error: the challenger fails 1 of 1 gates; keep the champion"
    ), result.stderr
    assert "FAIL  accuracy >= baseline.accuracy" in result.stdout


def test_a_challenger_passing_every_gate_exits_0(
    built: Built, report: dict[str, Any], tmp_path: Path
) -> None:
    champion = built.build(tmp_path / "a", metrics={"accuracy": 0.9}, slice_metrics=report)
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
