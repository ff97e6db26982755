"""`nbops run`, `rerun`, `sweep`, `ci` and the `nbops runs` group (list, show, repair,
compare): executing notebooks and looking at recorded runs."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nbops.cli.common import ReadableGroup, _handles_errors, _warn, app, err, out
from nbops.errors import RunFailedError

# Deferred imports: each command imports the library it calls inside its body, so that
# `nbops --help` and every other command start without loading it (pandas, papermill, the
# bundle machinery); tests/test_cli_startup.py holds this.

runs_app = typer.Typer(cls=ReadableGroup, help="Look at recorded runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME VALUE",
        help="A parameter, as papermill takes it: -p NAME VALUE (or NAME=VALUE); repeatable.",
    ),
]


def _param_pairs(items: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected -p NAME VALUE", param_hint="--param")
        pairs[name.strip()] = value
    return pairs


ParamFile = Annotated[
    Path | None, typer.Option("--parameters-file", "-f", help="A YAML file of parameters.")
]
Tracking = Annotated[
    str | None,
    typer.Option(
        "--tracking", help="Also log the run to: mlflow (default: \\[tool.nbops] tracking)."
    ),
]


def _checked_timeout(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value}: give a number of seconds above 0")
    return value


def _installed_kernel(value: str | None) -> str | None:
    if value is None:
        return None
    from nbops.runs.environment import installed_kernels

    names = installed_kernels()
    if value not in names:
        raise typer.BadParameter(
            f"no kernel named {value!r} is installed; installed: {', '.join(names) or 'none'} "
            "(jupyter kernelspec list)"
        )
    return value


Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        callback=_checked_timeout,
        help="Seconds a cell may run before the run stops (a fraction rounds up to whole seconds).",
    ),
]
AllCells = Annotated[
    bool,
    typer.Option(
        "--all-cells", help="Execute the cells tagged skip too (by default they are not run)."
    ),
]


def _metrics_text(metrics: dict[str, float], limit: int = 4) -> str:
    items = list(metrics.items())[:limit]
    text = " ".join(f"{k}={v:.3g}" for k, v in items)
    return text + ("  ..." if len(metrics) > limit else "")


def _run_summary(record: Any, store: Any) -> None:
    _warn(record.warnings)
    out.print(
        f"Run {record.run_id} {record.status} in {record.duration_s:.1f} s"
        + (f": {_metrics_text(record.latest_metrics())}" if record.metrics else ""),
        markup=False,
    )
    out.print(
        f"Output notebook: {store.run_dir(record.run_id) / (record.output_notebook or '')}",
        markup=False,
    )


@app.command()
@_handles_errors
def run(
    notebook: Annotated[Path, typer.Argument(help="The notebook to run.")],
    param: ParamOption = None,
    parameters_file: ParamFile = None,
    timeout: Timeout = None,
    kernel: Annotated[
        str | None,
        typer.Option(
            "--kernel", "-k", callback=_installed_kernel, help="Kernel name (an installed one)."
        ),
    ] = None,
    tracking: Tracking = None,
    all_cells: AllCells = False,
) -> None:
    """Run NOTEBOOK through papermill with parameters, and record the run.

    Parameters are checked against the notebook's parameters cell before the kernel starts.
    Cells tagged skip are kept in the output notebook but not executed, unless --all-cells.
    The run (parameters, metrics, data fingerprints, git, environment, per-cell timings, the
    output notebook) is kept in the project's .nbops/ store.
    """
    from nbops.config import load_project
    from nbops.runs.execute import run_notebook, terminate_on_sigterm
    from nbops.runs.store import RunStore

    project = load_project()
    store = RunStore(project.store_dir)
    with terminate_on_sigterm():
        record = run_notebook(
            notebook,
            _param_pairs(param),
            parameter_file=parameters_file,
            timeout=timeout,
            kernel=kernel,
            project=project,
            store=store,
            tracking=tracking,
            all_cells=all_cells,
        )
    _run_summary(record, store)


@app.command()
@_handles_errors
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to repeat (id or id prefix).")],
    timeout: Timeout = None,
    restore_data: Annotated[
        bool,
        typer.Option(
            "--restore-data",
            help="Also put back kept data whose path the notebook hard-codes, for the run "
            "(the current file is moved aside and put back after).",
        ),
    ] = False,
) -> None:
    """Run a recorded run again: same parameters, same notebook version, same data.

    Data the run kept a copy of (track_data(..., snapshot=True)) and that changed since is
    restored: passed as the parameter that names its path, or with --restore-data put in
    place for the run."""
    from nbops.config import load_project
    from nbops.runs.execute import terminate_on_sigterm
    from nbops.runs.history import rerun as rerun_run
    from nbops.runs.history import rerun_warnings
    from nbops.runs.store import RunStore

    project = load_project()
    store = RunStore(project.store_dir)
    _warn(rerun_warnings(store.load(run_id), restore_data=restore_data))
    with terminate_on_sigterm():
        _, record = rerun_run(
            run_id, store=store, project=project, timeout=timeout, restore_data=restore_data
        )
    _run_summary(record, store)


@runs_app.command("list")
@_handles_errors
def runs_list(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    notebook: Annotated[
        str | None, typer.Option("--notebook", help="Only runs of this notebook.")
    ] = None,
) -> None:
    """A table of recent runs: id, notebook, status, key metrics, time."""
    from nbops.runs.store import RunStore

    records = RunStore.for_project().list(limit=limit, notebook=notebook)
    table = Table(title="Runs", title_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("notebook", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("metrics", min_width=26)
    table.add_column("started", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    for r in records:
        table.add_row(
            r.run_id,
            Path(r.notebook).name,
            r.status,
            _metrics_text(r.latest_metrics(), 3),
            r.started_at[5:16].replace("T", " "),
            f"{r.duration_s:.1f}" if r.duration_s is not None else "",
        )
    out.print(table)


@runs_app.command("show")
@_handles_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id, id prefix, or 'latest'.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole record as JSON.")
    ] = False,
) -> None:
    """Everything recorded about one run."""
    from nbops.runs.store import RunStore

    store = RunStore.for_project()
    r = store.load(run_id)
    if as_json:
        sys.stdout.write(r.model_dump_json(indent=2) + "\n")
        return
    out.print(f"Run {r.run_id}: {r.status}", markup=False)
    out.print(
        f"  notebook     {r.notebook} (sha256 {(r.notebook_sha256 or '')[:12]})", markup=False
    )
    if r.export_version is not None:
        out.print(f"  export       version {r.export_version}", markup=False)
    out.print(f"  started      {r.started_at}  ({r.duration_s} s)", markup=False)
    git = r.git
    if git.commit:
        out.print(
            f"  git          {git.commit[:12]} on {git.branch}{' (dirty)' if git.dirty else ''}",
            markup=False,
        )
    if r.environment:
        env = r.environment
        out.print(
            f"  environment  Python {env.python}, {env.platform}, kernel {env.kernel}", markup=False
        )
    out.print(f"  output       {store.run_dir(r.run_id) / (r.output_notebook or '')}", markup=False)
    if r.parameters:
        out.print("Parameters", markup=False)
        for k, v in r.parameters.items():
            out.print(f"  {k} = {v!r}", markup=False)
    if r.metrics:
        out.print("Metrics", markup=False)
        for k, points in r.metrics.items():
            history = f"  ({len(points)} values)" if len(points) > 1 else ""
            out.print(f"  {k} = {points[-1].value:.6g}{history}", markup=False)
    for d in r.data:
        out.print(f"Data {d.name}: {d.type} sha256 {d.sha256[:12]}", markup=False)
    if r.cells:
        out.print("Cells", markup=False)
        for c in r.cells:
            seconds = f"{c.duration_s:.2f} s" if c.duration_s is not None else ""
            out.print(
                f"  {c.index + 1:>3} {c.id:<10} {c.role or '-':<20} {c.status:<8} {seconds}",
                markup=False,
            )
    if r.failure:
        f = r.failure
        where = f" in cell {f.cell_index + 1} (id {f.cell_id})" if f.cell_index is not None else ""
        out.print(f"Failure{where}: {f.ename}: {f.evalue}", markup=False)


@runs_app.command("repair")
@_handles_errors
def runs_repair() -> None:
    """Rebuild the run store's database (runs.db) from the runs' record.json files.

    For a zero-byte or damaged runs.db: the damaged file is kept as runs.db.damaged-<time>,
    and runs only it still holds are kept too.
    """
    from nbops.config import load_project
    from nbops.runs.store import RunStore

    result = RunStore.repair(load_project().store_dir)
    kept = f" (the damaged file is kept as {result.damaged_copy})" if result.damaged_copy else ""
    extra = (
        f", {result.from_database} more from the damaged database" if result.from_database else ""
    )
    registry = f"; {result.registry_events} registry events" if result.registry_events else ""
    out.print(
        f"Rebuilt runs.db: {result.runs} runs, {result.from_records} from record.json "
        f"files{extra}{registry}{kept}",
        markup=False,
    )
    _warn([f"{path}: not a readable run record; left in place" for path in result.unreadable])


@runs_app.command("compare")
@_handles_errors
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN_ID", help="Two or more run ids.")],
) -> None:
    """Parameters and metrics of runs side by side; differences marked with *."""
    if len(run_ids) < 2:
        raise typer.BadParameter("give two or more run ids to compare", param_hint="RUN_ID...")
    from nbops.runs.history import compare
    from nbops.runs.store import RunStore

    store = RunStore.for_project()
    records = [store.load(ref) for ref in run_ids]
    table = Table(title="Comparison", title_justify="left")
    table.add_column("")
    table.add_column("name")
    for r in records:
        table.add_column(r.run_id)
    for row in compare(records):
        cells = [
            "" if v is None else (f"{v:.6g}" if isinstance(v, float) else repr(v))
            for v in row.values
        ]
        style = "bold yellow" if row.differs else None
        table.add_row("*" if row.differs else "", f"{row.kind} {row.name}", *cells, style=style)
    out.print(table)


@app.command()
@_handles_errors
def sweep(
    notebook: Annotated[Path, typer.Argument(help="The notebook to run for every combination.")],
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid",
            "-g",
            metavar="NAME=V1,V2",
            help="An axis of the grid: NAME=V1,V2,... (repeatable).",
        ),
    ],
    parameters_file: ParamFile = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Runs at a time.")] = 2,
    sort: Annotated[
        str | None, typer.Option("--sort", help="Order the summary by this metric.")
    ] = None,
    ascending: Annotated[
        bool, typer.Option("--ascending", help="Smallest first (losses).")
    ] = False,
    executor: Annotated[
        str, typer.Option("--executor", help="Where runs execute: local, or dask (nbops\\[dask]).")
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (default: a LocalCluster)."),
    ] = None,
    timeout: Timeout = None,
    all_cells: AllCells = False,
) -> None:
    """Run NOTEBOOK for every combination of a parameter grid, in parallel.

    Each run is recorded like `nbops run`; a failing run does not stop the others. Exits 21
    when any run did not complete.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nbops.runs.sweep import parse_grid, plan_sweep, run_sweep

    tasks = plan_sweep(
        notebook,
        parse_grid(grid),
        parameter_file=parameters_file,
        timeout=timeout,
        all_cells=all_cells,
    )
    counts = {"ok": 0, "failed": 0, "stopped": 0}
    with Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        bar = progress.add_task("", total=len(tasks))

        def done(result: Any) -> None:
            if result.status == "completed":
                counts["ok"] += 1
            elif result.status in ("cancelled", "interrupted"):
                counts["stopped"] += 1
            else:
                counts["failed"] += 1
            text = f"{counts['ok']} ok, {counts['failed']} failed"
            if counts["stopped"]:
                text += f", {counts['stopped']} stopped"
            progress.update(bar, advance=1, description=text)

        options: dict[str, Any] = {}
        if executor == "dask":
            from nbops.config import load_project

            options["scheduler"] = scheduler or load_project().config.scheduler
        result = run_sweep(tasks, executor=executor, jobs=jobs, on_done=done, **options)
    names = sorted({k for t in tasks for k in t.parameters})
    metrics = sorted({m for r in result.results for m in r.metrics})
    table = Table(title=f"Sweep {result.sweep_id}", title_justify="left")
    table.add_column("run", no_wrap=True)
    for column in [*names, "status", *metrics]:
        table.add_column(column)
    for r in result.sorted_by(sort, ascending=ascending):
        table.add_row(
            r.run_id or "-",
            *[repr(r.parameters.get(n)) for n in names],
            r.status,
            *[f"{r.metrics[m]:.4g}" if m in r.metrics else "" for m in metrics],
        )
    out.print(table)
    _warn(
        [
            f"run {r.index + 1} ({r.parameters}): {r.error}"
            for r in result.failed
            if r.error and not r.run_id
        ]
    )
    if result.interrupted:
        raise KeyboardInterrupt
    if result.failed:
        raise RunFailedError(
            f"{len(result.failed)} of {len(result.results)} runs did not complete",
            location=str(notebook),
            fix="see `nbops runs show RUN_ID` for each failed run",
        )


@app.command()
@_handles_errors
def ci(
    notebook: Annotated[Path, typer.Argument(help="The notebook CI runs.")],
    param: ParamOption = None,
    parameters_file: ParamFile = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            metavar="GATE",
            help="A gate besides \\[tool.nbops] gates, e.g. 'accuracy >= 0.9'.",
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Run id that baseline.NAME in gates refers to.")
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Where to write JUnit XML (default: the run folder)."),
    ] = None,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="Where to write the Markdown summary.")
    ] = None,
    timeout: Timeout = None,
    tracking: Tracking = None,
    all_cells: AllCells = False,
) -> None:
    """Run NOTEBOOK and check the gates declared in pyproject.toml (\\[tool.nbops] gates).

    Writes JUnit XML and a Markdown summary (also to $GITHUB_STEP_SUMMARY when set). Exit
    codes: 0 passed, 21 a cell raised, 22 the kernel died, 23 timeout, 24 a gate failed.
    """
    from nbops.runs.ci import raise_for_status, run_ci
    from nbops.runs.execute import terminate_on_sigterm

    with terminate_on_sigterm():
        report = run_ci(
            notebook,
            _param_pairs(param),
            parameter_file=parameters_file,
            extra_gates=gate,
            baseline=baseline,
            junit=junit,
            summary=summary,
            timeout=timeout,
            tracking=tracking,
            all_cells=all_cells,
        )
    for g in report.gates:
        mark = "PASS" if g.passed else "FAIL"
        out.print(f"{mark}  {g.gate}  ({g.reason})", markup=False)
    out.print(f"JUnit: {report.junit}  Summary: {report.summary}", markup=False)
    raise_for_status(report)
    if report.record:
        out.print(
            f"Run {report.record.run_id}: all {len(report.gates)} gates passed.", markup=False
        )
