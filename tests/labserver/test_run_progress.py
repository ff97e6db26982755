"""What a run job tells the panel's run form (labserver/progress.py): the run's progress cell by
cell while it runs, and at the end its gate verdicts, whether it recorded a model, why no
bundle can be built from it.

The server tests run real notebooks on real kernels through a real `jupyter server`; the
notebook's waiting cell waits on a file the test creates, so the test sees the run inside it
without timing guesses. The reading of papermill's output notebook and the gate checks are
also tested in-process, on real files and real records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbops.notebook.read import read_notebook
from tests.helpers import build_notebook
from tests.labserver.test_handlers import Server, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_server.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_events.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets.*"),
]

FLAG = "go.flag"

# Code cells 0, 1, 2, 4, 5, 6 run (the markdown cell 3 and the skip cell 7 do not); the
# transform cell (position 3 of 6) waits until the test creates FLAG.
WAITING = [
    ("import os\nimport time\n\nimport nbops", ["setup"]),
    ("flag = 'go.flag'", ["parameters"]),
    (
        "deadline = time.time() + 120\n"
        "while not os.path.exists(flag) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "values = [1.0, 2.0, 3.0]",
        ["transform:wait"],
    ),
    "## after the wait",
    ("values[:1]", []),
    ("total = sum(values)", ["train"]),
    ("score = total / len(values)\nnbops.log_metric('score', score)", ["evaluate"]),
    ("print('not run')", ["skip"]),
]

# Logs nothing, and no step computes a value nbops takes for a metric.
SILENT = [
    ("items = [3, 1, 2]", ["transform"]),
    ("ordered = sorted(items)", ["train"]),
]


def wait_job(
    client: Any, server: Server, job_id: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the job until `check` holds (or it ended without), with a generous timeout."""
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = client.get(server.api(f"runs/{job_id}")).json()
        if check(job):
            return job
        if job["status"] != "running" or time.monotonic() > deadline:
            raise AssertionError(f"no {what}: {json.dumps(job)[:2000]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("progress")
    root = base / "root"
    (root / "gated").mkdir(parents=True)
    (root / "plain").mkdir()
    (root / "gated" / "pyproject.toml").write_text(
        '[tool.nbops]\ngates = ["score >= 1", "score >= 100"]\n', encoding="utf-8"
    )
    (root / "plain" / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    build_notebook(root / "gated" / "waiting.ipynb", WAITING)
    build_notebook(root / "plain" / "silent.ipynb", SILENT)
    with running_server(base, root) as srv:
        yield srv


def test_a_running_job_reports_the_cell_it_is_in_then_all_done(server: Server) -> None:
    with server.client() as client:
        started = client.post(server.api("runs"), json={"path": "gated/waiting.ipynb"})
        assert started.status_code == 202, started.text
        job_id = started.json()["job"]
        inside = wait_job(
            client,
            server,
            job_id,
            lambda j: ((j["progress"] or {}).get("current") or {}).get("step") == "transform:wait",
            "progress inside the waiting cell",
        )
        (server.root / "gated" / FLAG).touch()
        ended = wait_job(client, server, job_id, lambda j: j["status"] != "running", "end")

    progress = inside["progress"]
    assert progress["total"] == 6
    assert progress["done"] == 2
    assert progress["current"] == {"index": 2, "position": 3, "step": "transform:wait"}
    assert [c["index"] for c in progress["cells"]] == [0, 1, 2, 4, 5, 6]
    assert [c["status"] for c in progress["cells"]] == ["ok", "ok", "running"] + ["pending"] * 3
    assert [(s["step"], s["status"]) for s in progress["steps"]] == [
        ("setup", "done"), ("parameters", "done"), ("transform:wait", "running"),
        ("train", "pending"), ("evaluate", "pending"),
    ]  # fmt: skip

    assert ended["status"] == "completed", ended
    final = ended["progress"]
    assert (final["total"], final["done"], final["current"], final["failed"]) == (6, 6, None, None)
    assert {s["status"] for s in final["steps"]} == {"done"}


def test_a_completed_job_reports_the_projects_gates_and_no_model(server: Server) -> None:
    (server.root / "gated" / FLAG).touch()  # the waiting cell does not wait
    with server.client() as client:
        job_id = client.post(server.api("runs"), json={"path": "gated/waiting.ipynb"}).json()["job"]
        job = wait_job(client, server, job_id, lambda j: j["status"] != "running", "end")
    assert job["status"] == "completed", job
    assert job["metrics"] == {"score": 2.0}
    gates = job["gates"]
    assert gates["source"] == "config" and gates["error"] is None
    assert [(g["gate"], g["passed"]) for g in gates["gates"]] == [
        ("score >= 1", True), ("score >= 100", False),
    ]  # fmt: skip
    assert "needs >= 100" in gates["gates"][1]["reason"]
    # The verdicts are the form's: the run stays a plain run, not a CI one.
    from nbops.runs.store import RunStore

    assert RunStore(server.root / "gated" / ".nbops").load(job["run_id"]).gates == []
    assert job["has_model"] is False
    assert "log_model" in job["bundle_blocked"]


def test_a_job_with_no_gates_and_no_metrics_says_so(server: Server) -> None:
    with server.client() as client:
        job_id = client.post(server.api("runs"), json={"path": "plain/silent.ipynb"}).json()["job"]
        job = wait_job(client, server, job_id, lambda j: j["status"] != "running", "end")
    assert job["status"] == "completed", job
    assert job["metrics"] == {}
    assert job["gates"] == {"source": "none", "gates": [], "error": None}
    assert job["progress"]["done"] == job["progress"]["total"] == 2


# -- in-process: papermill's output notebook, the plan, the gates --------------------------


def test_the_plan_leaves_out_skip_markdown_and_inserted_cells(tmp_path: Path) -> None:
    from nbops.labserver.progress import run_plan

    path = build_notebook(tmp_path / "w.ipynb", WAITING)
    nb = nbformat.read(path, as_version=4)
    injected = nbformat.v4.new_code_cell("flag = 'x'", metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(2, injected)
    nbformat.write(nb, path)
    plan = run_plan(read_notebook(path))
    assert [(c.index, c.step) for c in plan] == [
        (0, "setup"), (1, "parameters"), (3, "transform:wait"), (5, None), (6, "train"),
        (7, "evaluate"),
    ]  # fmt: skip
    assert [c.index for c in run_plan(read_notebook(path), all_cells=True)][-1] == 8


def test_progress_reads_papermills_cell_states(tmp_path: Path) -> None:
    from nbops.labserver.progress import run_plan, run_progress

    path = build_notebook(tmp_path / "w.ipynb", WAITING)
    plan = run_plan(read_notebook(path))
    nb = nbformat.read(path, as_version=4)
    states = ["completed", "completed", "completed", None, "failed", "pending", "pending", None]
    for cell, state in zip(nb.cells, states, strict=True):
        if state:
            cell.metadata["papermill"] = {"status": state}
    output = tmp_path / "output.ipynb"
    nbformat.write(nb, output)
    progress = run_progress(plan, output)
    assert progress["done"] == 4
    assert progress["current"] is None
    assert progress["failed"] == {"index": 4, "position": 4, "step": None}
    assert [s["status"] for s in progress["steps"]] == [
        "done",
        "done",
        "done",
        "pending",
        "pending",
    ]
    # No output notebook yet (or a torn one): everything is pending, nothing raises.
    output.write_text('{"cells": [', encoding="utf-8")
    assert run_progress(plan, output)["done"] == 0
    assert run_progress(plan, tmp_path / "missing.ipynb")["done"] == 0


def test_a_finished_run_marks_the_cells_it_did_not_reach(tmp_path: Path) -> None:
    from nbops.labserver.progress import finished_progress, run_plan

    plan = run_plan(read_notebook(build_notebook(tmp_path / "w.ipynb", WAITING)))
    cells = [
        {"index": 0, "status": "ok"},
        {"index": 1, "status": "ok"},
        {"index": 2, "status": "error"},
        {"index": 4, "status": "not run"},
    ]
    progress = finished_progress(plan, cells)
    assert progress["failed"] == {"index": 2, "position": 3, "step": "transform:wait"}
    assert progress["done"] == 3
    assert [s["status"] for s in progress["steps"]] == [
        "done", "done", "error", "not run", "not run",
    ]  # fmt: skip


def _record(**fields: Any) -> Any:
    from nbops.runs.record import RunRecord

    return RunRecord.model_validate(
        {"run_id": "20260101-000000-abcdef", "notebook": "n.ipynb", "started_at": "x", **fields}
    )


def test_gates_of_a_run_its_own_first_else_the_projects(tmp_path: Path) -> None:
    from nbops.config import load_project
    from nbops.labserver.outcome import run_gates

    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\ngates = ["acc >= 0.5"]\n')
    project = load_project(tmp_path, stop=tmp_path)
    metrics = {"acc": [{"value": 0.75, "ts": 0}]}
    checked = run_gates(_record(metrics=metrics), project)
    assert checked["source"] == "config"
    assert checked["gates"] == [
        {"gate": "acc >= 0.5", "passed": True, "reason": "acc = 0.75 >= 0.5"}
    ]
    own = [{"gate": "acc >= 0.9", "passed": False, "reason": "acc = 0.75, needs >= 0.9"}]
    assert run_gates(_record(metrics=metrics, gates=own), project)["gates"] == own


def test_a_gate_that_does_not_parse_is_the_answers_error_not_the_runs(tmp_path: Path) -> None:
    from nbops.config import load_project
    from nbops.labserver.outcome import run_gates

    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\ngates = ["acc >= import os"]\n')
    project = load_project(tmp_path, stop=tmp_path)
    checked = run_gates(_record(metrics={"acc": [{"value": 0.75, "ts": 0}]}), project)
    assert checked["gates"] == []
    assert checked["error"]["kind"] == "GateError"
    assert "acc >= import os" in checked["error"]["message"]
