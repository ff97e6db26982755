"""`nbops infer-schema` and `nbops validate`: data quality from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nbops._atomic import atomic_write_text
from nbops.cli.common import _handles_errors, app, out
from nbops.errors import ValidationFailedError

# Deferred imports: each command imports the library it calls inside its body, so that
# `nbops --help` and every other command start without loading it (pandas, papermill, the
# bundle machinery); tests/test_cli_startup.py holds this.


@app.command("infer-schema")
@_handles_errors
def infer_schema_command(
    data: Annotated[Path, typer.Argument(help="Reference (training) data: .csv or .parquet.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the schema.")
    ] = Path("schema.json"),
    label: Annotated[str | None, typer.Option("--label", help="The label column.")] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", metavar="COLUMN", help="Key column(s) that must be unique."),
    ] = None,
) -> None:
    """Learn a schema with reference statistics from DATA and write it as JSON (editable)."""
    from nbops.quality.schema import infer_schema
    from nbops.quality.validate import read_frame

    schema = infer_schema(read_frame(data), label=label, key=key or None)
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
    from nbops.quality.report import InspectionReport
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
        atomic_write_text(html_report, page)
    if not report.passed:
        values = report.gate_values()
        raise ValidationFailedError(
            f"{values['data.failed_checks']:.0f} check(s) failed",
            location=str(data),
            fix="see the table above" + (f" or {html_report}" if html_report else ""),
        )
