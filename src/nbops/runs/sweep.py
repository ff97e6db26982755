"""`nbops sweep`: a grid of parameterised runs, in parallel, through a pluggable executor.

Every combination is checked against the parameters cell before the first kernel starts.
Each run is recorded in the store like any `nbops run` (with the sweep's id); a failing run
does not stop the others. Executors are a registry: `local` runs each notebook in its own
process (`--jobs` at a time); a later addition runs them on a Dask cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nbops.config import Project, load_project
from nbops.errors import ConfigError, NbopsError, RunError, require_extra
from nbops.runs.capture import new_run_id
from nbops.runs.execute import prepare_run, run_notebook
from nbops.runs.files import write_bytes
from nbops.runs.kernels import interrupt_runs
from nbops.runs.parameters import read_parameter_file
from nbops.runs.record import RunRecord
from nbops.runs.snapshots import objects_dir
from nbops.runs.store import RunStore


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: everything a worker needs, picklable."""

    index: int
    notebook: str
    parameters: dict[str, Any]
    project_root: str
    sweep_id: str
    timeout: float | None
    all_cells: bool = False


@dataclass
class TaskResult:
    """What became of one run of a sweep."""

    index: int
    parameters: dict[str, Any]
    status: str  # a run status, or "cancelled" for a run that never started
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SweepResult:
    sweep_id: str
    results: list[TaskResult]
    interrupted: bool = False

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if r.status != "completed"]

    def sorted_by(self, metric: str | None, *, ascending: bool = False) -> list[TaskResult]:
        """Results ordered by a metric (runs without it last), or in grid order."""
        if not metric:
            return sorted(self.results, key=lambda r: r.index)
        present = [r for r in self.results if metric in r.metrics]
        missing = [r for r in self.results if metric not in r.metrics]
        present.sort(key=lambda r: r.metrics[metric], reverse=not ascending)
        return present + sorted(missing, key=lambda r: r.index)


class Executor(Protocol):
    """Runs sweep tasks; calls `on_done` as each finishes; returns every result."""

    def run(
        self, tasks: list[SweepTask], on_done: Callable[[TaskResult], None]
    ) -> tuple[list[TaskResult], bool]: ...


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["lr=0.1,0.01", "depth=3,5"]` → {"lr": ["0.1", "0.01"], "depth": ["3", "5"]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not choices:
            raise ConfigError(
                f"--grid {item!r} is not NAME=V1,V2,...",
                fix="write each grid axis as --grid NAME=V1,V2 (values separated by commas)",
            )
        grid[name] = choices
    return grid


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first axis varying slowest."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def plan_sweep(
    notebook: str | Path,
    grid: dict[str, list[Any]],
    *,
    parameter_file: str | Path | None = None,
    timeout: float | None = None,
    project: Project | None = None,
    all_cells: bool = False,
) -> list[SweepTask]:
    """The sweep's tasks, every combination checked; raises ParameterValueError first."""
    project = project or load_project()
    base = read_parameter_file(Path(parameter_file)) if parameter_file else {}
    sweep_id = "sweep-" + new_run_id()
    tasks = []
    for index, combo in enumerate(expand_grid(grid)):
        prepared = prepare_run(notebook, {**base, **combo}, project=project)
        tasks.append(
            SweepTask(
                index=index,
                notebook=str(Path(notebook).resolve()),  # workers may run elsewhere
                parameters=prepared.overrides,
                project_root=str(project.root),
                sweep_id=sweep_id,
                timeout=timeout,
                all_cells=all_cells,
            )
        )
    return tasks


def run_sweep(
    tasks: list[SweepTask],
    *,
    executor: str = "local",
    jobs: int = 2,
    on_done: Callable[[TaskResult], None] | None = None,
    **executor_options: Any,
) -> SweepResult:
    """Run planned tasks with a registered executor."""
    try:
        factory = EXECUTORS[executor]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise ConfigError(f"unknown executor {executor!r}", fix=f"use one of: {known}") from None
    results, interrupted = factory(jobs=jobs, **executor_options).run(
        tasks, on_done or (lambda r: None)
    )
    sweep_id = tasks[0].sweep_id if tasks else ""
    return SweepResult(sweep_id, sorted(results, key=lambda r: r.index), interrupted)


def execute_task(task: SweepTask) -> TaskResult:
    """Run one task in this process (what every executor's worker calls)."""
    project = load_project(Path(task.project_root))
    try:
        record = run_notebook(
            task.notebook,
            task.parameters,
            timeout=task.timeout,
            project=project,
            sweep_id=task.sweep_id,
            all_cells=task.all_cells,
        )
    except RunError as exc:
        return TaskResult(task.index, task.parameters, _status_of(exc), exc.run_id, error=str(exc))
    except NbopsError as exc:
        return TaskResult(task.index, task.parameters, "failed", error=str(exc))
    return TaskResult(
        task.index, task.parameters, record.status, record.run_id, metrics=record.latest_metrics()
    )


def _status_of(exc: Exception) -> str:
    names = {"KernelDiedError": "killed", "RunTimeoutError": "timeout"}
    return names.get(type(exc).__name__, "failed")


# -- the local executor: one process per run, `jobs` at a time ---------------------------------


def _interrupt_once() -> None:
    """The first SIGINT interrupts the run; later ones (a terminal's Ctrl-C reaches every
    process of the group, and the parent forwards it too) must not cut its recording short."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def _local_worker(tasks: Any, results: Any, stop: Any) -> None:
    """A worker process: runs tasks until the queue is empty or the sweep stops."""
    _interrupt_once()
    try:
        while not stop.is_set():
            try:
                task = tasks.get(timeout=0.1)
            except queue.Empty:
                return
            results.put(("started", task.index, os.getpid()))
            try:
                result = execute_task(task)
            except KeyboardInterrupt:
                result = TaskResult(task.index, task.parameters, "interrupted")
            results.put(("done", task.index, result))
    except KeyboardInterrupt:
        return  # interrupted between two tasks: nothing of ours is running


class LocalExecutor:
    """`jobs` worker processes on this machine, each running one notebook at a time.

    Workers live for the whole sweep, so each imports papermill and nbops once; every run
    still gets a fresh kernel. Ctrl-C stops the workers' runs (recorded as interrupted) and
    cancels the runs not started yet.
    """

    def __init__(self, jobs: int = 2) -> None:
        self.jobs = max(1, jobs)

    def run(
        self, tasks: list[SweepTask], on_done: Callable[[TaskResult], None]
    ) -> tuple[list[TaskResult], bool]:
        ctx = multiprocessing.get_context("spawn")
        task_queue, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        for task in tasks:
            task_queue.put(task)
        workers = [
            ctx.Process(target=_local_worker, args=(task_queue, results, stop))
            for _ in range(min(self.jobs, len(tasks)))
        ]
        for worker in workers:
            worker.start()
        by_index = {t.index: t for t in tasks}
        done: dict[int, TaskResult] = {}
        running: dict[int, int] = {}  # task index -> worker pid
        interrupted = False
        while len(done) < len(tasks):
            try:
                try:
                    kind, index, payload = results.get(timeout=0.2)
                except queue.Empty:
                    if not any(w.is_alive() for w in workers):
                        break  # every worker is gone: what is left never ran
                    self._reap_crashed(workers, running, by_index, done, on_done)
                    continue
                if kind == "started":
                    running[index] = payload
                else:
                    running.pop(index, None)
                    done[index] = payload
                    on_done(payload)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                for worker in workers:
                    if worker.is_alive() and worker.pid:
                        os.kill(worker.pid, signal.SIGINT)
        for worker in workers:
            worker.join(timeout=30)
        for index, task in by_index.items():
            if index not in done:
                if interrupted:
                    done[index] = TaskResult(index, task.parameters, "cancelled")
                else:
                    error = "the worker processes exited before running it"
                    done[index] = TaskResult(index, task.parameters, "failed", error=error)
                on_done(done[index])
        return list(done.values()), interrupted

    @staticmethod
    def _reap_crashed(
        workers: list[Any],
        running: dict[int, int],
        by_index: dict[int, SweepTask],
        done: dict[int, TaskResult],
        on_done: Callable[[TaskResult], None],
    ) -> None:
        """A worker that died mid-run (killed, out of memory) fails its task."""
        dead = {w.pid: w.exitcode for w in workers if not w.is_alive()}
        for index, pid in list(running.items()):
            if pid in dead:
                running.pop(index)
                message = f"the worker process exited with {dead[pid]}"
                done[index] = TaskResult(index, by_index[index].parameters, "failed", error=message)
                on_done(done[index])


# -- the Dask executor: a LocalCluster, or an existing scheduler ---------------------------------


# Set when a sweep on an in-process LocalCluster is stopped (Ctrl-C): tasks not begun yet
# return at once instead of running.
_STOPPING = threading.Event()
_NOT_STARTED = "not started: the sweep was stopped"


def execute_task_detached(task: SweepTask) -> dict[str, Any]:
    """Run one task in a scratch store wherever the worker is, and return its record and the
    files of its run folder, so the client — not the worker — writes the project's store.

    The run gets a thread and an event loop of its own: papermill drives the kernel with
    asyncio, and a worker thread may carry (or share) a loop that is already running.
    """
    import asyncio
    import threading

    if _STOPPING.is_set():  # the sweep in this process was stopped before this task began
        return {"index": task.index, "record": None, "files": {}, "error": _NOT_STARTED}
    outcome: dict[str, Any] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            outcome["value"] = _execute_detached(task)
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=target, name=f"nbops-run-{task.index}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["value"])


def _execute_detached(task: SweepTask) -> dict[str, Any]:
    import tempfile

    root = Path(task.project_root)
    project = load_project(root if root.is_dir() else None)
    with tempfile.TemporaryDirectory(prefix="nbops-task-") as tmp:
        store = RunStore(Path(tmp))
        error = None
        record: RunRecord | None
        try:
            record = run_notebook(
                task.notebook,
                task.parameters,
                timeout=task.timeout,
                project=project,
                store=store,
                sweep_id=task.sweep_id,
                tracking="sqlite",
                all_cells=task.all_cells,
            )
        except RunError as exc:
            error = str(exc)
            record = store.load(exc.run_id) if exc.run_id else None
        except KeyboardInterrupt:  # interrupt_runs(): the client was stopped
            error = "interrupted"
            listed = store.list()
            record = listed[0] if listed else None
        if record is None:
            return {"index": task.index, "record": None, "files": {}, "error": error}
        folder = store.run_dir(record.run_id)
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        # the data snapshots the run kept (track_data(..., snapshot=True)) live in the store,
        # not the run folder: they go back too, or a rerun of this run finds them missing
        kept = objects_dir(Path(tmp))
        objects = {
            p.relative_to(kept).as_posix(): p.read_bytes()
            for p in sorted(kept.rglob("*"))
            if p.is_file()
        }
        return {
            "index": task.index,
            "record": record.model_dump_json(),
            "files": files,
            "objects": objects,
            "error": error,
        }


def store_detached(payload: dict[str, Any], task: SweepTask, store: Any) -> TaskResult:
    """Write what a worker sent back into the client's store; the TaskResult for it."""
    if payload.get("record") is None:
        return TaskResult(task.index, task.parameters, "failed", error=payload.get("error"))
    record = RunRecord.model_validate_json(payload["record"])
    folder = store.run_dir(record.run_id)
    for rel, data in payload["files"].items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)  # atomic, as every file of a run (files.py)
    kept = objects_dir(store.directory).resolve()
    for rel, data in payload.get("objects", {}).items():
        target = kept / rel
        if kept not in target.resolve().parents:  # a worker names paths inside the store only
            continue
        if not target.exists():  # content-addressed: the same name is the same bytes
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(target, data)
    store.save(record)
    return TaskResult(
        task.index,
        task.parameters,
        record.status,
        record.run_id,
        metrics=record.latest_metrics(),
        error=payload.get("error"),
    )


def worker_error(exc: BaseException) -> str:
    """What went wrong on a worker, in one line, with the fix for a missing install."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) or "No module named" in str(exc):
        return (
            f"a Dask worker cannot import what the run needs ({text}); install nbops, a "
            "Jupyter kernel and the notebook's own packages on every worker"
        )
    return f"the Dask task failed ({text})"


# The in-process LocalCluster's scheduler: no dashboard, its HTTP server on loopback only.
LOCAL_SCHEDULER: dict[str, Any] = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


class DaskExecutor:
    """Runs each task on a Dask cluster: a LocalCluster of `jobs` threads by default (each
    papermill run starts its own kernel process, so threads suffice), or the scheduler at
    `scheduler` (`tcp://HOST:PORT`). Results travel back to this process, which writes the
    records, so workers need no access to the store. Ctrl-C cancels the tasks not started."""

    def __init__(self, jobs: int = 2, scheduler: str | None = None) -> None:
        require_extra("distributed", "dask")
        self.jobs = max(1, jobs)
        self.scheduler = scheduler

    def run(
        self, tasks: list[SweepTask], on_done: Callable[[TaskResult], None]
    ) -> tuple[list[TaskResult], bool]:
        from distributed import Client, LocalCluster, as_completed

        if not tasks:
            return [], False
        store = RunStore(load_project(Path(tasks[0].project_root)).store_dir)
        cluster = None
        _STOPPING.clear()
        if self.scheduler:
            try:
                client = Client(self.scheduler, timeout="10s")
            except Exception as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {self.scheduler} "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                    fix="check --scheduler (or [tool.nbops] scheduler): tcp://HOST:PORT",
                ) from None
        else:
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=self.jobs,
                processes=False,
                dashboard_address=None,
                # No dashboard, and the scheduler's HTTP server (which distributed starts
                # even without one, on 0.0.0.0:8787 by default) on a free loopback port: a
                # second sweep, or any other cluster on this machine, does not collide.
                scheduler_kwargs=LOCAL_SCHEDULER,
            )
            client = Client(cluster)
        by_key: dict[Any, tuple[Any, SweepTask]] = {}
        done: dict[int, TaskResult] = {}
        interrupted = False
        try:
            for task in tasks:
                future = client.submit(execute_task_detached, task, pure=False)
                by_key[future.key] = (future, task)
            for future in as_completed([f for f, _ in by_key.values()]):
                _, task = by_key[future.key]
                try:
                    result = store_detached(future.result(), task, store)
                except DASK_SHUTDOWN_ERRORS as exc:  # a cancelled future raises CancelledError
                    result = TaskResult(
                        task.index, task.parameters, "failed", error=worker_error(exc)
                    )
                done[task.index] = result
                on_done(result)
        except KeyboardInterrupt:
            interrupted = True
            _quiet_dask_logs()  # from here on, distributed winding down is not the user's news
            pending = [f for f, t in by_key.values() if t.index not in done]
            if cluster is not None:
                # The runs in this process's worker threads: tasks not started return at
                # once, running ones have their kernels interrupted and are recorded as
                # interrupted. (On a remote cluster a running task cannot be stopped: it is
                # cancelled and its result dropped.)
                self._stop_local_runs(pending, by_key, store, done, on_done)
            with contextlib.suppress(*DASK_SHUTDOWN_ERRORS):
                client.cancel([f for f in pending if not f.done()])
        finally:
            restore = _quiet_dask_logs()
            _close_quietly(client)
            if cluster is not None and not _close_quietly(cluster):
                cluster.shutdown_on_close = False  # its atexit close would fail the same way
            if not interrupted:
                restore()
        for _, task in by_key.values():
            if task.index not in done:
                done[task.index] = TaskResult(task.index, task.parameters, "cancelled")
                on_done(done[task.index])
        return list(done.values()), interrupted

    @staticmethod
    def _stop_local_runs(
        futures: list[Any],
        by_key: dict[Any, tuple[Any, SweepTask]],
        store: Any,
        done: dict[int, TaskResult],
        on_done: Callable[[TaskResult], None],
    ) -> None:
        """Interrupt the runs in progress in this process's worker threads and keep their
        records; a run whose kernel was still starting is interrupted once it has one."""
        _STOPPING.set()
        deadline = time.monotonic() + 60
        running = list(futures)
        while running and time.monotonic() < deadline:
            interrupt_runs()
            time.sleep(0.2)
            for future in [f for f in running if f.done()]:
                running.remove(future)
                _, task = by_key[future.key]
                payload = None
                if future.status == "finished":  # not cancelled, not an error
                    with contextlib.suppress(*DASK_SHUTDOWN_ERRORS):
                        payload = future.result()
                if payload is None or payload.get("error") == _NOT_STARTED:
                    continue  # reported as cancelled
                result = store_detached(payload, task, store)
                done[task.index] = result
                on_done(result)


# What distributed raises while it shuts down or drops a task: a timeout closing on a loaded
# machine, CancelledError (asyncio's, a BaseException, and concurrent.futures') from the
# coroutines and futures it cancels. On the interrupt path none of it is the user's problem.
DASK_SHUTDOWN_ERRORS: tuple[type[BaseException], ...] = (
    Exception,
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
)
_CLOSE_TIMEOUT_S = 30


def _close_quietly(closable: Any) -> bool:
    """Close a Dask client or cluster; whether it closed (see DASK_SHUTDOWN_ERRORS)."""
    try:
        closable.close(timeout=_CLOSE_TIMEOUT_S)
    except DASK_SHUTDOWN_ERRORS:
        return False
    return True


def _quiet_dask_logs() -> Callable[[], None]:
    """Closing a cluster with cancelled tasks makes distributed (and asyncio, for the tasks
    it cancels) log warnings and tracebacks; nbops reports the sweep itself. Returns what
    puts the levels back."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)

    def restore() -> None:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)

    return restore


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "dask": DaskExecutor}
