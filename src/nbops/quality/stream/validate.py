"""`validate` over data read in chunks (partitioned Parquet, a glob, a Dask DataFrame):
per chunk, each column's mergeable statistics; merged, the same checks and judgements as
the in-memory `nbops.quality.validate` on the whole frame.

Exact (equal to the in-memory report): row and null counts, dtype, min/max and every range
count (below/above the bounds and the tolerance) with the exact count tests, category
counts (allowed categories, new categories, `drift_categories`: chi-square and PSI), and
numeric drift against the schema's stored reference: `drift_psi` counts the values in the
reference's bins and `drift_ks` the values at or below the reference's CDF points, both
counts, so PSI, chi-square and the KS gap at those points are exact. Custom checks are
counted per chunk (exact). `unique` and `duplicate_keys` compare 64-bit hashes of the
values (8 bytes per row held; a false duplicate needs a hash collision, chance about
rows^2 / 2^65). Example rows are row positions in the whole data (file order).

Sketched (stated in the report's `stats["sketch"]`): a `reference=` that is itself a folder,
glob or Dask DataFrame: its bins and CDF points are quantiles of a KLL sketch (Apache
DataSketches, rank error `kll_rank_error(K)` at 99% confidence: each point's rank is
within that share of the rows), and the counts in those bins and at those points are then
counted exactly in a second pass over the reference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import JsonValue

from nbops.errors import QualityInputError
from nbops.quality.schema.expressions import evaluate_expression
from nbops.quality.schema.infer import boolean_counts, column_family, null_count
from nbops.quality.schema.model import (
    NUMERIC_KINDS,
    ColumnSchema,
    ReferenceStats,
    Schema,
    _environment,
)
from nbops.quality.stream.merged import _duplicated_rows, _Merged
from nbops.quality.stream.reference import SKETCHED
from nbops.quality.stream.source import Source, open_source
from nbops.quality.validate.columns import (
    _ACCEPTED,
    _arrow_known_counts,
)
from nbops.quality.validate.drift import (
    _counts_at_or_below,
    judge_drift_family,
)
from nbops.quality.validate.frame_checks import (
    _presence_checks,
    custom_error,
    custom_result,
    key_result,
)
from nbops.quality.validate.report import CheckResult, ValidationReport
from nbops.quality.validate.values import (
    EXAMPLES,
    _aligned_timestamp,
    _json_value,
    _one_line,
)

MAX_TRACKED_VALUES = 10_000  # distinct unknown categories counted by name (the rest as one)


def _first(mask: np.ndarray, offset: int, have: list[int]) -> None:
    """Append the positions (plus `offset`) of mask's first True values, up to EXAMPLES."""
    if len(have) >= EXAMPLES:
        return
    found = np.flatnonzero(mask)[: EXAMPLES - len(have)]
    have.extend((found + offset).tolist())


@dataclass
class _Partial:
    """One column's statistics so far (every field merges by addition or min/max)."""

    column: ColumnSchema
    reference: ReferenceStats | None
    points: np.ndarray | None  # numeric drift: the reference's bin edges and CDF points
    known: list[str]  # categories: the schema's and the reference's, in order
    n: int = 0
    nulls: int = 0
    family: str | None = None
    dtype: str = ""
    null_rows: list[int] = field(default_factory=list)
    non_whole: int = 0
    non_whole_rows: list[int] = field(default_factory=list)
    non_whole_examples: list[JsonValue] = field(default_factory=list)
    head_examples: list[JsonValue] = field(default_factory=list)
    low: Any = None
    high: Any = None
    below: int = 0
    above: int = 0
    far: int = 0
    range_rows: list[int] = field(default_factory=list)
    range_examples: list[JsonValue] = field(default_factory=list)
    far_rows: list[int] = field(default_factory=list)
    far_examples: list[JsonValue] = field(default_factory=list)
    at_or_below: np.ndarray | None = None
    known_counts: np.ndarray | None = None
    other_counts: dict[str, int] = field(default_factory=dict)
    other_rest: int = 0  # non-null values neither known nor tracked by name
    outside_rows: list[int] = field(default_factory=list)
    booleans: dict[str, int] = field(default_factory=dict)
    hashes: list[np.ndarray] = field(default_factory=list)

    # --- per chunk ---------------------------------------------------------------------

    def add(self, s: pd.Series, offset: int) -> None:
        column, kind = self.column, self.column.kind
        family = column_family(s)
        if self.family is None:
            self.family, self.dtype = family, str(s.dtype)
        nulls = null_count(s)
        size = len(s)
        if nulls:
            _first(np.asarray(s.isna()), offset, self.null_rows)
        self.n += size
        self.nulls += nulls
        if self.family not in _ACCEPTED[kind]:
            if kind == "integer" and self.family == "float":
                x = s.to_numpy(dtype=np.float64, na_value=np.nan)
                mask = (x != np.trunc(x)) & ~np.isnan(x)
                count = int(np.count_nonzero(mask))
                if count and len(self.non_whole_rows) < EXAMPLES:
                    before = len(self.non_whole_rows)
                    _first(mask, offset, self.non_whole_rows)
                    rows = [r - offset for r in self.non_whole_rows[before:]]
                    self.non_whole_examples += [_json_value(v) for v in x[rows]]
                self.non_whole += count
                if count:
                    return  # the dtype check fails: no further check looks at the values
            else:
                if len(self.head_examples) < EXAMPLES:
                    head = s.iloc[:200]
                    sample = head[head.notna().to_numpy()].iloc[
                        : EXAMPLES - len(self.head_examples)
                    ]
                    self.head_examples += [_json_value(v) for v in sample.to_numpy(dtype=object)]
                return
        if nulls == size:
            return
        value_range = None
        if kind in NUMERIC_KINDS or kind == "datetime":
            value_range = self._range(s, offset, nulls)
        if kind in NUMERIC_KINDS and self.points is not None:
            self._at_or_below(s, value_range, nulls)
        if self.known and kind in ("categorical", "string"):
            self._categories(s, offset, nulls)
        if kind == "boolean" and self.reference is not None:
            for k, v in boolean_counts(s).items():
                self.booleans[k] = self.booleans.get(k, 0) + v
        if column.unique:
            self.hashes.append(pd.util.hash_pandas_object(s, index=False).to_numpy())

    def _range(self, s: pd.Series, offset: int, nulls: int) -> tuple[Any, Any] | None:
        """Merge the chunk's min, max and range counts; the chunk's min and max when it is
        of a numpy number dtype (what the drift count takes), else None."""
        column, dtype = self.column, s.dtype
        lo: Any = column.min
        hi: Any = column.max
        if column.kind == "datetime":
            lo, hi = (_aligned_timestamp(b, dtype) for b in (lo, hi))
        numpy_numbers = isinstance(dtype, np.dtype) and dtype.kind in "iuf"
        x = s.to_numpy() if numpy_numbers else None
        if x is not None:
            fl = dtype.kind == "f" and nulls > 0
            low = np.fmin.reduce(x) if fl else x.min()
            high = np.fmax.reduce(x) if fl else x.max()
        else:
            low, high = s.min(), s.max()
        self.low = low if self.low is None or low < self.low else self.low
        self.high = high if self.high is None or high > self.high else self.high
        chunk_range = (low, high) if x is not None else None
        if lo is None and hi is None:
            return chunk_range
        if (lo is None or low >= lo) and (hi is None or high <= hi):
            return chunk_range

        def outside(bound: Any, op: Callable[[Any, Any], Any]) -> np.ndarray:
            if bound is None:
                return np.zeros(len(s), dtype=bool)
            if x is not None:
                return np.asarray(op(x, bound), dtype=bool)
            found = s < bound if op is np.less else s > bound
            return found.to_numpy(dtype=bool, na_value=False)

        below, above = outside(lo, np.less), outside(hi, np.greater)
        self.below += int(np.count_nonzero(below))
        self.above += int(np.count_nonzero(above))
        self._examples(below | above, s, x, offset, self.range_rows, self.range_examples)
        tolerance = column.tolerance()
        if tolerance is not None and column.kind != "datetime":
            far_lo = None if lo is None else lo - tolerance.low
            far_hi = None if hi is None else hi + tolerance.high
            far = outside(far_lo, np.less) | outside(far_hi, np.greater)
            self.far += int(np.count_nonzero(far))
            self._examples(far, s, x, offset, self.far_rows, self.far_examples)
        return chunk_range

    @staticmethod
    def _examples(
        mask: np.ndarray,
        s: pd.Series,
        x: np.ndarray | None,
        offset: int,
        rows: list[int],
        examples: list[JsonValue],
    ) -> None:
        before = len(rows)
        _first(mask, offset, rows)
        local = [r - offset for r in rows[before:]]
        values = x[local] if x is not None else s.iloc[local].to_numpy(dtype=object)
        examples += [_json_value(v) for v in values]

    def _at_or_below(self, s: pd.Series, value_range: tuple[Any, Any] | None, nulls: int) -> None:
        assert self.points is not None
        found = _counts_at_or_below(s, self.points, value_range, nulls)  # the in-memory count
        self.at_or_below = found if self.at_or_below is None else self.at_or_below + found

    def _categories(self, s: pd.Series, offset: int, nulls: int) -> None:
        found = _arrow_known_counts(s, self.known, nulls)
        if found is None:
            texts = s.dropna().astype(str)
            counts = texts.value_counts()
            known_set = set(self.known)
            found = (
                {k: int(counts.get(k, 0)) for k in self.known},
                int(counts[~counts.index.isin(list(known_set))].sum()),
            )
        known, rest = found
        array = np.array([known[k] for k in self.known], dtype=np.int64)
        self.known_counts = array if self.known_counts is None else self.known_counts + array
        allowed = self.column.categories
        if rest or (
            allowed is not None and any(known[k] for k in self.known if k not in set(allowed))
        ):
            accepted = list(allowed) if allowed is not None else self.known
            mask = np.asarray(s.notna() & ~s.astype(str).isin(accepted), dtype=bool)
            _first(mask, offset, self.outside_rows)
        if rest:
            others = s[np.asarray(s.notna() & ~s.isin(self.known), dtype=bool)]
            for value, count in others.astype(str).value_counts().items():
                key = str(value)
                if key in self.other_counts or len(self.other_counts) < MAX_TRACKED_VALUES:
                    self.other_counts[key] = self.other_counts.get(key, 0) + int(count)
                else:
                    self.other_rest += int(count)

    # --- merged: the checks ------------------------------------------------------------

    def checks(self) -> list[CheckResult]:
        c = _Merged(self)
        return c.judged(c.dtype_check())  # the in-memory checks, in its order


@dataclass
class _CustomPartial:
    bad: int = 0
    judged: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[JsonValue] = field(default_factory=list)
    error: str | None = None


def stream_validate(
    data: Any,
    schema: Schema,
    *,
    environment: str = "training",
    references: dict[str, ReferenceStats],
    workers: int | None = None,
    chunk_rows: int | None = None,
) -> ValidationReport:
    """The report of `validate` on a folder, glob or Dask DataFrame (see the module
    docstring); `references` are the drift references already chosen."""
    started = time.perf_counter()
    source = data if hasattr(data, "chunks") else open_source(data)
    env = _environment(schema, environment)
    present = set(source.columns)
    checked = [c for c in schema.columns if c.name in present and c.name not in env.absent]
    partials: dict[str, _Partial] = {}
    for column in checked:
        ref = references.get(column.name)
        points = None
        if ref is not None and column.kind in NUMERIC_KINDS:
            edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
            grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
            points = np.union1d(edges, grid)
            points = points if points.size else None
        known: list[str] = []
        if column.kind in ("categorical", "string"):
            freq = ref.frequencies if ref is not None else None
            known = list(dict.fromkeys([*(column.categories or []), *(freq or {})]))
        partials[column.name] = _Partial(column, ref, points, known)
    custom = [c for c in schema.checks if all(x in present for x in c.columns_read())]
    customs = {c.name: _CustomPartial() for c in custom}
    key = schema.key if schema.key and all(k in present for k in schema.key) else None
    key_hashes: list[np.ndarray] = []
    needed = list(
        dict.fromkeys([*partials, *(x for c in custom for x in c.columns_read()), *(key or [])])
    )
    threads = _threads(workers, len(partials))
    offset = 0
    pool = ThreadPoolExecutor(threads, thread_name_prefix="nbops-stream") if threads > 1 else None
    try:
        kwargs = {} if chunk_rows is None else {"rows": chunk_rows}
        for chunk in source.chunks(needed, **kwargs):
            start = offset
            jobs = [
                (lambda p=p, s=chunk[name], at=start: p.add(s, at)) for name, p in partials.items()
            ]
            if pool is not None:
                for future in [pool.submit(job) for job in jobs]:
                    future.result()
            else:
                for job in jobs:
                    job()
            for check in custom:
                _custom_chunk(customs[check.name], check, chunk, start)
            if key is not None:
                key_hashes.append(pd.util.hash_pandas_object(chunk[key], index=False).to_numpy())
            offset += len(chunk)
    finally:
        if pool is not None:
            pool.shutdown()
    if offset == 0:
        raise QualityInputError(
            "the data has no rows", location=source.where, fix="give files with rows"
        )
    checks: list[CheckResult] = []

    class _Shape:  # what _presence_checks reads of a frame
        def __init__(self) -> None:
            self.columns = pd.Index(source.columns)

        def __len__(self) -> int:
            return offset

    checks.extend(_presence_checks(_Shape(), schema, env))
    for column in checked:
        checks.extend(partials[column.name].checks())
    if key is not None:
        checks.append(key_result(key, _duplicated_rows(key_hashes), offset, [], []))
    _mark_exactness(checks, references)
    checks[:] = judge_drift_family(checks)
    for check in custom:
        checks.append(_custom_result(customs[check.name], check, offset))
    return ValidationReport(
        schema_name=schema.name,
        source=source.where,
        environment=environment,
        rows=offset,
        columns=len(source.columns),
        drift_checked=bool(references),
        duration_s=round(time.perf_counter() - started, 6),
        checks=checks,
    )


def _mark_exactness(checks: list[CheckResult], references: dict[str, ReferenceStats]) -> None:
    """Each drift check says how it was computed: `exact` counts in the reference's bins, or
    bins and points from a KLL sketch (`sketch_rank_error`: each point's rank error)."""
    for i, check in enumerate(checks):
        if check.kind not in ("drift_psi", "drift_ks", "drift_categories"):
            continue
        ref = references.get(check.column or "")
        error = SKETCHED.get(id(ref)) if ref is not None else None
        extra: dict[str, JsonValue] = (
            {"exact": True}
            if error is None
            else {"exact": False, "sketch": "kll", "sketch_rank_error": error}
        )
        checks[i] = check.model_copy(update={"stats": {**check.stats, **extra}})


def _custom_chunk(p: _CustomPartial, check: Any, chunk: pd.DataFrame, offset: int) -> None:
    if p.error is not None:
        return
    try:
        holds, judged = evaluate_expression(check.parsed(), chunk, check.column)
    except (TypeError, ValueError, KeyError) as e:
        p.error = _one_line(e)
        return
    bad = np.asarray(judged & ~holds, dtype=bool)
    p.bad += int(np.count_nonzero(bad))
    p.judged += int(np.count_nonzero(judged))
    before = len(p.rows)
    _first(bad, offset, p.rows)
    if check.column is not None and len(p.rows) > before:
        local = [r - offset for r in p.rows[before:]]
        p.examples += [
            _json_value(v) for v in chunk[check.column].iloc[local].to_numpy(dtype=object)
        ]


def _custom_result(p: _CustomPartial, check: Any, rows: int) -> CheckResult:
    if p.error is not None:
        return custom_error(check, p.error)
    return custom_result(check, p.bad, p.judged, rows, p.examples, p.rows)


def _threads(asked: int | None, columns: int) -> int:
    if asked is not None:
        return max(1, min(asked, columns))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, columns))


Source_ = Source  # re-exported for typing by callers
