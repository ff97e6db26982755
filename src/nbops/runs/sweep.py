"""`nbops sweep`: a grid of parameterised runs, in parallel, through a pluggable executor.

Every combination is checked against the parameters cell before the first kernel starts.
Each run is recorded in the store like any `nbops run` (with the sweep's id); a failing run
does not stop the others. Executors are a registry: `local` runs each notebook in its own
process (`--jobs` at a time); a later addition runs them on a Dask cluster.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nbops.config import Project, load_project
from nbops.errors import ConfigError, NbopsError
from nbops.runs.capture import new_run_id
from nbops.runs.execute import prepare_run
from nbops.runs.parameters import read_parameter_file


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: everything a worker needs, picklable."""

    index: int
    notebook: str
    parameters: dict[str, Any]
    project_root: str
    sweep_id: str
    timeout: float | None


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
                notebook=str(notebook),
                parameters=prepared.overrides,
                project_root=str(project.root),
                sweep_id=sweep_id,
                timeout=timeout,
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
    from nbops.errors import RunError
    from nbops.runs.execute import run_notebook

    project = load_project(Path(task.project_root))
    try:
        record = run_notebook(
            task.notebook,
            task.parameters,
            timeout=task.timeout,
            project=project,
            sweep_id=task.sweep_id,
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


def _local_worker(task: SweepTask, results: Any) -> None:
    _interrupt_once()
    try:
        result = execute_task(task)
    except KeyboardInterrupt:
        result = TaskResult(task.index, task.parameters, "interrupted")
    results.put(result)


class LocalExecutor:
    """Each run in its own process (spawned, so no state leaks between runs)."""

    def __init__(self, jobs: int = 2) -> None:
        self.jobs = max(1, jobs)

    def run(
        self, tasks: list[SweepTask], on_done: Callable[[TaskResult], None]
    ) -> tuple[list[TaskResult], bool]:
        ctx = multiprocessing.get_context("spawn")
        results_queue = ctx.Queue()
        pending = list(tasks)
        running: dict[int, Any] = {}
        done: dict[int, TaskResult] = {}
        interrupted = False

        def finish(result: TaskResult) -> None:
            done[result.index] = result
            process = running.pop(result.index, None)
            if process is not None:
                process.join(timeout=30)
            on_done(result)

        while pending or running:
            try:
                while pending and len(running) < self.jobs and not interrupted:
                    task = pending.pop(0)
                    process = ctx.Process(target=_local_worker, args=(task, results_queue))
                    process.start()
                    running[task.index] = process
                try:
                    finish(results_queue.get(timeout=0.2))
                except queue.Empty:
                    for index, process in list(running.items()):
                        if not process.is_alive() and process.exitcode not in (0, None):
                            task = next(t for t in tasks if t.index == index)
                            finish(
                                TaskResult(
                                    index,
                                    task.parameters,
                                    "failed",
                                    error=f"the worker process exited with {process.exitcode}",
                                )
                            )
                if interrupted and pending:
                    for task in pending:
                        finish(TaskResult(task.index, task.parameters, "cancelled"))
                    pending.clear()
            except KeyboardInterrupt:
                interrupted = True
                for process in running.values():
                    if process.is_alive() and process.pid:
                        os.kill(process.pid, signal.SIGINT)
                time.sleep(0.1)
        return list(done.values()), interrupted


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor}
