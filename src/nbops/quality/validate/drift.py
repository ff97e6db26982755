"""Drift checks of one column against its reference statistics: PSI over the reference bins
(numbers) or categories, the Kolmogorov-Smirnov test at the reference's stored quantiles,
the share of new categories; PSI is judged against what sampling alone produces.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import JsonValue

from nbops.quality.schema.model import (
    DEFAULT_KS_PVALUE,
    DEFAULT_KS_STATISTIC_FAIL,
    DEFAULT_NEW_CATEGORY_SHARE,
    DEFAULT_PSI_FAIL,
    DEFAULT_PSI_WARN,
    ReferenceStats,
)
from nbops.quality.validate.report import CheckKind, CheckResult, Status
from nbops.quality.validate.values import CHUNK

if TYPE_CHECKING:
    from nbops.quality.validate.columns import _ColumnChecks


PSI_EPSILON = 1e-4


def numeric_drift(checker: _ColumnChecks, ref: ReferenceStats) -> list[CheckResult]:
    column = checker.column
    edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
    grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
    points = np.union1d(edges, grid)
    if points.size == 0:
        return []
    at_or_below = _counts_at_or_below(checker.s, points)
    n_new = checker.n - checker.nulls
    checks: list[CheckResult] = []
    if ref.bin_edges is not None and ref.proportions is not None:
        below = at_or_below[np.searchsorted(points, edges)]
        new = np.diff(np.concatenate(([0], below, [n_new]))) / n_new
        old = np.asarray(ref.proportions, dtype=np.float64)
        old = old / old.sum() if old.sum() > 0 else old
        psi = _psi(new, old)
        noise = _psi_noise(len(old), n_new, ref.rows)
        checks.append(_psi_result(checker, "drift_psi", psi, noise, {"psi": psi}))
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
            checker.result(
                "drift_ks",
                status,
                f"KS statistic {gap:.4f}, p-value {pvalue:.3g}"
                + (f" (below {alpha:g})" if pvalue < alpha else ""),
                stats={"statistic": gap, "pvalue": pvalue, "reference_rows": ref.rows},
            )
        )
    return checks


def category_drift(
    checker: _ColumnChecks, frequencies: dict[str, float], counts: dict[str, int], rest: int
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
    ref_rows = checker.column.reference.rows if checker.column.reference else total
    noise = _psi_noise(len(known) + 1, total, ref_rows)
    checks = [
        _psi_result(
            checker, "drift_categories", psi, noise, {"psi": psi, "total_variation": distance}
        )
    ]
    if checker.column.kind == "categorical":
        share = new_rows / total
        limit = _or(checker.column.new_category_share, DEFAULT_NEW_CATEGORY_SHARE)
        status: Status = "fail" if share > limit else "warn" if share > 0 else "pass"
        checks.append(
            checker.result(
                "new_categories",
                status,
                f"{share:.2%} of values in categories the reference never had"
                + (f" (limit {limit:.2%})" if share > 0 else ""),
                count=new_rows,
                examples=checker.texts_outside(seen)[0] if new_rows else [],
                stats={"share": share},
            )
        )
    return checks


def _psi_result(
    checker: _ColumnChecks, kind: CheckKind, psi: float, noise: float, stats: dict[str, JsonValue]
) -> CheckResult:
    """Judge a PSI against the thresholds, and against what sampling alone produces: on a
    small sample PSI is large even when nothing changed, so it must also exceed the
    level two samples of one distribution stay below 99% of the time."""
    warn = max(_or(checker.column.psi_warn, DEFAULT_PSI_WARN), noise)
    fail = max(_or(checker.column.psi_fail, DEFAULT_PSI_FAIL), noise)
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
    return checker.result(kind, status, message, stats={**stats, "sampling_noise": judged})


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
