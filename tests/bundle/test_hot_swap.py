"""`nbops serve NAME@ALIAS` follows the alias: a newly promoted bundle is loaded, verified and
probed, then swapped in without dropping a request; a bundle that fails any step is not, and
/health says why. Real uvicorn on loopback, real subprocess `nbops promote` / `rollback`."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.base import clone

from nbops.bundle.keys import generate_keypair
from nbops.bundle.load import load_bundle
from nbops.bundle.registration import promote, register_bundle
from nbops.bundle.serve.app import create_app, create_registry_app
from nbops.bundle.signing import sign_bundle
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests.bundle.conftest import Built, rows
from tests.helpers import run_nbops, running

TIMEOUT = 120.0  # generous: 2 cores shared by several test processes


@dataclass
class Project:
    root: Path
    v1: Path
    v2: Path

    @property
    def store(self) -> Path:
        return self.root / ".nbops"

    def registry(self) -> Registry:
        return Registry(RunStore(self.store))


@pytest.fixture(scope="module")
def prepared(built: Built, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The two bundles, built once for the module (each test works on its own copy): the
    folder holding them and their names."""
    out = tmp_path_factory.mktemp("hot-swap-project") / "bundles"
    v1 = built.build(out)
    other = clone(built.model).set_params(clf__C=0.01).fit(built.features, built.raw["label"])
    v2 = built.build(out, model=other, metrics={"accuracy": 0.91})
    return out, v1.name, v2.name


@pytest.fixture
def project(prepared: tuple[Path, str, str], tmp_path: Path) -> Project:
    """A project with tiny v1 (the fixture's model) and v2 (another C), v1 in production."""
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    prepared_out, v1_name, v2_name = prepared
    out = tmp_path / "bundles"
    shutil.copytree(prepared_out, out)
    p = Project(tmp_path, out / v1_name, out / v2_name)
    promote(p.v1, "production", reason="first deploy", registry=p.registry())
    return p


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def health(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/health", timeout=30).json()  # type: ignore[no-any-return]


@dataclass
class Client:
    """A client posting one record at a time on a keep-alive connection until stopped."""

    base: str
    body: bytes
    stop: threading.Event
    answers: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, v)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/predict", content=self.body, headers=headers)
                except httpx.HTTPError as e:
                    self.errors.append(repr(e))
                    continue
                version = r.json().get("version", "") if r.status_code == 200 else ""
                self.answers.append((time.time(), r.status_code, version))

    def seen(self, version: str) -> int:
        return sum(1 for _, _, v in self.answers if v == version)


def test_a_promotion_swaps_the_served_version_without_losing_a_request(
    project: Project, built: Built
) -> None:
    app = create_registry_app("tiny@production", store_dir=project.store, poll=0.2)
    body = json.dumps({"records": rows(built.requests.head(1))}).encode()
    stop = threading.Event()
    with running(app) as base:
        clients = [Client(base, body, stop) for _ in range(8)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: all(c.seen("1") >= 3 for c in clients), "every client on v1")
            promoted = run_nbops(
                "promote", str(project.v2), "--alias", "production", "--reason", "swap test",
                cwd=project.root,
            )  # fmt: skip
            promote_exit = time.time()
            assert promoted.returncode == 0, promoted.stderr
            assert promoted.stdout.strip() == "tiny@production: v1 -> v2"
            wait_for(lambda: all(c.seen("2") >= 20 for c in clients), "every client on v2")
        finally:
            stop.set()
            for t in threads:
                t.join(TIMEOUT)
        served = health(base)
        metadata = httpx.get(f"{base}/metadata", timeout=30).json()

    answers = [a for c in clients for a in c.answers]
    assert [c.errors for c in clients] == [[]] * 8
    assert {status for _, status, _ in answers} == {200}
    for c in clients:  # v1 ... v1 v2 ... v2: never back to the old model
        versions = [v for _, _, v in c.answers]
        first_v2 = versions.index("2")
        assert set(versions[:first_v2]) == {"1"} and set(versions[first_v2:]) == {"2"}
    assert served["version"] == "2" and served["swap"]["status"] == "ok"
    assert metadata["version"] == 2 and metadata["served"]["swaps"] == 1
    first_v2_answer = min(t for t, _, v in answers if v == "2")
    [promoted_event] = [
        e for e in project.registry().history("tiny") if e.action == "promote" and e.version == 2
    ]
    recorded = datetime.fromisoformat(promoted_event.at).timestamp()
    assert first_v2_answer > recorded  # no v2 answer before the alias moved
    print(
        f"\nhot swap: {len(answers)} requests from 8 clients, 0 lost; promotion recorded -> "
        f"first v2 answer {first_v2_answer - recorded:.3f} s (promote process exit -> first v2 "
        f"answer {first_v2_answer - promote_exit:+.3f} s); load+verify+probe "
        f"(last_swap_seconds) {metadata['served']['last_swap_seconds']} s"
    )


def test_a_promoted_bundle_with_a_changed_file_is_not_swapped_in(project: Project) -> None:
    registry = project.registry()
    register_bundle(project.v2, registry)
    model_file = project.v2 / "model.skops"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    app = create_registry_app("tiny@production", store_dir=project.store, poll=0.1)
    with running(app) as base:
        registry.set_alias("tiny", "production", 2, reason="moved by hand")

        failed = wait_for(lambda: (h := health(base))["swap"] and h, "the failed swap")

        answer = httpx.post(
            f"{base}/predict", json={"records": [{"a": 0.1, "b": 1.5, "c": "x"}]}, timeout=30
        )
    assert failed["status"] == "ok" and failed["version"] == "1"
    assert failed["swap"]["status"] == "failed" and failed["swap"]["version"] == 2
    assert "model.skops" in failed["swap"]["reason"]
    assert answer.status_code == 200 and answer.json()["version"] == "1"


def test_an_unsigned_bundle_is_not_swapped_in_when_signatures_are_required(
    project: Project, tmp_path: Path
) -> None:
    pair = generate_keypair(tmp_path / "ops.key")
    sign_bundle(project.v1, pair.private_path)
    registry = project.registry()
    trust = {"trusted_keys": [pair.public_path], "require_signature": True}
    # the signature changed v1's files: register the signed v1 as v1 again is refused, so
    # start from a fresh store
    app_store = tmp_path / "signed-store"
    signed = Registry(RunStore(app_store))
    promote(project.v1, "production", registry=signed, trust=trust)
    register_bundle(project.v2, signed)  # unsigned, registered without a policy
    app = create_registry_app("tiny@production", store_dir=app_store, trust=trust, poll=0.1)
    with running(app) as base:
        signed.set_alias("tiny", "production", 2)

        failed = wait_for(lambda: (h := health(base))["swap"] and h, "the refused swap")
    assert failed["version"] == "1" and failed["signature"]["status"] == "verified"
    assert failed["swap"]["status"] == "failed"
    assert "not signed" in failed["swap"]["reason"]
    del registry


def test_a_rollback_swaps_the_previous_version_back(project: Project) -> None:
    promote(project.v2, "production", reason="v2", registry=project.registry())
    app = create_registry_app("tiny@production", store_dir=project.store, poll=0.1)
    with running(app) as base:
        assert health(base)["version"] == "2"
        done = run_nbops(
            "rollback", "tiny", "--alias", "production", "--reason", "alerts", cwd=project.root
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "tiny@production: v2 -> v1"

        back = wait_for(lambda: (h := health(base))["version"] == "1" and h, "v1 back")
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert back["swap"] == {**back["swap"], "status": "ok", "version": 1, "previous": 2}
    assert 'nbops_swaps_total{outcome="ok"} 1' in metrics
    assert "nbops_model_version 1" in metrics


def test_request_log_lines_carry_the_answering_version_and_the_key_columns(
    built: Built, tmp_path: Path
) -> None:
    keyed = built.raw.assign(id=[f"r{i}" for i in range(len(built.raw))])
    log = tmp_path / "requests.jsonl"
    app = create_app(load_bundle(built.folder), log_sample=1.0, log_path=log, log_keys=["id"])
    records = rows(keyed.drop(columns=["label"]).head(3))
    with running(app) as base:
        answer = httpx.post(f"{base}/predict", json={"records": records}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-nbops-model-version"] == "1"
        line = wait_for(lambda: log.exists() and log.read_text().strip(), "the log line")

    entry = json.loads(line)
    assert entry["version"] == "1" and entry["model"] == "tiny"
    assert entry["keys"] == {"id": ["r0", "r1", "r2"]}
    assert all("id" not in r for r in entry["records"])  # never given to the model
