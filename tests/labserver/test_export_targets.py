"""The panel's export for an orchestrator (`POST /nbops/api/export` with `target`), against a
real `jupyter server`: `kfp` writes and compiles the Kubeflow Pipelines pipeline, `airflow` the
Airflow DAG file, as `nbops export --target` does, and the answer says where the files went
(relative to the server root) and which one to open or upload. An unknown target is a 400
naming the choices; an engine that is not installed is the command line's refusal (the
same message and fix), with nothing written.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import build_notebook, run_nbops
from tests.labserver.test_handlers import Server, error_of, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_server.*"),
]

FLOW = [
    ("import math", ["setup"]),
    ("size = 6\nfactor = 2.0", ["parameters"]),
    ("values = [i * factor for i in range(size)]", ["transform:load"]),
    ("total = sum(values)", ["train"]),
    ("score = math.sqrt(total)", ["evaluate"]),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.nbops]\nbase_image = "python:3.11-bookworm"\n\n[tool.nbops.steps.train]\n'
        "retries = 2\n",
        encoding="utf-8",
    )
    build_notebook(root / "flow.ipynb", FLOW)
    with running_server(base, root) as srv:
        yield srv


def test_export_for_kubeflow_pipelines_writes_the_compiled_pipeline_and_names_it(
    server: Server,
) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "flow.ipynb", "target": "kfp"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["target"], body["label"]) == ("kfp", "Kubeflow Pipelines")
    assert body["folder"] == "pipelines/flow"
    assert body["main"] == "pipelines/flow/kfp_pipeline.yaml"
    assert [f["path"] for f in body["files"]] == [
        "pipelines/flow/kfp_pipeline.yaml",
        "pipelines/flow/kfp_pipeline.py",
    ]
    assert "upload" in body["files"][0]["what"]
    assert body["target_warnings"] == []
    assert "Upload pipelines/flow/kfp_pipeline.yaml" in body["next"]
    compiled = yaml.safe_load((server.root / body["main"]).read_text("utf-8"))
    assert compiled["pipelineInfo"]["name"]
    # The project's settings are used, as on the command line.
    source = (server.root / "pipelines/flow/kfp_pipeline.py").read_text("utf-8")
    assert "python:3.11-bookworm" in source
    assert ".set_retry(num_retries=2)" in source


def test_export_for_airflow_writes_the_dag_file_and_names_it(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "flow.ipynb", "target": "airflow"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["target"], body["label"]) == ("airflow", "Airflow")
    assert body["main"] == "pipelines/flow/airflow_dag.py"
    assert [f["path"] for f in body["files"]] == ["pipelines/flow/airflow_dag.py"]
    assert "pipelines/flow" in body["next"] and "DAG folder" in body["next"]
    ast.parse((server.root / body["main"]).read_text("utf-8"))
    assert (server.root / "pipelines/flow/.airflowignore").is_file()


def test_export_without_a_target_writes_the_package_and_names_its_pipeline(
    server: Server,
) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "flow.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["target"], body["label"]) == ("package", "Package")
    assert body["main"] == "pipelines/flow/flow/pipeline.py"
    assert (server.root / body["main"]).is_file()
    assert body["next"] == "Run it: cd pipelines/flow && python -m flow --param KEY=VALUE"


@pytest.mark.parametrize("target", ["spark", "KFP", "", ["kfp"], 3])
def test_an_unknown_export_target_is_a_400_naming_the_choices(
    server: Server, target: object
) -> None:
    before = sorted(p.name for p in server.root.rglob("*"))
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "flow.ipynb", "target": target})
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["message"] == f"unknown export target {target!r}"
    assert "\n" not in error["message"]
    assert "package, kfp, airflow" in error["fix"]
    assert sorted(p.name for p in server.root.rglob("*")) == before  # nothing written


def test_a_missing_engine_is_refused_as_the_command_line_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An environment without kfp: Python's own import block (sys.modules[name] = None),
    # set at interpreter start for the server and the command line alike.
    blocker = tmp_path / "nokfp"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['kfp'] = None\n")
    kept = os.environ.get("PYTHONPATH", "")  # the worktree's src, when testing one
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(blocker), kept])))
    root = tmp_path / "root"
    root.mkdir()
    build_notebook(root / "flow.ipynb", FLOW)

    # A new process (as run_nbops makes for another PYTHONPATH): sitecustomize at its start.
    cli = run_nbops("export", "flow.ipynb", "--target", "kfp", cwd=root, timeout=120, fresh=True)
    assert cli.returncode == 25, cli.stdout + cli.stderr
    with running_server(tmp_path, root) as srv, srv.client() as client:
        r = client.post(srv.api("export"), json={"path": "flow.ipynb", "target": "kfp"})
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["kind"] == "MissingExtraError"
    assert error["fix"] == "pip install 'nbops[kfp]'"
    assert error["message"] in cli.stderr
    assert error["fix"] in cli.stderr
    assert not (root / "pipelines").exists()
