"""`nbops retrain` end to end on the churn example: the notebook as written (no nbops call, its
data file a parameter) run on next quarter's data with a real kernel, bundled, compared with
production on held-out rows of that data, and promoted only when it is better."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from nbops import errors
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests.helpers import EXAMPLES, run_nbops

pytestmark = pytest.mark.slow


def nbops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line; a retrain runs a kernel, so a loaded machine gets time."""
    return run_nbops(*args, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Q1's model in production, then one retrain on Q2 (a new region the Q1 model is unsure
    about: the retrained model should be clearly better)."""
    root = tmp_path_factory.mktemp("churn")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    shutil.copy(EXAMPLES / "churn.ipynb", root / "churn.ipynb")
    (root / "data").mkdir()
    for name in ("churn_q1.csv", "churn_q2.csv"):
        shutil.copy(EXAMPLES / "data" / name, root / "data" / name)
    for args in (
        ("run", "churn.ipynb"),
        ("bundle", "--run", "latest"),
        ("promote", "churn@1", "--alias", "production", "--reason", "first deploy"),
    ):
        done = nbops(*args, cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr
    retrained = nbops(
        "retrain", "churn", "--data", "data/churn_q2.csv", "--key", "id", "--n-resamples", "500",
        cwd=root,
    )  # fmt: skip
    (root / "retrain.out").write_text(f"{retrained.returncode}\n{retrained.stdout}")
    (root / "retrain.err").write_text(retrained.stderr)
    return root


def registry(root: Path) -> Registry:
    return Registry(RunStore(root / ".nbops"))


def summary_of(root: Path, status: str) -> dict:
    summaries = [
        json.loads(p.read_text()) for p in (root / ".nbops" / "retrain").glob("*/summary.json")
    ]
    return next(s for s in summaries if s["status"] == status)


def test_retraining_on_new_data_promotes_a_significantly_better_version(project: Path) -> None:
    code, stdout = (project / "retrain.out").read_text().split("\n", 1)
    assert code == "0", stdout + (project / "retrain.err").read_text()
    assert stdout.startswith("churn@production: v1 -> v2")
    assert registry(project).get("churn", "production").version == 2
    [event] = [e for e in registry(project).history("churn", "production") if e.version == 2]
    assert event.action == "promote" and event.reason and event.reason.startswith("retrain ")
    accuracy = event.detail["comparison"]["metrics"]["accuracy"]
    assert accuracy["ci_low"] > 0 and accuracy["significant"]
    summary = summary_of(project, "promoted")
    assert [s["step"] for s in summary["steps"]] == ["run", "bundle", "compare", "promote"]


def test_the_training_run_is_a_run_on_the_training_part_and_the_held_out_rows_are_unseen(
    project: Path,
) -> None:
    summary = summary_of(project, "promoted")
    record = RunStore(project / ".nbops").load(summary["run_id"])
    assert record.status == "completed"
    assert record.parameters["data_path"] == summary["data"]["train"]
    assert record.parameters["C"] == 1.0  # the champion run's other parameters, unchanged
    train = pd.read_csv(summary["data"]["train"])
    held = pd.read_csv(summary["data"]["holdout"])
    q2 = pd.read_csv(project / "data" / "churn_q2.csv")
    assert len(train) + len(held) == len(q2)
    assert set(train["id"]).isdisjoint(held["id"])
    assert 0.2 < len(held) / len(q2) < 0.4  # --holdout 0.3 by hashing ids


def test_a_retrained_version_that_is_no_better_is_refused_and_production_stays(
    project: Path,
) -> None:
    again = nbops(
        "retrain", "churn", "--data", "data/churn_q2.csv", "--key", "id", "--n-resamples", "500",
        cwd=project,
    )  # fmt: skip
    assert again.returncode == errors.BundleGateFailedError.exit_code, again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("nbops: error")]
    assert "is not promoted to production" in line and "diff.accuracy.ci_low > 0" in line
    assert "Traceback" not in again.stderr
    assert registry(project).get("churn", "production").version == 2
    refused = [e for e in registry(project).history("churn") if e.action == "refused"]
    assert [e.version for e in refused] == [3]
    assert summary_of(project, "refused")["challenger"]["version"] == 3


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("nomodel", "--data", "data/churn_q2.csv"), errors.RegistryError.exit_code, "nomodel"),
        (("churn", "--data", "data/absent.csv"), errors.QualityInputError.exit_code, "absent.csv"),
        (
            ("churn", "--data", "data/churn_q2.csv", "--key", "customer"),
            errors.QualityInputError.exit_code,
            "no column 'customer'",
        ),
        (
            ("churn", "--data", "data/churn_q2.csv", "--param", "path"),
            errors.ParameterValueError.exit_code,
            "no parameter 'path'",
        ),
        (
            ("churn", "--data", "data/churn_q2.csv", "--holdout", "0.001"),
            errors.QualityInputError.exit_code,
            "too few",
        ),
        (
            ("churn", "--data", "data/churn_q2.csv", "--alias", "staging"),
            errors.RegistryError.exit_code,
            "staging",
        ),
    ],
)
def test_bad_input_is_one_line_and_runs_nothing(
    project: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    runs_before = len(RunStore(project / ".nbops").list())
    done = nbops("retrain", *args, cwd=project)
    assert done.returncode == code, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert words in line
    assert len(RunStore(project / ".nbops").list()) == runs_before


def test_monitoring_the_retrained_version_takes_its_held_out_rows_as_reference(
    project: Path,
) -> None:
    recent = project / "data" / "recent_q2.csv"
    pd.read_csv(project / "data" / "churn_q2.csv").drop(columns=["churned"]).head(400).to_csv(
        recent, index=False
    )
    done = nbops("monitor", "churn@production", "--data", str(recent), cwd=project)
    assert done.returncode in (0, 31), done.stderr
    holdout = summary_of(project, "promoted")["data"]["holdout"]
    assert "reference: the held-out rows churn v2 was compared on" in done.stderr
    assert holdout in done.stderr
    assert "Calibration on" in done.stdout  # the performance estimate ran on that reference
