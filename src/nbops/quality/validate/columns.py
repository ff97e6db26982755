"""The checks of one column (dtype, nulls, range, categories, unique), sharing what they
compute (null count, value counts); drift is delegated to `nbops.quality.validate.drift`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import JsonValue

from nbops.quality.schema.infer import (
    boolean_counts,
    column_family,
    counts_by_text,
    null_count,
    value_counts,
)
from nbops.quality.schema.model import (
    DEFAULT_RANGE_ALPHA,
    NUMERIC_KINDS,
    ColumnSchema,
    ReferenceStats,
)
from nbops.quality.validate.drift import category_drift, numeric_drift
from nbops.quality.validate.report import CheckKind, CheckResult, Status
from nbops.quality.validate.text_counts import known_text_counts
from nbops.quality.validate.values import (
    CHUNK,
    EXAMPLES,
    _aligned_timestamp,
    _first_rows,
    _json_value,
    _texts,
)

_ACCEPTED = {
    "integer": {"integer"},
    "float": {"integer", "float"},
    "boolean": {"boolean", "object-boolean"},
    "string": {"string", "category"},
    "categorical": {"string", "category"},
    "datetime": {"datetime"},
}


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
        self.value_range: tuple[Any, Any] | None = None  # numpy numbers' min and max, if found

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
        return self.judged(self.dtype(family))

    def judged(self, dtype_check: CheckResult) -> list[CheckResult]:
        """The column's checks in the report's order, after its dtype check (none more when
        that fails). The streamed validation runs this too, over merged statistics."""
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
                checks.extend(category_drift(self, ref.frequencies, known, rest))
            elif kind == "boolean" and ref.frequencies is not None:
                checks.extend(category_drift(self, ref.frequencies, self.boolean_counts(), 0))
        return checks

    def numeric_drift(self, ref: ReferenceStats) -> list[CheckResult]:
        return numeric_drift(self, ref)

    def boolean_counts(self) -> dict[str, int]:
        return boolean_counts(self.s)

    def serving_checks(self) -> list[CheckResult]:
        """The dtype check and, when it passes, the null check, as `run` makes them."""
        self.nulls = null_count(self.s)
        dtype_check = self.dtype(column_family(self.s))
        if dtype_check.status == "fail":
            return [dtype_check]
        return [dtype_check, self.null_check()]

    # dtype, nulls, range, categories, unique

    def dtype(self, family: str) -> CheckResult:
        def non_whole() -> tuple[int, list[int], list[JsonValue]]:
            x = self.s.to_numpy(dtype=np.float64, na_value=np.nan)
            count, rows = 0, list[int]()
            for start in range(0, x.size, CHUNK):
                part = x[start : start + CHUNK]
                mask = (part != np.trunc(part)) & ~np.isnan(part)
                count += int(np.count_nonzero(mask))
                if len(rows) < EXAMPLES:
                    rows += [start + r for r in _first_rows(mask, EXAMPLES - len(rows))]
            return count, rows, [_json_value(v) for v in x[rows]]

        def head() -> list[JsonValue]:
            first = self.s.iloc[:200]
            sample = first[first.notna().to_numpy()].iloc[:EXAMPLES]
            return [_json_value(v) for v in sample.to_numpy(dtype=object)]

        return self.judge_dtype(family, str(self.s.dtype), non_whole, head)

    def judge_dtype(
        self,
        family: str,
        dtype: str,
        non_whole: Callable[[], tuple[int, list[int], list[JsonValue]]],
        head: Callable[[], list[JsonValue]],
    ) -> CheckResult:
        """The dtype check of values of `family` held as `dtype`: `non_whole()` counts the
        values that are not whole (with example rows and values) when integers are held as
        floats, `head()` gives example values otherwise. One function for the in-memory and
        the streamed validation."""
        kind = self.column.kind
        if family in _ACCEPTED[kind]:
            return self.result("dtype", "pass", f"{dtype} holds {kind} values")
        if kind == "integer" and family == "float":
            count, rows, examples = non_whole()
            if not count:
                return self.result("dtype", "pass", f"whole numbers stored as {dtype}")
            return self.result(
                "dtype",
                "fail",
                f"expected integers; {count} value(s) of {dtype} are not whole",
                count=count,
                examples=examples,
                example_rows=rows,
            )
        found = family.removeprefix("other:")
        return self.result(
            "dtype",
            "fail",
            f"expected {kind} values, found dtype {dtype}"
            + (f" holding {found} values" if found != dtype else ""),
            count=self.n - self.nulls,
            examples=head(),
        )

    def null_check(self) -> CheckResult:
        nulls, column = self.nulls, self.column
        fraction = nulls / self.n
        status: Status = "pass"
        message = f"{fraction:.2%} nulls"
        if nulls and not column.nullable:
            status, message = "fail", f"{nulls} null(s) in a column that allows none"
        elif column.max_null_fraction is not None and fraction > column.max_null_fraction:
            status = "fail"
            message = (
                f"{fraction:.2%} nulls, above max_null_fraction {column.max_null_fraction:.2%}"
            )
        reference = self._reference_nulls()
        if nulls and not column.nullable and column.null_fraction:
            reference = None  # the reference had nulls: a non-nullable column is a hand-set rule
        if status == "fail" and reference is not None:
            # inferred limits: judge the excess by what sampling alone gives
            n_ref, ref_nulls = reference
            p = null_excess_pvalue(n_ref, ref_nulls, self.n, nulls)
            had = f"{ref_nulls} in {n_ref} reference rows"
            if p >= NULL_ALPHA:
                status = "warn"
                message += f" ({had}), as sampling alone gives (p={p:.2g})"
            else:
                message += (
                    f" ({had}): sampling alone gives that with p={p:.2g}, below {NULL_ALPHA:g}"
                )
        rows = _first_rows(np.asarray(self.s.isna())) if status == "fail" else []
        return self.result(
            "nulls",
            status,
            message,
            count=nulls,
            example_rows=rows,
            stats={"null_fraction": fraction},
        )

    def _reference_nulls(self) -> tuple[int, int] | None:
        """(rows, nulls) of the reference the null limits were inferred from, when the schema
        says (an observed `null_fraction` and reference statistics); None for hand-set limits."""
        column, reference = self.column, self.column.reference
        f = column.null_fraction
        if reference is None or f is None or f >= 1:
            return None
        rows = round(reference.rows / (1 - f))
        return rows, rows - reference.rows

    def range_check(self) -> list[CheckResult]:
        lo: Any = self.column.min
        hi: Any = self.column.max
        if lo is None and hi is None:
            return []
        if self.nulls == self.n:
            return [self.result("range", "pass", "no values to check")]
        return self.range_of_values(lo, hi)

    def range_of_values(self, lo: Any, hi: Any) -> list[CheckResult]:
        """The range check of a column with values, against the schema's bounds."""
        column, s = self.column, self.s
        dtype = s.dtype
        if column.kind == "datetime":
            lo, hi = (_aligned_timestamp(b, dtype) for b in (lo, hi))
        numpy_numbers = isinstance(dtype, np.dtype) and dtype.kind in "iuf"
        x = s.to_numpy() if numpy_numbers else None
        if x is not None:
            floats_with_nulls = dtype.kind == "f" and self.nulls > 0
            low = np.fmin.reduce(x) if floats_with_nulls else x.min()
            high = np.fmax.reduce(x) if floats_with_nulls else x.max()
            self.value_range = (low, high)
        else:
            low, high = s.min(), s.max()
        if (lo is None or low >= lo) and (hi is None or high <= hi):
            return self.judge_range(lo, hi, low, high, 0, 0, _no_far, _no_failure)
        below = self._outside(x, lo, np.less)
        above = self._outside(x, hi, np.greater)
        mask = below | above
        count = int(np.count_nonzero(mask))
        far = mask

        def far_count(far_lo: Any, far_hi: Any) -> int:
            nonlocal far
            far = self._outside(x, far_lo, np.less) | self._outside(x, far_hi, np.greater)
            return int(np.count_nonzero(far))

        def failure(
            message: str, stats: dict[str, JsonValue], beyond: bool, status: Status
        ) -> CheckResult:
            rows = far if beyond else mask
            return self._range_failure(rows, x, message, stats, count=count, status=status)

        below_count = int(np.count_nonzero(below))
        return self.judge_range(
            lo, hi, low, high, below_count, count - below_count, far_count, failure
        )

    def judge_range(
        self,
        lo: Any,
        hi: Any,
        low: Any,
        high: Any,
        below: int,
        above: int,
        far_count: Callable[[Any, Any], int],
        failure: Callable[[str, dict[str, JsonValue], bool, Status], CheckResult],
    ) -> list[CheckResult]:
        """The range check's verdict and message from the counts below `lo` and above `hi`
        (the observed `low`, `high`): `far_count(far_lo, far_hi)` counts the values beyond
        the tolerance, `failure(message, stats, beyond, status)` makes the result with the
        examples of the values outside the bounds (or, `beyond`, outside the tolerance).
        One function for the in-memory and the streamed validation."""
        column = self.column
        stats: dict[str, JsonValue] = {"min": _json_value(low), "max": _json_value(high)}
        bounds = f"[{_json_value(lo)}, {_json_value(hi)}]"
        count = below + above
        if not count:
            return [self.result("range", "pass", f"all values within {bounds}", stats=stats)]
        tolerance = column.tolerance()
        n_reference = column.reference.rows if column.reference is not None else None
        if column.kind == "datetime" or tolerance is None or n_reference is None:
            return [failure(f"{count} value(s) outside {bounds}", stats, False, "fail")]
        far_lo = None if lo is None else lo - tolerance.low
        far_hi = None if hi is None else hi + tolerance.high
        stats |= {"tolerance_low": tolerance.low, "tolerance_high": tolerance.high}
        far_count_ = far_count(far_lo, far_hi)
        if far_count_:
            outer = f"[{_json_value(far_lo)}, {_json_value(far_hi)}]"
            message = (
                f"{far_count_} value(s) outside {outer}, beyond the tolerance of the "
                f"observed range {bounds}"
            )
            return [failure(message, stats, True, "fail")]
        alpha = DEFAULT_RANGE_ALPHA if column.range_alpha is None else column.range_alpha
        m = self.n - self.nulls
        ends = []
        for k, end, bound in (
            (below, "below the observed min", lo),
            (above, "above the observed max", hi),
        ):
            if k:
                p = exceedance_pvalue(n_reference, m, k)
                ends.append((p, f"{k} value(s) just {end} {_json_value(bound)}"))
                stats["p_" + end.split()[0]] = p
        p_min, what = min(ends)
        if p_min < alpha / 2:
            message = (
                f"{what}: sampling alone gives that with p={p_min:.2g}, below range_alpha "
                f"{alpha:g} (halved per end) against {n_reference} reference values"
            )
            return [failure(message, stats, False, "fail")]
        message = "; ".join(f"{text}, as sampling alone gives (p={p:.2g})" for p, text in ends)
        return [failure(message, stats, False, "warn")]

    def _outside(self, x: np.ndarray | None, bound: Any, op: np.ufunc) -> np.ndarray:
        """Rows whose value is `op` (less / greater) than `bound`; nulls never are."""
        if bound is None:
            return np.zeros(self.n, dtype=bool)
        if x is not None:
            return np.asarray(op(x, bound), dtype=bool)
        found = self.s < bound if op is np.less else self.s > bound
        return found.to_numpy(dtype=bool, na_value=False)

    def _range_failure(
        self,
        mask: np.ndarray,
        x: np.ndarray | None,
        message: str,
        stats: dict[str, JsonValue],
        *,
        count: int | None = None,
        status: Status = "fail",
    ) -> CheckResult:
        rows = _first_rows(mask)
        values = x[rows] if x is not None else self.s.iloc[rows].to_numpy(dtype=object)
        return self.result(
            "range",
            status,
            message,
            count=int(np.count_nonzero(mask)) if count is None else count,
            examples=[_json_value(v) for v in values],
            example_rows=rows,
            stats=stats,
        )

    def categories_check(self) -> CheckResult:
        allowed = set(self.column.categories or [])
        known, rest = self.text_counts()
        count = rest + sum(c for k, c in known.items() if k not in allowed)
        if not count:
            return self.result("categories", "pass", f"all values among {len(allowed)} categories")
        return self.categories_failure(allowed, count)

    def categories_failure(self, allowed: set[str], count: int) -> CheckResult:
        """The failed categories check: `count` values outside `allowed`, with examples."""
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


def _no_far(far_lo: Any, far_hi: Any) -> int:  # pragma: no cover - no value outside
    return 0


def _no_failure(
    message: str, stats: dict[str, JsonValue], beyond: bool, status: Status
) -> CheckResult:  # pragma: no cover - no value outside
    raise AssertionError(message)


NULL_ALPHA = 0.001  # null checks of inferred limits fail below this p-value, else warn


def null_excess_pvalue(n: int, n_nulls: int, m: int, m_nulls: int) -> float:
    """P(at least `m_nulls` of the m new rows are null) when the n + m rows are exchangeable
    and n_nulls + m_nulls of them are null (hypergeometric; the count test when n_nulls = 0)."""
    if n_nulls == 0:
        return exceedance_pvalue(n, m, m_nulls)
    from scipy.stats import hypergeom

    return float(hypergeom(n + m, n_nulls + m_nulls, m).sf(m_nulls - 1))


def exceedance_pvalue(n: int, m: int, k: int) -> float:
    """P(K >= k), K the number of m new values above the max of n reference values, when all
    n + m are exchangeable (drawn alike): C(m, k) / C(n + m, k), which equals
    C(n + m - k, n) / C(n + m, n); computed as a product of min(k, n) factors, in logs."""
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    if k <= n:
        i = np.arange(k, dtype=np.float64)
        logs = np.log1p(-n / (n + m - i))
    else:
        j = np.arange(n, dtype=np.float64)
        logs = np.log1p(-k / (n + m - j))
    return float(np.exp(np.sum(logs)))


def _arrow_known_counts(
    s: pd.Series, known: list[str], nulls: int
) -> tuple[dict[str, int], int] | None:
    """For pyarrow-backed text: counts of `known` values and of the other non-null values,
    from the Arrow buffers when every known value is short (`known_text_counts`), else with
    one hash lookup per row against the few known values (None for other dtypes)."""
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
    fast = known_text_counts(data, known)  # short categories: no string hashing
    if fast is not None:
        return dict(zip(known, fast[:-1].tolist(), strict=True)), int(fast[-1])
    value_set = pa.array(known, type=data.type)
    codes = pc.fill_null(pc.index_in(data, value_set=value_set), len(known))
    counts = np.zeros(len(known) + 1, dtype=np.int64)
    for chunk in codes.chunks:
        part = chunk.to_numpy(zero_copy_only=False)
        for start in range(0, part.size, CHUNK):  # bincount copies to intp: bound that copy
            counts += np.bincount(part[start : start + CHUNK], minlength=len(known) + 1)
    return dict(zip(known, counts[:-1].tolist(), strict=True)), int(counts[-1]) - nulls
