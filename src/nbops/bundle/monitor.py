"""`nbops monitor`: recent data and predictions against what the bundle was trained on.

Two questions, each with thresholds, so a scheduler can alert or retrain on the exit code:
- has the data moved? The recent requests are validated against the bundle's schema and its
  reference statistics (drift checks included);
- have the predictions moved? Their distribution, overall and per value of each categorical
  request column, is compared with the distribution on the training data kept in the bundle
  (class shares for classifiers: total-variation distance; the median for regressors, in
  units of the reference's interquartile range).

And a third, when the bundle is a classifier with probabilities and a labelled reference is
given (`performance`): how well does it do now? Confidence-based performance estimation
(`nbops.quality.estimate`): calibration checked (and fixed) on the reference, expected
accuracy / precision / recall / F1 with intervals, overall, per slice and per time window
of the request log; with labels joined by a key, the realised metrics next to the
reference's and the estimate's. An estimate below the reference minus `max_drop` alerts.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import MonitorAlertError, QualityInputError
from nbops.quality.report import InspectionReport

# Deferred imports, inside the functions that use them: quality.validate (pandas) and
# bundle.plan (pydantic). Importing this module, or rendering a MonitorReport, needs neither.

MIN_ROWS = 30


@dataclass(frozen=True)
class PredictionShift:
    """How far predictions on one slice moved from the training data's."""

    slice: str
    rows: int
    reference_rows: int
    shift: float
    measure: str
    status: str  # pass, warn, fail, or "too few rows"


@dataclass
class MonitorReport:
    validation: Any
    shifts: list[PredictionShift] = field(default_factory=list)
    performance: Any = None  # nbops.quality.estimate.performance.PerformanceReport

    def to_dict(self) -> dict[str, Any]:
        """Everything, for `nbops monitor --json`."""
        return {
            "alerts": self.alerts,
            "data": {
                "checks": len(self.validation.checks),
                "failed": [
                    {"kind": c.kind, "column": c.column, "message": c.message}
                    for c in self.validation.failed_checks
                ],
                "drifted_columns": list(self.validation.drifted_columns),
            },
            "predictions": [s.__dict__ for s in self.shifts],
            "performance": self.performance.to_dict() if self.performance else None,
        }

    @property
    def alerts(self) -> list[str]:
        found = [
            f"data check {c.kind} on {c.column or 'the frame'}: {c.message}"
            for c in self.validation.failed_checks
        ]
        found += [
            f"predictions on {s.slice}: {s.measure} {s.shift:.3f}"
            for s in self.shifts
            if s.status == "fail"
        ]
        if self.performance is not None:
            found += self.performance.alerts
        return found

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(s.slice)}</td><td>{s.rows}</td><td>{s.reference_rows}</td>"
            f"<td>{html.escape(s.measure)}</td><td>{s.shift:.4f}</td><td>{html.escape(s.status)}</td></tr>"
            for s in self.shifts
        )
        alerts = "".join(f"<li>{html.escape(a)}</li>" for a in self.alerts) or "<li>none</li>"
        data = InspectionReport(validation=self.validation).data_html()
        performance = (
            f"<h2>Performance</h2>{self.performance.to_html()}" if self.performance else ""
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>nbops monitor</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #d1d5db;padding:3px 6px}</style></head><body>"
            f"<h1>nbops monitor</h1><h2>Alerts</h2><ul>{alerts}</ul>"
            "<h2>Predictions</h2><table><tr><th>slice</th><th>rows</th><th>reference rows</th>"
            f"<th>measure</th><th>shift</th><th>status</th></tr>{rows}</table>"
            f"{performance}<h2>Data</h2>{data}</body></html>\n"
        )


def read_request_log(path: Path) -> tuple[Any, list[Any]]:
    """The records and predictions a server logged (JSON lines), as a frame and a list."""
    log = read_log(path)
    return log.frame, log.predictions


@dataclass
class RequestLog:
    """A request log's records (a frame), predictions, and per record the line's timestamp,
    the answering version and the logged keys (a frame, when lines carry `keys`)."""

    frame: Any
    predictions: list[Any]
    timestamps: list[Any]
    versions: list[Any]
    keys: Any = None


def _line_keys(keys: Any, count: int) -> list[dict[str, Any]]:
    """A line's `keys` as one dict per record: {"id": [1, 2]} or [{"id": 1}, {"id": 2}]."""
    if isinstance(keys, list) and len(keys) == count:
        return [k if isinstance(k, dict) else {} for k in keys]
    if isinstance(keys, dict):
        columns = {
            name: values if isinstance(values, list) and len(values) == count else [values] * count
            for name, values in keys.items()
        }
        return [{name: values[i] for name, values in columns.items()} for i in range(count)]
    return [{} for _ in range(count)]


def read_log(path: Path) -> RequestLog:
    """The whole request log: records, predictions, timestamps, versions and keys."""
    import pandas as pd

    records: list[dict[str, Any]] = []
    predictions: list[Any] = []
    timestamps: list[Any] = []
    versions: list[Any] = []
    keys: list[dict[str, Any]] = []
    has_keys = False
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise QualityInputError(
            f"cannot read the request log ({exc.strerror})", location=str(path)
        ) from None
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if not isinstance(entry, dict):
            continue
        lines_records = entry.get("records", [])
        lines_predictions = entry.get("predictions", [])
        if not isinstance(lines_records, list) or not isinstance(lines_predictions, list):
            continue
        if len(lines_records) != len(lines_predictions):
            continue  # a line that does not pair records with predictions
        if not all(isinstance(r, dict) for r in lines_records):
            continue
        records.extend(lines_records)
        predictions.extend(lines_predictions)
        timestamps.extend([entry.get("timestamp")] * len(lines_records))
        versions.extend([entry.get("version")] * len(lines_records))
        has_keys = has_keys or "keys" in entry
        keys.extend(_line_keys(entry.get("keys"), len(lines_records)))
    if not records or len(records) != len(predictions):
        raise QualityInputError(
            "the request log holds no complete records with predictions",
            location=str(path),
            fix="serve with request logging on (nbops serve --log-sample 0.1)",
        )
    key_frame = pd.DataFrame.from_records(keys) if has_keys else None
    return RequestLog(
        pd.DataFrame.from_records(records), predictions, timestamps, versions, key_frame
    )


def monitor(
    bundle: Any,
    data: Any,
    predictions: Any = None,
    *,
    reference: dict[str, Any] | None = None,
    warn_shift: float = 0.1,
    fail_shift: float = 0.2,
) -> MonitorReport:
    """Compare recent `data` (and its `predictions`, computed with the bundle when not given)
    with the bundle's schema and training predictions."""
    import numpy as np
    import pandas as pd

    from nbops.quality.validate import validate

    if not isinstance(data, pd.DataFrame) or data.empty:
        raise QualityInputError("monitor needs a non-empty frame of recent requests")
    report = MonitorReport(validate(data, bundle.schema, environment="serving"))
    if predictions is None:
        predictions = bundle.predict(data)
    reference = reference if reference is not None else prediction_reference(bundle)
    if not reference:
        return report
    from nbops.bundle.plan import prediction_distribution

    current = prediction_distribution(data[bundle.request_columns], np.asarray(predictions))
    report.shifts.extend(prediction_shifts(reference, current, warn_shift, fail_shift))
    return report


def prediction_shifts(
    reference: dict[str, Any],
    current: dict[str, Any],
    warn_shift: float,
    fail_shift: float,
    note: str = "",
) -> list[PredictionShift]:
    """The shift of the predictions overall and per slice the reference has (and the data
    too), each judged against the thresholds; `note` follows each measure's name (the
    streamed path's sketch error). One function for the in-memory and streamed monitor."""
    shifts: list[PredictionShift] = []
    for name, ref in [("overall", reference["overall"]), *reference.get("slices", {}).items()]:
        now = current["overall"] if name == "overall" else current["slices"].get(name)
        if now is None:
            continue
        if now["rows"] < MIN_ROWS:
            shifts.append(PredictionShift(name, now["rows"], ref["rows"], 0.0, "-", "too few rows"))
            continue
        shift, measure = _shift(reference["kind"], ref, now)
        status = "fail" if shift > fail_shift else "warn" if shift > warn_shift else "pass"
        shifts.append(
            PredictionShift(name, now["rows"], ref["rows"], shift, measure + note, status)
        )
    return shifts


def _shift(kind: str, ref: dict[str, Any], now: dict[str, Any]) -> tuple[float, str]:
    if kind == "classification":
        labels = set(ref["shares"]) | set(now["shares"])
        distance = 0.5 * sum(
            abs(ref["shares"].get(k, 0.0) - now["shares"].get(k, 0.0)) for k in labels
        )
        return distance, "class-share distance"
    q = ref["quantiles"]
    spread = (q[3] - q[1]) or 1.0
    return abs(now["quantiles"][2] - q[2]) / spread, "median shift / IQR"


def prediction_reference(bundle: Any) -> dict[str, Any]:
    """The training predictions' distribution a bundle keeps in its manifest."""
    source = getattr(bundle.manifest, "source", None)
    if isinstance(source, dict):
        return dict(source.get("prediction_reference") or {})
    extra = getattr(source, "model_extra", None) or {}
    value = getattr(source, "prediction_reference", None) or extra.get("prediction_reference")
    return dict(value or {})


def raise_for_alerts(report: MonitorReport, where: str) -> None:
    alerts = report.alerts
    if alerts:
        raise MonitorAlertError(
            f"{len(alerts)} alert(s): "
            + "; ".join(alerts[:3])
            + ("; ..." if len(alerts) > 3 else ""),
            location=where,
            fix="look at the report; retrain if the data has really moved",
        )
