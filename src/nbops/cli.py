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
from nbops.errors import NbopsError

app = typer.Typer(
    name="nbops",
    help="From a tagged notebook to a versioned pipeline package, tracked runs and a bundle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])

OutDir = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder that holds exported packages and their versions."),
]


def _handles_errors(func: F) -> F:
    """Turn NbopsError into one line on stderr and its exit code; Ctrl-C into 130."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NbopsError as exc:
            err.print(f"nbops: error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
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
) -> None:
    """Export the tagged cells of NOTEBOOK as a versioned pipeline package.

    Writes OUT/NAME/: the package NAME/ (with its manifest.json) and test_pipeline.py.

    Every version is kept under OUT/.versions/NAME/.

    Run the result from OUT/NAME with: python -m NAME --param KEY=VALUE
    """
    from nbops.export.exporter import check_export, export_notebook

    if check:
        result = check_export(notebook, out_dir, name=name)
        _warn(result.diagnostics)
        out.print(f"{result.folder} is up to date (version {result.version}).")
        return
    result = export_notebook(notebook, out_dir, name=name)
    _warn(result.diagnostics)
    status = "new version" if result.new_version else "unchanged, version"
    out.print(
        f"Exported {notebook} -> {result.package_dir} "
        f"({status} {result.version}, {result.content_hash[:12]}, "
        f"{len(result.manifest.steps)} steps)"
    )
    out.print(f"Run it: cd {result.folder} && python -m {result.name}", markup=False)


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
        table.add_row(str(cell.number), cell.cell_id, cell.cell_type, role, first[:60])
    out.print(table)
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
    app()
