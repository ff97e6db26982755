"""`nbops data list|gc|get`: the data snapshots runs keep (`track_data(..., snapshot=True)`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nbops.cli.common import ReadableGroup, _handles_errors, app, out

# Deferred imports: each command imports the library it calls inside its body
# (tests/test_cli_startup.py).

data_app = typer.Typer(
    cls=ReadableGroup,
    help="The data runs keep (track_data(..., snapshot=True)): list, get, gc.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("list")
@_handles_errors
def data_list(
    run: Annotated[
        str | None, typer.Option("--run", help="Only the data this run tracked (id or prefix).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for tools.")] = False,
) -> None:
    """The kept data objects: sha, kind, size, names, the runs referencing them."""
    from nbops.runs.snapshots import human_bytes, list_rows
    from nbops.runs.store import RunStore

    rows = list_rows(RunStore.for_project(), run)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if run is not None:
        table = Table(title=f"Data of run {rows[0]['run'] if rows else run}", title_justify="left")
        for column in ("name", "kind", "sha", "size", "status"):
            table.add_column(column, overflow="fold")
        for r in rows:
            size = human_bytes(r["bytes"]) if r["bytes"] is not None else ""
            table.add_row(r["name"], r["kind"] or r["type"], r["sha256"][:12], size, r["status"])
        out.print(table if rows else f"Run {run} tracked no data.")
        return
    if not rows:
        out.print("No data kept (track_data(..., snapshot=True) keeps it).")
        return
    table = Table(title="Kept data", title_justify="left")
    for column in ("sha", "kind", "size", "names", "runs", "created"):
        table.add_column(column, overflow="fold")
    for r in rows:
        runs = r["runs"]
        shown = ", ".join(runs[:3]) + (f" (+{len(runs) - 3})" if len(runs) > 3 else "")
        table.add_row(
            r["sha256"][:12],
            r["kind"],
            human_bytes(r["bytes"]),
            ", ".join(r["names"]) or "-",
            shown or "none (gc frees it)",
            r["created_at"] or "",
        )
    out.print(table)
    total = sum(r["bytes"] for r in rows)
    out.print(f"{len(rows)} object(s), {human_bytes(total)}", markup=False)


@data_app.command("gc")
@_handles_errors
def data_gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
    keep_runs: Annotated[
        int | None,
        typer.Option(
            "--keep-runs", min=0, help="Keep only the data of the newest N runs (and pinned)."
        ),
    ] = None,
) -> None:
    """Delete the kept data no run references (nor a registry event pins).

    Objects written in the last 10 minutes are kept (a run may not have recorded them yet).
    """
    from nbops.runs.snapshots import collect_garbage, human_bytes, references
    from nbops.runs.store import RunStore

    store = RunStore.for_project()
    result = collect_garbage(store.directory, references(store, keep_runs), dry_run=dry_run)
    verb = "Would free" if dry_run else "Freed"
    out.print(
        f"{verb} {human_bytes(result.freed_bytes)}: {len(result.deleted)} object(s) "
        f"{'to delete' if dry_run else 'deleted'}, {result.kept} kept"
        + (f" ({result.pinned} pinned by the registry)" if result.pinned else ""),
        markup=False,
    )
    for obj in result.deleted:
        out.print(f"  {obj.sha256[:12]} {obj.kind} {human_bytes(obj.bytes)}", markup=False)


@data_app.command("get")
@_handles_errors
def data_get(
    run: Annotated[str, typer.Argument(help="The run (id or id prefix).")],
    name: Annotated[str, typer.Argument(help="The name the data was tracked under.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Where to write it (a frame: .parquet, or .csv)."),
    ],
) -> None:
    """Write the data RUN kept as NAME to a file, checked against its hash."""
    from nbops.runs.snapshots import get_data
    from nbops.runs.store import RunStore

    target = get_data(RunStore.for_project(), run, name, output)
    out.print(f"Wrote {name!r} of run {run} to {target}", markup=False)
