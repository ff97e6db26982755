"""`nbops serve` and `nbops monitor`: a bundle in production."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nbops._atomic import atomic_write_text
from nbops._paths import is_folder_or_glob
from nbops.bundle.locate import require_bundle_path
from nbops.cli.bundle import RequireSignature, TrustedKeys, _load, _trust
from nbops.cli.common import _handles_errors, _require_file, _warn, app, err, out
from nbops.errors import QualityInputError

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
    log_key: Annotated[
        list[str] | None,
        typer.Option(
            "--log-key",
            metavar="COLUMN",
            help="A column of the requests (an id) the request log keeps under keys, to join "
            "labels later; never given to the model (repeatable; the schema's key is kept too).",
        ),
    ] = None,
    poll: Annotated[
        float,
        typer.Option("--poll", help="Seconds between looks at the registry alias (NAME@ALIAS)."),
    ] = 1.0,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Serve a bundle over HTTP: POST /predict, GET /health, /metadata, /metrics, /docs."""
    from nbops._gc import loaded_for_life
    from nbops.bundle.refs import is_registry_ref

    options = {"log_sample": log_sample, "log_path": log_path, "log_keys": log_key or []}
    with loaded_for_life():  # the bundle and the server live as long as the process
        if not is_registry_ref(bundle_ref):
            require_bundle_path(bundle_ref)  # a missing bundle is refused before any import
            bundle = _load(Path(bundle_ref), _trust(trusted_key, require_signature))
            from nbops.bundle.serve.app import run_uvicorn, server_app

            app = server_app(bundle, **options)
            served = f"{bundle.name} v{bundle.version}"
        else:
            from nbops.bundle.serve.app import registry_server_app, run_uvicorn

            trust = _trust(trusted_key, require_signature)
            app = registry_server_app(bundle_ref, trust=trust, poll=poll, **options)
            current = app.state.serving.current
            if current.signature_json and current.signature_json.get("status") != "verified":
                _warn([f"{bundle_ref}: {current.bundle.signature.describe()}"])
            served = f"{bundle_ref} (v{current.version})"
    err.print(f"Serving {served} on http://{host}:{port}", markup=False)
    run_uvicorn(app, host, port)


@app.command()
@_handles_errors
def monitor(
    bundle_ref: Annotated[
        str,
        typer.Argument(
            metavar="BUNDLE", help="A bundle folder or .tar.gz, or NAME@ALIAS / NAME@N."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Recent records: .csv or .parquet, or a folder or glob of Parquet files "
            "(read in chunks).",
        ),
    ] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="A request log written by nbops serve.")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="Labelled reference rows (.csv/.parquet, e.g. the held-out test data): "
            "calibration and the estimate of performance without labels.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The label column of --reference and --labels."),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Estimate per time window (1h, 1d) or per ROWS rows."),
    ] = None,
    windows: Annotated[
        int | None, typer.Option("--windows", help="Estimate over N equal-count windows.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Labels that arrived (.csv/.parquet), joined on --key."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="The key column joining --labels to the rows.")
    ] = None,
    pos_label: Annotated[
        str | None, typer.Option("--pos-label", help="Binary: the positive class.")
    ] = None,
    max_drop: Annotated[
        float,
        typer.Option(
            "--max-drop",
            help="Alert when a metric is estimated below the reference's minus this.",
        ),
    ] = 0.05,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the whole report as JSON.")
    ] = None,
    html_report: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report.")
    ] = None,
    trusted_key: TrustedKeys = None,
    require_signature: RequireSignature = False,
) -> None:
    """Compare recent data (and predictions) with the bundle's reference and, given a
    labelled --reference, estimate performance without labels; exits 31 past the
    thresholds, so a scheduler can alert or retrain."""
    if (data is None) == (log is None):
        raise typer.BadParameter("give one of --data FILE or --log FILE")
    if window is not None and windows is not None:
        raise typer.BadParameter("give --window or --windows, not both")
    if labels is not None and key is None:
        raise typer.BadParameter("--labels needs --key COL to join the labels on")
    if not 0 <= max_drop <= 1:
        raise typer.BadParameter(f"--max-drop must be within 0-1, got {max_drop}")
    from nbops.bundle.refs import resolve_bundle

    resolved = resolve_bundle(bundle_ref)
    bundle_path = resolved.path
    if reference is None and resolved.name is not None and resolved.version is not None:
        from nbops.bundle.retrain import recorded_reference
        from nbops.config import load_project

        reference = recorded_reference(resolved.name, resolved.version, load_project().store_dir)
        if reference is not None:
            err.print(
                f"reference: the held-out rows {resolved.name} v{resolved.version} was "
                f"compared on when a retrain promoted it ({reference})",
                markup=False,
            )
    for given in (data, log, reference, labels):
        if given is not None and not (given is data and is_folder_or_glob(data)):
            _require_file(given)
    import json

    from nbops._jsonsafe import json_safe
    from nbops.bundle.monitor import monitor as run_monitor
    from nbops.bundle.monitor import raise_for_alerts, read_log
    from nbops.bundle.performance import performance
    from nbops.quality.validate import read_frame

    bundle = _load(bundle_path, _trust(trusted_key, require_signature))
    timestamps, keys = None, None
    wants_performance = reference is not None or labels is not None
    streamed = _streamed(data, log, wants_performance or window is not None or windows is not None)
    if streamed:  # a Parquet folder or glob, or a large log: read in chunks
        from nbops.bundle.monitor_stream import stream_monitor

        report = stream_monitor(bundle, data, log if data is None else None)
    elif log is not None:
        logged = read_log(log)
        frame, predictions = logged.frame, logged.predictions
        timestamps, keys = logged.timestamps, logged.keys
        others = sum(1 for v in logged.versions if v is not None and str(v) != str(bundle.version))
        if others:
            err.print(
                f"warning: {others} of {len(logged.versions)} logged rows were answered by "
                f"another version than v{bundle.version}; they are judged with v{bundle.version}",
                markup=False,
            )
    else:
        frame, predictions = read_frame(data), None  # type: ignore[arg-type]
    if not streamed:
        report = run_monitor(bundle, frame, predictions)
    if not streamed and (wants_performance or window is not None or windows is not None):
        if predictions is None:
            predictions = bundle.predict(frame[bundle.request_columns])
        report.performance = performance(
            bundle,
            frame,
            predictions,
            reference=read_frame(reference) if reference is not None else None,
            label=label,
            timestamps=timestamps,
            window=window,
            windows=windows,
            labels=read_frame(labels) if labels is not None else None,
            key=key,
            keys=keys,
            pos_label=pos_label,
            max_drop=max_drop,
            plots=html_report is not None,
        )
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
    if report.performance is not None:
        _print_performance(report.performance)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            json_path,
            json.dumps(json_safe(report.to_dict(), iso_dates=True, missing_as_null=True), indent=2),
        )
    if html_report is not None:
        html_report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(html_report, report.to_html())
    raise_for_alerts(report, str(data or log))


def _streamed(data: Path | None, log: Path | None, performance: bool) -> bool:
    """Read in chunks: --data a folder or glob (performance estimation refused there), or a
    --log of STREAM_LOG_BYTES or more (read whole when performance is asked for)."""
    from nbops.bundle.monitor_stream import STREAM_LOG_BYTES
    from nbops.quality.stream.source import is_stream_input

    if data is not None and is_stream_input(data):
        if performance:
            raise QualityInputError(
                "performance estimation (--reference, --labels, --window) reads the rows in "
                "memory, and --data is a folder or glob read in chunks",
                location=str(data),
                fix="estimate performance on one file of recent rows, or leave those options out",
            )
        return True
    limit = int(os.environ.get("NBOPS_STREAM_LOG_BYTES", STREAM_LOG_BYTES))
    return log is not None and not performance and log.is_file() and log.stat().st_size >= limit


def _print_performance(perf: object) -> None:
    """The performance section of `nbops monitor`: notes, calibration, estimate table."""
    from nbops.quality.estimate.performance import PerformanceReport

    assert isinstance(perf, PerformanceReport)
    for note in perf.notes:
        out.print(f"Performance: {note}", markup=False)
    if perf.calibration is not None:
        c = perf.calibration
        fixed = (
            f"; {c.method} calibration, ECE after {c.ece_after:.4f} (cross-fitted)"
            if c.ece_after is not None
            else "; calibrated, used as is"
        )
        out.print(
            f"Calibration on {c.rows} reference rows: ECE {c.ece_before:.4f} "
            f"(p {c.p_before:.3f}){fixed}",
            markup=False,
        )

    def cell(interval: object) -> str:
        value = getattr(interval, "value", None)
        low, high = getattr(interval, "ci_low", None), getattr(interval, "ci_high", None)
        if value is None:
            return "-"
        return f"{value:.3f}" if low is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"

    rows = [(g.name, g) for g in perf.estimate[:1]]
    rows += [(f"window {w.label}", w.estimate) for w in perf.windows]
    if rows:
        table = Table(title="Estimated performance (no labels)", title_justify="left")
        for column in ("rows of", "rows", *perf.metrics):
            table.add_column(column)
        table.add_row(
            "reference", "", *[f"{perf.reference_value(m) or 0:.3f}" for m in perf.metrics]
        )
        for name, group in rows:
            table.add_row(
                name, str(group.rows), *[cell(group.metrics.get(m)) for m in perf.metrics]
            )
        out.print(table)
    if perf.realised:
        overall = perf.realised[0]
        out.print(
            f"Realised on {perf.labels_matched} labelled rows ({perf.labels_unmatched} "
            "without a label): " + ", ".join(f"{m} {cell(i)}" for m, i in overall.metrics.items()),
            markup=False,
        )
    for rank, segment in enumerate(perf.weak, start=1):
        if rank == 1:
            out.print("Weak segments of the labelled rows (worst first):", markup=False)
        low, value, high = (
            "n/a" if v is None else f"{v:.3f}"
            for v in (segment.ci_low, segment.value, segment.ci_high)
        )
        out.print(
            f"  {rank}. {segment.name}: {segment.metric} {value} [{low}, {high}] "
            f"on {segment.count} rows",
            markup=False,
        )
    cautions = perf.cautions
    for caution in cautions[:5]:
        err.print(f"warning: {caution}", markup=False)
    if len(cautions) > 5:
        err.print(f"warning: ... {len(cautions) - 5} more (see --json or --html)", markup=False)
