"""`nbops export`, `tags`, `tag`, `versions`, `diff`: the notebook and its exported packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nbops.cli.common import _handles_errors, _warn, app, err, out

# Deferred imports: each command imports the library it calls inside its body, so that
# `nbops --help` and every other command start without loading it (pandas, papermill, the
# bundle machinery); tests/test_cli_startup.py holds this.

OutDir = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder that holds exported packages and their versions."),
]


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
            metavar="kfp|airflow",
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
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            metavar="SCHEDULE",
            help="airflow: the DAGs' schedule; kfp: also write kfp_schedule.py (a recurring run). "
            '"@daily" or a cron expression.',
        ),
    ] = None,
    loop: Annotated[
        str | None,
        typer.Option(
            "--loop",
            metavar="MODEL",
            help="airflow: also write MODEL's retraining loop DAG "
            "(monitor -> retrain -> compare -> promote).",
        ),
    ] = None,
    loop_alias: Annotated[
        str, typer.Option("--loop-alias", help="airflow --loop: the alias it watches.")
    ] = "production",
) -> None:
    """Export the tagged cells of NOTEBOOK as a versioned pipeline package.

    Writes OUT/NAME/: the package NAME/ (with its manifest.json) and test_pipeline.py.

    Every version is kept under OUT/.versions/NAME/.

    Run the result from OUT/NAME with: python -m NAME --param KEY=VALUE

    With --target kfp, also OUT/NAME/kfp_pipeline.py and its compiled kfp_pipeline.yaml; with
    --target airflow, OUT/NAME/airflow_dag.py (and with --loop MODEL, airflow_loop_dag.py:
    monitor MODEL@production, retrain when it alerts, compare, promote). Both run the package
    once first, with the default parameters, to learn how each value passes between steps.
    """
    from nbops.export.exporter import check_export, export_notebook

    if check:
        result = check_export(notebook, out_dir, name=name)
        _warn(result.diagnostics)
        out.print(f"{result.folder} is up to date (version {result.version}).")
        return
    targets = target or []
    if loop and "airflow" not in targets:
        raise typer.BadParameter(
            "--loop makes an Airflow DAG: add --target airflow", param_hint="--loop"
        )
    if schedule and not {"airflow", "kfp"} & set(targets):
        raise typer.BadParameter(
            "--schedule sets an orchestrator's schedule: add --target airflow or kfp",
            param_hint="--schedule",
        )
    if schedule and "kfp" in targets:
        from nbops.errors import TargetBuildError
        from nbops.export.targets.kfp_schedule import kfp_cron

        try:
            kfp_cron(schedule)
        except TargetBuildError as e:
            raise typer.BadParameter(f"{e.message}; {e.fix}", param_hint="--schedule") from None
    options = None
    if target:
        from nbops.config import load_project
        from nbops.export.targets import DEFAULT_BASE_IMAGE, LoopOptions, TargetOptions

        project = load_project(notebook.resolve().parent)
        config = project.config
        loop_options = None
        if loop is not None:
            from nbops.runs.registry import check_alias

            check_alias(loop_alias)
            loop_options = LoopOptions(
                model=loop, project_root=str(project.root.resolve()), alias=loop_alias
            )
        options = TargetOptions(
            base_image=base_image or config.base_image or DEFAULT_BASE_IMAGE,
            install_packages=install,
            steps=config.steps,
            schedule=schedule,
            loop=loop_options,
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
        from nbops.bundle.from_notebook import bundle_exported

        bundled = bundle_exported(
            notebook,
            result,
            on_run=lambda record: out.print(
                f"Run {record.run_id} completed in {record.duration_s:.1f} s", markup=False
            ),
        )
        out.print(f"Bundle {bundled.folder}", markup=False)


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
        from rich.syntax import Syntax  # pygments: only a diff shown in colour needs it

        out.print(Syntax(text, "diff", background_color="default"))
    else:
        sys.stdout.write(text)
