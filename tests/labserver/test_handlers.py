"""The JupyterLab extension's server API (`/nbops/api/`), against a real `jupyter server`.

One server is started for the module, on a free loopback port, with a temporary root folder
and temporary Jupyter config, runtime and data folders; requests go through httpx with the
server's token. A few pieces (the export lock, path resolution, the job runner) are also
checked in-process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbops.errors import CellLocation, CellSyntaxError, ParameterValueError
from tests.helpers import build_notebook

pytestmark = [
    pytest.mark.slow,
    # jupyter_server and its dependencies, imported in-process for the unit checks below.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_server.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_events.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets.*"),
]

TOKEN = "nbops-test-token"
# Generous: the suite runs on several workers, and a loaded 2-core machine starts a server in
# well over a minute (the wait ends as soon as the server answers).
START_TIMEOUT_S = 180

SMALL = [
    ("import math\n\nimport nbops\n\nOFFSET = 1", ["setup"]),
    (
        "factor = 3  # multiplies the data\nsize = 5\napi_token = 's3cret'",
        ["parameters"],
    ),
    ("values = [i + OFFSET for i in range(size)]", ["transform:load"]),
    ("values", []),
    ("scaled = [v * factor for v in values]", ["transform:scale"]),
    ("total = sum(scaled)", ["train"]),
    ("score = math.sqrt(total)\nnbops.log_metric('score', score)", ["evaluate"]),
]


def large_cells(n: int) -> list[tuple[str, list[str]] | str]:
    """A notebook big enough that its export takes a noticeable time."""
    cells: list[tuple[str, list[str]] | str] = [
        ("import math", ["setup"]),
        ("n = 3", ["parameters"]),
    ]
    cells.append(("x0 = n", ["transform:step0"]))
    for i in range(1, n):
        body = "\n".join(
            f"def f{i}_{j}(v):\n    return [math.sqrt(abs(w)) + {j} for w in v]\n" for j in range(4)
        )
        cells.append((f"{body}\nx{i} = x{i - 1} + f{i}_0([x{i - 1}])[0]", [f"transform:step{i}"]))
    cells.append((f"result = x{n - 1}", ["evaluate"]))
    return cells


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    root: Path
    log: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def api(self, path: str) -> str:
        return f"/nbops/api/{path}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    build_notebook(root / "small.ipynb", SMALL)
    build_notebook(root / "untagged.ipynb", [("x = 1", []), "# notes", ("y = x + 1", [])])
    build_notebook(
        root / "broken.ipynb",
        [("import math", ["setup"]), ("x = (1,", ["transform"]), ("y = 2", ["train"])],
    )
    build_notebook(root / "badtags.ipynb", [("x = 1", ["transform:Bad Name"]), ("y = 2", [])])
    build_notebook(root / "large.ipynb", large_cells(120))
    build_notebook(
        root / "fails.ipynb",
        [("n = 1", ["parameters"]), ("x = 1 / (n - 1)", ["transform"]), ("y = x", ["train"])],
    )
    outside = base / "outside.ipynb"
    build_notebook(outside, SMALL)
    (root / "escape.ipynb").symlink_to(outside)
    with running_server(base, root) as srv:
        yield srv


@contextlib.contextmanager
def running_server(base: Path, root: Path) -> Iterator[Server]:
    """A real `jupyter server` with the nbops extension, serving `root` on a free loopback
    port; its config, runtime and data folders and its log live in `base`."""
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    port = free_port()
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                '--ServerApp.jpserver_extensions={"nbops": True}',
                f"--IdentityProvider.token={TOKEN}",
                "--allow-root",
                "--no-browser",
                "--ServerApp.open_browser=False",
            ],
            cwd=base,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Server(f"http://127.0.0.1:{port}", root, log)
    try:
        _wait_until_up(srv, proc)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_until_up(srv: Server, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with srv.client() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"jupyter server exited ({proc.returncode}):\n{srv.log.read_text()}")
            try:
                if client.get(srv.api("vocabulary")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"jupyter server did not start in {START_TIMEOUT_S} s:\n{srv.log.read_text()}")


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return dict(body["error"])


# -- authentication, routing, paths --------------------------------------------------------


def test_requests_without_a_token_are_refused(server: Server) -> None:
    with server.client(token=None) as anonymous, server.client(token="wrong") as wrong:
        for client in (anonymous, wrong):
            assert client.get(server.api("vocabulary")).status_code in (401, 403)
            r = client.post(server.api("export"), json={"path": "small.ipynb"})
            assert r.status_code in (401, 403)
    assert not (server.root / "pipelines").exists() or not any(
        (server.root / "pipelines").iterdir()
    )


def test_vocabulary_is_the_shipped_file(server: Server) -> None:
    from nbops.notebook.tags import vocabulary

    with server.client() as client:
        r = client.get(server.api("vocabulary"))
    assert r.status_code == 200
    assert r.json() == vocabulary()
    assert [role["name"] for role in r.json()["roles"]][:2] == ["setup", "parameters"]


@pytest.mark.parametrize(
    "path", ["../x.ipynb", "../outside.ipynb", "/etc/passwd", "sub/../../x.ipynb", "escape.ipynb"]
)
def test_paths_leaving_the_root_are_refused(server: Server, path: str) -> None:
    with server.client() as client:
        for r in (
            client.get(server.api("analysis"), params={"path": path}),
            client.get(server.api("parameters"), params={"path": path}),
            client.post(server.api("export"), json={"path": path}),
            client.post(server.api("runs"), json={"path": path, "parameters": {}}),
        ):
            assert r.status_code == 403, r.text
            error = error_of(r)
            assert "outside" in error["message"]
            assert error["fix"]


def test_bad_requests_are_json_errors(server: Server) -> None:
    with server.client() as client:
        missing = client.get(server.api("analysis"))
        assert missing.status_code == 400
        assert "'path' is missing" in error_of(missing)["message"]
        nothing = client.get(server.api("analysis"), params={"path": "nope.ipynb"})
        assert nothing.status_code == 404
        error_of(nothing)
        not_json = client.post(
            server.api("export"), content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert "not valid JSON" in error_of(not_json)["message"]
        not_object = client.post(server.api("export"), json=["small.ipynb"])
        assert not_object.status_code == 400
        out = client.post(server.api("export"), json={"path": "small.ipynb", "out_dir": "../out"})
        assert out.status_code == 403
        error_of(out)
        params = client.post(server.api("runs"), json={"path": "small.ipynb", "parameters": [1]})
        assert params.status_code == 400
        error_of(params)
        unknown = client.get(server.api("nothing/here"))
        assert unknown.status_code == 404
        error_of(unknown)
        no_job = client.get(server.api("runs/doesnotexist"))
        assert no_job.status_code == 404
        error_of(no_job)
        wrong_method = client.delete(server.api("export"))
        assert wrong_method.status_code == 405
        error_of(wrong_method)


# -- analysis ----------------------------------------------------------------------------


def test_analysis_of_a_tagged_notebook(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("analysis"), params={"path": "small.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["path"] == "small.ipynb"
    assert body["tagged"] is True
    assert body["problems"] == []
    assert [c["tag"] for c in body["cells"]] == [
        "setup",
        "parameters",
        "transform:load",
        None,
        "transform:scale",
        "train",
        "evaluate",
    ]
    assert body["cells"][2] == {
        "index": 2,
        "id": body["cells"][2]["id"],
        "type": "code",
        "role": "transform",
        "tag": "transform:load",
    }
    assert body["parameters"][0] == {
        "name": "factor",
        "type": "int",
        "default": 3,
        "description": "multiplies the data",
    }
    steps = {s["key"]: s for s in body["steps"]}
    assert list(steps) == ["transform:load", "transform:scale", "train", "evaluate"]
    assert steps["transform:load"]["inputs"] == [
        {"name": "size", "source": "parameter", "step": None}
    ]
    assert steps["transform:load"]["outputs"] == ["values"]
    assert steps["transform:load"]["cells"] == [{"index": 2, "id": body["cells"][2]["id"]}]
    assert {"name": "values", "source": "step", "step": "transform:load"} in steps[
        "transform:scale"
    ]["inputs"]
    assert steps["evaluate"]["outputs"] == ["score"]
    assert steps["evaluate"]["role"] == "evaluate"


def test_analysis_of_an_untagged_notebook_says_how_to_start(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("analysis"), params={"path": "untagged.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tagged"] is False
    assert [c["type"] for c in body["cells"]] == ["code", "markdown", "code"]
    assert body["steps"] == []
    [problem] = body["problems"]
    assert problem["kind"] == "NoTaggedCellsError"
    assert problem["exit_code"] == 5
    assert "setup, parameters, transform, train or evaluate" in problem["fix"]
    assert problem["cell_index"] is None and problem["cell_id"] is None


def test_analysis_names_the_cell_with_a_syntax_error(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("analysis"), params={"path": "broken.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    [problem] = body["problems"]
    assert problem["kind"] == "CellSyntaxError"
    assert problem["cell_index"] == 1
    assert problem["cell_id"] == body["cells"][1]["id"]
    assert problem["message"].startswith("syntax error")
    assert problem["fix"]
    assert [c["role"] for c in body["cells"]] == ["setup", "transform", "train"]


def test_analysis_lists_cells_when_a_tag_is_malformed(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("analysis"), params={"path": "badtags.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["cells"]) == 2
    [problem] = body["problems"]
    assert problem["kind"] == "TagError"
    assert problem["cell_index"] == 0
    assert "invalid step name" in problem["message"]


def test_parameters_for_the_run_form(server: Server) -> None:
    with server.client() as client:
        r = client.get(server.api("parameters"), params={"path": "small.ipynb"})
    assert r.status_code == 200, r.text
    params = {p["name"]: p for p in r.json()["parameters"]}
    assert params["factor"] == {
        "name": "factor",
        "type": "int",
        "default": 3,
        "description": "multiplies the data",
        "secret": False,
    }
    assert params["api_token"]["secret"] is True
    assert params["api_token"]["default"] is None  # a secret's value is never sent


# -- export ------------------------------------------------------------------------------


def test_export_writes_the_package(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "small.ipynb"})
        assert r.status_code == 200, r.text
        body = r.json()
        again = client.post(server.api("export"), json={"path": "small.ipynb"}).json()
    assert body["name"] == "small"
    assert body["folder"] == "pipelines/small"
    assert body["steps"] == 4
    assert body["version"] >= 1
    assert isinstance(body["warnings"], list)
    manifest = json.loads(
        (server.root / "pipelines" / "small" / "small" / "manifest.json").read_text("utf-8")
    )
    assert manifest["content_hash"] == body["content_hash"]
    assert again["version"] == body["version"]
    assert again["new_version"] is False


def test_export_and_analysis_name_the_notebook_by_the_same_sha256(server: Server) -> None:
    # The panel marks an export made from an older notebook by comparing the two.
    with server.client() as client:
        exported = client.post(server.api("export"), json={"path": "small.ipynb"}).json()
        analysed = client.get(server.api("analysis"), params={"path": "small.ipynb"}).json()
    digest = hashlib.sha256((server.root / "small.ipynb").read_bytes()).hexdigest()
    assert exported["source_sha256"] == analysed["sha256"] == digest
    last = analysed["last_export"]
    assert (last["folder"], last["version"], last["current"]) == (
        "pipelines/small",
        exported["version"],
        True,
    )


def test_export_into_a_chosen_folder(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "small.ipynb", "out_dir": "out/pkgs"})
    assert r.status_code == 200, r.text
    assert r.json()["folder"] == "out/pkgs/small"
    assert (server.root / "out" / "pkgs" / "small" / "small" / "pipeline.py").is_file()


def test_export_of_a_broken_notebook_is_422_naming_the_cell(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "broken.ipynb"})
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["kind"] == "CellSyntaxError"
    assert error["cell_index"] == 1
    assert error["cell_id"]
    assert error["fix"]
    assert not (server.root / "pipelines" / "broken").exists()


def test_concurrent_exports_get_409_while_one_runs(server: Server) -> None:
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def export() -> None:
        with server.client() as client:
            response = client.post(server.api("export"), json={"path": "large.ipynb"})
        with lock:
            results.append(response)

    threads = [threading.Thread(target=export) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert len(results) == 3
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 409}, [r.text for r in results]
    assert 200 in statuses
    hashes = {r.json()["content_hash"] for r in results if r.status_code == 200}
    assert len(hashes) == 1
    for r in results:
        if r.status_code == 409:
            error = error_of(r)
            assert error["message"] == "an export is already running"
            assert error["fix"]
    # The lock is free again afterwards.
    with server.client() as client:
        after = client.post(server.api("export"), json={"path": "large.ipynb"})
    assert after.status_code == 200, after.text
    assert after.json()["new_version"] is False


# -- runs and bundles --------------------------------------------------------------------


def poll(client: httpx.Client, server: Server, job_id: str, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(server.api(f"runs/{job_id}"))
        assert status.status_code == 200, status.text
        job = status.json()
        if job["status"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def test_a_run_request_with_all_cells_not_a_bool_is_400(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("runs"), json={"path": "small.ipynb", "all_cells": "yes"})
    assert r.status_code == 400
    assert "'all_cells' must be true or false" in error_of(r)["message"]


def test_runs_are_recorded_in_the_store(server: Server) -> None:
    from nbops.runs.store import RunStore

    with server.client() as client:
        r = client.post(
            server.api("runs"), json={"path": "small.ipynb", "parameters": {"factor": 2}}
        )
        failing = client.post(server.api("runs"), json={"path": "fails.ipynb"})
        assert r.status_code == 202, r.text
        assert failing.status_code == 202, failing.text
        job_id = r.json()["job"]
        job = poll(client, server, job_id)
        failed = poll(client, server, failing.json()["job"])
        listing = client.get(server.api("runs")).json()
        # A bundle of a run that logged no model is refused with the reason.
        bundle = client.post(
            server.api("bundle"), json={"path": "small.ipynb", "run_id": job["run_id"]}
        )
    assert job["status"] == "completed", (job, server.log.read_text()[-3000:])
    assert job["error"] is None
    assert job["job"] == job_id
    assert job["path"] == "small.ipynb"
    assert job["metrics"]["score"] == pytest.approx(math.sqrt(sum((i + 1) * 2 for i in range(5))))
    short_id = job["run_id"].rsplit("-", 1)[-1]
    assert job["output_notebook"] == f"nbops-runs/small-{short_id}.ipynb"
    assert (server.root / job["output_notebook"]).is_file()
    runs = {rec.run_id: rec for rec in RunStore(server.root / ".nbops").list()}
    assert job["run_id"] in runs
    record = runs[job["run_id"]]
    assert record.status == "completed"
    assert record.parameters["factor"] == 2
    assert record.parameters["api_token"] == "***"
    assert job_id in [j["job"] for j in listing["jobs"]]
    assert bundle.status_code == 422, bundle.text
    assert error_of(bundle)["kind"] == "BundleError"

    assert failed["status"] == "failed", failed
    assert failed["run_id"] in runs
    assert runs[failed["run_id"]].status == "failed"
    assert failed["error"]["kind"] == "RunFailedError"
    assert failed["error"]["cell_index"] == 1
    assert "ZeroDivisionError" in failed["error"]["message"]
    assert (server.root / failed["output_notebook"]).is_file()

    # Each cell's duration and status, for the panel's picture of the steps.
    cells = {c["role"]: c for c in job["cells"] if c["role"]}
    assert set(cells) == {"setup", "parameters", "transform:load", "transform:scale", "train",
                          "evaluate"}  # fmt: skip
    assert all(c["status"] == "ok" and c["duration_s"] >= 0 for c in cells.values())
    assert {c["role"]: c["status"] for c in failed["cells"]} == {
        "parameters": "ok", "transform": "error", "train": "not run",
    }  # fmt: skip


def test_a_run_output_notebook_opens_through_the_contents_api(server: Server) -> None:
    """The output notebook the job names is a visible copy next to the notebook, which the
    Jupyter contents API serves with the server's default settings (hidden files refused)."""
    from nbops.runs.store import RunStore

    with server.client() as client:
        r = client.post(server.api("runs"), json={"path": "small.ipynb", "parameters": {"size": 3}})
        assert r.status_code == 202, r.text
        job = poll(client, server, r.json()["job"])
        assert job["status"] == "completed", (job, server.log.read_text()[-3000:])
        relative = job["output_notebook"]
        contents = client.get(f"/api/contents/{relative}", params={"content": 1})
        # The store's own copy is hidden: the same server refuses it.
        stored = f".nbops/runs/{job['run_id']}/output.ipynb"
        hidden = client.get(f"/api/contents/{stored}", params={"content": 0})

    path = Path(relative)
    assert not path.is_absolute()
    assert not any(part.startswith(".") for part in path.parts), relative
    copy = (server.root / path).resolve()
    assert copy.is_relative_to(server.root.resolve())
    assert copy.is_file()
    assert copy.parent == (server.root / "nbops-runs").resolve()
    nb = nbformat.read(copy, as_version=4)
    nbformat.validate(nb)
    # The run's outputs: the `values` cell shows the list built with size=3.
    [values_cell] = [c for c in nb.cells if c.cell_type == "code" and c.source == "values"]
    assert values_cell.outputs[0]["data"]["text/plain"] == "[1, 2, 3]"
    # A copy of the store's notebook, which stays where it was, unchanged.
    record = RunStore(server.root / ".nbops").load(job["run_id"])
    assert record.output_notebook is not None
    original = server.root / ".nbops" / "runs" / job["run_id"] / record.output_notebook
    assert original.read_bytes() == copy.read_bytes()
    assert not [p.name for p in copy.parent.iterdir() if p.name.startswith(".")]  # no temp file

    assert contents.status_code == 200, contents.text
    model = contents.json()
    assert model["type"] == "notebook"
    assert model["path"] == relative
    served = [c for c in model["content"]["cells"] if c["source"] == "values"]
    assert served[0]["outputs"][0]["data"]["text/plain"] == "[1, 2, 3]"
    assert hidden.status_code == 404, hidden.text  # why the copy exists


def test_analysis_of_a_run_output_names_the_run_and_its_source(server: Server) -> None:
    """The published copy of a run's output notebook (papermill's injected-parameters cell,
    `metadata.papermill`) analyses as its source, without a warning about the injected
    cell, and says which run made it and from which notebook."""
    with server.client() as client:
        r = client.post(
            server.api("runs"), json={"path": "small.ipynb", "parameters": {"factor": 2}}
        )
        assert r.status_code == 202, r.text
        job = poll(client, server, r.json()["job"])
        assert job["status"] == "completed", (job, server.log.read_text()[-3000:])
        copy = client.get(server.api("analysis"), params={"path": job["output_notebook"]})
        source = client.get(server.api("analysis"), params={"path": "small.ipynb"})
    assert copy.status_code == 200, copy.text
    body, original = copy.json(), source.json()
    nb = nbformat.read(server.root / job["output_notebook"], as_version=4)
    assert "papermill" in nb.metadata
    [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "factor = 2" in injected.source

    assert body["run_output"] == {"run_id": job["run_id"], "source": "small.ipynb"}
    assert original["run_output"] is None
    assert body["warnings"] == []
    assert body["problems"] == []

    # The same steps, of the same cells (by id: the injected cell moves the later ones down).
    def by_id(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "cells": [c["id"] for c in s["cells"]]} for s in steps]

    assert by_id(body["steps"]) == by_id(original["steps"])
    assert len(body["steps"]) == 4
    # The notebook's defaults, not the run's values; but a secret's default is redacted in
    # the output notebook's parameters cell (one more reason to export the source).
    secret = {**original["parameters"][2], "default": "***"}
    assert body["parameters"] == [*original["parameters"][:2], secret]
    assert body["parameters"][0]["default"] == 3


@pytest.mark.parametrize(
    ("parameters", "words"),
    [({"factor": "many"}, "factor"), ({"nope": 1}, "unknown parameter 'nope'")],
)
def test_a_bad_parameter_is_422_before_any_kernel(
    server: Server, parameters: dict[str, Any], words: str
) -> None:
    with server.client() as client:
        jobs_before = len(client.get(server.api("runs")).json()["jobs"])
        r = client.post(server.api("runs"), json={"path": "small.ipynb", "parameters": parameters})
        jobs_after = len(client.get(server.api("runs")).json()["jobs"])
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["kind"] == "ParameterValueError"
    assert words in error["message"]
    assert jobs_after == jobs_before


def test_bundle_of_an_unknown_run_is_422(server: Server) -> None:
    with server.client() as client:
        r = client.post(server.api("bundle"), json={"path": "small.ipynb", "run_id": "nope"})
        missing = client.post(server.api("bundle"), json={"path": "small.ipynb"})
    assert r.status_code == 422, r.text
    assert error_of(r)["kind"] == "RunNotFoundError"
    assert missing.status_code == 400
    error_of(missing)


# -- in-process pieces -------------------------------------------------------------------


def test_the_export_lock_refuses_a_second_taker() -> None:
    from nbops.labserver.jobs import ExclusiveLock

    lock = ExclusiveLock()
    assert lock.try_acquire()
    assert lock.busy
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(lock.try_acquire()))
    other.start()
    other.join()
    assert got == [False]  # not queued: refused at once
    lock.release()  # released by another thread than the taker's worker: allowed
    assert not lock.busy
    assert lock.try_acquire()
    lock.release()


def test_resolve_in_root(tmp_path: Path) -> None:
    from nbops.labserver.handlers import ApiError, resolve_in_root

    root = (tmp_path / "root").resolve()
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.ipynb").write_text("{}")
    (root / "sub" / "link").symlink_to(tmp_path)
    (root / "inner").symlink_to(root / "sub")
    assert resolve_in_root(root, "sub/../a.ipynb") == root / "a.ipynb"
    assert resolve_in_root(root, "inner/x.ipynb") == root / "sub" / "x.ipynb"
    assert resolve_in_root(root, "a:b.ipynb") == root / "a:b.ipynb"  # a colon is no drive
    for bad, status in [
        ("../secret.ipynb", 403),
        (str(tmp_path / "secret.ipynb"), 403),
        (str(root / "a.ipynb"), 403),  # absolute, even inside: paths are relative
        ("sub/link/secret.ipynb", 403),
        ("\\\\host\\share\\x.ipynb", 403),
        ("", 400),
        (None, 400),
        (3, 400),
        ("a\0b", 400),
    ]:
        with pytest.raises(ApiError) as info:
            resolve_in_root(root, bad)
        assert info.value.status_code == status, bad
        assert info.value.body["fix"]


def test_error_fields_locate_the_cell() -> None:
    from nbops.labserver.jobs import error_fields

    exc = CellSyntaxError(
        "syntax error: '(' was never closed",
        location=CellLocation("/r/nb.ipynb", 3, "abc", 1),
        fix="fix it",
    )
    assert error_fields(exc) == {
        "kind": "CellSyntaxError",
        "message": "syntax error: '(' was never closed",
        "fix": "fix it",
        "cell_index": 2,
        "cell_id": "abc",
        "line": 1,
        "exit_code": 6,
    }
    folder = ParameterValueError("bad", location="/r/out", fix="f")
    assert error_fields(folder, Path("/r"))["message"] == "bad (out)"
    notebook = ParameterValueError("bad", location="/r/nb.ipynb", fix="f")
    assert error_fields(notebook, Path("/r"), Path("/r/nb.ipynb"))["message"] == "bad"


def test_json_safe() -> None:
    from nbops.labserver.handlers import json_safe

    value = {1: (1.5, float("nan")), "s": {2, 1}, "inf": float("inf"), "b": b"x", "p": Path("a")}
    assert json_safe(value) == {
        "1": [1.5, None],
        "s": [1, 2],
        "inf": None,
        "b": "b'x'",
        "p": "a",
    }


def test_run_jobs_report_unexpected_failures() -> None:
    from nbops.labserver.jobs import RunJob, RunJobs

    def boom(job: RunJob) -> None:
        raise RuntimeError("kernel spec missing")

    def fine(job: RunJob) -> None:
        job.run_id, job.status, job.metrics = "r1", "completed", {"m": 1.0}

    jobs = RunJobs(max_parallel=1)
    failing, working = jobs.submit("a.ipynb", boom), jobs.submit("b.ipynb", fine)
    deadline = time.monotonic() + 60
    while not (failing.done and working.done) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failing.to_json()["status"] == "failed"
    assert failing.to_json()["error"]["message"] == "kernel spec missing"
    assert working.to_json()["status"] == "completed"
    assert working.to_json()["metrics"] == {"m": 1.0}
    assert jobs.get(failing.id) is failing
    assert jobs.get("nope") is None


def test_publish_output_notebook(tmp_path: Path) -> None:
    from nbops.labserver.jobs import publish_output_notebook

    root = (tmp_path / "root").resolve()
    (root / "sub").mkdir(parents=True)
    notebook = root / "sub" / "train.ipynb"
    output = root / ".nbops" / "runs" / "20250102-101112-064d2f" / "output.ipynb"
    output.parent.mkdir(parents=True)
    output.write_text('{"cells": []}', encoding="utf-8")

    copy = publish_output_notebook(output, notebook, "20250102-101112-064d2f", root)
    assert copy == root / "sub" / "nbops-runs" / "train-064d2f.ipynb"
    assert copy.read_text(encoding="utf-8") == '{"cells": []}'
    assert output.read_text(encoding="utf-8") == '{"cells": []}'
    # Another run whose id ends the same: the short name is taken, the full id is used.
    other = publish_output_notebook(output, notebook, "20250103-000000-064d2f", root)
    assert other == root / "sub" / "nbops-runs" / "train-20250103-000000-064d2f.ipynb"
    assert copy.is_file()
    assert sorted(p.name for p in copy.parent.iterdir()) == [
        "train-064d2f.ipynb",
        "train-20250103-000000-064d2f.ipynb",
    ]  # no temporary file left

    # No copy (None) when the folder cannot be made, or would lead outside the root.
    (root / "blocked").mkdir()
    (root / "blocked" / "nbops-runs").write_text("a file, not a folder")
    assert publish_output_notebook(output, root / "blocked" / "nb.ipynb", "r-1", root) is None
    (root / "escape").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "escape" / "nbops-runs").symlink_to(tmp_path / "elsewhere")
    assert publish_output_notebook(output, root / "escape" / "nb.ipynb", "r-1", root) is None
    assert not any((tmp_path / "elsewhere").iterdir())


def test_a_run_of_a_copy_is_published_beside_it(tmp_path: Path) -> None:
    from nbops.labserver.jobs import publish_output_notebook

    root = tmp_path.resolve()
    output = root / "output.ipynb"
    output.write_text('{"cells": []}', encoding="utf-8")
    copy_of_a_copy = root / "nbops-runs" / "train-064d2f.ipynb"
    made = publish_output_notebook(output, copy_of_a_copy, "20250104-000000-aaaaaa", root)
    assert made == root / "nbops-runs" / "train-064d2f-aaaaaa.ipynb"


def _stored_run(root: Path, run_id: str, notebook: str) -> Path:
    """A run in the store under `root/.nbops`, as far as find_run_output reads it."""
    from nbops.runs.record import RunRecord
    from nbops.runs.store import RunStore, now

    RunStore(root / ".nbops").save(
        RunRecord(run_id=run_id, notebook=notebook, started_at=now(), status="completed")
    )
    return root / ".nbops" / "runs" / run_id / "output.ipynb"


def _executed_copy(path: Path, papermill: dict[str, Any] | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_code_cell("n = 1")])
    if papermill is not None:
        nb.metadata["papermill"] = papermill
    nbformat.write(nb, path)
    return path


def test_find_run_output(tmp_path: Path) -> None:
    from nbops.labserver.jobs import RunOutput, find_run_output

    root = tmp_path.resolve()
    (root / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    source = build_notebook(root / "train.ipynb", [])
    run_id = "20250102-101112-064d2f"
    output = _stored_run(root, run_id, str(source))
    papermill = {"input_path": str(source), "output_path": str(output)}

    # A source notebook is no run's output, and nothing is created for it.
    other = tmp_path / "elsewhere" / "nb.ipynb"
    _executed_copy(other, None)
    assert find_run_output(source) is None
    assert find_run_output(other) is None
    assert not (other.parent / ".nbops").exists()

    # The published copy: the id from papermill's output path, the source from the record.
    copy = _executed_copy(root / "nbops-runs" / "train-064d2f.ipynb", papermill)
    assert find_run_output(copy) == RunOutput(run_id, source)
    # Without papermill's metadata, the copy's name and the store tell the same.
    bare = _executed_copy(root / "nbops-runs" / "train-20250102-101112-064d2f.ipynb", None)
    assert find_run_output(bare) == RunOutput(run_id, source)
    # A run recorded with a relative path (`nbops run train.ipynb` in the project).
    relative_id = "20250102-121212-0aa0aa"
    _stored_run(root, relative_id, "train.ipynb")
    relative = _executed_copy(root / "nbops-runs" / "train-0aa0aa.ipynb", None)
    assert find_run_output(relative) == RunOutput(relative_id, source)
    # A copy no run matches: no run id, the source found beside the nbops-runs folder.
    unknown = _executed_copy(root / "nbops-runs" / "train-ffffff.ipynb", None)
    assert find_run_output(unknown) == RunOutput(None, source)
    # papermill's own output of some notebook (no nbops run): its input is the source.
    plain = _executed_copy(
        root / "reports" / "out.ipynb",
        {"input_path": str(source), "output_path": str(root / "reports" / "out.ipynb")},
    )
    assert find_run_output(plain) == RunOutput(None, source)
    # A rerun reads the store's copy of the notebook: that is never offered as the source
    # (here the rerun is missing from the store, so its record cannot name the source).
    stored_input = output.parent / "source.ipynb"
    stored_input.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    rerun_output = root / ".nbops" / "runs" / "20250103-000000-bbbbbb" / "output.ipynb"
    rerun = _executed_copy(
        root / "moved" / "rerun.ipynb",
        {"input_path": str(stored_input), "output_path": str(rerun_output)},
    )
    assert find_run_output(rerun) == RunOutput("20250103-000000-bbbbbb", None)
    # An unreadable file in nbops-runs is still a copy; nothing raises.
    broken = root / "nbops-runs" / "train-abc.ipynb"
    broken.write_text("not json", encoding="utf-8")
    assert find_run_output(broken) == RunOutput(None, source)


def test_find_run_output_opens_no_store_outside_the_root(tmp_path: Path) -> None:
    """papermill's metadata may name any folder; opening a store there would write to it."""
    import sqlite3

    from nbops.labserver.jobs import find_run_output

    root = (tmp_path / "root").resolve()
    root.mkdir()
    outside = tmp_path / "outside-store"
    (outside / "runs" / "20250102-101112-064d2f").mkdir(parents=True)
    sqlite3.connect(outside / "runs.db").close()  # an empty database, journal mode "delete"
    before = sorted((p.name, p.read_bytes()) for p in outside.iterdir() if p.is_file())
    output = outside / "runs" / "20250102-101112-064d2f" / "output.ipynb"
    copy = _executed_copy(root / "copy.ipynb", {"output_path": str(output)})

    found = find_run_output(copy, root)
    assert found is not None and found.run_id == "20250102-101112-064d2f"
    assert sorted((p.name, p.read_bytes()) for p in outside.iterdir() if p.is_file()) == before


def test_importing_nbops_does_not_import_jupyter_server() -> None:
    probe = (
        "import json, sys, nbops; "
        "points = nbops._jupyter_server_extension_points(); "
        "print(json.dumps([points, 'jupyter_server' in sys.modules, 'tornado' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[{"module": "nbops.labserver"}], False, False]


def test_unexpected_errors_are_json_without_a_traceback() -> None:
    from nbops.labserver.handlers import ApiError, NbopsHandler

    sent: list[str] = []
    handler = NbopsHandler.__new__(NbopsHandler)  # only write_error is exercised
    handler.set_header = lambda *args: None  # type: ignore[method-assign]
    handler.finish = lambda chunk: sent.append(chunk)  # type: ignore[method-assign, assignment, misc, return-value]
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError as exc:
        handler.write_error(500, exc_info=(type(exc), exc, exc.__traceback__))
    handler.write_error(409, exc_info=(ApiError, ApiError(409, "busy 100%", fix="wait"), None))
    unexpected, busy = (json.loads(s)["error"] for s in sent)
    assert unexpected["kind"] == "InternalError"
    assert "RuntimeError: disk on fire" in unexpected["message"]
    assert "Traceback" not in sent[0]
    assert unexpected["fix"]
    assert busy == {"message": "busy 100%", "fix": "wait", "kind": "Busy"}


# -- suggested tags ----------------------------------------------------------------------

TUTORIAL = [
    ("import pandas as pd\nfrom sklearn.datasets import load_iris", []),
    ("iris = load_iris(as_frame=True)\ndf = iris.frame", []),
    ("df.head()", ["hide-input"]),
    ("y = df.pop('target')\nX = df", []),
    ("from sklearn.tree import DecisionTreeClassifier\ntree = DecisionTreeClassifier()", []),
    ("tree.fit(X, y)", []),
    ("score = tree.score(X, y)", []),
]


def test_suggest_answers_what_the_command_line_prints(server: Server) -> None:
    from nbops.notebook.read import read_notebook
    from nbops.notebook.suggest import suggest_roles

    path = build_notebook(server.root / "tutorial_get.ipynb", TUTORIAL)
    with server.client() as client:
        r = client.get(server.api("suggest"), params={"path": "tutorial_get.ipynb"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = suggest_roles(read_notebook(path)).to_json()
    assert body == {**expected, "notebook": "tutorial_get.ipynb"}
    assert [c["tag"] for c in body["cells"]] == [
        "setup",
        "transform:load",
        None,
        "transform:features",
        "train:tree",
        "train:tree",
        "evaluate:tree",
    ]
    assert body["exports"] is True
    assert (
        nbformat.read(path, as_version=4).cells[0].metadata.get("tags") is None
    )  # GET writes nothing


def test_suggest_post_writes_only_the_accepted_cells(server: Server) -> None:
    path = build_notebook(server.root / "tutorial_post.ipynb", TUTORIAL)
    cell_id = nbformat.read(path, as_version=4).cells[6].id
    with server.client() as client:
        r = client.post(
            server.api("suggest"), json={"path": "tutorial_post.ipynb", "cells": [1, cell_id]}
        )
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 2
    tags = [c.metadata.get("tags") for c in nbformat.read(path, as_version=4).cells]
    assert tags == [None, ["transform:load"], ["hide-input"], None, None, None, ["evaluate:tree"]]


def test_suggest_refuses_bad_requests(server: Server) -> None:
    build_notebook(server.root / "tutorial_bad.ipynb", TUTORIAL)
    with server.client() as client:
        not_list = client.post(
            server.api("suggest"), json={"path": "tutorial_bad.ipynb", "cells": "all"}
        )
        unknown = client.post(
            server.api("suggest"), json={"path": "tutorial_bad.ipynb", "cells": [99]}
        )
        outside = client.get(server.api("suggest"), params={"path": "../outside.ipynb"})
        missing = client.get(server.api("suggest"), params={"path": "nope.ipynb"})
    assert not_list.status_code == 400 and "list of cell indexes" in error_of(not_list)["message"]
    assert unknown.status_code == 400 and "99" in error_of(unknown)["message"]
    assert outside.status_code == 403
    assert missing.status_code == 404
    assert (
        "tags"
        not in nbformat.read(server.root / "tutorial_bad.ipynb", as_version=4).cells[1].metadata
    )
