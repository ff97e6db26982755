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
from nbops.quality.schema.infer import boolean_counts, column_family, null_count
from nbops.quality.schema.model import (
    DEFAULT_KS_PVALUE,
    DEFAULT_KS_STATISTIC_FAIL,
    DEFAULT_RANGE_ALPHA,
    NUMERIC_KINDS,
    ColumnSchema,
    ReferenceStats,
    Schema,
    _environment,
)
from nbops.quality.schema.expressions import evaluate_expression
from nbops.quality.stream.source import Source, open_source
from nbops.quality.validate.columns import (
    _ACCEPTED,
    _arrow_known_counts,
    _ColumnChecks,
    exceedance_pvalue,
)
from nbops.quality.validate.drift import (
    _binned_result,
    _ks_pvalue,
    _or,
    category_drift,
    judge_drift_family,
)
from nbops.quality.validate.frame_checks import _presence_checks
from nbops.quality.validate.report import CheckResult, Status, ValidationReport
from nbops.quality.validate.values import EXAMPLES, _aligned_timestamp, _json_value, _one_line

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
                    sample = head[head.notna().to_numpy()].iloc[: EXAMPLES - len(self.head_examples)]
                    self.head_examples += [_json_value(v) for v in sample.to_numpy(dtype=object)]
                return
        if nulls == size:
            return
        if kind in NUMERIC_KINDS or kind == "datetime":
            self._range(s, offset, nulls)
        if kind in NUMERIC_KINDS and self.points is not None:
            self._at_or_below(s)
        if self.known and kind in ("categorical", "string"):
            self._categories(s, offset, nulls)
        if kind == "boolean" and self.reference is not None:
            for k, v in boolean_counts(s).items():
                self.booleans[k] = self.booleans.get(k, 0) + v
        if column.unique:
            self.hashes.append(pd.util.hash_pandas_object(s, index=False).to_numpy())

    def _range(self, s: pd.Series, offset: int, nulls: int) -> None:
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
        if lo is None and hi is None:
            return
        if (lo is None or low >= lo) and (hi is None or high <= hi):
            return

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

    def _at_or_below(self, s: pd.Series) -> None:
        assert self.points is not None
        dtype = s.dtype
        if isinstance(dtype, np.dtype):
            x = s.to_numpy().astype(np.float64, copy=False)
        else:
            x = s.array.to_numpy(dtype=np.float64, na_value=np.nan)
        # values <= points[j] are those with fewer than j+1 points below them (NaN: none)
        where = np.searchsorted(self.points, x, side="left")
        counts = np.bincount(where, minlength=self.points.size + 1)[: self.points.size]
        found = np.cumsum(counts)
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
        if rest or (allowed is not None and any(known[k] for k in self.known if k not in set(allowed))):
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

    def checks(self, offsets_known: bool) -> list[CheckResult]:
        c = _Merged(self)
        kind = self.column.kind
        checks = [c.dtype_check()]
        if checks[0].status == "fail":
            return checks
        checks.append(c.null_check())
        if kind in NUMERIC_KINDS or kind == "datetime":
            checks.extend(c.range_checks())
        if self.column.categories is not None:
            checks.append(c.categories_check())
        if self.column.unique:
            checks.append(c.unique_check())
        ref = self.reference
        if ref is not None and self.nulls < self.n:
            if kind in NUMERIC_KINDS and self.at_or_below is not None:
                checks.extend(c.numeric_drift(ref))
            elif kind == "categorical" and ref.frequencies is not None:
                counts = dict(zip(self.known, (self.known_counts if self.known_counts is not None else np.zeros(len(self.known), dtype=np.int64)).tolist(), strict=True))
                rest = sum(self.other_counts.values()) + self.other_rest
                checks.extend(category_drift(c, ref.frequencies, counts, rest))
            elif kind == "boolean" and ref.frequencies is not None:
                checks.extend(category_drift(c, ref.frequencies, self.booleans, 0))
        return checks


class _NullRows:
    """Stands in for the column in `_ColumnChecks.null_check`: `isna()` marks the first
    null rows already found (what the check shows as examples)."""

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows

    def isna(self) -> np.ndarray:
        mask = np.zeros((max(self.rows) + 1) if self.rows else 0, dtype=bool)
        mask[self.rows] = True
        return mask


class _Merged(_ColumnChecks):
    """The in-memory checks' judgements over merged statistics (no column in memory)."""

    def __init__(self, p: _Partial) -> None:
        super().__init__(p.column, pd.Series([], dtype=object), p.reference)
        self.p = p
        self.n = p.n
        self.nulls = p.nulls
        self.s = _NullRows(p.null_rows)  # type: ignore[assignment]

    def texts_outside(self, accepted: set[str]) -> tuple[list[JsonValue], pd.Index]:
        p = self.p
        counts = dict(p.other_counts)
        if p.known_counts is not None:
            counts.update(zip(p.known, p.known_counts.tolist(), strict=True))
        ordered = sorted(
            ((k, v) for k, v in counts.items() if v > 0 and k not in accepted),
            key=lambda kv: -kv[1],
        )
        values = [k for k, _ in ordered]
        return [_json_value(v) for v in values[:EXAMPLES]], pd.Index(values, dtype=object)

    def dtype_check(self) -> CheckResult:
        p, kind = self.p, self.column.kind
        family = p.family or "other:empty"
        if family in _ACCEPTED[kind]:
            return self.result("dtype", "pass", f"{p.dtype} holds {kind} values")
        if kind == "integer" and family == "float":
            if not p.non_whole:
                return self.result("dtype", "pass", f"whole numbers stored as {p.dtype}")
            return self.result(
                "dtype",
                "fail",
                f"expected integers; {p.non_whole} value(s) of {p.dtype} are not whole",
                count=p.non_whole,
                examples=p.non_whole_examples[:EXAMPLES],
                example_rows=p.non_whole_rows,
            )
        found = family.removeprefix("other:")
        return self.result(
            "dtype",
            "fail",
            f"expected {kind} values, found dtype {p.dtype}"
            + (f" holding {found} values" if found != p.dtype else ""),
            count=self.n - self.nulls,
            examples=p.head_examples[:EXAMPLES],
        )

    def range_checks(self) -> list[CheckResult]:
        p, column = self.p, self.column
        lo: Any = column.min
        hi: Any = column.max
        if lo is None and hi is None:
            return []
        if self.nulls == self.n:
            return [self.result("range", "pass", "no values to check")]
        stats: dict[str, JsonValue] = {"min": _json_value(p.low), "max": _json_value(p.high)}
        bounds = f"[{_json_value(lo)}, {_json_value(hi)}]"
        count = p.below + p.above
        if not count:
            return [self.result("range", "pass", f"all values within {bounds}", stats=stats)]

        def failure(
            message: str, rows: list[int], examples: list[JsonValue], n: int, status: Status
        ) -> CheckResult:
            return self.result(
                "range",
                status,
                message,
                count=n,
                examples=examples[:EXAMPLES],
                example_rows=rows,
                stats=stats,
            )

        tolerance = column.tolerance()
        n_reference = column.reference.rows if column.reference is not None else None
        if column.kind == "datetime" or tolerance is None or n_reference is None:
            return [
                failure(
                    f"{count} value(s) outside {bounds}",
                    p.range_rows,
                    p.range_examples,
                    count,
                    "fail",
                )
            ]
        far_lo = None if lo is None else lo - tolerance.low
        far_hi = None if hi is None else hi + tolerance.high
        stats |= {"tolerance_low": tolerance.low, "tolerance_high": tolerance.high}
        if p.far:
            outer = f"[{_json_value(far_lo)}, {_json_value(far_hi)}]"
            message = (
                f"{p.far} value(s) outside {outer}, beyond the tolerance of the "
                f"observed range {bounds}"
            )
            return [failure(message, p.far_rows, p.far_examples, count, "fail")]
        alpha = DEFAULT_RANGE_ALPHA if column.range_alpha is None else column.range_alpha
        m = self.n - self.nulls
        ends = []
        for k, end, bound in (
            (p.below, "below the observed min", lo),
            (p.above, "above the observed max", hi),
        ):
            if k:
                pv = exceedance_pvalue(n_reference, m, k)
                ends.append((pv, f"{k} value(s) just {end} {_json_value(bound)}"))
                stats["p_" + end.split()[0]] = pv
        p_min, what = min(ends)
        if p_min < alpha / 2:
            message = (
                f"{what}: sampling alone gives that with p={p_min:.2g}, below range_alpha "
                f"{alpha:g} (halved per end) against {n_reference} reference values"
            )
            return [failure(message, p.range_rows, p.range_examples, count, "fail")]
        message = "; ".join(f"{text}, as sampling alone gives (p={pv:.2g})" for pv, text in ends)
        return [failure(message, p.range_rows, p.range_examples, count, "warn")]

    def categories_check(self) -> CheckResult:
        p = self.p
        allowed = set(self.column.categories or [])
        known = dict(zip(p.known, (p.known_counts.tolist() if p.known_counts is not None else [0] * len(p.known)), strict=True))
        rest = sum(p.other_counts.values()) + p.other_rest
        count = rest + sum(c for k, c in known.items() if k not in allowed)
        if not count:
            return self.result("categories", "pass", f"all values among {len(allowed)} categories")
        examples, values = self.texts_outside(allowed)
        n_values = len(values) + (1 if p.other_rest else 0)
        return self.result(
            "categories",
            "fail",
            f"{count} value(s) in {n_values}{'+' if p.other_rest else ''} unknown categories",
            count=count,
            examples=examples,
            example_rows=p.outside_rows,
        )

    def unique_check(self) -> CheckResult:
        count = _duplicated_rows(self.p.hashes)
        if not count:
            return self.result("unique", "pass", "every value is unique")
        return self.result(
            "unique", "fail", f"{count} rows share a value with another row", count=count
        )

    def numeric_drift(self, ref: ReferenceStats) -> list[CheckResult]:
        p, column = self.p, self.column
        assert p.points is not None and p.at_or_below is not None
        points, at_or_below = p.points, p.at_or_below
        edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
        grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
        n_new = self.n - self.nulls
        checks: list[CheckResult] = []
        if ref.bin_edges is not None and ref.proportions is not None:
            below = at_or_below[np.searchsorted(points, edges)]
            new = np.diff(np.concatenate(([0], below, [n_new]))).astype(np.float64)
            old = np.asarray(ref.proportions, dtype=np.float64)
            old = old / old.sum() * ref.rows if old.sum() > 0 else old
            checks.append(_binned_result(self, "drift_psi", new, old, {}))
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
                    f"KS statistic {gap:.4f}, p-value {pvalue:.3g}",
                    stats={
                        "statistic": gap,
                        "pvalue": pvalue,
                        "alpha": alpha,
                        "reference_rows": ref.rows,
                    },
                )
            )
        return checks


def _duplicated_rows(hashes: list[np.ndarray]) -> int:
    """Rows whose hash another row shares."""
    if not hashes:
        return 0
    every = np.concatenate(hashes)
    hashes.clear()
    every.sort()
    same = every[1:] == every[:-1]
    if not same.any():
        return 0
    dup = np.zeros(every.size, dtype=bool)
    dup[1:] |= same
    dup[:-1] |= same
    return int(np.count_nonzero(dup))


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
    source = open_source(data)
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
        dict.fromkeys(
            [*partials, *(x for c in custom for x in c.columns_read()), *(key or [])]
        )
    )
    threads = _threads(workers, len(partials))
    offset = 0
    pool = ThreadPoolExecutor(threads, thread_name_prefix="nbops-stream") if threads > 1 else None
    try:
        kwargs = {} if chunk_rows is None else {"rows": chunk_rows}
        for chunk in source.chunks(needed, **kwargs):
            start = offset
            jobs = [
                (lambda p=p, s=chunk[name]: p.add(s, start)) for name, p in partials.items()
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
                key_hashes.append(
                    pd.util.hash_pandas_object(chunk[key], index=False).to_numpy()
                )
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

    checks.extend(_presence_checks(_Shape(), schema, env))  # type: ignore[arg-type]
    for column in checked:
        checks.extend(partials[column.name].checks(True))
    if key is not None:
        count = _duplicated_rows(key_hashes)
        checks.append(
            CheckResult(
                name="key.duplicate_keys",
                column=key[0] if len(key) == 1 else None,
                kind="duplicate_keys",
                status="fail" if count else "pass",
                count=count,
                fraction=count / offset,
                message=f"{count} rows share their key {key} with another row"
                if count
                else f"key {key} is unique",
            )
        )
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
        error = _SKETCHED.get(id(ref)) if ref is not None else None
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
    name = f"custom.{check.name}"
    if p.error is not None:
        return CheckResult(
            name=name,
            column=check.column,
            kind="custom",
            status="fail",
            message=f"cannot evaluate {check.expression!r}: {p.error}",
        )
    return CheckResult(
        name=name,
        column=check.column,
        kind="custom",
        status=check.severity if p.bad else "pass",
        count=p.bad,
        fraction=p.bad / rows,
        examples=p.examples,
        example_rows=p.rows,
        message=f"{p.bad} row(s) break {check.expression!r}"
        if p.bad
        else f"every row meets {check.expression!r}",
        stats={"rows_judged": p.judged},
    )


def _threads(asked: int | None, columns: int) -> int:
    if asked is not None:
        return max(1, min(asked, columns))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, columns))


Source_ = Source  # re-exported for typing by callers


KLL_K = 2000  # the sketches' size parameter: rank error kll_rank_error(KLL_K) ~ 0.14%


def kll_rank_error(k: int = KLL_K) -> float:
    """The KLL sketch's normalised rank error for single-rank queries (99% confidence), as
    Apache DataSketches states it."""
    from datasketches import kll_doubles_sketch

    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


def _need_sketches() -> Any:
    try:
        import datasketches
    except ImportError:  # pragma: no cover - the extra is not installed
        raise QualityInputError(
            "a folder, glob or Dask DataFrame as the drift reference needs quantile sketches",
            fix="pip install 'nbops[stream]' (Apache DataSketches)",
        ) from None
    return datasketches


def stream_references(
    schema: Schema,
    reference: Any,
    in_memory: Callable[[Schema, Any], dict[str, ReferenceStats]],
) -> dict[str, ReferenceStats]:
    """Drift references: the in-memory rule (`in_memory`) for a Schema, frame or file; for a
    folder, glob or Dask DataFrame, statistics streamed from it (two passes: KLL quantiles
    for the numeric bins and CDF points, then exact counts in them)."""
    from nbops.quality.stream.source import is_stream_input

    if not is_stream_input(reference):
        return in_memory(schema, reference)
    sketches = _need_sketches()
    source = open_source(reference)
    columns = [c for c in schema.columns if c.name in set(source.columns)]
    numeric = [c for c in columns if c.kind in NUMERIC_KINDS]
    texts = [c for c in columns if c.kind in ("categorical", "boolean")]
    kll = {c.name: sketches.kll_doubles_sketch(KLL_K) for c in numeric}
    counts: dict[str, dict[str, int]] = {c.name: {} for c in texts}
    rows = 0
    for chunk in source.chunks([c.name for c in numeric + texts]):
        rows += len(chunk)
        for c in numeric:
            s = chunk[c.name]
            if column_family(s) not in NUMERIC_KINDS:
                continue
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            x = x[np.isfinite(x)]
            if x.size:
                kll[c.name].update(x)
        for c in texts:
            s = chunk[c.name]
            found = boolean_counts(s) if c.kind == "boolean" else None
            if found is None:
                vc = s.dropna().astype(str).value_counts()
                found = {str(k): int(v) for k, v in vc.items()}
            into = counts[c.name]
            for k, v in found.items():
                into[k] = into.get(k, 0) + v
    if rows == 0:
        raise QualityInputError("the reference has no rows", location=source.where)
    out: dict[str, ReferenceStats] = {}
    plans: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for c in numeric:
        sketch = kll[c.name]
        if sketch.is_empty():
            continue
        edges_stored = c.reference.bin_edges if c.reference else None
        bins = max(2, len(edges_stored) + 1 if edges_stored else 10)
        edges = np.unique([sketch.get_quantile(i / bins, True) for i in range(1, bins)])
        points = min(1000, sketch.n)
        grid = np.unique([sketch.get_quantile(j / points, True) for j in range(1, points + 1)])
        plans[c.name] = (edges, grid, int(sketch.n))
    if plans:  # second pass: exact counts at the sketched points
        below = {name: np.zeros(np.union1d(e, g).size, dtype=np.int64) for name, (e, g, _) in plans.items()}
        for chunk in source.chunks(list(plans)):
            for name, (e, g, _) in plans.items():
                x = chunk[name].to_numpy(dtype=np.float64, na_value=np.nan)
                x = x[np.isfinite(x)]
                points_all = np.union1d(e, g)
                where = np.searchsorted(points_all, x, side="left")
                below[name] += np.cumsum(np.bincount(where, minlength=points_all.size + 1)[: points_all.size])
        error = kll_rank_error()
        for name, (e, g, n) in plans.items():
            points_all = np.union1d(e, g)
            at = below[name]
            edge_counts = at[np.searchsorted(points_all, e)]
            proportions = np.diff(np.concatenate(([0], edge_counts, [n]))) / n
            cdf = at[np.searchsorted(points_all, g)] / n
            stats = ReferenceStats(
                rows=n,
                bin_edges=e.tolist(),
                proportions=np.round(proportions, 8).tolist(),
                cdf_values=g.tolist(),
                cdf=np.round(cdf, 8).tolist(),
            )
            _SKETCHED[id(stats)] = error
            out[name] = stats
    for c in texts:
        found = counts[c.name]
        total = sum(found.values())
        if total:
            out[c.name] = ReferenceStats(
                rows=total, frequencies={k: v / total for k, v in found.items()}
            )
    return out


# ReferenceStats built from sketched quantiles: id -> the sketch's rank error
_SKETCHED: dict[int, float] = {}
