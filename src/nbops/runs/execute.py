"""`nbops run`: one parameterised papermill run on a real kernel, recorded in the store.

The notebook papermill executes is a copy (`input.ipynb` in the run folder), prepared so that:
every cell carries the id nbops reads it with (notebooks older than nbformat 4.5 have none),
so run records and failures name the cell; and `skip` cells are not executed (unless
`all_cells`): they go through as raw cells and come back into the output notebook as code
cells without outputs, marked `"nbops": {"skipped": true}` in their metadata.

A run is recorded whatever happens to it. The record is saved as `running` before the kernel
starts, with its owner (this process: pid, host, start time; liveness.py), and saved again
with its final status (`completed`, `failed`, `killed`, `timeout`, `interrupted`, or
`terminated` when SIGTERM reached the process, see signals.py), the partial
output notebook with its secret parameters redacted, and everything the capture API logged.
While the record is finished, SIGINT and SIGTERM wait, so a second signal cannot cut the
save short. A run whose process is killed outright is found by the store's readers.

Files are written atomically (files.py): a full disk (ENOSPC) fails the run with
DiskFullError, recorded as failed, and leaves no truncated output notebook behind.

Secret parameters (nbops.redact) never reach a file: the record holds `***`, the kept copy of
the notebook has `"***"` for their literals, and their values (defaults or given) go to the
kernel through its environment, which the executed copy's parameters cell reads, instead of
through papermill's parameters (written into the output notebook as it runs).
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.config import Project, load_project
from nbops.errors import (
    CellLocation,
    DiskFullError,
    KernelDiedError,
    ParameterValueError,
    RunError,
    RunFailedError,
    RunTimeoutError,
    Terminated,
)
from nbops.export.render import default_package_name
from nbops.export.versions import read_index
from nbops.notebook.read import NotebookModel, read_notebook
from nbops.notebook.reassign import reassigned_after_parameters
from nbops.notebook.tags import Role
from nbops.redact import (
    parameters_from_environment,
    redact_notebook_node,
    run_secrets_environment,
    write_redacted_copy,
)
from nbops.runs.capture import RUN_DIR_ENV, RUN_ID_ENV, new_run_id
from nbops.runs.capture_plan import add_capture_cells, capture_warnings
from nbops.runs.environment import environment_info, git_info
from nbops.runs.events import read_events
from nbops.runs.files import (
    atomic_notebook_writes,
    clear_mark,
    disk_full,
    release_space,
    reserve_space,
    write_text,
)
from nbops.runs.kernels import forget, kernel_manager, stop_requested
from nbops.runs.kernels import interrupt_runs as interrupt_runs  # the sweep's import
from nbops.runs.liveness import heartbeat, this_process
from nbops.runs.output import OUTPUT_NOTEBOOK, SKIPPED, restore_skipped
from nbops.runs.parameters import (
    REDACTED,
    ParameterSpec,
    parameter_specs,
    read_parameter_file,
    resolve_parameters,
    secrets_from_environment,
)
from nbops.runs.record import CellRun, Failure, ParameterSchema, RunRecord, RunStatus
from nbops.runs.signals import signals_held
from nbops.runs.signals import terminate_on_sigterm as terminate_on_sigterm  # the cli's import
from nbops.runs.snapshots import SnapshotSettings
from nbops.runs.store import RunStore, now
from nbops.runs.tracking import make_tracker, mirror_run

KERNEL_LOG = "kernel.log"
SOURCE_COPY = "source"


@dataclass(frozen=True)
class PreparedRun:
    """A run checked and ready to start: the notebook, its parameters, where it goes."""

    notebook: NotebookModel
    specs: list[ParameterSpec]
    parameters: dict[str, Any]  # the defaults merged with the overrides
    overrides: dict[str, Any]  # only what differs from the notebook: what papermill injects
    kernel: str
    source: Path | None = None  # the file papermill reads, when not notebook.path (reruns)
    all_cells: bool = False  # execute `skip` cells too


def prepare_run(
    notebook: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    parameter_file: str | Path | None = None,
    kernel: str | None = None,
    project: Project | None = None,
    all_cells: bool = False,
) -> PreparedRun:
    """Read the notebook and check the parameters, before any kernel starts. With
    `all_cells`, the run executes `skip` cells too.

    Raises NotebookReadError, ConfigError (parameters file) and ParameterValueError.
    """
    project = project or load_project()
    nb = read_notebook(notebook)
    specs = parameter_specs(nb, project.config.secret_params, computed=True)
    given = read_parameter_file(Path(parameter_file)) if parameter_file else {}
    given.update(overrides or {})
    given.update(secrets_from_environment(specs, given))
    parameters = resolve_parameters(specs, given, notebook=str(nb.path))
    overrides = {k: parameters[k] for k in given}
    _refuse_lost_overrides(nb, overrides)
    return PreparedRun(
        nb, specs, parameters, overrides, kernel or nb.kernel_name, all_cells=all_cells
    )


def _refuse_lost_overrides(nb: NotebookModel, overrides: dict[str, Any]) -> None:
    """A value given for a parameter that a later cell always sets again would be lost."""
    for cell, r in reassigned_after_parameters(nb, overrides):
        if not r.conditional:
            raise ParameterValueError(
                f"this cell sets the parameter {r.name!r} again (`{r.statement}`), so the "
                "value given for it would have no effect on the run",
                location=CellLocation(cell.path, cell.number, cell.own_id, r.line),
                fix=f"set {r.name!r} only in the parameters cell, or give the value in "
                f"cell {cell.number} another name",
            )


def run_notebook(
    notebook: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    parameter_file: str | Path | None = None,
    timeout: float | None = None,
    kernel: str | None = None,
    project: Project | None = None,
    store: RunStore | None = None,
    sweep_id: str | None = None,
    rerun_of: str | None = None,
    tracking: str | None = None,
    all_cells: bool = False,
) -> RunRecord:
    """Run a notebook through papermill with these parameters and record the run; `skip`
    cells are not executed unless `all_cells`.

    Returns the completed run's record. Raises RunFailedError (a cell raised),
    KernelDiedError, RunTimeoutError — each after the run is recorded, with its id — and
    re-raises KeyboardInterrupt after recording the run as interrupted.
    """
    project = project or load_project()
    prepared = prepare_run(
        notebook,
        overrides,
        parameter_file=parameter_file,
        kernel=kernel,
        project=project,
        all_cells=all_cells,
    )
    store = store or RunStore(project.store_dir)
    return execute_prepared(
        prepared,
        store=store,
        project=project,
        timeout=timeout,
        sweep_id=sweep_id,
        rerun_of=rerun_of,
        tracking=tracking,
    )


def execute_prepared(
    prepared: PreparedRun,
    *,
    store: RunStore,
    project: Project,
    timeout: float | None = None,
    sweep_id: str | None = None,
    rerun_of: str | None = None,
    tracking: str | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """Start the kernel for a prepared run (see run_notebook). `run_id`: one chosen by the
    caller (new_run_id), when it puts files in the run folder before the run (a rerun's
    restored data)."""
    nb = prepared.notebook
    backend = tracking or project.tracking
    tracker = make_tracker(backend, project)  # a missing extra fails before the kernel starts
    run_id = run_id or new_run_id()
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    secrets = {s.name for s in prepared.specs if s.secret}
    record = RunRecord(
        run_id=run_id,
        notebook=str(nb.path),
        notebook_sha256=nb.sha256,
        export_version=_export_version(nb, project),
        parameters={k: REDACTED if k in secrets else v for k, v in prepared.parameters.items()},
        parameter_schema=[
            ParameterSchema(
                name=s.name,
                type=s.type,
                default=REDACTED if s.secret else s.default,
                description=s.description,
                secret=s.secret,
            )
            for s in prepared.specs
            if s.computed is None  # a computed line has no default before the run
        ],
        git=git_info(nb.path.resolve().parent),
        environment=environment_info(prepared.kernel),
        started_at=now(),
        output_notebook=OUTPUT_NOTEBOOK,
        sweep_id=sweep_id,
        rerun_of=rerun_of,
        all_cells=prepared.all_cells,
        warnings=capture_warnings(nb),
        owner=this_process(),
    )
    try:
        reserve_space(run_dir)  # room for the final record, should the disk fill up
    except OSError as exc:
        if not disk_full(exc):
            raise
        raise DiskFullError(
            f"the disk is full, so run {run_id} cannot start ({_one_line(exc)})",
            location=str(nb.path),
            fix=f"free space in {store.directory.resolve()}",
        ) from None
    store.save(record)
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        with heartbeat(run_dir):
            # Keep the notebook as it ran, so `nbops rerun` runs the same version (secrets'
            # values replaced: a rerun takes them from the environment or the notebook).
            write_redacted_copy(
                prepared.source or nb.path, run_dir / f"{SOURCE_COPY}{nb.path.suffix}", secrets
            )
            _papermill(prepared, run_dir, run_id, timeout, _snapshot_env(project))
        record.status = "completed"
    except KeyboardInterrupt as exc:
        record.status, error = "terminated" if isinstance(exc, Terminated) else "interrupted", exc
    except Exception as exc:  # classified below; anything unknown is a failed run
        if stop_requested(run_id):  # interrupt_runs() interrupted its kernel
            record.status, error = "interrupted", KeyboardInterrupt()
        elif isinstance(exc, OSError | DiskFullError) and disk_full(exc):  # nbops's writes
            record.status, error = "failed", exc
            record.failure = Failure(ename=DiskFullError.__name__, evalue=_one_line(exc))
        else:
            record.status, record.failure = _classify(exc)
            error = exc
    finally:
        with signals_held():
            forget(run_id)
            record.duration_s = round(time.perf_counter() - started, 3)
            record.ended_at = now()
            output = run_dir / OUTPUT_NOTEBOOK
            _read_output(record, prepared, output, secrets)
            failure = record.failure
            if record.status == "failed" and failure is not None and disk_full(failure.evalue):
                failure.ename = DiskFullError.__name__  # a cell's write found the disk full
            record.apply_events(read_events(run_dir))
            _save_final(store, record, run_dir)
    if tracker is not None:
        mirror_run(record, run_dir, tracker, backend)
        store.save(record)
    if isinstance(error, KeyboardInterrupt):
        if isinstance(error, Terminated):
            error.run_id = record.run_id
        raise error
    if record.status != "completed":
        raise _run_error(record, nb, store.directory)
    return record


def _save_final(store: RunStore, record: RunRecord, run_dir: Path) -> None:
    """Save a finished run's record. On a full disk, the space held since the start is freed
    and the save tried once more; should that fail too, the `disk-full` mark left in the run
    folder makes readers store the run as failed once there is room (liveness.py)."""
    try:
        store.save(record)
    except DiskFullError:
        release_space(run_dir, mark=True)
        store.save(record)
        clear_mark(run_dir)
    else:
        release_space(run_dir)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _snapshot_env(project: Project) -> dict[str, str]:
    """`snapshot_data` and its caps, for track_data in the kernel (runs/snapshots.py)."""
    config = project.config
    return SnapshotSettings(
        config.snapshot_data, config.snapshot_max_bytes, config.data_store_max_bytes
    ).environment()


def _papermill(
    prepared: PreparedRun,
    run_dir: Path,
    run_id: str,
    timeout: float | None,
    extra_env: dict[str, str] | None = None,
) -> None:
    import papermill

    nb = prepared.notebook
    source, executable = _prepare_cells(prepared, run_dir)
    if nb.kale and prepared.overrides:
        source, executable = _tag_parameters_cell(source, nb, run_dir), None
    # metrics and model without nbops calls
    source = add_capture_cells(source, nb, run_dir, executable)
    _quiet_papermill_logs()
    env = {RUN_DIR_ENV: str(run_dir.resolve()), RUN_ID_ENV: run_id, **(extra_env or {})}
    secret = _secret_values(prepared)
    env.update(run_secrets_environment(secret))  # not papermill's parameters: those go on disk
    atomic_notebook_writes(run_dir.parent)  # papermill saves the output after each cell
    with open(run_dir / KERNEL_LOG, "ab") as kernel_log:
        papermill.execute_notebook(
            str(source.resolve()),
            str((run_dir / OUTPUT_NOTEBOOK).resolve()),
            parameters={k: v for k, v in prepared.overrides.items() if k not in secret},
            kernel_name=prepared.kernel,
            # nbclient counts whole seconds: a fraction rounds up, so 0.5 s still stops a cell.
            execution_timeout=None if timeout is None else math.ceil(timeout),
            progress_bar=False,
            cwd=str(nb.path.resolve().parent),
            kernel_manager_class=kernel_manager(env, kernel_log),
        )


def _tag_parameters_cell(source: Path, nb: NotebookModel, run_dir: Path) -> Path:
    """A copy of a Kale notebook whose `pipeline-parameters` cell also has papermill's
    `parameters` tag, so the values given for the run land after it, not before it."""
    import nbformat

    index = next((c.index for c in nb.cells if c.role is Role.PARAMETERS), None)
    if index is None:
        return source
    copy = nbformat.read(source, as_version=4)
    tags = copy.cells[index].setdefault("metadata", {}).setdefault("tags", [])
    if "parameters" not in tags:
        tags.append("parameters")
    target = run_dir / "input.ipynb"
    write_text(target, nbformat.writes(copy))
    return target


INPUT_NOTEBOOK = "input.ipynb"


def _prepare_cells(prepared: PreparedRun, run_dir: Path) -> tuple[Path, Any]:
    """Write the notebook papermill executes (see the module docstring); return its path and
    the notebook written, as nbformat's node.

    papermill reads .ipynb only, so a percent script is converted here too.
    """
    import nbformat

    source = prepared.source or prepared.notebook.path
    if source.suffix == ".ipynb":
        executable = nbformat.read(source, as_version=4)
    else:
        import jupytext

        executable = jupytext.read(source)
    model = prepared.notebook.cells
    if len(model) == len(executable.cells):  # the file nbops read, so always
        for cell, read in zip(executable.cells, model, strict=True):
            cell["id"] = read.cell_id
            if read.role is Role.PARAMETERS and _secret_values(prepared):
                cell.source = parameters_from_environment(cell.source, _secret_values(prepared))
            if read.role is Role.SKIP and not prepared.all_cells and cell.cell_type == "code":
                cell.cell_type = "raw"  # papermill executes code cells only
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
                cell.metadata.setdefault("nbops", {})[SKIPPED] = True
        executable.nbformat_minor = max(executable.nbformat_minor, 5)
    if not executable.metadata.get("kernelspec", {}).get("language"):
        # A percent script or a bare .ipynb often names no language; papermill needs one to
        # write the parameters (nbops runs Python notebooks).
        executable.metadata.setdefault("language_info", {}).setdefault("name", "python")
    path = run_dir / INPUT_NOTEBOOK
    write_text(path, nbformat.writes(executable))
    return path, executable


def _quiet_papermill_logs() -> None:
    """papermill and nbclient log to the `papermill` logger; nbops reports runs itself."""
    logger = logging.getLogger("papermill")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _classify(exc: BaseException) -> tuple[RunStatus, Failure | None]:
    """The status and failure details of an exception from papermill."""
    name = type(exc).__name__
    if name == "PapermillExecutionError":
        return "failed", Failure(
            ename=getattr(exc, "ename", name),
            evalue=getattr(exc, "evalue", str(exc)),
            traceback=[_ANSI.sub("", str(t)) for t in getattr(exc, "traceback", [])],
        )
    if name == "DeadKernelError" or "Kernel died" in str(exc):
        return "killed", Failure(
            ename=name,
            evalue=str(exc).strip().splitlines()[0] if str(exc).strip() else "the kernel died",
        )
    if isinstance(exc, TimeoutError) or name == "CellTimeoutError":
        return "timeout", Failure(ename=name, evalue=str(exc).strip().splitlines()[0].rstrip("."))
    return "failed", Failure(ename=name, evalue=str(exc))


def _read_output(record: RunRecord, prepared: PreparedRun, output: Path, secrets: set[str]) -> None:
    """Per-cell timings and the failing cell from the output notebook; put its skipped cells
    back as code and redact secrets in it."""
    if not output.exists():
        return
    import nbformat

    try:
        executed = nbformat.read(output, as_version=4)
    except Exception:  # a run killed while papermill wrote it; the record says so already
        return
    restored = restore_skipped(executed)
    source_cells = {c.cell_id: c for c in prepared.notebook.cells}
    cells: list[CellRun] = []
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        original = source_cells.get(str(cell.get("id", "")))
        if original is None:
            continue  # the parameters cell papermill injected
        failed = bool(meta.get("exception"))
        # papermill marks every cell "completed" after a dead kernel: the start time tells.
        ran = meta.get("start_time") is not None
        role = str(original.tag.step_tag) if original.tag else None
        skipped = bool(cell.get("metadata", {}).get("nbops", {}).get(SKIPPED))
        cells.append(
            CellRun(
                index=original.index,
                id=original.cell_id,
                role=role,
                duration_s=None if skipped else meta.get("duration"),
                status="skipped" if skipped else "error" if failed else "ok" if ran else "not run",
            )
        )
        if failed and record.failure is not None:
            record.failure.cell_index = original.index
            record.failure.cell_id = original.cell_id
            record.failure.role = role
            _explain_silent_failure(record.failure, cell)
    started = [c for c in cells if c.status not in ("not run", "skipped")]
    if record.status in ("killed", "timeout") and started and record.failure is not None:
        last = started[-1]  # the cell the kernel died or timed out in
        last.status = "error"
        record.failure.cell_index, record.failure.cell_id = last.index, last.id
        record.failure.role = last.role
    record.cells = cells
    if secrets:
        redact_notebook_node(executed, secrets)
    if secrets or restored:
        write_text(output, nbformat.writes(executed))


_STDERR_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$")


def _explain_silent_failure(failure: Failure, cell: Any) -> None:
    """papermill reports a cell that failed without an error output (IPython prints a
    UsageError, such as an undefined `%magic`, to stderr instead) as a `CellExecutionError`
    with no message: take the error from the cell's stderr."""
    if failure.ename != "CellExecutionError" or failure.evalue:
        return
    lines = [
        line
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
        for line in "".join(out.get("text", "")).splitlines()
    ]
    for line in reversed(lines):
        match = _STDERR_ERROR.match(_ANSI.sub("", line).strip())
        if match:
            failure.ename, failure.evalue = match.group(1), match.group(2)
            return
    failure.evalue = "the cell failed without an error message (see its output)"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _secret_values(prepared: PreparedRun) -> dict[str, Any]:
    """The values of the run's secret parameters: they reach the kernel through its
    environment (nbops.redact.run_secrets_environment), never through a file."""
    return {
        s.name: prepared.parameters[s.name]
        for s in prepared.specs
        if s.secret and s.name in prepared.parameters
    }


def _run_error(record: RunRecord, notebook: NotebookModel, store_dir: Path) -> RunError:
    """The error for a run that did not complete, located at the cell it stopped in (named
    as the notebook reader names cells: by number, with the id the file gives it)."""
    failure = record.failure
    if failure is not None and failure.ename == DiskFullError.__name__:
        return DiskFullError(
            f"run {record.run_id} failed: the disk is full ({failure.evalue}); the run is "
            "recorded as failed and no partial file is left as if complete",
            run_id=record.run_id,
            location=record.notebook,
            fix=f"free space in {_full_folder(failure.evalue, store_dir)}, then run it again",
        )
    location: CellLocation | str = record.notebook
    if failure and failure.cell_index is not None and failure.cell_index < len(notebook.cells):
        cell = notebook.cells[failure.cell_index]
        location = CellLocation(record.notebook, cell.number, cell.location.cell_id)
    what = f"{failure.ename}: {failure.evalue}" if failure else record.status
    output = f"see the output notebook of run {record.run_id} (nbops runs show {record.run_id})"
    kinds: dict[str, type[RunError]] = {
        "killed": KernelDiedError,
        "timeout": RunTimeoutError,
    }
    cls = kinds.get(record.status, RunFailedError)
    label = {"killed": "the kernel died", "timeout": "timed out"}.get(record.status, "failed")
    return cls(
        f"run {record.run_id} {label}: {what}",
        run_id=record.run_id,
        location=location,
        fix=output,
    )


_QUOTED_PATH = re.compile(r"""['"](/[^'"]+)['"]""")


def _full_folder(evalue: str, store_dir: Path) -> Path:
    """The folder the failed write went to, when the error names it; else the run store."""
    match = _QUOTED_PATH.search(evalue)
    if match:
        return Path(match.group(1)).parent
    return store_dir.resolve()


def _export_version(nb: NotebookModel, project: Project) -> int | None:
    """The export version made from exactly this notebook file, if there is one."""
    try:
        index = read_index(project.root / project.config.export_dir, default_package_name(nb.path))
    except Exception:
        return None
    matches = [e.version for e in index.versions if e.source_sha256 == nb.sha256]
    return matches[-1] if matches else None
