"""Tracking backends: where a finished run is logged besides the embedded store.

The embedded SQLite store always holds every run (it is what `nbops runs` reads). A backend
in this registry mirrors each finished run elsewhere; `mlflow` logs it to an MLflow tracking
store (`pip install nbops[mlflow]`) with its params, metrics (with history), tags, the
notebooks and the artifacts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from nbops.config import Project
from nbops.errors import ConfigError, StoreError, require_extra
from nbops.runs.record import RunRecord


class TrackingBackend(Protocol):
    def log_run(self, record: RunRecord, run_dir: Path) -> dict[str, Any]:
        """Log a finished run; returns what identifies it there (kept in record.tracking)."""
        ...


_MLFLOW_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "killed": "FAILED"}


class MlflowBackend:
    """Logs runs with MlflowClient to `tracking_uri` (default: SQLite in the store folder)."""

    def __init__(self, project: Project) -> None:
        require_extra("mlflow", "mlflow")
        store = project.store_dir.resolve()
        self.uri = project.config.tracking_uri or f"sqlite:///{store / 'mlflow.db'}"
        self.artifact_root = (store / "mlflow-artifacts").as_uri()

    def log_run(self, record: RunRecord, run_dir: Path) -> dict[str, Any]:
        import mlflow.entities as entities
        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow", "alembic"):  # schema migrations log at INFO on first use
            logging.getLogger(noisy).setLevel(logging.WARNING)

        client = MlflowClient(tracking_uri=self.uri)
        name = Path(record.notebook).stem or "notebook"
        experiment = client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment(name, artifact_location=f"{self.artifact_root}/{name}")
        )
        tags = {
            "nbops.run_id": record.run_id,
            "nbops.notebook": record.notebook,
            "nbops.notebook_sha256": record.notebook_sha256 or "",
            "nbops.status": record.status,
            "mlflow.source.name": record.notebook,
            "mlflow.source.git.commit": record.git.commit or "",
        }
        if record.environment:
            tags["nbops.kernel"] = record.environment.kernel
            tags["nbops.python"] = record.environment.python
        run = client.create_run(experiment_id, run_name=record.run_id, tags=tags)
        mlflow_id = run.info.run_id
        params = [
            entities.Param(k, str(v)[:6000])
            for k, v in {**record.parameters, **record.logged_params}.items()
        ]
        metrics = [
            entities.Metric(name, p.value, int(p.ts * 1000), p.step or 0)
            for name, points in record.metrics.items()
            for p in points
        ]
        client.log_batch(mlflow_id, metrics=metrics, params=params)
        for file in sorted(run_dir.iterdir()):  # both notebooks, record, events, kernel log
            if file.is_file() and not file.name.endswith(".tmp"):
                client.log_artifact(mlflow_id, str(file))
        for sub in ("artifacts", "models"):
            if (run_dir / sub).is_dir():
                client.log_artifacts(mlflow_id, str(run_dir / sub), artifact_path=sub)
        client.set_terminated(mlflow_id, status=_MLFLOW_STATUS.get(record.status, "FAILED"))
        return {"backend": "mlflow", "uri": self.uri, "run_id": mlflow_id}


BACKENDS: dict[str, Callable[[Project], TrackingBackend]] = {"mlflow": MlflowBackend}


def make_tracker(backend: str, project: Project) -> TrackingBackend | None:
    """The backend named (None for the embedded store alone); raises ConfigError for an
    unknown name and MissingExtraError when its packages are missing."""
    if backend == "sqlite":
        return None
    if backend not in BACKENDS:
        known = ", ".join(["sqlite", *BACKENDS])
        raise ConfigError(f"unknown tracking backend {backend!r}", fix=f"use one of: {known}")
    return BACKENDS[backend](project)


def mirror_run(record: RunRecord, run_dir: Path, tracker: TrackingBackend, backend: str) -> None:
    """Log a finished run to a backend; a failure there is a StoreError (the run stays in
    the embedded store)."""
    try:
        record.tracking = tracker.log_run(record, run_dir)
    except Exception as exc:
        raise StoreError(
            f"run {record.run_id} is recorded, but logging it to {backend} failed: {exc}",
            fix="check tracking_uri in [tool.nbops]",
        ) from None
