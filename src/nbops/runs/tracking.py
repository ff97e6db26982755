"""Tracking backends: where a finished run is logged besides the embedded store.

The embedded SQLite store always holds every run (it is what `nbops runs` reads). A backend
in this registry mirrors each finished run elsewhere; `mlflow` logs it to an MLflow tracking
store (`pip install nbops[mlflow]`) with its params, metrics (with history), tags, the
notebooks and the artifacts; its models in skops format (a model nbops captured as a pickle,
runs/pickled_model.py, is checked and saved with skops for MLflow: no pickle is mirrored).

The model registry (nbops.runs.registry) is mirrored to MLflow's model registry too, when the
project's tracking is MLflow: `mirror_model_version` creates the registered model (once) and
a model version whose source is the bundle (with the run it came from, when that run was
logged to MLflow, and tags `nbops.version`, `nbops.manifest_sha256`); `mirror_alias` points
an MLflow alias at it. A failure there is a StoreError saying the change is in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nbops.config import Project
from nbops.errors import ConfigError, StoreError, require_extra
from nbops.runs.record import RunRecord

if TYPE_CHECKING:
    from nbops.runs.registry import ModelVersion

# Deferred imports: the run store, only to find the MLflow run of a mirrored model version
# (the store imports this module's callers; a top-level import would load it for every run).


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
        if (run_dir / "artifacts").is_dir():
            client.log_artifacts(mlflow_id, str(run_dir / "artifacts"), artifact_path="artifacts")
        _log_models(client, mlflow_id, record, run_dir)
        client.set_terminated(mlflow_id, status=_MLFLOW_STATUS.get(record.status, "FAILED"))
        return {"backend": "mlflow", "uri": self.uri, "run_id": mlflow_id}


def _log_models(client: Any, mlflow_id: str, record: RunRecord, run_dir: Path) -> None:
    """The run's models folder, as skops files only: a model nbops captured as a pickle
    (runs/pickled_model.py) is checked against the record, loaded through the restricted
    unpickler and logged saved with skops, under the name the skops path gives it."""
    import tempfile

    from nbops.runs import pickled_model

    folder = run_dir / "models"
    if not folder.is_dir():
        return
    pickled = {
        str(m.get("path")): m for m in record.models if m.get("format") == pickled_model.FORMAT
    }
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.name.endswith(".tmp"):
            continue
        if file.suffix != ".pkl":
            client.log_artifact(mlflow_id, str(file), artifact_path="models")
            continue
        entry = pickled.get(f"models/{file.name}")
        if entry is None:  # a pickle the record does not name: never mirrored
            continue
        import skops.io

        model = pickled_model.load_verified(file, entry.get("sha256", ""), entry["globals"])
        with tempfile.TemporaryDirectory(prefix="nbops-mlflow-") as scratch:
            converted = Path(scratch) / file.with_suffix(".skops").name
            skops.io.dump(model, converted)
            client.log_artifact(mlflow_id, str(converted), artifact_path="models")


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


# -- the model registry's mirror -------------------------------------------------------------


def _mlflow_client(project: Project) -> Any:
    require_extra("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=MlflowBackend(project).uri)


def _mirror_failed(what: str, exc: Exception) -> StoreError:
    return StoreError(
        f"{what} in the store; mirroring to MLflow failed: {exc}",
        fix="check tracking_uri in [tool.nbops], then promote again (it is idempotent)",
    )


def mirror_model_version(project: Project, mv: ModelVersion) -> str:
    """Create `mv` in MLflow's model registry; returns its MLflow version number."""
    try:
        client = _mlflow_client(project)
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(mv.name)
        except MlflowException:
            client.create_registered_model(mv.name, tags={"nbops": "bundle"})
        mlflow_run = None
        if mv.run_id:
            from nbops.runs.store import RunStore

            try:
                record = RunStore(project.store_dir).load(mv.run_id)
                mlflow_run = (record.tracking or {}).get("run_id")
            except Exception:  # the run is not in this store: no link
                mlflow_run = None
        created = client.create_model_version(
            mv.name,
            source=Path(mv.bundle_path).resolve().as_uri(),
            run_id=mlflow_run,
            tags={"nbops.version": str(mv.version), "nbops.manifest_sha256": mv.manifest_sha256},
            description=f"nbops bundle {mv.name} v{mv.version}",
        )
        return str(created.version)
    except Exception as exc:
        raise _mirror_failed(f"{mv.name} v{mv.version} is registered", exc) from None


def mirror_alias(project: Project, mv: ModelVersion, alias: str) -> None:
    """Point MLflow's alias `alias` of `mv.name` at `mv`'s MLflow version."""
    try:
        client = _mlflow_client(project)
        client.set_registered_model_alias(mv.name, alias, str(mv.mlflow_version))
    except Exception as exc:
        raise _mirror_failed(f"{mv.name} v{mv.version} is {alias}", exc) from None
