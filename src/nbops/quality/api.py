"""The quality functions as `import nbops` offers them: results are also recorded in the
current run (under `nbops run`, or an interactive run in a kernel), so `nbops ci` gates can
name their `data.*` and `slices.*` values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.runs.capture import log_report


def infer_schema(reference: Any, **options: Any) -> Any:
    """Learn a Schema from a reference (training) frame; see nbops.quality.schema."""
    from nbops.quality.schema import infer_schema as infer

    return infer(reference, **options)


def validate(data: Any, schema: Any, *, name: str = "data", **options: Any) -> Any:
    """Validate a frame (or a .csv/.parquet path) against a Schema (or a schema.json path);
    returns the ValidationReport and records it in the current run under `name`."""
    from nbops.quality.schema import Schema
    from nbops.quality.validate import validate as check

    if isinstance(schema, str | Path):
        schema = Schema.load(Path(schema))
    report = check(data, schema, **options)
    log_report("validation", name, report.model_dump(mode="json"), report.gate_values())
    return report


def slice_metrics(
    y_true: Any, y_pred: Any, y_score: Any = None, *, name: str = "slices", **options: Any
) -> Any:
    """Metrics overall and per slice (see nbops.quality.slices); records the report in the
    current run under `name`."""
    from nbops.quality.slices import slice_metrics as compute

    report = compute(y_true, y_pred, y_score, **options)
    log_report("slices", name, report.model_dump(mode="json"), report.gate_values())
    return report
