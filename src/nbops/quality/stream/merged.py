"""The in-memory column checks' judgements over merged chunk statistics: `_Merged` is a
`_ColumnChecks` whose dtype, range, categories, unique and numeric drift checks read the
merged counts of a `_Partial` (nulls, category drift and the results themselves are the
in-memory code's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import JsonValue

from nbops.quality.schema.model import (
    DEFAULT_RANGE_ALPHA,
    ReferenceStats,
)
from nbops.quality.validate.columns import _ACCEPTED, _ColumnChecks, exceedance_pvalue
from nbops.quality.validate.drift import drift_from_counts
from nbops.quality.validate.report import CheckResult, Status
from nbops.quality.validate.values import EXAMPLES, _json_value

if TYPE_CHECKING:
    from nbops.quality.stream.validate import _Partial


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
        self.s = _NullRows(p.null_rows)

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
        known = dict(
            zip(
                p.known,
                (p.known_counts.tolist() if p.known_counts is not None else [0] * len(p.known)),
                strict=True,
            )
        )
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
        p = self.p
        assert p.points is not None and p.at_or_below is not None
        return drift_from_counts(self, ref, p.points, p.at_or_below)


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
