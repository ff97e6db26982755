"""The `nbops` command: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from nbops import __version__
from nbops.errors import NbopsError, Terminated

app = typer.Typer(
    name="nbops",
    help="From a tagged notebook to a versioned pipeline package, tracked runs and a bundle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

OutDir = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder that holds exported packages and their versions."),
]


def _handles_errors(func: F) -> F:
    """Turn NbopsError into one line on stderr and its exit code; Ctrl-C into 130, and
    SIGTERM (where a command turns it into Terminated) into 143."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NbopsError as exc:
            err.print(f"nbops: error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated as exc:
            recorded = f": run {exc.run_id} recorded as terminated" if exc.run_id else ""
            err.print(f"nbops: terminated{recorded}", markup=False)
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            err.print("nbops: interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _warn(messages: list[Any]) -> None:
    for message in messages:
        err.print(f"nbops: warning: {message}", markup=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"nbops {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """nbops turns tagged notebook cells into a pipeline package (see `nbops export --help`)."""


@app.command()
@_handles_errors
def export(
    notebook: Annotated[
        Path, typer.Argument(help="The notebook (.ipynb, or a jupytext percent .py).")
    ],
    out_dir: OutDir = Path("pipelines"),
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Package name (default: from the file name).")
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 14 if the package is stale (for CI)."),
    ] = False,
    bundle: Annotated[
        bool,
        typer.Option("--bundle", help="Then run the notebook (nbops run) and bundle its model."),
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Also write the pipeline for an orchestrator: kfp or airflow (repeatable).",
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option("--base-image", help="kfp: the components' image (or \\[tool.nbops])."),
    ] = None,
    install: Annotated[
        bool,
        typer.Option(
            "--install/--no-install",
            help="kfp: pip-install kfp and the requirements when a component starts "
            "(--no-install when the image has them).",
        ),
    ] = True,
) -> None:
    """Export the tagged cells of NOTEBOOK as a versioned pipeline package.

    Writes OUT/NAME/: the package NAME/ (with its manifest.json) and test_pipeline.py.

    Every version is kept under OUT/.versions/NAME/.

    Run the result from OUT/NAME with: python -m NAME --param KEY=VALUE

    With --target kfp, also OUT/NAME/kfp_pipeline.py and its compiled kfp_pipeline.yaml; with
    --target airflow, OUT/NAME/airflow_dag.py. Both run the package once first, with the
    default parameters, to learn how each value passes between steps.
    """
    from nbops.export.exporter import check_export, export_notebook

    if check:
        result = check_export(notebook, out_dir, name=name)
        _warn(result.diagnostics)
        out.print(f"{result.folder} is up to date (version {result.version}).")
        return
    options = None
    if target:
        from nbops.config import load_project
        from nbops.export.targets import DEFAULT_BASE_IMAGE, TargetOptions

        config = load_project(notebook.resolve().parent).config
        options = TargetOptions(
            base_image=base_image or config.base_image or DEFAULT_BASE_IMAGE,
            install_packages=install,
            steps=config.steps,
        )
    result = export_notebook(notebook, out_dir, name=name, targets=target or (), options=options)
    _warn(result.diagnostics)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    status = "new version" if result.new_version else "unchanged, version"
    out.print(
        f"Exported {notebook} -> {result.package_dir} "
        f"({status} {result.version}, {result.content_hash[:12]}, "
        f"{len(result.manifest.steps)} steps)"
    )
    out.print(f"Run it: cd {result.folder} && python -m {result.name}", markup=False)
    for done in result.manifest.targets:
        made = sorted(str(p) for p in result.folder.glob(f"{done}_*"))
        out.print(f"{done}: {', '.join(made)}", markup=False)
    if bundle:
        from nbops.bundle.make import bundle_from_run
        from nbops.runs.execute import run_notebook

        record = run_notebook(notebook)
        out.print(f"Run {record.run_id} completed in {record.duration_s:.1f} s", markup=False)
        # The same folder and name as the export above: no second version, nothing stale.
        folder = bundle_from_run(record.run_id, export_dir=out_dir, name=result.name)
        out.print(f"Bundle {folder}", markup=False)


@app.command()
@_handles_errors
def tags(
    notebook: Annotated[Path, typer.Argument(help="The notebook to inspect.")],
) -> None:
    """Show each cell's role and the steps nbops would export, with inputs and outputs."""
    from nbops.notebook.analysis import analyse
    from nbops.notebook.read import read_notebook

    nb = read_notebook(notebook)
    table = Table(title=f"Cells of {notebook}", title_justify="left")
    for column in ("cell", "id", "type", "role", "first line"):
        table.add_column(column)
    for cell in nb.cells:
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        role = str(cell.tag.step_tag) if cell.tag else ("-" if cell.cell_type == "code" else "")
        if cell.cell_type == "code" and cell.injected:
            role = "injected-parameters (ignored)"
        # An id nbops derived (the file has none) is shown in brackets, not as the cell's own.
        cell_id = cell.own_id or f"({cell.cell_id})"
        table.add_row(str(cell.number), cell_id, cell.cell_type, role, first[:60])
    out.print(table)
    if nb.kale:
        out.print(
            "Roles read from Kale's tags (no cell has nbops tags); "
            f"`nbops tag {notebook} --from-kale --write` adds them as nbops tags.",
            markup=False,
        )
    graph = analyse(nb)
    _warn(graph.diagnostics)
    steps = Table(title="Steps", title_justify="left")
    for column in ("step", "cells", "inputs", "outputs"):
        steps.add_column(column)
    if graph.parameters:
        params = ", ".join(
            f"{p.name}: {p.type_source} = {p.default_source}" for p in graph.parameters
        )
        out.print(f"Parameters: {params}", markup=False)
    for step in graph.steps:
        steps.add_row(
            step.tag,
            " ".join(str(a.cell.number) for a in step.cells),
            ", ".join(i.name for i in step.inputs) or "-",
            ", ".join(step.outputs) or "-",
        )
    out.print(steps)


@app.command()
@_handles_errors
def tag(
    notebook: Annotated[
        Path, typer.Argument(help="The notebook (.ipynb, or a jupytext percent .py).")
    ],
    suggest: Annotated[
        bool,
        typer.Option("--suggest", help="Propose a tag per code cell, read from its code."),
    ] = False,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Write the proposed tags into the notebook (implies --suggest)."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also replace the nbops tags cells already have."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for tools.")] = False,
    from_kale: Annotated[
        bool,
        typer.Option(
            "--from-kale",
            help="Give each cell the nbops tag its Kale tags mean (Kale's tags are kept).",
        ),
    ] = False,
) -> None:
    """Tag the cells of NOTEBOOK for nbops.

    --suggest prints, per code cell, the proposed tag (or "(untagged)", or skip) and why;
    then the constants to gather into the parameters cell, and what still stops the export.
    --write writes the proposals as standard cell tags: only on cells without an nbops tag,
    unless --force; other tags (hide-input, ...) are never touched.
    --from-kale shows (with --write, writes) the nbops tag each Kale-tagged cell means.
    """
    if from_kale:
        _tag_from_kale(notebook, write=write)
        return
    if not (suggest or write):
        raise typer.BadParameter(
            "say what to do: --suggest, --write or --from-kale", param_hint="OPTIONS"
        )
    from nbops.notebook.read import read_notebook
    from nbops.notebook.suggest import suggest_roles

    suggestion = suggest_roles(read_notebook(notebook), force=force)
    written = None
    if write:
        from nbops.notebook.tagwrite import write_suggestion

        written = write_suggestion(suggestion)
    if as_json:
        import json

        sys.stdout.write(json.dumps({**suggestion.to_json(), "written": written}, indent=2) + "\n")
        return
    _print_suggestion(suggestion, notebook)
    if written is not None:
        if written:
            out.print(f"Wrote the tags of {written} cells into {notebook}.", markup=False)
        else:
            out.print(
                f"Nothing to write: {notebook} already has these tags"
                + ("" if force else " (cells with an nbops tag keep it; --force replaces them)")
                + ".",
                markup=False,
            )


def _print_suggestion(suggestion: Any, notebook: Path) -> None:
    out.print(f"Suggested tags for {notebook}:", markup=False)
    width = max((len(c.label) for c in suggestion.cells), default=10)
    for c in suggestion.cells:
        out.print(f"  cell {c.number:>3}  {c.label:<{width}}  {c.reason}", markup=False)
    if suggestion.gather:
        into = (
            f"the parameters cell (cell {suggestion.parameters_cell + 1})"
            if suggestion.parameters_cell is not None
            else "a new cell tagged parameters, before their first use"
        )
        out.print(f"Gather these constants into {into}, so runs can set them:", markup=False)
        for g in suggestion.gather:
            out.print(
                f"  cell {g.number}, line {g.line}: {g.source}  (passed as {g.use})", markup=False
            )
    _warn(suggestion.warnings)
    if suggestion.exports:
        out.print(
            f"The notebook exports with these tags: {len(suggestion.steps)} steps "
            f"({', '.join(suggestion.steps)}).",
            markup=False,
        )
    else:
        out.print("Not resolved (the export stops here):", markup=False)
        for problem in suggestion.problems:
            out.print(f"  {problem}", markup=False)


def _tag_from_kale(notebook: Path, *, write: bool) -> None:
    from nbops.notebook.kale import convert_kale, write_conversion
    from nbops.notebook.read import read_notebook

    conversions = convert_kale(read_notebook(notebook))
    if not conversions:
        out.print("Every cell already has its nbops tag.", markup=False)
        return
    table = Table(title=f"nbops tags from Kale's, {notebook}", title_justify="left")
    for column in ("cell", "kale tags", "nbops tag", "first line"):
        table.add_column(column)
    for c in conversions:
        table.add_row(str(c.number), " ".join(c.kale_tags) or "-", c.nbops_tag, c.first_line[:50])
    out.print(table)
    if write:
        write_conversion(notebook, conversions)
        out.print(
            f"Wrote {len(conversions)} tags to {notebook} (Kale's tags kept). Kale refuses "
            "tags outside its language: nbops reads Kale's tags as they are, so keep an "
            "unconverted copy to compile with Kale.",
            markup=False,
        )
    else:
        out.print("Nothing written: add --write to write these tags.", markup=False)


@app.command()
@_handles_errors
def versions(
    name: Annotated[str, typer.Argument(help="The exported package's name.")],
    out_dir: OutDir = Path("pipelines"),
) -> None:
    """List the versions of an exported package."""
    from nbops.export.versions import list_versions

    entries = list_versions(out_dir, name)
    table = Table(title=f"Versions of {name}", title_justify="left")
    for column in ("version", "content hash", "created", "steps", "notebook sha256"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            f"v{e.version}", e.content_hash[:12], e.created_at, str(e.steps), e.source_sha256[:12]
        )
    out.print(table)


@app.command()
@_handles_errors
def diff(
    name: Annotated[str, typer.Argument(help="The exported package's name.")],
    old: Annotated[str, typer.Argument(help="A version: 2, v2, a hash prefix or 'latest'.")],
    new: Annotated[str, typer.Argument(help="The version to compare with.")] = "latest",
    out_dir: OutDir = Path("pipelines"),
) -> None:
    """Show the code changes between two versions of an exported package."""
    from nbops.export.versions import diff_versions

    text = diff_versions(out_dir, name, old, new)
    if not text:
        out.print("No code differences.")
        return
    if sys.stdout.isatty():
        out.print(Syntax(text, "diff", background_color="default"))
    else:
        sys.stdout.write(text)


def main() -> None:
    app(args=_join_param_pairs(sys.argv[1:]), prog_name="nbops")


# -- runs ----------------------------------------------------------------------------------------

runs_app = typer.Typer(help="Look at recorded runs.", no_args_is_help=True)
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


def _join_param_pairs(argv: list[str]) -> list[str]:
    """Turn papermill's `-p NAME VALUE` into `-p NAME=VALUE`, which the parser takes."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-p", "--param") and i + 2 < len(argv) + 1 and i + 1 < len(argv):
            name = argv[i + 1]
            if "=" not in name and i + 2 < len(argv):
                out += [token, f"{name}={argv[i + 2]}"]
                i += 3
                continue
        out.append(token)
        i += 1
    return out


ParamFile = Annotated[
    Path | None, typer.Option("--parameters-file", "-f", help="A YAML file of parameters.")
]
Tracking = Annotated[
    str | None,
    typer.Option(
        "--tracking", help="Also log the run to: mlflow (default: \\[tool.nbops] tracking)."
    ),
]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Seconds a cell may run before the run stops.")
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
    kernel: Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel name.")] = None,
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
) -> None:
    """Run a recorded run again: same parameters, same notebook version."""
    from nbops.config import load_project
    from nbops.runs.execute import terminate_on_sigterm
    from nbops.runs.history import rerun as rerun_run
    from nbops.runs.history import rerun_warnings
    from nbops.runs.store import RunStore

    project = load_project()
    store = RunStore(project.store_dir)
    _warn(rerun_warnings(store.load(run_id)))
    with terminate_on_sigterm():
        _, record = rerun_run(run_id, store=store, project=project, timeout=timeout)
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
    out.print(
        f"Rebuilt runs.db: {result.runs} runs, {result.from_records} from record.json "
        f"files{extra}{kept}",
        markup=False,
    )
    _warn([f"{path}: not a readable run record; left in place" for path in result.unreadable])


@runs_app.command("compare")
@_handles_errors
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
) -> None:
    """Parameters and metrics of runs side by side; differences marked with *."""
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
        typer.Option("--grid", "-g", help="An axis of the grid: NAME=V1,V2,... (repeatable)."),
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

    from nbops.errors import RunFailedError
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
        typer.Option("--gate", help="A gate besides \\[tool.nbops] gates, e.g. 'accuracy >= 0.9'."),
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


# -- data quality ----------------------------------------------------------------------------


def _read_frame(path: Path) -> Any:
    import pandas as pd

    from nbops.errors import QualityInputError

    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise QualityInputError(
            f"unsupported data file type {path.suffix!r}",
            location=str(path),
            fix="use a .csv or .parquet file",
        )
    try:
        return reader(path)
    except FileNotFoundError:
        raise QualityInputError("no such file", location=str(path), fix="check the path") from None
    except Exception as exc:
        raise QualityInputError(
            f"cannot read it as {path.suffix[1:]} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            location=str(path),
            fix="check that the file is complete and in that format",
        ) from None


@app.command("infer-schema")
@_handles_errors
def infer_schema_command(
    data: Annotated[Path, typer.Argument(help="Reference (training) data: .csv or .parquet.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the schema.")
    ] = Path("schema.json"),
    label: Annotated[str | None, typer.Option("--label", help="The label column.")] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Key column(s) that must be unique.")
    ] = None,
) -> None:
    """Learn a schema with reference statistics from DATA and write it as JSON (editable)."""
    from nbops.quality.schema import infer_schema

    schema = infer_schema(_read_frame(data), label=label, key=key or None)
    schema.save(output)
    out.print(f"Wrote {output}: {len(schema.columns)} columns", markup=False)


@app.command("validate")
@_handles_errors
def validate_command(
    data: Annotated[Path, typer.Argument(help="Data to check: .csv or .parquet.")],
    schema: Annotated[
        Path, typer.Option("--schema", "-s", help="A schema.json (nbops infer-schema).")
    ],
    environment: Annotated[
        str, typer.Option("--environment", "-e", help="training (label required) or serving.")
    ] = "training",
    html_report: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check DATA against a schema: columns, types, nulls, ranges, categories, keys, drift.

    Exits 0 when no check fails (warnings allowed), 1 when one does.
    """
    from nbops.errors import ValidationFailedError
    from nbops.quality.inspector import InspectionReport
    from nbops.quality.schema import Schema
    from nbops.quality.validate import validate

    report = validate(data, Schema.load(schema), environment=environment)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        table = Table(title=f"Validation of {data}", title_justify="left")
        for column in ("status", "check", "column", "rows", "share", "detail"):
            table.add_column(column)
        styles = {"fail": "red", "warn": "yellow", "pass": "green"}
        for c in report.checks:
            share = f"{c.fraction:.2%}" if c.fraction is not None else ""
            count = "" if c.count is None else str(c.count)
            table.add_row(
                c.status,
                c.kind,
                c.column or "",
                count,
                share,
                c.message,
                style=styles.get(c.status),
            )
        out.print(table)
    if html_report is not None:
        page = InspectionReport(validation=report, title=f"Validation of {data}").to_html()
        html_report.parent.mkdir(parents=True, exist_ok=True)
        tmp = html_report.with_name(html_report.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(html_report)
    if not report.passed:
        values = report.gate_values()
        raise ValidationFailedError(
            f"{values['data.failed_checks']:.0f} check(s) failed",
            location=str(data),
            fix="see the table above" + (f" or {html_report}" if html_report else ""),
        )


# -- bundles ---------------------------------------------------------------------------------

TrustedKeys = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        help="A public key whose bundle signatures are trusted (repeatable); added to "
        "\\[tool.nbops] trusted_keys and $NBOPS_TRUSTED_KEYS.",
    ),
]
RequireSignature = Annotated[
    bool,
    typer.Option(
        "--require-signature",
        help="Refuse a bundle not signed by a trusted key (also: require_signature in "
        "\\[tool.nbops], NBOPS_REQUIRE_SIGNATURE=1).",
    ),
]


def _trust(trusted_key: list[Path] | None, require_signature: bool) -> dict[str, Any]:
    """load_bundle's trust options: the flags, plus [tool.nbops] (the environment's keys are
    added by load_bundle itself)."""
    from nbops.config import load_project

    project = load_project()
    return {
        "trusted_keys": [*(trusted_key or []), *project.trusted_key_paths],
        "require_signature": require_signature or project.config.require_signature,
    }


def _load(bundle_path: Path, trust: dict[str, Any]) -> Any:
    """Load a bundle with the trust options; say on stderr when its origin is unverified."""
    from nbops.bundle.load import load_bundle

    bundle = load_bundle(bundle_path, **trust)
    if not bundle.signature.verified:
        _warn([f"{bundle_path}: {bundle.signature.describe()}"])
    return bundle


bundle_app = typer.Typer(
    help="Build a deployable bundle from a run (nbops bundle --run ID), or compare two.",
    invoke_without_command=True,
)
app.add_typer(bundle_app, name="bundle")


@bundle_app.callback()
@_handles_errors
def bundle(
    ctx: typer.Context,
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="The run whose logged model to bundle (id or 'latest')."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where bundles go (default: bundles/).")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model", help="The logged model's name.")
    ] = None,
    override: Annotated[
        bool,
        typer.Option(
            "--override", help="Bundle although a gate failed (recorded in the manifest)."
        ),
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign", metavar="KEY", help="Sign the bundle with this private key."),
    ] = None,
) -> None:
    """Build a bundle from a finished run: its logged model, the notebook's exported code
    (the transform:features step serves requests), the input schema and reference
    statistics, a pinned requirements lock, a model card, a Dockerfile and a manifest with
    every file's sha256 — as a folder and a .tar.gz."""
    if ctx.invoked_subcommand is not None:
        return
    if run_id is None:
        raise typer.BadParameter("give --run RUN_ID (see nbops runs list)", param_hint="--run")
    from nbops.bundle.archive import pack
    from nbops.bundle.make import bundle_from_run

    if sign_key is not None:
        from nbops.bundle.signing import read_private_key

        read_private_key(sign_key)  # a bad key is refused before the bundle is built
    folder = bundle_from_run(run_id, out=out_dir, model_name=model_name, override=override)
    archive = folder.with_name(folder.name + ".tar.gz")
    if not archive.exists():
        archive = pack(folder)
    if sign_key is not None:
        from nbops.bundle.signing import sign_bundle

        signed = sign_bundle(folder, sign_key)
        out.print(f"Signed with {signed.fingerprint}", markup=False)
    out.print(f"Bundle {folder} (and {archive.name})", markup=False)
    out.print(f"Serve it: nbops serve {folder}", markup=False)


@bundle_app.command("sign")
@_handles_errors
def bundle_sign(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="The ed25519 private key (from nbops keygen).")
    ],
) -> None:
    """Sign a bundle: an ed25519 signature over its manifest (which holds every file's
    sha256), in manifest.sig. A folder's .tar.gz beside it is packed again, signed."""
    from nbops.bundle.signing import sign_bundle

    signed = sign_bundle(bundle_path, key)
    out.print(
        f"Signed {' and '.join(str(p) for p in signed.paths)} with {signed.fingerprint}",
        markup=False,
    )


@bundle_app.command("verify")
@_handles_errors
def bundle_verify(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Check a bundle without running any of it: its signature against the trusted keys,
    then every file's sha256 against the signed manifest."""
    from nbops.bundle.signing import verify_bundle

    result = verify_bundle(bundle_path, **_trust(trusted_key, require_signature))
    out.print(
        f"{result.name} v{result.version}: {result.files} files match the manifest; "
        f"{result.signature.describe()}",
        markup=False,
    )
    if not result.signature.verified:
        _warn([f"{bundle_path}: {result.signature.describe()}"])


@bundle_app.command("compare")
@_handles_errors
def bundle_compare(
    champion: Annotated[Path, typer.Argument(help="The bundle in production.")],
    challenger: Annotated[Path, typer.Argument(help="The candidate.")],
    gate: Annotated[
        list[str] | None, typer.Option("--gate", help="Gates besides \\[tool.nbops] gates.")
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Metrics and slice metrics of two bundles side by side, and the gates' verdict on the
    challenger with the champion as baseline (`baseline.NAME`). Exits 24 when it fails."""
    from nbops.bundle.compare import compare_bundles
    from nbops.errors import GateFailedError

    trust = _trust(trusted_key, require_signature)
    result = compare_bundles(champion, challenger, extra_gates=gate or [], **trust)
    table = Table(title="Champion vs challenger", title_justify="left")
    for column in ("", "value", str(champion), str(challenger)):
        table.add_column(column)
    for name, a, b in result.rows:
        differs = "*" if a != b else ""
        table.add_row(
            differs, name, "" if a is None else f"{a:.4g}", "" if b is None else f"{b:.4g}"
        )
    out.print(table)
    for g in result.gates:
        out.print(f"{'PASS' if g.passed else 'FAIL'}  {g.gate}  ({g.reason})", markup=False)
    failed = [g for g in result.gates if not g.passed]
    if failed:
        raise GateFailedError(
            f"the challenger fails {len(failed)} of {len(result.gates)} gates",
            fix="keep the champion",
        )
    out.print(f"Verdict: the challenger passes all {len(result.gates)} gates.", markup=False)


@app.command()
@_handles_errors
def keygen(
    key: Annotated[
        Path, typer.Argument(metavar="KEY", help="Where to write the private key.")
    ] = Path("nbops-signing.key"),
    public: Annotated[
        Path | None,
        typer.Option("--public", help="Where to write the public key (default: KEY as .pub)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace key files that already exist.")
    ] = False,
) -> None:
    """Make an ed25519 key pair for signing bundles: the private key (mode 0600; keep it
    secret, off the servers) and the public key servers trust (--trusted-key)."""
    from nbops.bundle.signing import generate_keypair

    pair = generate_keypair(key, public, force=force)
    out.print(f"Private key {pair.private_path} (keep it secret)", markup=False)
    out.print(f"Public key {pair.public_path} ({pair.fingerprint})", markup=False)
    out.print(f"Sign: nbops bundle sign BUNDLE --key {pair.private_path}", markup=False)
    out.print(
        f"Serve: nbops serve BUNDLE --trusted-key {pair.public_path} --require-signature",
        markup=False,
    )


@app.command()
@_handles_errors
def predict(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    data: Annotated[Path, typer.Argument(help="Records to score: .csv or .parquet.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write predictions (.csv).")
    ] = Path("predictions.csv"),
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Score a file of records with a bundle (verified on load), in batch."""
    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    frame = _read_frame(data)
    predictions = bundle.predict(frame)
    result = frame.copy()
    result["prediction"] = predictions
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    result.to_csv(tmp, index=False)
    tmp.replace(output)
    out.print(f"Wrote {len(result)} predictions to {output}", markup=False)


@app.command()
@_handles_errors
def serve(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    log_sample: Annotated[
        float,
        typer.Option("--log-sample", help="Share of requests to log for nbops monitor (0-1)."),
    ] = 0.0,
    log_path: Annotated[
        Path | None, typer.Option("--log-path", help="Where the request log goes.")
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Serve a bundle over HTTP: POST /predict, GET /health, /metadata, /metrics, /docs."""
    from nbops.bundle.serve import serve as run_server

    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    err.print(f"Serving {bundle.name} v{bundle.version} on http://{host}:{port}", markup=False)
    run_server(bundle, host=host, port=port, log_sample=log_sample, log_path=log_path)


@app.command()
@_handles_errors
def monitor(
    bundle_path: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="A bundle folder or .tar.gz.")
    ],
    data: Annotated[
        Path | None, typer.Option("--data", help="Recent records: .csv or .parquet.")
    ] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="A request log written by nbops serve.")
    ] = None,
    html_report: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report.")
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Compare recent data (and predictions) with the bundle's reference; exits 31 past the
    thresholds, so a scheduler can alert or retrain."""
    from nbops.bundle.monitor import monitor as run_monitor
    from nbops.bundle.monitor import raise_for_alerts, read_request_log

    if (data is None) == (log is None):
        raise typer.BadParameter("give one of --data FILE or --log FILE")
    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    if log is not None:
        frame, predictions = read_request_log(log)
    else:
        frame, predictions = _read_frame(data), None  # type: ignore[arg-type]
    report = run_monitor(bundle, frame, predictions)
    table = Table(title=f"Predictions of {bundle.name} v{bundle.version}", title_justify="left")
    for column in ("slice", "rows", "measure", "shift", "status"):
        table.add_column(column)
    for s in report.shifts:
        table.add_row(s.slice, str(s.rows), s.measure, f"{s.shift:.3f}", s.status)
    out.print(table)
    failed = report.validation.failed_checks
    out.print(
        f"Data: {len(report.validation.checks)} checks, {len(failed)} failed, "
        f"drifted columns: {', '.join(report.validation.drifted_columns) or 'none'}",
        markup=False,
    )
    if html_report is not None:
        html_report.write_text(report.to_html(), encoding="utf-8")
    raise_for_alerts(report, str(data or log))
