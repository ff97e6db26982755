"""The registry mirrored to MLflow's model registry (a local SQLite MLflow store, no server):
versions are created there, and the MLflow alias follows promote and rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.base import clone

from nbops.bundle.registration import promote, rollback
from nbops.config import load_project
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore
from tests.bundle.conftest import Built

mlflow = pytest.importorskip("mlflow")


def test_the_mlflow_alias_follows_promote_and_rollback(built: Built, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "pyproject.toml").write_text(f'[tool.nbops]\ntracking_uri = "{uri}"\n')
    project = load_project(tmp_path)
    registry = Registry(RunStore(project.store_dir))
    v1 = built.build(tmp_path / "bundles")
    other = clone(built.model).set_params(clf__C=0.01).fit(built.features, built.raw["label"])
    v2 = built.build(tmp_path / "bundles", model=other)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)

    def in_production() -> tuple[str, str]:
        found = client.get_model_version_by_alias("tiny", "production")
        return str(found.version), found.tags["nbops.version"]

    promote(v1, "production", registry=registry, project=project)
    after_first = in_production()
    promote(v2, "production", registry=registry, project=project)
    after_second = in_production()
    rollback("tiny", "production", registry=registry, project=project)

    assert after_first == ("1", "1")
    assert after_second == ("2", "2")
    assert in_production() == ("1", "1")
    mirrored = {v.version: v.mlflow_version for v in registry.versions("tiny")}
    assert mirrored == {1: "1", 2: "2"}
    version = client.get_model_version("tiny", "2")
    assert version.source == v2.resolve().as_uri()
    assert version.tags["nbops.manifest_sha256"] == registry.get("tiny", 2).manifest_sha256
