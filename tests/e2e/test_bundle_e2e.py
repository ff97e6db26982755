"""Bundles end to end: a run of the example notebook → nbops bundle → load, predict, serve,
monitor; the served raw record gets the notebook's own prediction for that row."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell

from nbops import errors
from nbops.bundle.load import load_bundle
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests.helpers import EXAMPLES, run_nbops

pytestmark = pytest.mark.slow

PROBE = (
    "raw_rows = penguins.loc[X_test.index]\n"
    "raw_rows.to_json('raw_rows.json', orient='records')\n"
    "import json\n"
    "json.dump([str(p) for p in predictions], open('notebook_predictions.json', 'w'))"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the penguins notebook (plus a cell saving its test rows and its
    predictions), run once and bundled."""
    root = tmp_path_factory.mktemp("bundle-project")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    nb = nbformat.read(EXAMPLES / "penguins.ipynb", as_version=4)
    nb.cells.append(new_code_cell(PROBE))
    nbformat.write(nb, root / "penguins.ipynb")
    result = run_nbops("run", "penguins.ipynb", "-p", "n_estimators", "60", cwd=root)
    assert result.returncode == 0, result.stderr
    built = run_nbops("bundle", "--run", "latest", cwd=root)
    assert built.returncode == 0, built.stderr
    return root


def test_a_bundle_serves_raw_records_as_the_notebook_predicted_them(project: Path) -> None:
    bundle = load_bundle(project / "bundles" / "penguins-v1")
    raw = pd.DataFrame.from_records(json.loads((project / "raw_rows.json").read_text()))
    expected = json.loads((project / "notebook_predictions.json").read_text())
    assert raw.shape[0] == len(expected) > 50
    assert [str(p) for p in bundle.predict(raw)] == expected
    assert "species" not in bundle.request_columns and "year" not in bundle.request_columns


def test_the_manifest_ties_the_model_to_its_run(project: Path) -> None:
    bundle = load_bundle(project / "bundles" / "penguins-v1.tar.gz")
    record = RunStore(project / ".nbops").load("latest")
    manifest = bundle.manifest
    assert manifest.source.run_id == record.run_id
    assert manifest.source.notebook_sha256 == record.notebook_sha256
    assert manifest.source.parameters["n_estimators"] == 60
    assert manifest.source.metrics == record.latest_metrics()
    assert manifest.serving.step == "transform:features"
    registered = Registry(RunStore(project / ".nbops")).get("penguins", 1)  # every build is
    assert (registered.run_id, registered.metrics) == (record.run_id, manifest.source.metrics)
    files = set(manifest.files)
    assert {
        "model.skops",
        "schema.json",
        "requirements.lock",
        "MODEL_CARD.md",
        "Dockerfile",
    } <= files
    assert any(f.startswith("code/") for f in files)
    lock = (project / "bundles" / "penguins-v1" / "requirements.lock").read_text()
    assert "scikit-learn==" in lock and "palmerpenguins==" in lock


def test_nbops_predict_scores_a_file_in_batch(project: Path) -> None:
    pd.read_json(project / "raw_rows.json").to_csv(project / "batch.csv", index=False)
    result = run_nbops(
        "predict", "bundles/penguins-v1", "batch.csv", "-o", "out/predictions.csv", cwd=project
    )
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(project / "out" / "predictions.csv")
    expected = json.loads((project / "notebook_predictions.json").read_text())
    assert scored["prediction"].astype(str).tolist() == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(project: Path) -> Iterator[str]:
    port = _free_port()
    log = open(project / "serve.log", "wb")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "serve", "bundles/penguins-v1", "--port", str(port),
         "--log-sample", "1", "--log-path", "requests.jsonl"],
        cwd=project, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # A loaded 2-core machine can take long to import the server's libraries: wait on the
    # condition (healthy, or the process gone), with a generous bound.
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(
                f"nbops serve did not answer /health (exit code {proc.poll()}): "
                + (project / "serve.log").read_text()
            )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_the_served_bundle_predicts_and_refuses_bad_fields(project: Path, server: str) -> None:
    raw = json.loads((project / "raw_rows.json").read_text())
    bundle = load_bundle(project / "bundles" / "penguins-v1")
    records = [{k: r[k] for k in bundle.request_columns} for r in raw[:20]]
    expected = json.loads((project / "notebook_predictions.json").read_text())[:20]

    answer = httpx.post(f"{server}/predict", json={"records": records}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [str(p) for p in answer.json()["predictions"]] == expected

    bad = dict(records[0], bill_length_mm="long")
    refused = httpx.post(f"{server}/predict", json={"records": [bad]}, timeout=10)
    assert refused.status_code == 422
    assert "bill_length_mm" in refused.text
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200
    assert httpx.get(f"{server}/metadata", timeout=5).json()["name"] == "penguins"
    assert "nbops_requests_total" in httpx.get(f"{server}/metrics", timeout=5).text

    logged = [json.loads(line) for line in (project / "requests.jsonl").read_text().splitlines()]
    assert sum(len(entry["records"]) for entry in logged) >= 20
    watched = run_nbops("monitor", "bundles/penguins-v1", "--log", "requests.jsonl", cwd=project)
    assert watched.returncode == 0, watched.stdout + watched.stderr


def test_monitor_passes_on_training_like_data_and_alerts_on_shifted_data(project: Path) -> None:
    raw = pd.read_json(project / "raw_rows.json")
    raw.to_csv(project / "recent.csv", index=False)
    calm = run_nbops("monitor", "bundles/penguins-v1", "--data", "recent.csv", cwd=project)
    assert calm.returncode == 0, calm.stdout + calm.stderr

    shifted = raw.copy()
    shifted["bill_length_mm"] = shifted["bill_length_mm"] + 12
    shifted["island"] = "Biscoe"
    shifted.to_csv(project / "shifted.csv", index=False)
    alarm = run_nbops(
        "monitor", "bundles/penguins-v1", "--data", "shifted.csv", "--html", "m.html", cwd=project
    )
    assert alarm.returncode == errors.MonitorAlertError.exit_code, alarm.stdout
    assert "alert" in alarm.stderr and (project / "m.html").exists()


def test_a_failed_gate_blocks_bundling_unless_overridden(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "gated"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns(".nbops", "bundles", "pipelines"))
    failing = run_nbops("ci", "penguins.ipynb", "--gate", "accuracy > 1", cwd=root)
    assert failing.returncode == errors.GateFailedError.exit_code

    blocked = run_nbops("bundle", "--run", "latest", cwd=root)
    assert blocked.returncode == errors.BundleError.exit_code
    assert "accuracy > 1" in blocked.stderr and "--override" in blocked.stderr

    forced = run_nbops("bundle", "--run", "latest", "--override", cwd=root)
    assert forced.returncode == 0, forced.stderr
    manifest = load_bundle(root / "bundles" / "penguins-v1").manifest
    assert manifest.override.applied and manifest.override.failed_gates == ["accuracy > 1"]


def test_a_bundle_signed_as_it_is_built_serves_only_against_its_key(
    project: Path, tmp_path: Path
) -> None:
    assert run_nbops("keygen", str(tmp_path / "ops.key"), cwd=project).returncode == 0
    built = run_nbops("bundle", "--run", "latest", "--sign", str(tmp_path / "ops.key"), cwd=project)
    assert built.returncode == 0, built.stderr
    line = next(x for x in built.stdout.splitlines() if x.startswith("Bundle "))
    folder = project / line.split()[1]  # bundles/penguins-vN (a new version of the same run)
    pd.read_json(project / "raw_rows.json").head(5).to_csv(tmp_path / "b.csv", index=False)
    assert "Signed with ed25519:" in built.stdout
    for target in (folder, folder.with_name(folder.name + ".tar.gz")):
        scored = run_nbops(
            "predict", str(target), str(tmp_path / "b.csv"), "-o", str(tmp_path / "p.csv"),
            "--require-signature", "--trusted-key", str(tmp_path / "ops.pub"), cwd=project,
        )  # fmt: skip
        assert scored.returncode == 0 and "warning" not in scored.stderr, scored.stderr
    unsigned = run_nbops(
        "predict", "bundles/penguins-v1", str(tmp_path / "b.csv"), "--require-signature",
        "-o", str(tmp_path / "p.csv"), cwd=project,
    )  # fmt: skip
    assert unsigned.returncode == errors.BundleSignatureError.exit_code, unsigned.stderr
