"""`[tool.nbops]` in the project's pyproject.toml, read into a pydantic model.

[tool.nbops]
store = ".nbops"                 # run store: SQLite database and artifacts folder
tracking = "sqlite"              # or "mlflow" (pip install nbops[mlflow])
tracking_uri = "file:./mlruns"   # where MLflow logs, when tracking = "mlflow"
gates = ["accuracy >= 0.9"]      # checked by `nbops ci`
baseline = "RUN_ID"              # the run `baseline.NAME` in gates refers to
secret_params = ["api_token"]    # secret parameters: redacted from runs, defaults kept out of exports
base_image = "python:3.11-slim"  # `nbops export --target kfp`: the image of every component
trusted_keys = ["keys/release.pub"]  # public keys whose bundle signatures are trusted
require_signature = true         # serve/predict/monitor refuse unsigned or badly signed bundles

[tool.nbops.steps."transform:features"]   # resources of one step on an orchestrator
cpu_limit = "2"
memory_limit = "4G"
retries = 2
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbops._paths import find_root
from nbops.errors import ConfigError


class StepResources(BaseModel):
    """What one exported step asks of an orchestrator (`[tool.nbops.steps.NAME]`)."""

    model_config = ConfigDict(extra="forbid")

    cpu_request: str | None = Field(default=None, description='e.g. "500m" or "2"')
    cpu_limit: str | None = None
    memory_request: str | None = Field(default=None, description='e.g. "512M" or "4G"')
    memory_limit: str | None = None
    accelerator_type: str | None = Field(default=None, description='e.g. "nvidia.com/gpu"')
    accelerator_limit: int | None = Field(default=None, ge=1)
    retries: int | None = Field(default=None, ge=0)
    caching: bool | None = None


class NbopsConfig(BaseModel):
    """The project's nbops settings; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    store: str = ".nbops"
    tracking: Literal["sqlite", "mlflow"] = "sqlite"
    tracking_uri: str | None = None
    gates: list[str] = Field(default_factory=list)
    baseline: str | None = None
    export_dir: str = "pipelines"
    secret_params: list[str] = Field(default_factory=list)
    scheduler: str | None = None
    base_image: str | None = None
    steps: dict[str, StepResources] = Field(default_factory=dict)
    trusted_keys: list[str] = Field(
        default_factory=list, description="public key files (relative to the project root)"
    )
    require_signature: bool = False
    snapshot_data: bool = False
    snapshot_max_bytes: int = Field(default=1 << 30, ge=0)
    data_store_max_bytes: int = Field(default=20 << 30, ge=0)
    promote_gates: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Project:
    """Where the project is (its root folder) and its settings."""

    root: Path
    config: NbopsConfig

    @property
    def store_dir(self) -> Path:
        return self.root / self.config.store

    @property
    def trusted_key_paths(self) -> list[Path]:
        """`trusted_keys`, relative paths taken from the project root."""
        return [self.root / Path(k).expanduser() for k in self.config.trusted_keys]

    @property
    def tracking(self) -> str:
        """The tracking backend: as set, or MLflow when only a tracking_uri is given."""
        fields = self.config.model_fields_set
        if "tracking" not in fields and self.config.tracking_uri:
            return "mlflow"
        return self.config.tracking


def load_project(start: Path | None = None, *, stop: Path | None = None) -> Project:
    """The project around `start` (default: the working directory), looked for no higher
    than `stop` when given (see find_root).

    Raises ConfigError naming the field when `[tool.nbops]` is invalid.
    """
    root = find_root(start, stop=stop)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return Project(root, NbopsConfig())
    try:
        data = tomllib.loads(pyproject.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"not valid TOML ({exc})", location=str(pyproject), fix="fix the file's syntax"
        ) from None
    section = data.get("tool", {}).get("nbops", {})
    try:
        return Project(root, NbopsConfig.model_validate(section))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(section)"
        raise ConfigError(
            f"[tool.nbops] {field}: {error['msg']}",
            location=str(pyproject),
            fix="see the README's configuration section for the fields and their types",
        ) from None
