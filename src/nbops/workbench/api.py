"""The quality functions as `import nbops` offers them: results are also recorded in the
current run (under `nbops run`, or an interactive run in a kernel), so `nbops ci` gates can
name their `data.*` and `slices.*` values.

Each function has the parameters of the implementation it calls (a test holds them equal),
plus `name` where the report is recorded. The types are imported for type checkers only and
the implementations on first call: `import nbops` loads no pandas, numpy or pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.runs.capture import log_report

# Deferred imports: the quality implementations (pandas, numpy, pydantic) load on the first
# call, so `import nbops` stays light (tests/test_public_api.py holds it).

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from nbops.quality.schema import Schema
    from nbops.quality.slices import CiMethod, SliceReport, Task
    from nbops.quality.validate import ValidationReport


def infer_schema(
    reference: pd.DataFrame,
    *,
    label: str | None = None,
    key: str | Sequence[str] | None = None,
    categorical_max: int = 50,
    bins: int = 10,
    name: str | None = None,
) -> Schema:
    """Learn a Schema from a reference (training) frame; see nbops.quality.schema."""
    from nbops.quality.schema import infer_schema as infer

    return infer(
        reference,
        label=label,
        key=key,
        categorical_max=categorical_max,
        bins=bins,
        name=name,
    )


def validate(
    data: pd.DataFrame | str | os.PathLike[str] | Any,
    schema: Schema | str | os.PathLike[str],
    *,
    environment: str = "training",
    reference: pd.DataFrame | Schema | str | os.PathLike[str] | None = None,
    drift: bool = True,
    workers: int | None = None,
    name: str = "data",
) -> ValidationReport:
    """Validate a frame (or a .csv/.parquet path, a folder or glob of Parquet files read in
    chunks, or a Dask DataFrame) against a Schema (or a schema.json path); returns the
    ValidationReport and records it in the current run under `name`."""
    from nbops.quality.schema import Schema
    from nbops.quality.validate import validate as check

    if isinstance(schema, str | Path):
        schema = Schema.load(Path(schema))
    report = check(
        data,
        schema,
        environment=environment,
        reference=reference,
        drift=drift,
        workers=workers,
    )
    log_report("validation", name, report.model_dump(mode="json"), report.gate_values())
    return report


def slice_metrics(
    y_true: npt.ArrayLike | pd.Series,
    y_pred: npt.ArrayLike | pd.Series,
    y_score: npt.ArrayLike | pd.Series | pd.DataFrame | None = None,
    slices: pd.DataFrame | pd.Series | Sequence[str] | str | None = None,
    *,
    data: pd.DataFrame | str | Any | None = None,
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    cross: Sequence[Sequence[str]] | None = None,
    bins: Mapping[str, int] | None = None,
    min_size: int = 30,
    ci: CiMethod | None = "wilson",
    n_boot: int = 200,
    seed: int = 0,
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    confidence: float = 0.95,
    weak_segments: bool | Mapping[str, Any] = False,
    name: str = "slices",
) -> SliceReport:
    """Metrics overall and per slice (see nbops.quality.slices; `data` may be a folder or glob
    of Parquet files, or a Dask DataFrame, streamed in chunks); records the report in the
    current run under `name`."""
    from nbops.quality.slices import slice_metrics as compute

    report = compute(
        y_true,
        y_pred,
        y_score,
        slices,
        data=data,
        task=task,
        metrics=metrics,
        cross=cross,
        bins=bins,
        min_size=min_size,
        ci=ci,
        n_boot=n_boot,
        seed=seed,
        labels=labels,
        pos_label=pos_label,
        confidence=confidence,
        weak_segments=weak_segments,
    )
    log_report("slices", name, report.model_dump(mode="json"), report.gate_values())
    return report
