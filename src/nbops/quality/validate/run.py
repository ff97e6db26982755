"""`validate`, the entry point: reads the input (a frame or a file), picks the drift
references, runs the column checks (in threads on large frames) and the frame-wide
checks, and assembles the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.schema.infer import reference_for
from nbops.quality.schema.model import TEXT_KINDS, ReferenceStats, Schema, _environment
from nbops.quality.validate.columns import _ColumnChecks
from nbops.quality.validate.drift import judge_drift_family
from nbops.quality.validate.files import _read_file
from nbops.quality.validate.frame_checks import _custom_check, _key_check, _presence_checks
from nbops.quality.validate.report import CheckResult, ValidationReport


def validate(
    data: pd.DataFrame | str | os.PathLike[str] | Any,
    schema: Schema | str | os.PathLike[str],
    *,
    environment: str = "training",
    reference: pd.DataFrame | Schema | str | os.PathLike[str] | None = None,
    drift: bool = True,
    workers: int | None = None,
) -> ValidationReport:
    """Check a frame or a .csv/.parquet file against `schema` (a Schema or a schema file);
    or, read in chunks with bounded memory, partitioned Parquet (a folder or a glob) or a
    Dask DataFrame (`nbops.quality.stream.validate`: the same checks, merged exactly).

    `reference`: what drift is measured against — by default the reference statistics
    stored in the schema; or another Schema's; or a frame (or file) whose statistics are
    computed now. `drift=False` skips the drift checks. The thresholds are always `schema`'s.

    `workers`: threads checking columns side by side (numpy and pyarrow release the GIL);
    by default one per available CPU (at most 8) for frames of a million cells or more, and
    one for smaller ones. The report is the same whatever the number.
    """
    started = time.perf_counter()
    if isinstance(schema, str | os.PathLike):
        schema = Schema.load(schema)
    elif not isinstance(schema, Schema):
        raise QualityInputError(
            f"validate needs a Schema or a schema file, not {type(schema).__name__}"
        )
    env = _environment(schema, environment)
    # Deferred import: nbops.quality.stream imports this package's modules (an import cycle)
    from nbops.quality.stream.source import is_stream_input

    if is_stream_input(data):  # a folder, a glob or a Dask DataFrame: read in chunks
        from nbops.quality.stream.reference import stream_references
        from nbops.quality.stream.validate import stream_validate

        refs = stream_references(schema, reference, _references) if drift else {}
        return stream_validate(
            data, schema, environment=environment, references=refs, workers=workers
        )
    checks: list[CheckResult] = []
    if isinstance(data, pd.DataFrame):
        df: pd.DataFrame | None = _usable_frame(data, "validate")
        source = "<DataFrame>"
    elif isinstance(data, str | os.PathLike):
        source = str(data)
        df, file_checks = _read_file(Path(data), schema)
        checks.extend(file_checks)
    else:
        raise QualityInputError(
            f"validate needs a DataFrame or a .csv/.parquet path, not {type(data).__name__}"
        )
    references = _references(schema, reference) if drift else {}

    def report(rows: int, columns: int) -> ValidationReport:
        return ValidationReport(
            schema_name=schema.name,
            source=source,
            environment=environment,
            rows=rows,
            columns=columns,
            drift_checked=bool(references),
            duration_s=round(time.perf_counter() - started, 6),
            checks=checks,
        )

    if df is None:
        return report(0, 0)
    present = set(df.columns)
    checks.extend(_presence_checks(df, schema, env))
    tasks: list[Callable[[], list[CheckResult]]] = []
    costs: list[int] = []
    for column in schema.columns:
        if column.name in present and column.name not in env.absent:
            ref = references.get(column.name)
            tasks.append(_ColumnChecks(column, df[column.name], ref).run)
            costs.append(10 if column.kind in TEXT_KINDS else 3 if ref is not None else 1)
    if schema.key:
        key = schema.key
        tasks.append(lambda: _key_check(df, key))
        costs.append(5)
    for found in _run_tasks(tasks, costs, _workers(workers, len(df), len(tasks))):
        checks.extend(found)
    checks[:] = judge_drift_family(checks)  # one family: Holm across the drift tests
    for custom in schema.checks:
        result = _custom_check(df, custom)
        if result is not None:
            checks.append(result)
    return report(len(df), df.shape[1])


def request_checks(
    df: pd.DataFrame, schema: Schema, environment: str = "serving"
) -> list[CheckResult]:
    """The checks of `validate(df, schema, environment=..., drift=False)` that say whether a
    request can be served at all — `missing_column`, each present column's `dtype` and, when
    the dtype passes, its `nulls` — computed exactly as `validate` computes them, and nothing
    else (no range, categories, uniqueness, key or custom checks: a served request is not
    refused for those, so a per-request path need not pay for them). Raises
    QualityInputError as `validate` does for an empty frame or a duplicated column."""
    if not isinstance(df, pd.DataFrame):
        raise QualityInputError(f"request_checks needs a DataFrame, not {type(df).__name__}")
    env = _environment(schema, environment)
    _usable_frame(df, "validate")
    checks = [c for c in _presence_checks(df, schema, env) if c.kind == "missing_column"]
    present = set(df.columns)
    for column in schema.columns:
        if column.name in present and column.name not in env.absent:
            checks.extend(_ColumnChecks(column, df[column.name], None).serving_checks())
    return checks


PARALLEL_MIN_CELLS = 1_000_000


def _workers(asked: int | None, rows: int, tasks: int) -> int:
    if asked is not None:
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
            raise QualityInputError(f"workers must be a positive integer, not {asked!r}")
        return min(asked, max(1, tasks))
    if rows * tasks < PARALLEL_MIN_CELLS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, tasks))


def _run_tasks(
    tasks: list[Callable[[], list[CheckResult]]], costs: list[int], workers: int
) -> list[list[CheckResult]]:
    """Run the tasks, the costliest (text columns, then drift) first when in threads;
    results in the tasks' order."""
    if workers <= 1:
        return [task() for task in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -costs[i])
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nbops-validate") as pool:
        futures = {i: pool.submit(tasks[i]) for i in order}
        return [futures[i].result() for i in range(len(tasks))]


def _usable_frame(df: pd.DataFrame, what: str) -> pd.DataFrame:
    if len(df) == 0:
        raise QualityInputError(f"{what}: the frame has no rows")
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise QualityInputError(f"{what}: column {dup!r} appears twice")
    return df


def _references(
    schema: Schema, reference: pd.DataFrame | Schema | str | os.PathLike[str] | None
) -> dict[str, ReferenceStats]:
    if reference is None or isinstance(reference, Schema):
        source = schema if reference is None else reference
        return {c.name: c.reference for c in source.columns if c.reference is not None}
    if isinstance(reference, str | os.PathLike):
        frame, file_checks = _read_file(Path(reference), schema)
        if frame is None:
            problem = next((c.message for c in file_checks if c.status == "fail"), "unreadable")
            raise QualityInputError(f"reference {reference}: {problem}")
        reference = frame
    if not isinstance(reference, pd.DataFrame):
        raise QualityInputError(
            f"reference must be a DataFrame, a Schema or a file, not {type(reference).__name__}"
        )
    frame = _usable_frame(reference, "reference")
    out: dict[str, ReferenceStats] = {}
    for column in schema.columns:
        if column.name in frame.columns:
            stats = reference_for(column, frame[column.name])
            if stats is not None:
                out[column.name] = stats
    return out
