"""The registry's command line: `nbops promote`, `rollback`, `registry list|history`, and what
each refuses (one line, exit 41), through the real CLI in a subprocess."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sklearn.base import clone

from nbops.bundle.registration import promote
from nbops.errors import RegistryError, StoreError
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests.bundle.conftest import Built, rows
from tests.helpers import run_nbops


@pytest.fixture(scope="module")
def prepared(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two bundles, built once for the module (each test works on its own copy)."""
    root = tmp_path_factory.mktemp("registry-project")
    out = root / "bundles"
    built.build(out)
    other = clone(built.model).set_params(clf__C=0.01).fit(built.features, built.raw["label"])
    built.build(out, model=other, metrics={"accuracy": 0.91})
    return out


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    """A project folder with bundles/tiny-v1 and tiny-v2 (another C), nothing registered."""
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    shutil.copytree(prepared, tmp_path / "bundles")
    return tmp_path


def promoted(project: Path, bundle: str, alias: str, reason: str | None = None) -> None:
    """Set-up in process (the CLI's own path is what the tests exercise)."""
    registry = Registry(RunStore(project / ".nbops"))
    promote(project / "bundles" / bundle, alias, reason=reason, registry=registry)


def nbops(project: Path, *args: str) -> str:
    done = run_nbops(*args, cwd=project)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_promote_registers_the_bundle_and_moves_the_alias_with_who_and_why(
    project: Path,
) -> None:
    first = nbops(project, "promote", "bundles/tiny-v1", "--alias", "production", "--reason", "go")
    second = nbops(project, "promote", "bundles/tiny-v2", "--alias", "production")
    again = nbops(project, "promote", "tiny@2", "--alias", "production")

    assert first.strip() == "tiny@production: none -> v1"
    assert second.strip() == "tiny@production: v1 -> v2"
    assert again.strip() == "tiny@production is already v2"
    listed = json.loads(nbops(project, "registry", "list", "tiny", "--json"))
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, []), (2, ["production"])]
    assert listed[1]["metrics"] == {"accuracy": 0.91}
    assert listed[1]["bundle_path"] == str((project / "bundles" / "tiny-v2").resolve())
    history = json.loads(
        nbops(project, "registry", "history", "tiny", "--alias", "production", "--json")
    )
    assert [(e["version"], e["previous"], e["reason"]) for e in history] == [
        (1, None, "go"),
        (2, 1, None),
    ]
    assert all("@" in e["who"] for e in history)  # user@host
    text = nbops(project, "registry", "history", "tiny", "--alias", "production").splitlines()
    assert text[0] == "History of tiny"
    assert "promote  tiny@production none -> v1  by " in text[1] and text[2] == "    go"
    assert "promote  tiny@production v1 -> v2  by " in text[3] and len(text) == 4


def test_rollback_moves_the_alias_back_and_then_has_no_previous_holder(project: Path) -> None:
    promoted(project, "tiny-v1", "staging")
    promoted(project, "tiny-v2", "staging")

    back = nbops(project, "rollback", "tiny", "--alias", "staging", "--reason", "alerts")
    again = run_nbops("rollback", "tiny", "--alias", "staging", cwd=project)

    assert back.strip() == "tiny@staging: v2 -> v1"
    assert again.returncode == RegistryError.exit_code
    assert again.stderr.strip() == (
        "nbops: error: staging of tiny has no previous holder (v1 is the first); promote the "
        "version you want instead (see `nbops registry list`)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "ghost@1", "--alias", "production"], "no model 'ghost' in the registry"),
        (["promote", "tiny@9", "--alias", "production"], "tiny has no version 9"),
        (["promote", "tiny@canary", "--alias", "production"], "tiny has no alias 'canary'"),
        (["promote", "tiny@1", "--alias", "Prod"], "'Prod' is not an alias name"),
        (["rollback", "tiny", "--alias", "canary"], "tiny has no alias 'canary'"),
        (["registry", "history", "ghost"], "no model 'ghost' in the registry"),
        (["serve", "tiny@canary"], "tiny has no alias 'canary'"),
    ],
    ids=["model", "version", "alias", "alias-name", "rollback-unset", "history", "serve"],
)
def test_what_the_registry_cannot_do_is_one_line_and_exit_41(
    project: Path, args: list[str], message: str
) -> None:
    promoted(project, "tiny-v1", "production")

    done = run_nbops(*args, cwd=project)

    assert done.returncode == RegistryError.exit_code, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_registered_version_whose_bundle_changed_on_disk_is_refused(project: Path) -> None:
    promoted(project, "tiny-v1", "production")
    manifest = project / "bundles" / "tiny-v1" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"accuracy": 0.9', '"accuracy": 0.99'))

    done = run_nbops("promote", "tiny@1", "--alias", "staging", cwd=project)

    assert done.returncode == RegistryError.exit_code
    assert (
        "tiny v1: the bundle at" in done.stderr and "differs from the one registered" in done.stderr
    )
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_registry_survives_a_zeroed_runs_db_through_runs_repair(project: Path) -> None:
    promoted(project, "tiny-v1", "production", "first")
    promoted(project, "tiny-v2", "production", "second")
    before = [
        nbops(project, "registry", "list", "--json"),
        nbops(project, "registry", "history", "tiny", "--json"),
    ]
    (project / ".nbops" / "runs.db").write_bytes(b"")

    refused = run_nbops("registry", "list", cwd=project)
    repaired = nbops(project, "runs", "repair")

    assert refused.returncode == StoreError.exit_code and "nbops runs repair" in refused.stderr
    assert "4 registry events" in repaired
    after = [
        nbops(project, "registry", "list", "--json"),
        nbops(project, "registry", "history", "tiny", "--json"),
    ]
    assert after == before


@pytest.mark.slow
def test_nbops_serve_an_alias_answers_with_the_version_holding_it(
    project: Path, built: Built
) -> None:
    promoted(project, "tiny-v1", "production")
    promoted(project, "tiny-v2", "production")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(project / "serve.log", "wb")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "serve", "tiny@production", "--port", str(port)],
        cwd=project, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (project / "serve.log").read_text()
            assert time.monotonic() < deadline, "nbops serve did not answer /health"
            try:
                health = httpx.get(f"{url}/health", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(
            f"{url}/predict", json={"records": rows(built.requests.head(2))}, timeout=30
        )
        metadata = httpx.get(f"{url}/metadata", timeout=30).json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    assert (health["ref"], health["version"], health["swap"]) == ("tiny@production", "2", None)
    assert answer.json()["version"] == "2"
    assert answer.headers["x-nbops-model-version"] == "2"
    assert metadata["served"]["ref"] == "tiny@production" and metadata["version"] == 2
    assert "Serving tiny@production (v2)" in (project / "serve.log").read_text()
