"""`manifest.json` of an exported package: what was exported, from what, and where it went."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CellSpan(_Record):
    """Where a notebook cell's code landed: file and lines (from 1) in the package."""

    index: int = Field(description="position in the notebook, from 0 (nbformat's list index)")
    id: str
    file: str
    first_line: int
    last_line: int


class StepInputEntry(_Record):
    name: str
    source: Literal["parameter", "step", "setup"]
    step: str | None = None


class StepEntry(_Record):
    key: str = Field(description="the step tag: 'transform:features' or 'train'")
    role: str
    function: str = Field(description="'module:function' inside the package")
    cells: list[CellSpan]
    inputs: list[StepInputEntry]
    outputs: list[str]


class MetricEntry(_Record):
    """One metric the package reports and `nbops run` records (notebook/metrics.py's rule)."""

    name: str = Field(description="as reported: 'accuracy', or 'knn.accuracy' per step")
    step: str = Field(description="the key of the step that computes it")
    value: str = Field(description="the value of that step it is read from")
    expression: str | None = Field(
        default=None, description="for a cell's kept last expression: its source text"
    )
    cell: int | None = Field(default=None, description="that cell's index, from 0")


class ParameterEntry(_Record):
    name: str
    type: str
    default: Any = Field(description="the notebook's default; null for a secret parameter")
    description: str = ""
    secret: bool = Field(
        default=False, description="a secret: its default is not kept, `env` gives its value"
    )
    env: str | None = Field(
        default=None, description="for a secret: the environment variable `Params` reads"
    )


class ArtifactEntry(_Record):
    """How a value a step returns travels on an orchestrator (see artifact_io)."""

    codec: str = Field(description="parquet, parquet-series, npy, json or skops")
    type: str = Field(description="the value's type when the export ran the pipeline")
    trusted: list[str] = Field(default=[], description="skops: the types a loader trusts")


class SourceEntry(_Record):
    path: str = Field(description="the notebook, relative to the export folder")
    sha256: str
    format: str
    kernel: str
    data_dir: str | None = Field(
        default=None,
        description="the folder `run()` reads relative paths from (the notebook's), relative "
        "to the export folder; $NBOPS_DATA_DIR overrides it",
    )


class ExportManifest(_Record):
    """Schema-versioned record of one export; `files` maps each file to its sha256."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.export"] = "nbops.export"
    name: str
    version: int
    content_hash: str = Field(description="sha256 of the generated code, version left out")
    nbops_version: str
    source: SourceEntry
    parameters: list[ParameterEntry]
    setup_cells: list[CellSpan]
    steps: list[StepEntry]
    metrics_from: list[str] = Field(description="the step values metrics are read from")
    metrics: list[MetricEntry] = Field(
        default=[], description="each metric: its name, step and value (what a run records)"
    )
    requirements: list[str] = Field(description="top-level modules the generated code imports")
    local_modules: list[str] = Field(
        default=[], description="modules from the notebook's folder copied to NAME/_local/"
    )
    files: dict[str, str]
    targets: list[str] = Field(default=[], description="orchestrators exported for: kfp, airflow")
    artifacts: dict[str, ArtifactEntry] = Field(
        default={}, description="with targets: how each value a step returns is passed on"
    )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
