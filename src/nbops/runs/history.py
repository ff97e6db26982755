"""Looking back at runs: comparing them, and running one again.

A rerun runs on the data the run had when it kept a copy of it (`track_data(...,
snapshot=True)`, runs/snapshots.py) and the file changed or went since:
- a string parameter of the run names the file (its value resolves to the tracked path):
  the kept copy is written to the new run's folder (`data/<name><suffix>`) and passed as
  that parameter;
- the path is written in the notebook: only with `restore_data` (`--restore-data`) is the
  kept copy put in place for the run; the current file is moved aside to
  `PATH.nbops-<time>` and put back when the run ends, also when it fails or is terminated
  (a file that was gone is removed again). Without it a warning says the rerun reads the
  file as it is now.
Every restored copy is checked against its hash first (DataSnapshotError, exit 42).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from nbops.config import Project, load_project
from nbops.errors import ParameterValueError
from nbops.notebook.read import read_notebook
from nbops.redact import secret_env_var
from nbops.runs.capture import fingerprint_data, new_run_id
from nbops.runs.execute import SOURCE_COPY, execute_prepared, prepare_run
from nbops.runs.parameters import REDACTED, parameter_specs
from nbops.runs.record import DataFingerprint, RunRecord
from nbops.runs.snapshots import materialise, snapshot_of, snapshot_source
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


@dataclass(frozen=True)
class DataChange:
    """A tracked data file of a run that is not as the run saw it."""

    entry: DataFingerprint
    path: Path
    state: Literal["changed", "gone"]
    kept: bool  # a copy (or a DVC hash) was kept with the run
    parameter: str | None  # the string parameter naming the path, if any


def data_changes(record: RunRecord) -> list[DataChange]:
    """The run's tracked files that changed or went since the run."""
    changes = []
    for data in record.data:
        extra = data.model_extra or {}
        if data.type != "file" or "path" not in extra:
            continue
        path = Path(extra["path"])
        try:
            now = fingerprint_data(path)["sha256"]
        except FileNotFoundError:
            state: Literal["changed", "gone"] = "gone"
        else:
            if now == data.sha256:
                continue
            state = "changed"
        kept = snapshot_of(data).get("kind") in ("file", "dvc")
        changes.append(DataChange(data, path, state, kept, _parameter_naming(record, path)))
    return changes


def _parameter_naming(record: RunRecord, path: Path) -> str | None:
    """The run's string parameter whose value is this path (relative values taken from the
    notebook's folder, where the kernel ran, or the working directory)."""
    folder = Path(record.notebook).resolve().parent
    for name, value in record.parameters.items():
        if not isinstance(value, str) or not value.strip() or value == REDACTED:
            continue
        given = Path(value).expanduser()
        for base in (folder, Path.cwd()):
            with contextlib.suppress(OSError, ValueError):
                if (given if given.is_absolute() else base / given).resolve() == path.resolve():
                    return name
    return None


def rerun_warnings(record: RunRecord, *, restore_data: bool = False) -> list[str]:
    """What changed since a run: its notebook, or a tracked data file (and what the rerun
    does about it)."""
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
    for change in data_changes(record):
        what = f"tracked data {change.entry.name!r} ({change.path})"
        since = "is gone" if change.state == "gone" else "changed since the run"
        if not change.kept:
            warnings.append(f"{what} {since}")
        elif change.parameter:
            warnings.append(
                f"{what} {since}; the rerun reads the copy kept with run {record.run_id}, "
                f"passed as the parameter {change.parameter!r}"
            )
        elif restore_data:
            warnings.append(
                f"{what} {since}; the copy kept with run {record.run_id} is put in its place "
                "for the rerun, and the current file put back after it"
            )
        else:
            warnings.append(
                f"{what} {since} and no parameter names it, so the rerun reads the file as it "
                f"is now; `nbops rerun {record.run_id} --restore-data` puts the kept copy in "
                "place for the run"
            )
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
    restore_data: bool = False,
) -> tuple[RunRecord, RunRecord]:
    """Run a recorded run again with the same parameters, notebook version and, where the
    run kept a copy, data (see the module docstring; `restore_data`: also data whose path
    the notebook hard-codes, put in place for the run).

    Returns (the original record, the new record); raises like run_notebook, and
    DataSnapshotError (exit 42) when a kept copy is missing or changed.
    """
    project = project or load_project()
    store = store or RunStore(project.store_dir)
    original = store.load(ref)
    suffix = Path(original.notebook).suffix or ".ipynb"
    copy = store.run_dir(original.run_id) / f"{SOURCE_COPY}{suffix}"
    source = copy if copy.exists() else Path(original.notebook)
    overrides = {k: v for k, v in original.parameters.items() if v != REDACTED}
    run_id = new_run_id()
    # Every kept copy is checked before anything is written or started (exit 42).
    redirected: list[tuple[Path, Path]] = []  # (kept copy, where the new run reads it)
    in_place: list[tuple[Path, Path]] = []  # (the tracked path, kept copy)
    for change in data_changes(original):
        if not change.kept or not (change.parameter or restore_data):
            continue
        kept = snapshot_source(
            store.directory, snapshot_of(change.entry), change.entry.name, original.run_id
        )
        if change.parameter:
            safe = re.sub(r"[^\w.-]", "_", change.entry.name).lstrip(".") or "data"
            target = (store.run_dir(run_id) / "data" / f"{safe}{change.path.suffix}").resolve()
            redirected.append((kept, target))
            overrides[change.parameter] = str(target)
        else:
            in_place.append((change.path, kept))
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
    for kept, target in redirected:
        materialise(kept, target)
    with _restored_in_place(in_place):
        new = execute_prepared(
            prepared,
            store=store,
            project=project,
            timeout=timeout,
            rerun_of=original.run_id,
            run_id=run_id,
        )
    return original, new


@contextlib.contextmanager
def _restored_in_place(items: list[tuple[Path, Path]]) -> Iterator[None]:
    """Put each kept copy at its path for the block, the current file moved aside to
    `PATH.nbops-<time>`; afterwards (whatever happened) the current file goes back."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    moved: list[tuple[Path, Path | None]] = []
    try:
        for path, kept in items:
            aside = path.with_name(f"{path.name}.nbops-{stamp}") if path.exists() else None
            if aside is not None:
                os.replace(path, aside)
            moved.append((path, aside))
            materialise(kept, path)
        yield
    finally:
        for path, aside in reversed(moved):
            with contextlib.suppress(OSError):
                if aside is not None:
                    os.replace(aside, path)
                else:
                    path.unlink(missing_ok=True)


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
