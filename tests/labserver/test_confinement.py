"""The lab API writes nothing outside the server's root, and answers hostile requests with a
4xx, never a 500, against a real `jupyter server` (started as in test_handlers).

The server's root has no pyproject.toml of its own; its parent has one (a project above the
root, whose store and export folder lie outside). Inside the root, projects whose settings
lead out: `up/` by `../..`, `absolute/` by absolute paths, `linked/` by symlinks under the
default names, `tracked/` by a local MLflow tracking URI outside.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_handlers import SMALL, Server, build_notebook, error_of, poll, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_server.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_events.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets.*"),
]

# The server's own files in its base folder, which it may write (not the nbops API).
JUPYTER_FILES = {"config", "runtime", "data", "server.log"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("confined").resolve()
    root = base / "root"
    root.mkdir()
    (base / "pyproject.toml").write_text(
        '[tool.nbops]\nstore = "above-store"\nexport_dir = "above-pipelines"\n', encoding="utf-8"
    )
    projects = {
        "plain": None,  # no project inside the root: the one above must not be used
        "up": '[tool.nbops]\nstore = "../../up-store"\nexport_dir = "../../up-pipelines"\n',
        "absolute": f'[tool.nbops]\nstore = "{base / "abs-store"}"\n'
        f'export_dir = "{base / "abs-pipelines"}"\n',
        "linked": "[tool.nbops]\n",
        "tracked": f'[tool.nbops]\ntracking = "mlflow"\ntracking_uri = "file://{base / "mlruns"}"\n',
        "inside": '[tool.nbops]\nstore = "../runs-store"\nexport_dir = "/dev/null/x"\n',
    }
    for name, config in projects.items():
        (root / name).mkdir()
        if config is not None:
            (root / name / "pyproject.toml").write_text(config, encoding="utf-8")
        build_notebook(root / name / "nb.ipynb", SMALL)
    # `inside`: a store `..` away that is still inside the root is fine; its export_dir is
    # absolute and outside (only export is refused).
    for link in ("pipelines", ".nbops", "bundles"):
        (base / f"linked-{link}").mkdir()
        (root / "linked" / link).symlink_to(base / f"linked-{link}")
    # `deep`: real folders, with a symlink leading out where nbops writes by name.
    deep = root / "deep"
    deep.mkdir()
    (deep / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    build_notebook(deep / "nb.ipynb", SMALL)
    (deep / ".nbops").mkdir()
    (base / "victim.db").write_bytes(b"not yours")
    (deep / ".nbops" / "runs.db").symlink_to(base / "victim.db")
    (deep / "pipelines").mkdir()
    (base / "deep-export").mkdir()
    (deep / "pipelines" / "nb").symlink_to(base / "deep-export")
    with running_server(base, root) as srv:
        yield srv


def outside_files(server: Server) -> set[str]:
    """Every file and folder beside the root (but the server's own), relative to its parent."""
    base = server.root.parent
    return {
        p.relative_to(base).as_posix()
        for top in base.iterdir()
        if top != server.root and top.name not in JUPYTER_FILES
        for p in [top, *(top.rglob("*") if top.is_dir() and not top.is_symlink() else [])]
    }


@pytest.mark.parametrize(
    ("project", "setting"),
    [("up", "export_dir"), ("absolute", "export_dir"), ("linked", "export_dir"),
     ("deep", "export_dir")],
)  # fmt: skip
def test_an_export_dir_leading_outside_the_root_is_refused(
    server: Server, project: str, setting: str
) -> None:
    before = outside_files(server)
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": f"{project}/nb.ipynb"})
    assert r.status_code == 403, r.text
    error = error_of(r)
    assert error["setting"] == setting
    assert error["file"] == f"{project}/pyproject.toml"
    assert setting in error["message"] and "outside" in error["message"]
    assert f"{project}/pyproject.toml" in error["message"] + error["fix"]
    assert outside_files(server) == before


@pytest.mark.parametrize(
    ("project", "setting"),
    [("up", "store"), ("absolute", "store"), ("linked", "store"), ("tracked", "tracking_uri"),
     ("deep", "store")],
)  # fmt: skip
def test_a_run_whose_store_or_tracking_leads_outside_the_root_is_refused(
    server: Server, project: str, setting: str
) -> None:
    before = outside_files(server)
    with server.client() as client:
        jobs_before = client.get(server.api("runs")).json()["jobs"]
        r = client.post(server.api("runs"), json={"path": f"{project}/nb.ipynb"})
        jobs_after = client.get(server.api("runs")).json()["jobs"]
    assert r.status_code == 403, r.text
    error = error_of(r)
    assert error["setting"] == setting
    assert error["file"] == f"{project}/pyproject.toml"
    assert error["fix"]
    assert jobs_after == jobs_before  # no kernel was started
    assert outside_files(server) == before


@pytest.mark.parametrize(
    ("project", "setting"), [("up", "store"), ("absolute", "store"), ("linked", "store")]
)
def test_a_bundle_of_a_project_writing_outside_the_root_is_refused(
    server: Server, project: str, setting: str
) -> None:
    before = outside_files(server)
    with server.client() as client:
        r = client.post(server.api("bundle"), json={"path": f"{project}/nb.ipynb", "run_id": "x"})
    assert r.status_code == 403, r.text
    assert error_of(r)["setting"] == setting
    assert outside_files(server) == before


def test_a_symlink_leading_out_inside_a_folder_nbops_writes_to_is_named(server: Server) -> None:
    with server.client() as client:
        export = client.post(server.api("export"), json={"path": "deep/nb.ipynb"})
        run = client.post(server.api("runs"), json={"path": "deep/nb.ipynb"})
    assert "deep/pipelines/nb resolves outside through a symlink" in error_of(export)["message"]
    assert "deep/.nbops/runs.db resolves outside" in error_of(run)["message"]
    assert (server.root.parent / "victim.db").read_bytes() == b"not yours"
    assert not any((server.root.parent / "deep-export").iterdir())


def test_a_bundles_folder_linking_outside_the_root_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """The `bundles` folder is no setting but a fixed name: a symlink there is refused too."""
    folder = server.root / "bundling"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    build_notebook(folder / "nb.ipynb", SMALL)
    (folder / "bundles").symlink_to(tmp_path)
    with server.client() as client:
        r = client.post(server.api("bundle"), json={"path": "bundling/nb.ipynb", "run_id": "x"})
    assert r.status_code == 403, r.text
    error = error_of(r)
    assert error["setting"] == "bundles"
    assert "bundles" in error["message"]
    assert not any(tmp_path.iterdir())


def test_settings_inside_the_root_are_accepted_and_only_what_is_written_is_checked(
    server: Server,
) -> None:
    """`inside`: its store (`../runs-store`) stays in the root; its export_dir does not, which
    refuses an export but not the parameters form, which writes nothing."""
    with server.client() as client:
        params = client.get(server.api("parameters"), params={"path": "inside/nb.ipynb"})
        export = client.post(server.api("export"), json={"path": "inside/nb.ipynb"})
        chosen = client.post(
            server.api("export"), json={"path": "inside/nb.ipynb", "out_dir": "inside/out"}
        )
    assert params.status_code == 200, params.text
    assert export.status_code == 403 and error_of(export)["setting"] == "export_dir"
    assert chosen.status_code == 200, chosen.text  # a folder given in the request, in the root
    assert (server.root / "inside" / "out" / "nb" / "nb" / "pipeline.py").is_file()


def test_a_project_above_the_root_is_not_used_for_exports(server: Server) -> None:
    before = outside_files(server)
    with server.client() as client:
        r = client.post(server.api("export"), json={"path": "plain/nb.ipynb"})
    assert r.status_code == 200, r.text
    assert r.json()["folder"] == "plain/pipelines/nb"  # the defaults, in the notebook's folder
    assert (server.root / "plain" / "pipelines" / "nb" / "nb" / "pipeline.py").is_file()
    assert outside_files(server) == before


def test_a_project_above_the_root_is_not_used_for_runs(server: Server) -> None:
    from nbops.runs.store import RunStore

    before = outside_files(server)
    with server.client() as client:
        r = client.post(server.api("runs"), json={"path": "plain/nb.ipynb"})
        assert r.status_code == 202, r.text
        job = poll(client, server, r.json()["job"])
    assert job["status"] == "completed", job
    assert RunStore(server.root / "plain" / ".nbops").load(job["run_id"]).status == "completed"
    assert outside_files(server) == before


# -- hostile requests: a 4xx with a one-line JSON message, never a 500 ------------------------

LONG = "a" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


def endpoints() -> list[tuple[str, str, str]]:
    """(URL path, method, handler name) for every route and method the extension serves,
    enumerated from its own route table, so a new endpoint is covered without listing it; a
    route's URL parameter gets a 5,000-character value."""
    from nbops.labserver.handlers import LabState, handlers

    found = []
    for pattern, cls, _ in handlers("/", LabState(root=Path("/"))):
        url = re.sub(r"\(\?P<\w+>[^)]*\)", LONG, pattern)
        url = url.replace("\\", "").rstrip("$")
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(cls):
                found.append((url, method.upper(), cls.__name__))
    return found


# Endpoints that read neither a path nor a body for this method: they answer as usual.
IGNORES_INPUT = {("VocabularyHandler", "GET"), ("RunsHandler", "GET")}


def assert_refused_in_one_line(r: httpx.Response, what: str) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    error = error_of(r)
    assert "\n" not in error["message"] and len(error["message"]) < 300, (what, error)
    assert error["fix"] or r.status_code in (404, 405), (what, error)
    return error


def test_the_route_table_is_enumerated() -> None:
    names = {name for _, _, name in endpoints()}
    assert {"AnalysisHandler", "ExportHandler", "RunsHandler", "SuggestHandler"} <= names
    assert len(endpoints()) >= 10


@pytest.mark.parametrize(("url", "method", "name"), endpoints())
def test_a_5000_character_path_is_a_4xx_on_every_endpoint(
    server: Server, url: str, method: str, name: str
) -> None:
    with server.client() as client:
        for label, path in [("long name", LONG), ("long path", "d/" * 2500 + "x.ipynb")]:
            if method == "GET":
                r = client.get(url, params={"path": path})
            else:
                r = client.request(method, url, json={"path": path, "out_dir": path, "run_id": "x"})
            if (name, method) in IGNORES_INPUT:
                assert r.status_code == 200, r.text
                continue
            error = assert_refused_in_one_line(r, f"{method} {url[:40]} {label}")
            if r.status_code == 400:
                assert "too long" in error["message"]


@pytest.mark.parametrize(("url", "method", "name"), [e for e in endpoints() if e[1] != "GET"])
def test_a_deeply_nested_body_is_a_4xx_on_every_endpoint(
    server: Server, url: str, method: str, name: str
) -> None:
    nested_parameters = json.dumps(
        {"path": "plain/nb.ipynb", "parameters": {"factor": json.loads("[" * 500 + "]" * 500)}}
    )
    with server.client() as client:
        for label, body in [("100k deep", DEEP), ("500 deep in parameters", nested_parameters)]:
            r = client.request(
                method, url, content=body, headers={"Content-Type": "application/json"}
            )
            error = assert_refused_in_one_line(r, f"{method} {url[:40]} {label}")
            if r.status_code == 400:
                assert "nested" in error["message"]


@pytest.mark.parametrize(("url", "method", "name"), [e for e in endpoints() if e[1] != "GET"])
def test_text_that_is_not_unicode_is_a_4xx_on_every_endpoint(
    server: Server, url: str, method: str, name: str
) -> None:
    bodies = [
        '{"path": "plain/\\ud800.ipynb"}',
        '{"path": "plain/nb.ipynb", "run_id": "\\udfff", "parameters": {"factor": "\\ud800"}}',
    ]
    with server.client() as client:
        for body in bodies:
            r = client.request(
                method, url, content=body, headers={"Content-Type": "application/json"}
            )
            error = assert_refused_in_one_line(r, f"{method} {url[:40]} {body}")
            if r.status_code == 400:
                assert "not valid Unicode" in error["message"]


def test_a_path_that_is_not_utf8_in_the_query_is_a_4xx(server: Server) -> None:
    with server.client() as client:
        for name in ("analysis", "parameters", "suggest"):
            r = client.get(f"{server.api(name)}?path=%ED%A0%80.ipynb")
            assert_refused_in_one_line(r, name)
