"""The retraining loop as an Airflow DAG (`nbops export --target airflow --loop MODEL`), run
with `airflow dags test` on a scratch SQLite Airflow: with recent data like the training
data the loop stops at `monitor`; with next quarter's data it retrains, compares and
promotes, and the registry records the DAG run as who did it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests._shared_runs import AIRFLOW, migrated_airflow_db
from tests.helpers import EXAMPLES, run_nbops

if importlib.util.find_spec("airflow") is None:
    pytest.skip("apache-airflow is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow


def airflow(home: Path, dags: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """An Airflow command with its own home, SQLite database and DAG folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NBOPS_"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    return subprocess.run(
        [*AIRFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=1200
    )


def task_states(home: Path) -> list[dict[str, str]]:
    """Per DAG run of churn_loop (in order), each task's final state."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT ti.run_id, ti.task_id, ti.state FROM task_instance ti JOIN dag_run r "
            "ON r.run_id = ti.run_id AND r.dag_id = ti.dag_id WHERE ti.dag_id = 'churn_loop' "
            "ORDER BY r.id"
        ).fetchall()
    runs: dict[str, dict[str, str]] = {}
    for run_id, task, state in rows:
        runs.setdefault(run_id, {})[task] = state
    return list(runs.values())


def test_the_loop_stops_without_an_alert_and_promotes_a_better_model_after_one(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    shutil.copy(EXAMPLES / "churn.ipynb", root / "churn.ipynb")
    for name in ("churn_q1.csv", "churn_q2.csv", "churn_q2_requests.csv"):
        shutil.copy(EXAMPLES / "data" / name, root / "data" / name)
    q1 = pd.read_csv(root / "data" / "churn_q1.csv")
    q1.sample(800, random_state=3).drop(columns=["churned"]).to_csv(
        root / "data" / "recent_q1.csv", index=False
    )
    for args in (
        ("run", "churn.ipynb"),
        ("bundle", "--run", "latest"),
        ("promote", "churn@1", "--alias", "production", "--reason", "first deploy"),
        ("export", "churn.ipynb", "--target", "airflow", "--loop", "churn",
         "--schedule", "@daily", "-o", "pipelines"),
    ):  # fmt: skip
        done = run_nbops(*args, cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr
    dags, home = root / "pipelines" / "churn", tmp_path / "airflow"
    assert (dags / "airflow_loop_dag.py").is_file()
    conf = {"new_data": "data/churn_q2.csv", "key": "id", "reference": "data/churn_q1.csv"}

    migrated_airflow_db(tmp_path_factory, home)  # as `airflow db migrate` leaves it
    quiet = airflow(
        home, dags, "dags", "test", "churn_loop", "-c",
        json.dumps({**conf, "recent": "data/recent_q1.csv"}), cwd=root,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stdout[-3000:] + quiet.stderr[-3000:]
    registry = Registry(RunStore(root / ".nbops"))
    assert registry.get("churn", "production").version == 1
    drifted = airflow(
        home, dags, "dags", "test", "churn_loop", "-c",
        json.dumps({**conf, "recent": "data/churn_q2_requests.csv"}), cwd=root,
    )  # fmt: skip
    assert drifted.returncode == 0, drifted.stdout[-3000:] + drifted.stderr[-3000:]

    first, second = task_states(home)
    assert first == {
        "monitor": "success", "retrain": "skipped", "compare": "skipped", "promote": "skipped"
    }  # fmt: skip
    assert second == dict.fromkeys(("monitor", "retrain", "compare", "promote"), "success")
    production = registry.get("churn", "production")
    assert production.version == 2
    [promoted] = [e for e in registry.history("churn", "production") if e.version == 2]
    assert promoted.who.startswith("airflow:churn_loop/")
    assert promoted.detail["comparison"]["metrics"]["accuracy"]["ci_low"] > 0
