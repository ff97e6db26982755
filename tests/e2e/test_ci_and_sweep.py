"""`nbops ci` and `nbops sweep` on real kernels, through the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from nbops import errors
from nbops.runs.store import RunStore
from tests.helpers import run_nbops

pytestmark = pytest.mark.slow

PARAMS = ("rows = 10\nscale = 1.0", ["parameters"])
SCORE = (
    "import nbops\n"
    "if rows == 2:\n"
    "    raise RuntimeError('rows=2 is broken')\n"
    "nbops.log_metric('accuracy', min(1.0, rows * scale / 20))",
    ["evaluate"],
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbops]\ngates = ["accuracy >= 0.4", "accuracy <= 1.0  # sanity"]\n'
    )
    return tmp_path


def _junit(path: Path) -> ET.Element:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return suite


def test_ci_passes_when_every_gate_holds(project: Path, make_notebook: Callable[..., Path]) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops("ci", "model.ipynb", "--junit", "reports/junit.xml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "PASS  accuracy >= 0.4  (accuracy = 0.5 >= 0.4)" in result.stdout
    suite = _junit(project / "reports" / "junit.xml")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "0")
    record = RunStore(project / ".nbops").load("latest")
    assert [g["passed"] for g in record.gates] == [True, True]


def test_ci_fails_with_exit_24_when_a_gate_fails(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    summary = project / "step-summary.md"
    result = run_nbops(
        "ci", "model.ipynb", "-p", "rows", "4", "--junit", "j.xml",
        cwd=project, env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.returncode == errors.GateFailedError.exit_code, result.stderr
    assert result.stderr.strip().startswith("nbops: error: 1 of 2 gates failed: accuracy >= 0.4")
    failures = [c for c in _junit(project / "j.xml") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["accuracy >= 0.4"]
    assert "accuracy = 0.2, needs >= 0.4" in summary.read_text()


def test_a_gate_on_a_metric_the_run_did_not_log_fails(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops("ci", "model.ipynb", "--gate", "f1 >= 0.5", cwd=project)
    assert result.returncode == errors.GateFailedError.exit_code
    assert "metric 'f1' was not logged by the run" in result.stderr


def test_ci_compares_with_a_baseline_run(project: Path, make_notebook: Callable[..., Path]) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    run_nbops("run", "model.ipynb", "-p", "rows", "16", cwd=project)
    baseline = RunStore(project / ".nbops").load("latest").run_id
    result = run_nbops(
        "ci",
        "model.ipynb",
        "--baseline",
        baseline,
        "--gate",
        "accuracy >= baseline.accuracy - 0.01",
        cwd=project,
    )
    assert result.returncode == errors.GateFailedError.exit_code
    assert "accuracy = 0.5, needs >= baseline.accuracy - 0.01 = 0.79" in result.stdout


def test_ci_reports_a_notebook_error_with_its_own_exit_code(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops("ci", "model.ipynb", "-p", "rows", "2", "--junit", "j.xml", cwd=project)
    assert result.returncode == errors.RunFailedError.exit_code
    assert "RuntimeError: rows=2 is broken" in result.stderr
    suite = _junit(project / "j.xml")
    run_case = suite.find("testcase[@name='notebook runs']")
    assert run_case is not None and run_case.find("failure") is not None
    assert suite.get("skipped") == "2"


def test_an_invalid_gate_stops_ci_before_any_kernel_starts(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops("ci", "model.ipynb", "--gate", "accuracy => 1", cwd=project)
    assert result.returncode == errors.GateError.exit_code
    assert RunStore(project / ".nbops").list() == []


def test_a_sweep_runs_every_combination_and_survives_a_failing_run(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops(
        "sweep", "model.ipynb", "--grid", "rows=2,8,16", "--grid", "scale=1,2", "--jobs", "2",
        "--sort", "accuracy", cwd=project,
    )  # fmt: skip
    assert result.returncode == errors.RunFailedError.exit_code
    assert "2 of 6 runs did not complete" in result.stderr
    records = RunStore(project / ".nbops").list()
    assert len(records) == 6
    assert len({r.sweep_id for r in records}) == 1 and records[0].sweep_id
    by_params = {(r.parameters["rows"], r.parameters["scale"]): r for r in records}
    assert by_params[(2, 1.0)].status == "failed" and by_params[(2, 2.0)].status == "failed"
    assert by_params[(8, 2.0)].latest_metrics() == {"accuracy": 0.8}
    table = [line for line in result.stdout.splitlines() if "completed" in line or "failed" in line]
    accuracies = [float(line.split("│")[-2]) for line in table if "completed" in line]
    assert accuracies == sorted(accuracies, reverse=True)


def test_a_bad_grid_value_is_refused_before_any_run(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    result = run_nbops("sweep", "model.ipynb", "--grid", "rows=1,lots", cwd=project)
    assert result.returncode == errors.ParameterValueError.exit_code
    assert RunStore(project / ".nbops").list() == []


def test_two_sweeps_can_write_one_store_at_once(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, SCORE], name="model.ipynb")
    command = [sys.executable, "-m", "nbops", "sweep", "model.ipynb", "--jobs", "2"]
    sweeps = [
        subprocess.Popen(
            [*command, "--grid", f"rows={a},{b}"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for a, b in [(4, 8), (12, 16)]
    ]
    for proc in sweeps:
        proc.communicate(timeout=240)
        assert proc.returncode == 0
    records = RunStore(project / ".nbops").list()
    assert sorted(r.parameters["rows"] for r in records) == [4, 8, 12, 16]
    assert all(r.status == "completed" for r in records)
    with sqlite3.connect(project / ".nbops" / "runs.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_ctrl_c_stops_a_sweep_and_records_what_ran(
    project: Path, make_notebook: Callable[..., Path]
) -> None:
    slow = "import time\nimport nbops\nnbops.log_metric('started', 1)\ntime.sleep(60)"
    make_notebook([PARAMS, (slow, ["train"])], name="slow.ipynb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nbops",
            "sweep",
            "slow.ipynb",
            "--grid",
            "rows=1,2,3,4",
            "--jobs",
            "2",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore(project / ".nbops")
    # Wait until both kernels are in their cells (each has logged `started`), not a fixed time.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = store.list()
        if len(runs) >= 2 and all(r.metrics for r in runs):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, stderr
    records = store.list()
    assert len(records) == 2, "the two runs not started yet are cancelled, not run"
    assert {r.status for r in records} == {"interrupted"}
    assert all(r.latest_metrics() == {"started": 1.0} for r in records)  # what each logged
