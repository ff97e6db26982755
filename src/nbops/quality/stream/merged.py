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
    ReferenceStats,
)
from nbops.quality.validate.columns import _ColumnChecks
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
        p = self.p

        def non_whole() -> tuple[int, list[int], list[JsonValue]]:
            return p.non_whole, p.non_whole_rows, p.non_whole_examples[:EXAMPLES]

        return self.judge_dtype(
            p.family or "other:empty", p.dtype, non_whole, lambda: p.head_examples[:EXAMPLES]
        )

    def text_counts(self) -> tuple[dict[str, int], int]:
        p = self.p
        counts = p.known_counts if p.known_counts is not None else [0] * len(p.known)
        known = dict(zip(p.known, list(counts), strict=True))
        return {k: int(v) for k, v in known.items()}, sum(p.other_counts.values()) + p.other_rest

    def boolean_counts(self) -> dict[str, int]:
        return self.p.booleans

    def range_of_values(self, lo: Any, hi: Any) -> list[CheckResult]:
        p = self.p

        def failure(
            message: str, stats: dict[str, JsonValue], beyond: bool, status: Status
        ) -> CheckResult:
            rows, examples = (
                (p.far_rows, p.far_examples) if beyond else (p.range_rows, p.range_examples)
            )
            return self.result(
                "range",
                status,
                message,
                count=p.below + p.above,
                examples=examples[:EXAMPLES],
                example_rows=rows,
                stats=stats,
            )

        return self.judge_range(
            lo, hi, p.low, p.high, p.below, p.above, lambda far_lo, far_hi: p.far, failure
        )

    def categories_failure(self, allowed: set[str], count: int) -> CheckResult:
        p = self.p
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
        if p.points is None or p.at_or_below is None:
            return []
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
