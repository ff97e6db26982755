"""The run record: everything nbops knows about one run, as a schema-versioned pydantic model."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal[
    "running", "completed", "failed", "killed", "timeout", "interrupted", "terminated", "abandoned"
]
FINISHED: frozenset[str] = frozenset(
    {"completed", "failed", "killed", "timeout", "interrupted", "terminated", "abandoned"}
)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricPoint(_Record):
    value: float
    step: int | None = None
    ts: float


class ParameterSchema(_Record):
    name: str
    type: str
    default: Any
    description: str = ""
    secret: bool = False


class CellRun(_Record):
    """One code cell of the run: how long it took and what happened. `skipped`: a `skip`
    cell, kept in the output notebook but not executed (see `RunRecord.all_cells`)."""

    index: int = Field(description="position in the source notebook, from 0")
    id: str
    role: str | None = Field(description="the nbops tag, e.g. 'transform:features'")
    duration_s: float | None
    status: Literal["ok", "error", "not run", "skipped"]


class Failure(_Record):
    """Where and how a run failed."""

    cell_index: int | None = None
    cell_id: str | None = None
    role: str | None = None
    ename: str
    evalue: str
    traceback: list[str] = Field(default_factory=list)


class GitInfo(_Record):
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


class RunOwner(_Record):
    """The process that executes a run, so a reader can tell a run in progress from one whose
    process died without recording its end (liveness.py)."""

    pid: int
    host: str
    process_started: float = Field(
        description="the process's start time (seconds since the epoch), which tells it from "
        "a later process given the same pid"
    )
    heartbeat_s: float = Field(
        description="how often the process touches the run folder's `heartbeat` file"
    )


class EnvironmentInfo(_Record):
    python: str
    platform: str
    kernel: str
    packages: dict[str, str]
    variables: dict[str, str] = Field(
        description="environment variables; secret-looking names left out, credentials in values redacted"
    )


class DataSnapshot(BaseModel):
    """The copy of a tracked data set kept in the store (runs/snapshots.py): `kind` "file"
    (the file's bytes, sha256 of them), "parquet" (a frame, sha256 = the frame's fingerprint;
    `file_sha256` of the Parquet bytes), or "dvc" (no copy: DVC's `md5` and `dvc_file`); or
    only `skipped`, the line saying why no copy was kept."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["file", "parquet", "dvc"] | None = None
    sha256: str | None = None
    bytes: int | None = None
    file_sha256: str | None = None
    skipped: str | None = None


class DataFingerprint(BaseModel):
    """A tracked data set: a file (sha256 of its content) or a DataFrame (content hash),
    with the copy kept of it when it was tracked with `snapshot=True`."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: Literal["file", "dataframe"]
    sha256: str
    snapshot: DataSnapshot | None = None


class RunRecord(_Record):
    """One run of a notebook."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.run"] = "nbops.run"
    run_id: str
    mode: Literal["run", "interactive"] = "run"
    notebook: str
    notebook_sha256: str | None = None
    export_version: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_schema: list[ParameterSchema] = Field(default_factory=list)
    logged_params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, list[MetricPoint]] = Field(default_factory=dict)
    data: list[DataFingerprint] = Field(default_factory=list)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    models: list[dict[str, Any]] = Field(default_factory=list)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    quality: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="validation and slice reports captured by nbops.validate / slice_metrics, "
        "by name: {'kind', 'report', 'gate_values'}",
    )
    git: GitInfo = Field(default_factory=GitInfo)
    environment: EnvironmentInfo | None = None
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    cells: list[CellRun] = Field(default_factory=list)
    all_cells: bool = Field(
        default=False, description="whether `skip` cells were executed too (--all-cells)"
    )
    status: RunStatus = "running"
    owner: RunOwner | None = Field(
        default=None, description="the process executing the run (runs by `nbops run`)"
    )
    failure: Failure | None = None
    output_notebook: str | None = Field(default=None, description="relative to the run folder")
    sweep_id: str | None = None
    rerun_of: str | None = None
    tracking: dict[str, Any] = Field(
        default_factory=dict, description="where else the run was logged, e.g. MLflow's run id"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="what the run could not do for the user and why (nbops run prints them)",
    )

    def latest_metrics(self) -> dict[str, float]:
        """Each metric's last logged value."""
        return {name: points[-1].value for name, points in self.metrics.items() if points}

    def gate_values(self) -> dict[str, float]:
        """What gates can name: the metrics, and the `data.*` / `slices.*` values of the
        validation and slice reports captured in the run (the last of each kind wins)."""
        values: dict[str, float] = {}
        for entry in self.quality.values():
            values.update(entry.get("gate_values", {}))
        values.update(self.latest_metrics())
        return values

    def apply_events(self, events: list[dict[str, Any]]) -> None:
        """Fill metrics, params, data, artifacts and models from the run's sidecar events.

        Metrics and models nbops captured itself (events marked `auto`, autocapture.py) are
        kept only where no explicit call logged a metric of that name, or any model."""
        self.metrics, self.logged_params = {}, {}
        self.data, self.artifacts, self.models = [], [], []
        self.quality = {}
        data: dict[str, DataFingerprint] = {}
        explicit = [e for e in events if not e.get("auto")]
        for event in explicit:
            self._apply_readable(event, data)
        logged, has_model = set(self.metrics), bool(self.models)
        for event in events:
            if not event.get("auto"):
                continue
            kind = event.get("kind")
            if (kind == "metric" and event.get("name") not in logged) or (
                kind == "model" and not has_model
            ):
                self._apply_readable(event, data)
        self.data = list(data.values())
        for entry in self.data:  # data not kept for a cap: the run says so
            skipped = entry.snapshot.skipped if entry.snapshot else None
            if skipped and skipped not in self.warnings:
                self.warnings.append(skipped)

    def _apply_readable(self, event: dict[str, Any], data: dict[str, DataFingerprint]) -> None:
        # An event this version cannot read is skipped, not fatal.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self._apply(event, data)

    def _apply(self, event: dict[str, Any], data: dict[str, DataFingerprint]) -> None:
        """Apply one sidecar event (raises for one this version cannot read)."""
        kind = event.get("kind")
        if kind == "metric":
            value = float(event["value"])
            point = MetricPoint(value=value, step=event.get("step"), ts=event["ts"])
            self.metrics.setdefault(event["name"], []).append(point)
        elif kind == "param":
            self.logged_params[event["name"]] = event["value"]
        elif kind == "data":
            fields = {k: v for k, v in event.items() if k not in ("kind", "ts")}
            data[event["name"]] = DataFingerprint.model_validate(fields)
        elif kind == "artifact":
            self.artifacts.append({k: v for k, v in event.items() if k != "kind"})
        elif kind in ("validation", "slices", "gates"):
            self.quality[event["name"]] = {
                "kind": kind,
                "report": event["report"],
                "gate_values": {k: float(v) for k, v in event["gate_values"].items()},
            }
        elif kind == "model":
            self.models.append({k: v for k, v in event.items() if k != "kind"})
