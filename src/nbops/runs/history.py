"""Looking back at runs: comparing them, and running one again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.config import Project, load_project
from nbops.errors import ParameterValueError
from nbops.notebook.read import read_notebook
from nbops.redact import secret_env_var
from nbops.runs.capture import fingerprint_data
from nbops.runs.execute import SOURCE_COPY, execute_prepared, prepare_run
from nbops.runs.parameters import REDACTED, parameter_specs
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore


@dataclass(frozen=True)
class ComparisonRow:
    """One parameter or metric across runs; `differs` when the runs disagree."""

    kind: str  # "param" or "metric"
    name: str
    values: list[Any]

    @property
    def differs(self) -> bool:
        present = [repr(v) for v in self.values]
        return len(set(present)) > 1


def compare(records: list[RunRecord]) -> list[ComparisonRow]:
    """Parameters and latest metrics of several runs, side by side."""
    rows: list[ComparisonRow] = []
    params = sorted({k for r in records for k in r.parameters})
    for name in params:
        rows.append(ComparisonRow("param", name, [r.parameters.get(name) for r in records]))
    metrics = sorted({k for r in records for k in r.metrics})
    latest = [r.latest_metrics() for r in records]
    for name in metrics:
        rows.append(ComparisonRow("metric", name, [m.get(name) for m in latest]))
    return rows


def rerun_warnings(record: RunRecord) -> list[str]:
    """What changed since a run: its notebook, or a tracked data file."""
    warnings = []
    path = Path(record.notebook)
    try:
        current = read_notebook(path).sha256
    except Exception:
        current = None
    if current is None:
        warnings.append(f"{path} is gone; running the copy kept with run {record.run_id}")
    elif current != record.notebook_sha256:
        warnings.append(
            f"{path} changed since run {record.run_id}; running the version that run used"
        )
    for data in record.data:
        extra = data.model_extra or {}
        if data.type != "file" or "path" not in extra:
            continue
        try:
            now = fingerprint_data(extra["path"])["sha256"]
        except FileNotFoundError:
            warnings.append(f"tracked data {data.name!r} ({extra['path']}) is gone")
            continue
        if now != data.sha256:
            warnings.append(f"tracked data {data.name!r} ({extra['path']}) changed since the run")
    secret = [p.name for p in record.parameter_schema if p.secret]
    if secret:
        warnings.append(
            f"secret parameters {', '.join(secret)} were not recorded; their values come from "
            f"{', '.join(secret_env_var(n) for n in secret)} when set, else from the notebook"
        )
    return warnings


def rerun(
    ref: str,
    *,
    store: RunStore | None = None,
    project: Project | None = None,
    timeout: float | None = None,
) -> tuple[RunRecord, RunRecord]:
    """Run a recorded run again with the same parameters and notebook version.

    Returns (the original record, the new record); raises like run_notebook.
    """
    project = project or load_project()
    store = store or RunStore(project.store_dir)
    original = store.load(ref)
    suffix = Path(original.notebook).suffix or ".ipynb"
    copy = store.run_dir(original.run_id) / f"{SOURCE_COPY}{suffix}"
    source = copy if copy.exists() else Path(original.notebook)
    overrides = {k: v for k, v in original.parameters.items() if v != REDACTED}
    prepared = prepare_run(source, overrides, project=project, all_cells=original.all_cells)
    missing = [
        s.name for s in prepared.specs if s.secret and prepared.parameters.get(s.name) == REDACTED
    ]
    if missing:  # the copy kept no secret: take it from the notebook as it is now
        overrides.update(_current_secrets(original, missing, project))
        prepared = prepare_run(source, overrides, project=project, all_cells=original.all_cells)
    nb = replace(
        prepared.notebook,
        path=Path(original.notebook),
        sha256=original.notebook_sha256 or prepared.notebook.sha256,
    )
    prepared = replace(prepared, notebook=nb, source=source)
    new = execute_prepared(
        prepared, store=store, project=project, timeout=timeout, rerun_of=original.run_id
    )
    return original, new


def _current_secrets(original: RunRecord, names: list[str], project: Project) -> dict[str, Any]:
    """The secret parameters' values a rerun takes from the run's notebook as it is now,
    since the copy kept with the run holds none. Raises ParameterValueError naming the
    environment variable to set when the notebook no longer gives one."""
    try:
        specs = parameter_specs(read_notebook(original.notebook), project.config.secret_params)
    except Exception:
        specs = []
    defaults = {s.name: s.default for s in specs if s.computed is None}
    found = {}
    for name in names:
        if name not in defaults or defaults[name] == REDACTED:
            raise ParameterValueError(
                f"run {original.run_id} kept no value of the secret parameter {name!r}, and "
                f"{original.notebook} no longer gives one",
                location=original.notebook,
                fix=f"set the environment variable {secret_env_var(name)} and run again",
            )
        found[name] = defaults[name]
    return found
