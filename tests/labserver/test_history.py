"""The panel's Runs section (`nbops.labserver.history`): a notebook's runs from a real SQLite run
store, whatever path form recorded them, with what differs from the defaults, the gates,
the failing cell, the bundle state; compared as `nbops runs compare` prints them.

The functions are checked in-process here; tests/browser/test_runs_panel.py drives them
through a real JupyterLab.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.config import load_project
from nbops.runs.record import CellRun, Failure, MetricPoint, ParameterSchema, RunRecord
from nbops.runs.store import RunStore

from .test_handlers import SMALL, Server, build_notebook, error_of, poll, running_server

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_server.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_events.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets.*"),
]

SCHEMA = [
    ParameterSchema(name="n_rows", type="int", default=40),
    ParameterSchema(name="scale", type="float", default=2.0),
    ParameterSchema(name="verbose", type="bool", default=False),
    ParameterSchema(name="api_key", type="str", default="***", secret=True),
]


def record(run_id: str, notebook: str, **fields: Any) -> RunRecord:
    params = {"n_rows": 40, "scale": 2.0, "verbose": False, "api_key": "***"}
    params.update(fields.pop("parameters", {}))
    metrics = {
        name: [MetricPoint(value=v, ts=1.0 + i) for i, v in enumerate(values)]
        for name, values in fields.pop("metrics", {}).items()
    }
    return RunRecord(
        run_id=run_id,
        notebook=notebook,
        started_at=fields.pop("started_at", f"2026-11-29T10:{run_id[-2:]}:00.000+00:00"),
        status=fields.pop("status", "completed"),
        parameters=params,
        parameter_schema=SCHEMA,
        metrics=metrics,
        **fields,
    )


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    root = tmp_path.resolve() / "root"
    (root / "sub").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    for name in ("sub/train.ipynb", "other.ipynb"):
        (root / name).write_text("{}", encoding="utf-8")
    return root


def test_a_notebooks_runs_are_found_whatever_path_form_recorded_them(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.labserver.history import list_runs

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    # The panel records the absolute path; `nbops run sub/train.ipynb` in the project root
    # a relative one; from inside sub/, `nbops run train.ipynb`; CI through a symlinked
    # checkout; another notebook's run is not listed.
    store.save(record("20261129-100000-aaaa01", str(notebook)))
    monkeypatch.chdir(project_root)
    store.save(record("20261129-100100-aaaa02", "sub/train.ipynb", sweep_id="sweep-1"))
    monkeypatch.chdir(project_root / "sub")
    store.save(record("20261129-100200-aaaa03", "train.ipynb"))
    link = project_root.parent / "checkout"
    link.symlink_to(project_root, target_is_directory=True)
    store.save(record("20261129-100300-aaaa04", str(link / "sub" / "train.ipynb")))
    store.save(record("20261129-100400-bbbb05", str(project_root / "other.ipynb")))
    monkeypatch.chdir(project_root.parent)  # the Jupyter server runs from anywhere

    runs = list_runs(load_project(project_root), notebook, project_root, limit=50)
    assert [r["run_id"] for r in runs] == [
        "20261129-100300-aaaa04",
        "20261129-100200-aaaa03",
        "20261129-100100-aaaa02",
        "20261129-100000-aaaa01",
    ]
    assert runs[2]["sweep_id"] == "sweep-1"
    assert runs[0]["short_id"] == "aaaa04"
    assert len(list_runs(load_project(project_root), notebook, project_root, limit=2)) == 2


def test_listing_a_project_without_a_store_creates_none(project_root: Path) -> None:
    from nbops.labserver.history import list_runs

    assert (
        list_runs(load_project(project_root), project_root / "other.ipynb", project_root, 50) == []
    )
    assert not (project_root / ".nbops").exists()


def test_a_run_shows_changed_parameters_metrics_gates_and_failure(project_root: Path) -> None:
    from nbops.labserver.history import list_runs

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    gates = [
        {"gate": "score > 0.5", "passed": True, "left": 0.7, "right": 0.5, "reason": None},
        {"gate": "rows >= 30", "passed": False, "left": 25, "right": 30, "reason": "25 < 30"},
    ]
    store.save(
        record(
            "20261129-100000-aaaa01",
            str(notebook),
            # 2 for a float default of 2.0 is no change; True for False is.
            parameters={"n_rows": 25, "scale": 2, "verbose": True, "api_key": "***"},
            metrics={"score": [0.5, 0.71], "rows": [25.0]},
            gates=gates,
            models=[{"name": "model", "path": "models/model.skops"}],
        )
    )
    store.save(
        record(
            "20261129-100100-aaaa02",
            str(notebook),
            status="failed",
            failure=Failure(
                cell_index=3,
                cell_id="c4",
                role="train",
                ename="ZeroDivisionError",
                evalue="division by zero",
            ),
        )
    )
    failed, ci = list_runs(load_project(project_root), notebook, project_root, 50)

    assert ci["parameters"] == {"n_rows": 25, "verbose": True}
    assert ci["metrics"] == {"score": 0.71, "rows": 25.0}
    assert ci["ci"] is True
    assert ci["gates"] == [
        {"gate": "score > 0.5", "passed": True, "reason": None},
        {"gate": "rows >= 30", "passed": False, "reason": "25 < 30"},
    ]
    assert ci["has_model"] is True
    assert "rows >= 30" in ci["bundle_blocked"]
    assert ci["failure"] is None

    assert failed["status"] == "failed"
    assert failed["failure"] == {
        "cell_index": 3,
        "cell_id": "c4",
        "role": "train",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
    }
    assert failed["parameters"] == {}
    assert "completed run" in failed["bundle_blocked"]


def test_a_run_lists_each_cells_step_duration_and_status(project_root: Path) -> None:
    # What the panel's DAG draws for a run selected in the Runs section.
    from nbops.labserver.history import list_runs

    notebook = project_root / "sub" / "train.ipynb"
    cells = [
        CellRun(index=1, id="c2", role="transform:load", duration_s=0.25, status="ok"),
        CellRun(index=2, id="c3", role=None, duration_s=0.01, status="ok"),
        CellRun(index=3, id="c4", role="train", duration_s=1.5, status="error"),
        CellRun(index=4, id="c5", role="evaluate", duration_s=None, status="not run"),
    ]
    RunStore(project_root / ".nbops").save(
        record("20261129-100000-aaaa01", str(notebook), status="failed", cells=cells)
    )
    [run] = list_runs(load_project(project_root), notebook, project_root, 50)
    assert run["cells"] == [
        {"index": 1, "id": "c2", "role": "transform:load", "duration_s": 0.25, "status": "ok"},
        {"index": 2, "id": "c3", "role": None, "duration_s": 0.01, "status": "ok"},
        {"index": 3, "id": "c4", "role": "train", "duration_s": 1.5, "status": "error"},
        {"index": 4, "id": "c5", "role": "evaluate", "duration_s": None, "status": "not run"},
    ]
    json.dumps(run)  # as the handler sends it


def test_bundle_is_blocked_without_a_model_and_open_with_one(project_root: Path) -> None:
    from nbops.labserver.history import NO_MODEL, list_runs

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    store.save(record("20261129-100000-aaaa01", str(notebook)))
    captured = [{"name": "model", "path": "models/model.skops", "auto": True}]
    store.save(record("20261129-100100-aaaa02", str(notebook), models=captured))
    with_model, without = list_runs(load_project(project_root), notebook, project_root, 50)
    assert without["bundle_blocked"] == NO_MODEL
    assert with_model["bundle_blocked"] is None
    assert with_model["has_model"] is True


def write_manifest(folder: Path, run_id: str | None, version: int) -> None:
    folder.mkdir(parents=True)
    source = {"notebook": "x", "run_id": run_id}
    data = {"kind": "nbops.bundle", "name": "train", "version": version, "source": source}
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


def test_a_bundle_built_from_a_run_is_found_for_it(project_root: Path) -> None:
    from nbops.labserver.history import existing_bundle, list_runs

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    models = [{"name": "model", "path": "models/model.skops"}]
    store.save(record("20261129-100000-aaaa01", str(notebook), models=models))
    store.save(record("20261129-100100-aaaa02", str(notebook), models=models))
    bundles = project_root / "bundles"
    write_manifest(bundles / "train-v1", "20261129-100000-aaaa01", 1)
    write_manifest(bundles / "train-v3", "20261129-100000-aaaa01", 3)
    write_manifest(bundles / "train-v2", None, 2)  # from the model in hand, no run
    (bundles / "junk").mkdir()
    (bundles / "junk" / "manifest.json").write_text("not json", encoding="utf-8")

    project = load_project(project_root)
    second, first = list_runs(project, notebook, project_root, 50)
    newest = {"folder": "bundles/train-v3", "name": "train", "version": 3}
    assert first["bundle"] == newest
    assert second["bundle"] is None
    # By the end of its id, as the panel and `nbops bundle --run` accept it.
    assert existing_bundle(project, project_root, "aaaa01") == newest
    assert existing_bundle(project, project_root, "aaaa02") is None
    assert existing_bundle(project, project_root, "nosuchrun") is None


def test_bundles_outside_the_root_are_not_read(project_root: Path, tmp_path: Path) -> None:
    from nbops.labserver.history import bundles_by_run

    outside = tmp_path / "elsewhere"
    write_manifest(outside / "train-v1", "20261129-100000-aaaa01", 1)
    (project_root / "bundles").symlink_to(outside, target_is_directory=True)
    assert bundles_by_run(load_project(project_root), project_root) == {}


def test_comparison_is_what_nbops_runs_compare_prints(project_root: Path) -> None:
    from nbops.labserver.history import compare_runs

    notebook = str(project_root / "sub" / "train.ipynb")
    store = RunStore(project_root / ".nbops")
    store.save(record("20261129-100000-aaaa01", notebook, metrics={"score": [0.5]}))
    store.save(
        record(
            "20261129-100100-aaaa02",
            notebook,
            parameters={"n_rows": 25},
            metrics={"score": [0.5], "rows": [25.0]},
        )
    )
    result = compare_runs(load_project(project_root), ["aaaa01", "aaaa02"])
    assert result["runs"] == ["20261129-100000-aaaa01", "20261129-100100-aaaa02"]
    rows = {(r["kind"], r["name"]): r for r in result["rows"]}
    assert rows["param", "n_rows"]["values"] == [40, 25]
    assert rows["param", "n_rows"]["differs"] is True
    assert rows["param", "scale"]["shown"] == ["2", "2"]
    assert rows["param", "scale"]["differs"] is False
    assert rows["param", "api_key"]["shown"] == ["'***'", "'***'"]
    assert rows["metric", "rows"]["shown"] == ["", "25"]
    assert rows["metric", "rows"]["differs"] is True
    assert rows["metric", "score"]["differs"] is False


def test_output_and_rerun_refuse_another_notebooks_run(project_root: Path) -> None:
    from nbops.labserver.history import notebook_run
    from nbops.labserver.requests import ApiError

    store = RunStore(project_root / ".nbops")
    store.save(record("20261129-100000-aaaa01", str(project_root / "other.ipynb")))
    project = load_project(project_root)
    assert notebook_run(project, project_root / "other.ipynb", "aaaa01").run_id.endswith("aaaa01")
    for ref in ("aaaa01", "nosuchrun"):
        with pytest.raises(ApiError) as refused:
            notebook_run(project, project_root / "sub" / "train.ipynb", ref)
        assert refused.value.status_code == 404
        assert refused.value.body["fix"]


def test_the_output_copy_is_made_once_and_reused(project_root: Path) -> None:
    from nbops.labserver.history import output_notebook

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    rec = record("20261129-100000-aaaa01", str(notebook), output_notebook="output.ipynb")
    store.save(rec)
    output = store.run_dir(rec.run_id) / "output.ipynb"
    papermill = {"output_path": str(output), "input_path": str(notebook)}
    output.write_text(json.dumps({"metadata": {"papermill": papermill}, "cells": []}))
    # A file of another run already holds the short name: the copy takes the full id.
    taken = project_root / "sub" / "nbops-runs" / "train-aaaa01.ipynb"
    taken.parent.mkdir()
    taken.write_text("{}", encoding="utf-8")

    first = output_notebook(store, rec, notebook, project_root)
    assert first == "sub/nbops-runs/train-20261129-100000-aaaa01.ipynb"
    stamp = os.stat(project_root / first).st_mtime_ns
    assert output_notebook(store, rec, notebook, project_root) == first
    assert os.stat(project_root / first).st_mtime_ns == stamp
    assert sorted(p.name for p in taken.parent.iterdir()) == [
        "train-20261129-100000-aaaa01.ipynb",
        "train-aaaa01.ipynb",
    ]
    assert taken.read_text(encoding="utf-8") == "{}"


def test_an_output_copy_never_writes_over_other_files(project_root: Path) -> None:
    from nbops.labserver.history import output_notebook
    from nbops.labserver.requests import ApiError

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    rec = record("20261129-100000-aaaa01", str(notebook), output_notebook="output.ipynb")
    store.save(rec)
    (store.run_dir(rec.run_id) / "output.ipynb").write_text("{}", encoding="utf-8")
    copies = project_root / "sub" / "nbops-runs"
    copies.mkdir()
    for name in ("train-aaaa01.ipynb", "train-20261129-100000-aaaa01.ipynb"):
        (copies / name).write_text("mine", encoding="utf-8")
    with pytest.raises(ApiError) as refused:
        output_notebook(store, rec, notebook, project_root)
    assert refused.value.status_code == 409
    assert [p.read_text(encoding="utf-8") for p in copies.iterdir()] == ["mine", "mine"]


def test_a_run_without_its_output_notebook_is_404(project_root: Path) -> None:
    from nbops.labserver.history import output_notebook
    from nbops.labserver.requests import ApiError

    notebook = project_root / "sub" / "train.ipynb"
    store = RunStore(project_root / ".nbops")
    rec = record("20261129-100000-aaaa01", str(notebook), output_notebook="output.ipynb")
    store.save(rec)
    with pytest.raises(ApiError) as refused:
        output_notebook(store, rec, notebook, project_root)
    assert refused.value.status_code == 404
    assert "gone" in refused.value.body["message"]


# -- through a real `jupyter server` ----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("history").resolve()
    root = base / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    build_notebook(root / "small.ipynb", SMALL)
    build_notebook(root / "quiet.ipynb", [("x = 1", ["transform"])])
    (root / "up").mkdir()
    (root / "up" / "pyproject.toml").write_text('[tool.nbops]\nstore = "../../up-store"\n')
    build_notebook(root / "up" / "nb.ipynb", SMALL)
    with running_server(base, root) as srv:
        yield srv


@pytest.mark.slow
def test_history_lists_the_stores_runs_of_the_notebook(server: Server) -> None:
    notebook = server.root / "small.ipynb"
    store = RunStore(server.root / ".nbops")
    store.save(record("20261129-090000-cccc01", "small.ipynb", parameters={"n_rows": 5}))
    store.save(record("20261129-090100-cccc02", str(notebook), status="failed"))
    store.save(record("20261129-090200-cccc03", str(server.root / "quiet.ipynb")))
    with server.client() as client:
        r = client.get(server.api("history"), params={"path": "small.ipynb"})
        limited = client.get(server.api("history"), params={"path": "small.ipynb", "limit": 1})
        bad_limit = client.get(server.api("history"), params={"path": "small.ipynb", "limit": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [run["run_id"] for run in body["runs"]]
    assert ids[:2] == ["20261129-090100-cccc02", "20261129-090000-cccc01"]
    assert "20261129-090200-cccc03" not in ids
    assert body["store"] == ".nbops"
    assert body["runs"][1]["parameters"] == {"n_rows": 5}
    assert len(limited.json()["runs"]) == 1
    assert bad_limit.status_code == 400
    assert "limit" in error_of(bad_limit)["message"]


@pytest.mark.slow
def test_history_of_a_store_outside_the_root_is_403_and_creates_nothing(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("history"), params={"path": "up/nb.ipynb"})
    assert r.status_code == 403, r.text
    assert error_of(r)["setting"] == "store"
    assert not (server.root.parent / "up-store").exists()


@pytest.mark.slow
def test_compare_answers_what_nbops_runs_compare_prints(server: Server) -> None:
    store = RunStore(server.root / ".nbops")
    store.save(record("20261129-080000-dddd01", "small.ipynb", metrics={"score": [1.5]}))
    store.save(record("20261129-080100-dddd02", "small.ipynb", parameters={"scale": 3.0}))
    with server.client() as client:
        r = client.get(
            server.api("history/compare"),
            params=[("path", "small.ipynb"), ("run", "dddd01"), ("run", "dddd02")],
        )
        one = client.get(
            server.api("history/compare"), params=[("path", "small.ipynb"), ("run", "dddd01")]
        )
        unknown = client.get(
            server.api("history/compare"),
            params=[("path", "small.ipynb"), ("run", "dddd01"), ("run", "nosuch")],
        )
    assert r.status_code == 200, r.text
    rows = {(row["kind"], row["name"]): row for row in r.json()["rows"]}
    assert rows["param", "scale"]["shown"] == ["2", "3"]
    assert rows["param", "scale"]["differs"] is True
    assert rows["metric", "score"]["shown"] == ["1.5", ""]
    assert one.status_code == 400
    assert "2 to" in error_of(one)["message"]
    assert unknown.status_code == 422
    assert error_of(unknown)["kind"] == "RunNotFoundError"


@pytest.mark.slow
def test_a_second_bundle_request_for_a_run_answers_the_bundle_built(server: Server) -> None:
    store = RunStore(server.root / ".nbops")
    models = [{"name": "model", "path": "models/model.skops"}]
    store.save(record("20261129-070000-eeee01", "small.ipynb", models=models))
    write_manifest(server.root / "bundles" / "small-v4", "20261129-070000-eeee01", 4)
    with server.client() as client:
        r = client.post(server.api("bundle"), json={"path": "small.ipynb", "run_id": "eeee01"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "folder": "bundles/small-v4",
        "name": "train",
        "version": 4,
        "run_id": "eeee01",
        "existing": True,
    }
    assert sorted(p.name for p in (server.root / "bundles").iterdir()) == ["small-v4"]


@pytest.mark.slow
def test_a_run_is_rerun_and_its_output_opened_from_the_history(server: Server) -> None:
    with server.client() as client:
        started = client.post(
            server.api("runs"), json={"path": "small.ipynb", "parameters": {"factor": 2}}
        )
        assert started.status_code == 202, started.text
        original = poll(client, server, started.json()["job"])
        assert original["status"] == "completed", (original, server.log.read_text()[-3000:])
        run_id = original["run_id"]
        # As `nbops run small.ipynb` records it in the project: a path relative to a folder
        # that is not the server's working folder (the re-run must still find the notebook).
        store = RunStore(server.root / ".nbops")
        store.save(store.load(run_id).model_copy(update={"notebook": "small.ipynb"}))
        # The panel's copy exists already: the same one is answered.
        output = client.post(
            server.api("history/output"), json={"path": "small.ipynb", "run_id": run_id}
        )
        elsewhere = client.post(
            server.api("history/output"), json={"path": "quiet.ipynb", "run_id": run_id}
        )
        rerun = client.post(
            server.api("history/rerun"), json={"path": "small.ipynb", "run_id": run_id}
        )
        assert rerun.status_code == 202, rerun.text
        job = poll(client, server, rerun.json()["job"])
        listing = client.get(server.api("history"), params={"path": "small.ipynb"}).json()
    assert output.status_code == 200, output.text
    assert output.json() == {"run_id": run_id, "output_notebook": original["output_notebook"]}
    assert elsewhere.status_code == 404
    assert "quiet.ipynb" in error_of(elsewhere)["message"]
    assert rerun.json()["rerun_of"] == run_id
    # The notebook is found, unchanged (only the secret parameter is warned about).
    assert [w for w in rerun.json()["warnings"] if "small.ipynb" in w] == []
    assert any("api_token" in w for w in rerun.json()["warnings"])
    assert job["status"] == "completed", (job, server.log.read_text()[-3000:])
    assert job["run_id"] != run_id
    assert job["metrics"] == original["metrics"]
    assert (server.root / job["output_notebook"]).is_file()
    newest = listing["runs"][0]
    assert newest["run_id"] == job["run_id"]
    assert newest["rerun_of"] == run_id
    assert newest["parameters"] == {"factor": 2}
    assert newest["has_output"] is True
    assert RunStore(server.root / ".nbops").load(job["run_id"]).notebook == str(
        server.root / "small.ipynb"
    )


@pytest.mark.slow
def test_history_requests_are_checked(server: Server) -> None:
    with server.client() as client:
        no_path = client.get(server.api("history"))
        outside = client.get(server.api("history"), params={"path": "../x.ipynb"})
        no_run = client.post(server.api("history/rerun"), json={"path": "small.ipynb"})
        not_text = client.post(
            server.api("history/output"), json={"path": "small.ipynb", "run_id": 7}
        )
    assert no_path.status_code == 400
    assert outside.status_code == 403
    for r in (no_run, not_text):
        assert r.status_code == 400, r.text
        assert "'run_id'" in error_of(r)["message"]
