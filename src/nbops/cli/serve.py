"""`nbops serve` and `nbops monitor`: a bundle in production."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nbops._atomic import atomic_write_text
from nbops.bundle.locate import require_bundle_path
from nbops.cli.bundle import RequireSignature, TrustedKeys, _load, _trust
from nbops.cli.common import _handles_errors, _require_file, _warn, app, err, out

# Deferred imports: each command imports the library it calls inside its body, so that
# `nbops --help` and every other command start without loading it (pandas, papermill, the
# bundle machinery); tests/test_cli_startup.py holds this.


@app.command()
@_handles_errors
def serve(
    bundle_ref: Annotated[
        str,
        typer.Argument(
            metavar="BUNDLE",
            help="A bundle folder or .tar.gz, or a registry reference: NAME@ALIAS (follows "
            "the alias, switching to each newly promoted version) or NAME@N.",
        ),
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
    poll: Annotated[
        float,
        typer.Option("--poll", help="Seconds between looks at the registry alias (NAME@ALIAS)."),
    ] = 1.0,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Serve a bundle over HTTP: POST /predict, GET /health, /metadata, /metrics, /docs."""
    from nbops.bundle.refs import is_registry_ref

    if not is_registry_ref(bundle_ref):
        require_bundle_path(bundle_ref)
        from nbops.bundle.serve import serve as run_server

        bundle = _load(Path(bundle_ref), _trust(trusted_key, require_signature))
        err.print(f"Serving {bundle.name} v{bundle.version} on http://{host}:{port}", markup=False)
        run_server(bundle, host=host, port=port, log_sample=log_sample, log_path=log_path)
        return
    import uvicorn

    from nbops.bundle.serve.app import create_registry_app

    app = create_registry_app(
        bundle_ref,
        trust=_trust(trusted_key, require_signature),
        poll=poll,
        log_sample=log_sample,
        log_path=log_path,
    )
    current = app.state.serving.current
    if current.signature_json and current.signature_json.get("status") != "verified":
        _warn([f"{bundle_ref}: {current.bundle.signature.describe()}"])
    err.print(f"Serving {bundle_ref} (v{current.version}) on http://{host}:{port}", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", ws="none", lifespan="on")


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
    if (data is None) == (log is None):
        raise typer.BadParameter("give one of --data FILE or --log FILE")
    require_bundle_path(bundle_path)
    for given in (data, log):
        if given is not None:
            _require_file(given)
    from nbops.bundle.monitor import monitor as run_monitor
    from nbops.bundle.monitor import raise_for_alerts, read_request_log
    from nbops.quality.validate import read_frame

    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    if log is not None:
        frame, predictions = read_request_log(log)
    else:
        frame, predictions = read_frame(data), None  # type: ignore[arg-type]
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
        html_report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(html_report, report.to_html())
    raise_for_alerts(report, str(data or log))
