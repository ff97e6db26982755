"""Schedules: `nbops export --target kfp --schedule` writes a recurring-run script for
Kubeflow Pipelines (KFP's 6-field cron), `--target airflow --schedule` sets the DAGs'
schedule; both options refuse what they cannot mean."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.errors import TargetBuildError
from nbops.export.formatting import lint_problems
from nbops.export.targets.kfp_schedule import kfp_cron
from tests.helpers import SMALL, build_notebook, run_nbops


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        ("@daily", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@monthly", "0 0 0 1 * *"),
        ("0 6 * * 1", "0 0 6 * * 1"),  # Mondays at 06:00, seconds first
        ("30 0 6 * * 1", "30 0 6 * * 1"),
        ("  @daily ", "0 0 0 * * *"),
    ],
)
def test_schedules_become_kfp_six_field_cron(schedule: str, cron: str) -> None:
    assert kfp_cron(schedule) == cron


@pytest.mark.parametrize("schedule", ["every day", "@fortnightly", "* * *", ""])
def test_a_schedule_kfp_cannot_run_is_refused_naming_what_is_accepted(schedule: str) -> None:
    with pytest.raises(TargetBuildError) as raised:
        kfp_cron(schedule)
    assert "@daily" in (raised.value.fix or "")


@pytest.mark.skipif(importlib.util.find_spec("kfp") is None, reason="kfp is not installed")
def test_export_with_a_kfp_schedule_writes_a_recurring_run_script(tmp_path: Path) -> None:
    build_notebook(tmp_path / "small.ipynb", SMALL)
    done = run_nbops(
        "export", "small.ipynb", "--target", "kfp", "--no-install", "--schedule", "0 6 * * 1",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "pipelines" / "small"
    assert lint_problems(folder) == []
    dry = subprocess.run(
        [sys.executable, "kfp_schedule.py", "--dry-run", "--param", "factor=4"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    request = json.loads(dry.stdout)
    assert request["cron_expression"] == "0 0 6 * * 1"
    assert request["params"] == {"factor": 4}
    assert (request["max_concurrency"], request["no_catchup"]) == (1, True)
    assert Path(request["pipeline_package_path"]) == folder / "kfp_pipeline.yaml"
    assert (folder / "kfp_pipeline.yaml").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--target", "kfp", "--schedule", "every day"), "not a schedule Kubeflow"),
        (("--schedule", "@daily"), "add --target airflow or kfp"),
        (("--target", "kfp", "--loop", "small"), "add --target airflow"),
    ],
)
def test_schedule_and_loop_options_that_cannot_apply_are_usage_errors(
    tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    build_notebook(tmp_path / "small.ipynb", SMALL)
    done = run_nbops("export", "small.ipynb", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert words in " ".join(done.stderr.replace("│", " ").split())
    assert not (tmp_path / "pipelines").exists()


@pytest.mark.skipif(importlib.util.find_spec("airflow") is None, reason="no airflow")
def test_an_airflow_schedule_is_the_dags_schedule_and_the_loop_dag_gets_it_too(
    tmp_path: Path,
) -> None:
    build_notebook(tmp_path / "small.ipynb", SMALL)
    done = run_nbops(
        "export", "small.ipynb", "--target", "airflow", "--schedule", "@daily", "--loop", "small",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "pipelines" / "small"
    assert 'schedule="@daily",' in (folder / "airflow_dag.py").read_text()
    loop = (folder / "airflow_loop_dag.py").read_text()
    assert 'schedule="@daily",' in loop and 'dag_id="small_loop"' in loop
    baked = re.search(r'"project_root": Param\(\s*"([^"]+)"', loop)  # wrapped by path length
    assert baked is not None and baked.group(1) == str(tmp_path.resolve())
    assert lint_problems(folder) == []
