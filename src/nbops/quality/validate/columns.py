"""Validate a frame, or a .csv/.parquet file, against a Schema: one report of every check.

    report = validate(df, schema)                          # environment="training"
    report = validate("batch.parquet", "schema.json", environment="serving")
    report.passed, report.failed_checks, report.gate_values()

Checks, each reported as pass, warn or fail with the count and fraction of offending rows,
up to five example values (and row positions) and a message:

- file inputs: `file_format` (a supported extension that parses into rows; a bad file is a
  failed check, not a traceback) and `file_size` (against the schema's `max_file_bytes`);
- `missing_column`, `unexpected_column` (columns the schema does not know: the schema's
  `unexpected_columns` says fail, warn or ignore; a column that must be absent in the
  environment, like the label in "serving", always fails);
- per column: `dtype` (the kind's dtypes; integers stored as floats pass when every value is
  whole, as CSV files with nulls hold them), `nulls` (`nullable`, `max_null_fraction`),
  `range` (`min`/`max`), `categories` (allowed values), `unique`; and the key as a whole
  (`duplicate_keys`); `custom` checks;
- drift, when the schema (or `reference=`) has reference statistics and `drift=True`:
  numbers get `drift_psi` (population stability index over the reference bins, each
  proportion floored at 1e-4) and `drift_ks` (Kolmogorov-Smirnov: the largest gap between
  the data's and the reference's CDF at the reference's stored quantiles, and its asymptotic
  two-sample p-value; significant → warn, significant with a gap of `ks_statistic_fail` or
  more → fail); categories and booleans get `drift_categories` (PSI over the categories,
  total-variation distance alongside) and categories `new_categories` (share of values in a
  category the reference never had: above `new_category_share` fails, any warns).

Everything is vectorised: one pass per column and check, masks built one column at a time,
and the frame is never copied (drift sorts the column in chunks of 2**18 values). On large
frames the columns are checked in threads (`workers=`); the report does not depend on it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from nbops.errors import QualityInputError, ValidationFailedError
from nbops.quality.schema import (
    DEFAULT_KS_PVALUE,
    DEFAULT_KS_STATISTIC_FAIL,
    DEFAULT_NEW_CATEGORY_SHARE,
    DEFAULT_PSI_FAIL,
    DEFAULT_PSI_WARN,
    NUMERIC_KINDS,
    TEXT_KINDS,
    ColumnSchema,
    CustomCheck,
    Environment,
    ReferenceStats,
    Schema,
    _environment,
    _timestamp,
    boolean_counts,
    column_family,
    counts_by_text,
    evaluate_expression,
    null_count,
    reference_for,
    value_counts,
)

REPORT_VERSION = 1
CheckKind = Literal[
    "missing_column",
    "unexpected_column",
    "dtype",
    "nulls",
    "range",
    "categories",
    "unique",
    "duplicate_keys",
    "file_format",
    "file_size",
    "drift_psi",
    "drift_ks",
    "drift_categories",
    "new_categories",
    "custom",
]
Status = Literal["pass", "warn", "fail"]
DRIFT_KINDS: frozenset[str] = frozenset(
    {"drift_psi", "drift_ks", "drift_categories", "new_categories"}
)
PSI_EPSILON = 1e-4
CHUNK = 1 << 18
EXAMPLES = 5
_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}

_ACCEPTED = {
    "integer": {"integer"},
    "float": {"integer", "float"},
    "boolean": {"boolean", "object-boolean"},
    "string": {"string", "category"},
    "categorical": {"string", "category"},
    "datetime": {"datetime"},
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckResult(_Model):
    """One check's outcome."""

    name: str
    column: str | None = None
    kind: CheckKind
    status: Status
    count: int = Field(default=0, description="offending rows (or columns, for column checks)")
    fraction: float = Field(default=0.0, description="count over the rows validated")
    examples: list[JsonValue] = Field(default_factory=list, description="up to 5 values")
    example_rows: list[int] = Field(default_factory=list, description="their positions, from 0")
    message: str = ""
    stats: dict[str, JsonValue] = Field(default_factory=dict)


class ReportSummary(_Model):
    checks: int = 0
    passed: int = 0
    warned: int = 0
    failed: int = 0


class ValidationReport(_Model):
    """Every check run on one frame or file, with counts and gate values."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.validation"] = "nbops.validation"
    schema_name: str | None = None
    source: str
    environment: str
    rows: int
    columns: int
    drift_checked: bool = False
    duration_s: float = 0.0
    summary: ReportSummary = Field(default_factory=ReportSummary)
    checks: list[CheckResult] = Field(default_factory=list)

    @model_validator(mode="after")
    def _summarise(self) -> ValidationReport:
        statuses = [c.status for c in self.checks]
        self.summary = ReportSummary(
            checks=len(statuses),
            passed=statuses.count("pass"),
            warned=statuses.count("warn"),
            failed=statuses.count("fail"),
        )
        return self

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return self.summary.failed == 0

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warned_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def drifted_columns(self) -> list[str]:
        """Columns with a drift check at warn or fail, in schema order."""
        out: list[str] = []
        for c in self.checks:
            if c.kind in DRIFT_KINDS and c.status != "pass" and c.column and c.column not in out:
                out.append(c.column)
        return out

    def gate_values(self) -> dict[str, float]:
        """Values CI gates can compare, e.g. `data.failed_checks == 0`."""
        return {
            "data.failed_checks": float(len(self.failed_checks)),
            "data.warned_checks": float(len(self.warned_checks)),
            "data.drifted_columns": float(len(self.drifted_columns)),
            "data.rows": float(self.rows),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per check."""
        fields = list(CheckResult.model_fields)
        return pd.DataFrame([c.model_dump() for c in self.checks], columns=fields)

    def raise_if_failed(self) -> None:
        """Raise ValidationFailedError naming the failed checks, if any."""
        failed = self.failed_checks
        if failed:
            names = ", ".join(c.name for c in failed[:5]) + (" ..." if len(failed) > 5 else "")
            raise ValidationFailedError(
                f"{len(failed)} data check(s) failed: {names}",
                location=self.source,
                fix="see the validation report for the offending values",
            )


# -- validate ---------------------------------------------------------------------------------


def validate(
    df_or_path: pd.DataFrame | str | os.PathLike[str],
    schema: Schema | str | os.PathLike[str],
    *,
    environment: str = "training",
    reference: pd.DataFrame | Schema | str | os.PathLike[str] | None = None,
    drift: bool = True,
    workers: int | None = None,
) -> ValidationReport:
    """Check a frame or a .csv/.parquet file against `schema` (a Schema or a schema file).

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
    checks: list[CheckResult] = []
    if isinstance(df_or_path, pd.DataFrame):
        df: pd.DataFrame | None = _usable_frame(df_or_path, "validate")
        source = "<DataFrame>"
    elif isinstance(df_or_path, str | os.PathLike):
        source = str(df_or_path)
        df, file_checks = _read_file(Path(df_or_path), schema)
        checks.extend(file_checks)
    else:
        raise QualityInputError(
            f"validate needs a DataFrame or a .csv/.parquet path, not {type(df_or_path).__name__}"
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
    for custom in schema.checks:
        result = _custom_check(df, custom)
        if result is not None:
            checks.append(result)
    return report(len(df), df.shape[1])


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


# -- files --------------------------------------------------------------------------------------


def _read_file(path: Path, schema: Schema) -> tuple[pd.DataFrame | None, list[CheckResult]]:
    """Read a .csv or .parquet file; problems become failed file checks."""
    if not path.exists():
        raise QualityInputError(f"{path}: no such file")
    checks: list[CheckResult] = []
    size = path.stat().st_size if path.is_file() else 0
    limit = schema.max_file_bytes
    too_big = limit is not None and size > limit
    checks.append(
        CheckResult(
            name="file.size",
            kind="file_size",
            status="fail" if too_big else "pass",
            message=f"{size} bytes" + (f", over the limit of {limit}" if too_big else ""),
            stats={"bytes": size, "max_bytes": limit},
        )
    )
    name = path.name.lower()
    fmt = next((f for suffix, f in _FORMATS.items() if name.endswith(suffix)), None)

    def bad(message: str) -> tuple[None, list[CheckResult]]:
        checks.append(
            CheckResult(name="file.format", kind="file_format", status="fail", message=message)
        )
        return None, checks

    if not path.is_file():
        return bad(f"{path} is not a file")
    if fmt is None:
        return bad(f"{path.name}: unsupported file type (use .csv, .csv.gz, .parquet or .pq)")
    try:
        df = _parse(path, fmt, schema)
    except (ValueError, OSError) as e:  # pandas' and pyarrow's parse errors are ValueErrors
        return bad(f"cannot read {path.name} as {fmt}: {_one_line(e)}")
    except Exception as e:
        if type(e).__module__.startswith("pyarrow"):
            return bad(f"cannot read {path.name} as {fmt}: {_one_line(e)}")
        raise
    if len(df) == 0:
        return bad(f"{path.name} has no rows")
    if df.columns.has_duplicates:
        return bad(f"{path.name}: a column name appears twice")
    checks.append(
        CheckResult(name="file.format", kind="file_format", status="pass", message=f"read as {fmt}")
    )
    return df, checks


def _parse(path: Path, fmt: str, schema: Schema) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    text_columns = {c.name: "str" for c in schema.columns if c.kind in TEXT_KINDS}
    df = pd.read_csv(path, dtype=text_columns)
    for column in schema.columns:
        text = column.name in df.columns and column_family(df[column.name]) == "string"
        if column.kind == "datetime" and text:
            with contextlib.suppress(TypeError, ValueError):  # left as text: dtype reports it
                df[column.name] = pd.to_datetime(df[column.name], format="ISO8601")
    return df


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + ("..." if len(text) > 300 else "")


# -- columns present ----------------------------------------------------------------------------


def _presence_checks(df: pd.DataFrame, schema: Schema, env: Environment) -> list[CheckResult]:
    n = len(df)
    present = set(df.columns)
    checks: list[CheckResult] = []
    missing = [
        c.name
        for c in schema.columns
        if c.name not in present and c.name not in env.absent and c.name not in env.optional
    ]
    for name in missing:
        checks.append(
            CheckResult(
                name=f"{name}.missing_column",
                column=name,
                kind="missing_column",
                status="fail",
                count=n,
                fraction=1.0,
                message=f"column {name!r} is missing",
            )
        )
    if not missing:
        checks.append(
            CheckResult(
                name="columns.missing",
                kind="missing_column",
                status="pass",
                message="every expected column is present",
            )
        )
    for name in env.absent:
        if name in present:
            checks.append(
                CheckResult(
                    name=f"{name}.unexpected_column",
                    column=name,
                    kind="unexpected_column",
                    status="fail",
                    count=n,
                    fraction=1.0,
                    message=f"column {name!r} must be absent here"
                    + (" (it is the label)" if name == schema.label else ""),
                )
            )
    if schema.unexpected_columns != "ignore":
        known = set(schema.column_names)
        extra = [str(c) for c in df.columns if c not in known]
        checks.append(
            CheckResult(
                name="columns.unexpected",
                kind="unexpected_column",
                status=schema.unexpected_columns if extra else "pass",
                count=len(extra),
                examples=list(extra[:EXAMPLES]),
                message=f"{len(extra)} column(s) not in the schema"
                if extra
                else "no unknown columns",
            )
        )
    return checks


# -- one column ---------------------------------------------------------------------------------


class _ColumnChecks:
    """The checks of one column, sharing what they compute (nulls, value counts)."""

    def __init__(self, column: ColumnSchema, s: pd.Series, reference: ReferenceStats | None):
        self.column = column
        self.s = s
        self.n = len(s)
        self.reference = reference
        self.nulls = 0
        self._counts: pd.Series | None = None
        self._text_counts: tuple[dict[str, int], int] | None = None

    def result(self, kind: CheckKind, status: Status, message: str, **fields: Any) -> CheckResult:
        count = int(fields.pop("count", 0))
        return CheckResult(
            name=f"{self.column.name}.{kind}",
            column=self.column.name,
            kind=kind,
            status=status,
            count=count,
            fraction=count / self.n if self.n else 0.0,
            message=message,
            **fields,
        )

    def counts(self) -> pd.Series:
        """Every value's count (a hashing pass: used when some value is out of place)."""
        if self._counts is None:
            self._counts = value_counts(self.s)
        return self._counts

    def text_counts(self) -> tuple[dict[str, int], int]:
        """Counts of the categories the schema knows (allowed, reference), and of the rest."""
        if self._text_counts is None:
            ref = self.reference.frequencies if self.reference is not None else None
            known = list(dict.fromkeys([*(self.column.categories or []), *(ref or {})]))
            found = _arrow_known_counts(self.s, known, self.nulls)
            if found is None:
                every = counts_by_text(self.counts())
                rest = sum(c for k, c in every.items() if k not in set(known))
                found = ({k: every.get(k, 0) for k in known}, rest)
            self._text_counts = found
        return self._text_counts

    def texts_outside(self, accepted: set[str]) -> tuple[list[JsonValue], pd.Index]:
        """Texts of the values not in `accepted` (most frequent first), and the values."""
        counts = self.counts()
        texts = _texts(counts.index)
        outside = ~texts.isin(list(accepted))
        return [_json_value(v) for v in texts[outside][:EXAMPLES]], counts.index[outside]

    def run(self) -> list[CheckResult]:
        family = column_family(self.s)
        self.nulls = null_count(self.s)
        dtype_check = self.dtype(family)
        checks = [dtype_check]
        if dtype_check.status == "fail":
            return checks
        checks.append(self.null_check())
        kind = self.column.kind
        if kind in NUMERIC_KINDS or kind == "datetime":
            checks.extend(self.range_check())
        if self.column.categories is not None:
            checks.append(self.categories_check())
        if self.column.unique:
            checks.append(self.unique_check())
        ref = self.reference
        if ref is not None and self.nulls < self.n:
            if kind in NUMERIC_KINDS:
                checks.extend(self.numeric_drift(ref))
            elif kind == "categorical" and ref.frequencies is not None:
                known, rest = self.text_counts()
                checks.extend(self.category_drift(ref.frequencies, known, rest))
            elif kind == "boolean" and ref.frequencies is not None:
                checks.extend(self.category_drift(ref.frequencies, boolean_counts(self.s), 0))
        return checks

    # dtype, nulls, range, categories, unique

    def dtype(self, family: str) -> CheckResult:
        kind, dtype = self.column.kind, str(self.s.dtype)
        if family in _ACCEPTED[kind]:
            return self.result("dtype", "pass", f"{dtype} holds {kind} values")
        if kind == "integer" and family == "float":
            x = self.s.to_numpy(dtype=np.float64, na_value=np.nan)
            count, rows = 0, list[int]()
            for start in range(0, x.size, CHUNK):
                part = x[start : start + CHUNK]
                mask = (part != np.trunc(part)) & ~np.isnan(part)
                count += int(np.count_nonzero(mask))
                if len(rows) < EXAMPLES:
                    rows += [start + r for r in _first_rows(mask, EXAMPLES - len(rows))]
            if not count:
                return self.result("dtype", "pass", f"whole numbers stored as {dtype}")
            return self.result(
                "dtype",
                "fail",
                f"expected integers; {count} value(s) of {dtype} are not whole",
                count=count,
                examples=[_json_value(v) for v in x[rows]],
                example_rows=rows,
            )
        head = self.s.iloc[:200]
        sample = head[head.notna().to_numpy()].iloc[:EXAMPLES]
        found = family.removeprefix("other:")
        return self.result(
            "dtype",
            "fail",
            f"expected {kind} values, found dtype {dtype}"
            + (f" holding {found} values" if found != dtype else ""),
            count=self.n - self.nulls,
            examples=[_json_value(v) for v in sample.to_numpy(dtype=object)],
        )

    def null_check(self) -> CheckResult:
        nulls, column = self.nulls, self.column
        fraction = nulls / self.n
        if nulls and not column.nullable:
            status: Status = "fail"
            message = f"{nulls} null(s) in a column that allows none"
        elif column.max_null_fraction is not None and fraction > column.max_null_fraction:
            status = "fail"
            message = (
                f"{fraction:.2%} nulls, above max_null_fraction {column.max_null_fraction:.2%}"
            )
        else:
            status, message = "pass", f"{fraction:.2%} nulls"
        rows = _first_rows(np.asarray(self.s.isna())) if status == "fail" else []
        return self.result(
            "nulls",
            status,
            message,
            count=nulls,
            example_rows=rows,
            stats={"null_fraction": fraction},
        )

    def range_check(self) -> list[CheckResult]:
        column, s = self.column, self.s
        lo: Any = column.min
        hi: Any = column.max
        if lo is None and hi is None:
            return []
        if self.nulls == self.n:
            return [self.result("range", "pass", "no values to check")]
        dtype = s.dtype
        if column.kind == "datetime":
            lo, hi = (_aligned_timestamp(b, dtype) for b in (lo, hi))
        numpy_numbers = isinstance(dtype, np.dtype) and dtype.kind in "iuf"
        x = s.to_numpy() if numpy_numbers else None
        if x is not None:
            floats_with_nulls = dtype.kind == "f" and self.nulls > 0
            low = np.fmin.reduce(x) if floats_with_nulls else x.min()
            high = np.fmax.reduce(x) if floats_with_nulls else x.max()
        else:
            low, high = s.min(), s.max()
        stats = {"min": _json_value(low), "max": _json_value(high)}
        bounds = f"[{_json_value(lo)}, {_json_value(hi)}]"
        if (lo is None or low >= lo) and (hi is None or high <= hi):
            return [self.result("range", "pass", f"all values within {bounds}", stats=stats)]
        if x is not None:
            mask = np.zeros(self.n, dtype=bool)
            if lo is not None:
                np.less(x, lo, out=mask)
            if hi is not None:
                mask |= x > hi
        else:
            below = s < lo if lo is not None else pd.Series(False, index=s.index)
            above = s > hi if hi is not None else pd.Series(False, index=s.index)
            mask = (below | above).to_numpy(dtype=bool, na_value=False)
        count = int(np.count_nonzero(mask))
        rows = _first_rows(mask)
        values = x[rows] if x is not None else s.iloc[rows].to_numpy(dtype=object)
        return [
            self.result(
                "range",
                "fail",
                f"{count} value(s) outside {bounds}",
                count=count,
                examples=[_json_value(v) for v in values],
                example_rows=rows,
                stats=stats,
            )
        ]

    def categories_check(self) -> CheckResult:
        allowed = set(self.column.categories or [])
        known, rest = self.text_counts()
        count = rest + sum(c for k, c in known.items() if k not in allowed)
        if not count:
            return self.result("categories", "pass", f"all values among {len(allowed)} categories")
        examples, values = self.texts_outside(allowed)
        mask = np.asarray(self.s.isin(values), dtype=bool)
        return self.result(
            "categories",
            "fail",
            f"{count} value(s) in {len(values)} unknown categories",
            count=count,
            examples=examples,
            example_rows=_first_rows(mask),
        )

    def unique_check(self) -> CheckResult:
        mask = self.s.duplicated(keep=False).to_numpy()
        count = int(np.count_nonzero(mask))
        if not count:
            return self.result("unique", "pass", "every value is unique")
        rows = _first_rows(mask)
        return self.result(
            "unique",
            "fail",
            f"{count} rows share a value with another row",
            count=count,
            examples=[_json_value(v) for v in self.s.iloc[rows].to_numpy(dtype=object)],
            example_rows=rows,
        )

    # drift

    def numeric_drift(self, ref: ReferenceStats) -> list[CheckResult]:
        column = self.column
        edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
        grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
        points = np.union1d(edges, grid)
        if points.size == 0:
            return []
        at_or_below = _counts_at_or_below(self.s, points)
        n_new = self.n - self.nulls
        checks: list[CheckResult] = []
        if ref.bin_edges is not None and ref.proportions is not None:
            below = at_or_below[np.searchsorted(points, edges)]
            new = np.diff(np.concatenate(([0], below, [n_new]))) / n_new
            old = np.asarray(ref.proportions, dtype=np.float64)
            old = old / old.sum() if old.sum() > 0 else old
            psi = _psi(new, old)
            noise = _psi_noise(len(old), n_new, ref.rows)
            checks.append(self.psi_result("drift_psi", psi, noise, {"psi": psi}))
        if ref.cdf_values is not None and ref.cdf is not None:
            new_cdf = at_or_below[np.searchsorted(points, grid)] / n_new
            gap = float(np.max(np.abs(new_cdf - np.asarray(ref.cdf))))
            pvalue = _ks_pvalue(gap, n_new, ref.rows)
            alpha = _or(column.ks_pvalue, DEFAULT_KS_PVALUE)
            big = _or(column.ks_statistic_fail, DEFAULT_KS_STATISTIC_FAIL)
            status: Status = "pass"
            if pvalue < alpha:
                status = "fail" if gap >= big else "warn"
            checks.append(
                self.result(
                    "drift_ks",
                    status,
                    f"KS statistic {gap:.4f}, p-value {pvalue:.3g}"
                    + (f" (below {alpha:g})" if pvalue < alpha else ""),
                    stats={"statistic": gap, "pvalue": pvalue, "reference_rows": ref.rows},
                )
            )
        return checks

    def category_drift(
        self, frequencies: dict[str, float], counts: dict[str, int], rest: int
    ) -> list[CheckResult]:
        """PSI over the reference's categories plus one bucket for the rest (and, for a
        categorical, the share of that bucket). `counts` may miss categories (zero) and
        hold others; `rest` counts values in neither."""
        known = [k for k, f in frequencies.items() if f > 0]
        seen = set(known)
        new_rows = rest + sum(c for k, c in counts.items() if k not in seen)
        total = new_rows + sum(counts.get(k, 0) for k in known)
        if not total:
            return []
        ref_total = sum(frequencies[k] for k in known) or 1.0
        old = np.array([frequencies[k] / ref_total for k in known] + [0.0])
        new = np.array([counts.get(k, 0) / total for k in known] + [new_rows / total])
        psi = _psi(new, old)
        distance = float(0.5 * np.abs(new - old).sum())
        ref_rows = self.column.reference.rows if self.column.reference else total
        noise = _psi_noise(len(known) + 1, total, ref_rows)
        checks = [
            self.psi_result(
                "drift_categories", psi, noise, {"psi": psi, "total_variation": distance}
            )
        ]
        if self.column.kind == "categorical":
            share = new_rows / total
            limit = _or(self.column.new_category_share, DEFAULT_NEW_CATEGORY_SHARE)
            status: Status = "fail" if share > limit else "warn" if share > 0 else "pass"
            checks.append(
                self.result(
                    "new_categories",
                    status,
                    f"{share:.2%} of values in categories the reference never had"
                    + (f" (limit {limit:.2%})" if share > 0 else ""),
                    count=new_rows,
                    examples=self.texts_outside(seen)[0] if new_rows else [],
                    stats={"share": share},
                )
            )
        return checks

    def psi_result(
        self, kind: CheckKind, psi: float, noise: float, stats: dict[str, JsonValue]
    ) -> CheckResult:
        """Judge a PSI against the thresholds, and against what sampling alone produces: on a
        small sample PSI is large even when nothing changed, so it must also exceed the
        level two samples of one distribution stay below 99% of the time."""
        warn = max(_or(self.column.psi_warn, DEFAULT_PSI_WARN), noise)
        fail = max(_or(self.column.psi_fail, DEFAULT_PSI_FAIL), noise)
        status: Status = "fail" if psi > fail else "warn" if psi > warn else "pass"
        limit = fail if status == "fail" else warn
        message = f"PSI {psi:.4f}"
        if math.isinf(noise):
            message += ", not judged: fewer than 5 rows per bin (the KS test still applies)"
        elif noise >= 0.01:
            message += f" (sampling alone reaches {noise:.3f})"
        if status != "pass":
            message += f", above {limit:.3g}"
        judged = None if math.isinf(noise) else noise
        return self.result(kind, status, message, stats={**stats, "sampling_noise": judged})


def _psi_noise(bins: int, rows: int, reference_rows: int) -> float:
    """The PSI two samples of one distribution stay below 99% of the time, from their sizes:
    n * PSI is about chi-square with bins - 1 degrees of freedom, so the 99th percentile of
    that, times (1/rows + 1/reference_rows)."""
    if rows <= 0 or reference_rows <= 0 or bins < 2:
        return 0.0
    if rows < 5 * bins:  # the chi-square approximation needs about 5 expected rows per bin
        return math.inf
    from scipy.stats import chi2

    return float(chi2.ppf(0.99, bins - 1)) * (1.0 / rows + 1.0 / reference_rows)


def _arrow_known_counts(
    s: pd.Series, known: list[str], nulls: int
) -> tuple[dict[str, int], int] | None:
    """For pyarrow-backed text: counts of `known` values and of the other non-null values,
    with one hash lookup per row against the few known values (None for other dtypes)."""
    dtype = s.dtype
    is_arrow_text = (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or (
        isinstance(dtype, pd.ArrowDtype) and ptypes.is_string_dtype(dtype)
    )
    if not is_arrow_text:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    data = s.array.__arrow_array__()
    if isinstance(data, pa.Array):
        data = pa.chunked_array([data])
    value_set = pa.array(known, type=data.type)
    codes = pc.fill_null(pc.index_in(data, value_set=value_set), len(known))
    counts = np.zeros(len(known) + 1, dtype=np.int64)
    for chunk in codes.chunks:
        part = chunk.to_numpy(zero_copy_only=False)
        for start in range(0, part.size, CHUNK):  # bincount copies to intp: bound that copy
            counts += np.bincount(part[start : start + CHUNK], minlength=len(known) + 1)
    return dict(zip(known, counts[:-1].tolist(), strict=True)), int(counts[-1]) - nulls


def _counts_at_or_below(s: pd.Series, points: np.ndarray) -> np.ndarray:
    """How many values of the column are <= each point: sorts one chunk at a time."""
    out = np.zeros(points.size, dtype=np.int64)
    dtype = s.dtype
    x = s.to_numpy() if isinstance(dtype, np.dtype) else None
    array = s.array
    for start in range(0, len(s), CHUNK):
        if x is not None:
            chunk = x[start : start + CHUNK].astype(np.float64)  # a copy, sorted in place
            chunk.sort()
        else:
            part = array[start : start + CHUNK]
            chunk = np.sort(part.to_numpy(dtype=np.float64, na_value=np.nan))
        out += np.searchsorted(chunk, points, side="right")  # NaN sorts last: never counted
    return out


def _psi(new: np.ndarray, old: np.ndarray) -> float:
    new = np.maximum(new, PSI_EPSILON)
    old = np.maximum(old, PSI_EPSILON)
    return float(np.sum((new - old) * np.log(new / old)))


def _ks_pvalue(statistic: float, n: int, m: int) -> float:
    from scipy.special import kolmogorov

    if statistic <= 0:
        return 1.0
    effective = math.sqrt(n * m / (n + m))
    return float(min(1.0, max(0.0, kolmogorov(effective * statistic))))


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


# -- the key and custom checks -----------------------------------------------------------------


def _key_check(df: pd.DataFrame, key: list[str]) -> list[CheckResult]:
    if any(k not in df.columns for k in key):
        return []  # the missing key column is reported already
    if len(key) == 1:
        mask = df[key[0]].duplicated(keep=False).to_numpy()
    else:
        mask = df.duplicated(subset=key, keep=False).to_numpy()
    count = int(np.count_nonzero(mask))
    rows = _first_rows(mask)
    examples: list[JsonValue] = []
    for row in rows:
        values = [_json_value(df[k].iloc[row]) for k in key]
        examples.append(values[0] if len(key) == 1 else values)
    return [
        CheckResult(
            name="key.duplicate_keys",
            column=key[0] if len(key) == 1 else None,
            kind="duplicate_keys",
            status="fail" if count else "pass",
            count=count,
            fraction=count / len(df),
            examples=examples,
            example_rows=rows,
            message=f"{count} rows share their key {key} with another row"
            if count
            else f"key {key} is unique",
        )
    ]


def _custom_check(df: pd.DataFrame, check: CustomCheck) -> CheckResult | None:
    name = f"custom.{check.name}"
    if any(c not in df.columns for c in check.columns_read()):
        return None  # reported as a missing column, or one this environment does without
    try:
        holds, judged = evaluate_expression(check.parsed(), df, check.column)
    except (TypeError, ValueError, KeyError) as e:
        return CheckResult(
            name=name,
            column=check.column,
            kind="custom",
            status="fail",
            message=f"cannot evaluate {check.expression!r}: {_one_line(e)}",
        )
    bad = judged & ~holds
    count = int(np.count_nonzero(bad))
    rows = _first_rows(bad)
    examples: list[JsonValue] = []
    if check.column is not None:
        examples = [_json_value(v) for v in df[check.column].iloc[rows].to_numpy(dtype=object)]
    return CheckResult(
        name=name,
        column=check.column,
        kind="custom",
        status=check.severity if count else "pass",
        count=count,
        fraction=count / len(df),
        examples=examples,
        example_rows=rows,
        message=f"{count} row(s) break {check.expression!r}"
        if count
        else f"every row meets {check.expression!r}",
        stats={"rows_judged": int(np.count_nonzero(judged))},
    )


# -- helpers ------------------------------------------------------------------------------------


def _first_rows(mask: np.ndarray, k: int = EXAMPLES) -> list[int]:
    """Positions of the first k True values, scanning in blocks (no full index array)."""
    out: list[int] = []
    block = 1 << 16
    for start in range(0, mask.size, block):
        found = np.flatnonzero(mask[start : start + block])
        if found.size:
            out.extend((found[: k - len(out)] + start).tolist())
            if len(out) >= k:
                break
    return out


def _texts(index: pd.Index) -> pd.Index:
    """An index's values as text (what the schema's categories hold)."""
    if isinstance(index.dtype, pd.StringDtype):
        return index
    return pd.Index([str(v) for v in index], dtype=object)


def _aligned_timestamp(bound: Any, dtype: Any) -> pd.Timestamp | None:
    if bound is None:
        return None
    stamp = _timestamp(bound)
    tz = getattr(dtype, "tz", None)
    if tz is not None and stamp.tz is None:
        return stamp.tz_localize(tz)
    if tz is None and stamp.tz is not None:
        return stamp.tz_convert(None)
    return stamp


def _json_value(value: Any) -> JsonValue:
    """A value as JSON can hold it (numpy scalars unwrapped, timestamps as ISO text)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        return str(pd.Timestamp(value)) if isinstance(value, np.datetime64) else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
