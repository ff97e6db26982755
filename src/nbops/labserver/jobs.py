"""Server-side state of the JupyterLab extension: the export lock and the background runs.

Standard library and nbops only (no jupyter_server), so it can be tested in-process.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops._atomic import atomic_path
from nbops._paths import find_root
from nbops.errors import CellLocation, NbopsError, RunError
from nbops.labserver.progress import PlannedCell, finished_progress, pending, run_plan, run_progress

# Deferred imports, inside the functions that use them: config, runs.store and runs.execute
# (pydantic, papermill) load with the first job or run listing, not with the server extension.

if TYPE_CHECKING:
    from nbops.config import Project
    from nbops.runs.execute import PreparedRun
    from nbops.runs.record import RunRecord

log = logging.getLogger(__name__)


class ExclusiveLock:
    """A lock taken without waiting: a second taker is told the lock is busy, not queued.

    The export handler takes it on the IOLoop thread and releases it when the export's
    worker thread is done, so it must be a plain (not re-entrant, not thread-owned) lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        return self._lock.acquire(blocking=False)

    def release(self) -> None:
        self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


def error_fields(
    exc: NbopsError, root: Path | None = None, notebook: Path | None = None
) -> dict[str, Any]:
    """An NbopsError as the JSON the extension sends: the message, the fix, the error's class
    name, the cell (0-based index and id) and line when the error names one.

    A location that is a file or folder other than the notebook (the output folder, the
    pyproject.toml) is added to the message, relative to the server root when inside it.
    """
    location = exc.location
    message = exc.message
    cell_index = cell_id = line = None
    if isinstance(location, CellLocation):
        cell_index = location.number - 1 if location.number is not None else None
        cell_id = location.cell_id or None
        line = location.line
    elif isinstance(location, str) and location:
        where = Path(location)
        if notebook is None or _resolved(where) != _resolved(notebook):
            message = f"{message} ({relative_to_root(where, root) or location})"
    return {
        "kind": type(exc).__name__,
        "message": message,
        "fix": exc.fix,
        "cell_index": cell_index,
        "cell_id": cell_id,
        "line": line,
        "exit_code": exc.exit_code,
    }


def unexpected_error_fields(exc: BaseException) -> dict[str, Any]:
    """An exception nbops did not raise on purpose, in the same shape as error_fields."""
    return {
        "kind": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "fix": "see the Jupyter server log",
        "cell_index": None,
        "cell_id": None,
        "line": None,
        "exit_code": None,
    }


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def relative_to_root(path: Path, root: Path | None) -> str | None:
    """`path` relative to the server root, POSIX style; None when it is outside (or no root)."""
    if root is None:
        return None
    try:
        return _resolved(path).relative_to(root).as_posix()
    except ValueError:
        return None


@dataclass
class RunJob:
    """One notebook run started from JupyterLab; filled in by its worker thread."""

    id: str
    notebook: str  # relative to the server root
    status: str = "running"
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # The visible copy of the run's output notebook (see publish_output_notebook), relative
    # to the server root; the store's own path when the copy could not be made.
    output_notebook: str | None = None
    error: dict[str, Any] | None = None
    # Each code cell of the finished run: index, id, role (the step tag), duration_s, status.
    cells: list[dict[str, Any]] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    store_dir: Path | None = None  # the project's run store, for live metrics
    # The code cells the run executes (progress.py): set, the job reports its progress.
    plan: list[PlannedCell] | None = None
    # Once the run ended (progress.py): the gate verdicts, whether it recorded a model, why
    # no bundle can be built from it (None: one can), what it could not do (its warnings).
    gates: dict[str, Any] | None = None
    has_model: bool | None = None
    bundle_blocked: str | None = None
    warnings: list[str] = field(default_factory=list)
    _progress: tuple[Any, dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.ended_at is not None

    def to_json(self) -> dict[str, Any]:
        metrics = dict(self.metrics)
        if not self.done and self.run_id and self.store_dir is not None:
            metrics = _live_metrics(self.store_dir, self.run_id) or metrics
        return {
            "job": self.id,
            "path": self.notebook,
            "status": self.status,
            "run_id": self.run_id,
            "metrics": metrics,
            "output_notebook": self.output_notebook,
            "error": self.error,
            "cells": self.cells,
            "progress": self.progress(),
            "gates": self.gates,
            "has_model": self.has_model,
            "bundle_blocked": self.bundle_blocked,
            "warnings": self.warnings,
        }

    def progress(self) -> dict[str, Any] | None:
        """Cell by cell (progress.py): from the output notebook while the run goes (read
        again only when the file changed), from the record's cells once it ended; None
        without a plan."""
        if self.plan is None:
            return None
        if self.done:
            return finished_progress(self.plan, self.cells)
        if not self.run_id or self.store_dir is None:
            return pending(self.plan)  # waiting for a free slot
        from nbops.runs.output import OUTPUT_NOTEBOOK

        output = self.store_dir / "runs" / self.run_id / OUTPUT_NOTEBOOK
        try:
            stat = output.stat()
        except OSError:  # papermill has not written it yet
            return pending(self.plan)
        key = (output, stat.st_mtime_ns, stat.st_size)
        if self._progress is None or self._progress[0] != key:
            self._progress = (key, run_progress(self.plan, output))
        return self._progress[1]


def _live_metrics(store_dir: Path, run_id: str) -> dict[str, float]:
    """What a running run has logged so far (the store reads its events sidecar)."""
    from nbops.runs.store import RunStore

    try:
        return RunStore(store_dir).load(run_id).latest_metrics()
    except NbopsError:
        return {}


# What a job's worker calls: (job) -> None; it fills the job in as it goes.
JobTarget = Callable[[RunJob], None]


class RunJobs:
    """Runs in background threads, at most `max_parallel` at once (the others wait, shown as
    running with no run id yet), and the last `keep` finished jobs kept for polling."""

    def __init__(self, max_parallel: int = 2, keep: int = 200) -> None:
        self._jobs: dict[str, RunJob] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._keep = keep

    def submit(self, notebook: str, target: JobTarget, store_dir: Path | None = None) -> RunJob:
        job = RunJob(id=secrets.token_hex(8), notebook=notebook, store_dir=store_dir)
        with self._lock:
            self._jobs[job.id] = job
            self._prune()
        # A daemon thread: a server shutting down does not wait for a kernel to finish (the
        # kernel exits with its parent; the store keeps the run as it was last saved).
        thread = threading.Thread(
            target=self._work, args=(job, target), name=f"nbops-run-{job.id}", daemon=True
        )
        thread.start()
        return job

    def get(self, job_id: str) -> RunJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[RunJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.submitted_at, reverse=True)

    def _work(self, job: RunJob, target: JobTarget) -> None:
        with self._slots:
            try:
                target(job)
            except NbopsError as exc:
                job.status = "failed"
                job.error = error_fields(exc)
            except Exception as exc:  # never lose a job to an unexpected error
                log.exception("nbops: run job %s failed", job.id)
                job.status = "failed"
                job.error = unexpected_error_fields(exc)
            finally:
                job.ended_at = time.time()

    def _prune(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.submitted_at)
        for job in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]


def run_target(
    prepared: PreparedRun,
    project: Project,
    root: Path,
    on_end: Callable[[RunJob, RunRecord], None] | None = None,
) -> JobTarget:
    """The work of a run job: execute the prepared run into the project's store, then copy
    the outcome (status, run id, metrics, output notebook, error) into the job; `on_end`
    adds more of the ended run's record (outcome.set_outcome) before the job says it ended.
    The job knows the cells the run executes (its plan) from the start, for its progress."""

    def target(job: RunJob) -> None:
        from nbops.runs.execute import execute_prepared
        from nbops.runs.store import RunStore

        class JobStore(RunStore):
            """The project's store, telling the job the run id as soon as it exists."""

            def save(self, record: RunRecord) -> None:
                job.run_id = job.run_id or record.run_id
                super().save(record)

        job.plan = run_plan(prepared.notebook, all_cells=prepared.all_cells)
        store = JobStore(project.store_dir)
        notebook = prepared.notebook.path
        record: RunRecord | None
        try:
            record = execute_prepared(prepared, store=store, project=project)
        except RunError as exc:
            job.run_id = job.run_id or exc.run_id
            job.error = error_fields(exc, root, notebook)
            record = store.load(job.run_id) if job.run_id else None
            if record is not None and record.failure is not None:
                job.error["cell_index"] = record.failure.cell_index
                job.error["cell_id"] = record.failure.cell_id
        if record is None:
            job.status = "failed"
            return
        job.metrics = record.latest_metrics()
        job.cells = [c.model_dump() for c in record.cells]
        job.warnings = list(record.warnings)
        if on_end is not None:
            on_end(job, record)
        if record.output_notebook:
            output = store.run_dir(record.run_id) / record.output_notebook
            if output.exists():
                # A visible copy next to the notebook, which JupyterLab can open: the store is
                # a hidden folder (.nbops) the contents API refuses by default. Should the copy
                # fail, the store's path is given (relative to the root when inside it).
                copy = publish_output_notebook(output, notebook, record.run_id, root)
                opened = copy or output
                job.output_notebook = relative_to_root(opened, root) or opened.as_posix()
        job.status = record.status

    return target


# The folder, next to the run notebook, that receives the copies of the runs' output notebooks.
RUN_OUTPUTS_FOLDER = "nbops-runs"


def output_copy_name(notebook: Path, run_id: str, *, full: bool = False) -> str:
    """`<notebook stem>-<short run id>.ipynb`: the short id is the run id's random end
    (`20250102-101112-064d2f` gives `064d2f`), which `nbops runs show` accepts too; `full`
    gives the whole run id, for when the short name is already taken."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id).strip(".") or "run"
    short = safe if full else (safe.rsplit("-", 1)[-1] or safe)
    return f"{notebook.stem}-{short}.ipynb"


def publish_output_notebook(output: Path, notebook: Path, run_id: str, root: Path) -> Path | None:
    """Copy a run's output notebook from the run store to `<notebook folder>/nbops-runs/
    <notebook stem>-<short run id>.ipynb`, and return the copy's path.

    The store's own file is only read. The copy is written under a temporary (hidden) name
    in the same folder and renamed into place, so nobody sees a half-written notebook. A
    name already used by another file is not overwritten: the copy then takes the full run
    id. Returns None, having logged why, when the copy cannot be made (a read-only folder,
    a full disk) or would land outside the server root (`nbops-runs` a symlink leading out).
    """
    # A run of a copy (itself in nbops-runs/) lands beside it, not in nbops-runs/nbops-runs/.
    in_copies = notebook.parent.name == RUN_OUTPUTS_FOLDER
    folder = notebook.parent if in_copies else notebook.parent / RUN_OUTPUTS_FOLDER
    try:
        folder.mkdir(exist_ok=True)
        if not _resolved(folder).is_relative_to(root):
            log.warning("nbops: %s leads outside the server root; not copying", folder)
            return None
        target = folder / output_copy_name(notebook, run_id)
        if target.exists():
            target = folder / output_copy_name(notebook, run_id, full=True)
        # Created exclusively, with the usual permissions (the umask's, as any notebook).
        with atomic_path(target) as tmp, output.open("rb") as src, tmp.open("wb") as out:
            shutil.copyfileobj(src, out)
    except OSError as exc:
        log.warning("nbops: cannot copy the output notebook of run %s to %s: %s",
                    run_id, folder, exc)  # fmt: skip
        return None
    return target


# -- recognising a run's output notebook ----------------------------------------------------

# A copy's name ending in a whole run id as `new_run_id` makes it: `-20250102-101112-064d2f`.
_WHOLE_RUN_ID_AT_END = re.compile(r"-(\d{8}-\d{6}-[0-9a-f]+)$")


@dataclass(frozen=True)
class RunOutput:
    """A notebook that is the output of a run: which run, and the notebook the run ran."""

    run_id: str | None  # None when no run of the store matches
    source: Path | None  # None when the source notebook cannot be found


def find_run_output(notebook: Path, root: Path | None = None) -> RunOutput | None:
    """Whether `notebook` is a run's output and, if so, which run of which notebook; its
    project is looked for no higher than `root` (the server's root) when given.

    A run's output is a notebook papermill executed (it has `metadata.papermill`) or one in
    an `nbops-runs` folder (see publish_output_notebook); any other notebook gives None.

    The run id comes from papermill's `output_path` (`<store>/runs/<run id>/output.ipynb`),
    else from the copy's name (`<stem>-<short run id>.ipynb`) matched against the runs of
    the project's store. The source is the notebook the run's record names, else papermill's
    `input_path` (unless it is the store's own copy), else `<stem>.ipynb` (or `.py`) beside
    the `nbops-runs` folder. Nothing is written (no store is created) and nothing raises: what
    cannot be read is unknown (None). With `root`, no store outside it is opened (papermill's
    metadata may name any folder).
    """
    papermill = _papermill_metadata(notebook)
    in_copies = notebook.parent.name == RUN_OUTPUTS_FOLDER
    if papermill is None and not in_copies:
        return None
    papermill = papermill or {}
    output_path = _path_or_none(papermill.get("output_path"))
    input_path = _path_or_none(papermill.get("input_path"))

    run_id: str | None = None
    record: RunRecord | None = None
    store_dir: Path | None = None
    # papermill wrote the output into the store: <store>/runs/<run id>/output.ipynb.
    if output_path is not None and output_path.parent.parent.name == "runs":
        from nbops.runs.output import OUTPUT_NOTEBOOK

        if output_path.name == OUTPUT_NOTEBOOK and output_path.parent.name:
            run_id = output_path.parent.name
            store_dir = output_path.parent.parent.parent
            # Opening a store writes to it (SQLite's journal): never one outside the root.
            if root is None or _resolved(store_dir).is_relative_to(root):
                record = _load_record(store_dir, run_id, exact=True)
    project_root: Path | None = None
    if record is None:
        project_root, project_store = _project_store(notebook, root)
        if run_id is not None and project_store != store_dir:
            record = _load_record(project_store, run_id, exact=True)
        if record is None and in_copies:
            record = _record_named_by(notebook, project_store)
        if record is not None:
            store_dir, run_id = project_store, record.run_id

    candidates: list[Path] = []
    if record is not None:
        recorded = Path(record.notebook)
        if recorded.is_absolute():
            candidates.append(recorded)
        else:  # as given to `nbops run`, relative to where it ran: most often the project
            project_root = project_root or _project_store(notebook, root)[0]
            candidates += [project_root / recorded, notebook.parent.parent / recorded]
    if input_path is not None and input_path.is_absolute():
        in_store = _in_a_store(input_path) or (
            store_dir is not None and _resolved(input_path).is_relative_to(_resolved(store_dir))
        )
        beside_output = output_path is not None and input_path.parent == output_path.parent
        if not (in_store or beside_output):
            candidates.append(input_path)
    if in_copies:
        stem = _source_stem(notebook, run_id)
        candidates += [notebook.parent.parent / f"{stem}{ext}" for ext in (".ipynb", ".py")]
    source = next((c for c in candidates if _is_other_file(c, notebook)), None)
    return RunOutput(run_id=run_id, source=_resolved(source) if source else None)


def _papermill_metadata(notebook: Path) -> dict[str, Any] | None:
    """The notebook's `metadata.papermill`, or None (none, or not a readable .ipynb)."""
    if notebook.suffix != ".ipynb":
        return None
    try:
        data = json.loads(notebook.read_bytes())
    except (OSError, ValueError):
        return None
    meta = data.get("metadata") if isinstance(data, dict) else None
    papermill = meta.get("papermill") if isinstance(meta, dict) else None
    return papermill if isinstance(papermill, dict) else None


def _path_or_none(value: Any) -> Path | None:
    return Path(value) if isinstance(value, str) and value.strip() and "\0" not in value else None


def _project_store(notebook: Path, root: Path | None = None) -> tuple[Path, Path | None]:
    """The project root around the notebook (no higher than `root`) and its store folder
    (None when the project's settings cannot be read)."""
    from nbops.config import load_project

    try:
        project = load_project(notebook.parent, stop=root)
    except NbopsError:
        return find_root(notebook.parent, stop=root), None
    return project.root, project.store_dir


def _load_record(store_dir: Path | None, ref: str, *, exact: bool) -> RunRecord | None:
    """A run from an existing store (never creating one); None when there is none."""
    if store_dir is None or not (store_dir / "runs.db").is_file():
        return None
    from nbops.runs.store import RunStore

    try:
        record = RunStore(store_dir).load(ref)
    except (NbopsError, ValueError):  # no such run, a damaged store or record
        return None
    return record if not exact or record.run_id == ref else None


def _record_named_by(copy: Path, store_dir: Path | None) -> RunRecord | None:
    """The run whose output copy has this name (`<stem>-<short or whole run id>.ipynb`)."""
    stem = copy.stem
    whole = _WHOLE_RUN_ID_AT_END.search(stem)
    refs = [whole.group(1)] if whole else []
    if "-" in stem:
        refs.append(stem.rsplit("-", 1)[1])
    for ref in refs:
        if not ref or ref == "latest":
            continue
        record = _load_record(store_dir, ref, exact=False)
        if record is None:
            continue
        source = Path(record.notebook)
        names = {output_copy_name(source, record.run_id, full=f) for f in (False, True)}
        if copy.name in names:
            return record
    return None


def _source_stem(copy: Path, run_id: str | None) -> str:
    """The source notebook's stem from its copy's name: the name less the run id's end."""
    stem = copy.stem
    if run_id:
        for name in (output_copy_name(Path("x"), run_id, full=f) for f in (True, False)):
            suffix = Path(name).stem[1:]  # `-<id>`
            if stem.endswith(suffix) and len(stem) > len(suffix):
                return stem[: -len(suffix)]
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


def _in_a_store(path: Path) -> bool:
    """Whether `path` lies in a run folder of a run store (`<store>/runs/<run id>/`)."""
    store = path.parent.parent.parent
    return path.parent.parent.name == "runs" and (store / "runs.db").is_file()


def _is_other_file(candidate: Path, notebook: Path) -> bool:
    try:
        return candidate.is_file() and candidate.resolve() != notebook.resolve()
    except OSError:
        return False
