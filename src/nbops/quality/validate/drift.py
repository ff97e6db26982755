"""Drift checks of one column against its reference statistics, each a test with a p-value,
judged together so that a random part of the reference data passes:

- `drift_psi` (numbers): the column's counts in the reference bins against the reference's
  (its proportions times its rows), Pearson's chi-square test of homogeneity on that 2 x k
  table. Adjacent bins are merged first until each expects at least `MIN_EXPECTED` rows in
  both samples (the pooled share times the smaller sample's size), so an empty bin on a
  small sample is what sampling gives, not a signal; the PSI (each proportion floored at
  `PSI_EPSILON`) is computed over the same merged bins and is the effect size;
- `drift_categories` (categories, booleans): the same test over the reference's categories
  in its order (most frequent first), and one bucket for values it never had, judged apart
  by the exact count test (k of m new values in categories none of n reference values had:
  P = C(m, k) / C(n + m, k), as for the range); the two p-values are joined by Bonferroni
  (twice the smaller). The PSI counts that bucket as its own bin;
- `drift_ks` (numbers): the Kolmogorov-Smirnov gap between the data's and the reference's
  CDF at the reference's stored quantiles, and its asymptotic two-sample p-value (a gap seen
  at fewer points, or on tied values, only makes it conservative).

The rule: the drift tests of one validation are one family, judged by Holm's step-down with
each test's own level alpha (`ks_pvalue` for KS, `DRIFT_ALPHA` = 0.001 for the chi-square
tests): ordered by p / alpha, the j-th of m is significant when p <= alpha / (m - j + 1) and
every one before it was. The chance that any drift check of a validation fails when nothing
changed is then at most the largest alpha (0.001 by default), however many columns there
are. A significant test reports its effect size: PSI above `psi_fail` fails, above `psi_warn`
warns; a KS gap of `ks_statistic_fail` or more fails, less warns. A test that is not
significant passes whatever its PSI (its message says what sampling alone gives). On large
data every small shift is significant, so the PSI / gap thresholds decide, as before.

`new_categories` (categoricals) stays a share rule: values in categories the reference never
had above `new_category_share` fail, any warn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
DRIFT_ALPHA = 0.001  # the chi-square tests' level (KS: the column's ks_pvalue, same default)
MIN_EXPECTED = 5.0  # rows each merged bin expects in each sample, for the chi-square test
TESTED_KINDS = frozenset({"drift_psi", "drift_ks", "drift_categories"})


def numeric_drift(checker: _ColumnChecks, ref: ReferenceStats) -> list[CheckResult]:
    edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
    grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
    points = np.union1d(edges, grid)
    if points.size == 0:
        return []
    counts = _counts_at_or_below(checker.s, points, checker.value_range, checker.nulls)
    return drift_from_counts(checker, ref, points, counts)


def drift_from_counts(
    checker: _ColumnChecks, ref: ReferenceStats, points: np.ndarray, at_or_below: np.ndarray
) -> list[CheckResult]:
    """PSI and KS against the reference from the new values' counts at or below `points`
    (the union of the reference's bin edges and CDF grid): the in-memory path counts them
    from the column, the streamed one merges them over chunks."""
    column = checker.column
    edges = np.asarray(ref.bin_edges or [], dtype=np.float64)
    grid = np.asarray(ref.cdf_values or [], dtype=np.float64)
    n_new = checker.n - checker.nulls
    checks: list[CheckResult] = []
    if ref.bin_edges is not None and ref.proportions is not None:
        below = at_or_below[np.searchsorted(points, edges)]
        new = np.diff(np.concatenate(([0], below, [n_new]))).astype(np.float64)
        old = np.asarray(ref.proportions, dtype=np.float64)
        old = old / old.sum() * ref.rows if old.sum() > 0 else old
        checks.append(_binned_result(checker, "drift_psi", new, old, {}))
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


def category_drift(
    checker: _ColumnChecks, frequencies: dict[str, float], counts: dict[str, int], rest: int
) -> list[CheckResult]:
    """The chi-square test and PSI over the reference's categories plus one bucket for the
    rest (and, for a categorical, the share of that bucket). `counts` may miss categories
    (zero) and hold others; `rest` counts values in neither."""
    known = [k for k, f in frequencies.items() if f > 0]
    seen = set(known)
    new_rows = rest + sum(c for k, c in counts.items() if k not in seen)
    total = new_rows + sum(counts.get(k, 0) for k in known)
    if not total:
        return []
    ref_total = sum(frequencies[k] for k in known) or 1.0
    ref_rows = checker.column.reference.rows if checker.column.reference else total
    old_share = np.array([frequencies[k] / ref_total for k in known] + [0.0])
    new = np.array([counts.get(k, 0) for k in known] + [new_rows], dtype=np.float64)
    distance = float(0.5 * np.abs(new / total - old_share).sum())
    checks = [
        _binned_result(
            checker,
            "drift_categories",
            new,
            old_share * ref_rows,
            {"total_variation": distance},
            apart=len(known),
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


def _binned_result(
    checker: _ColumnChecks,
    kind: CheckKind,
    new: np.ndarray,
    old: np.ndarray,
    stats: dict[str, JsonValue],
    apart: int | None = None,
) -> CheckResult:
    """The chi-square test of `new` counts against `old` (reference) counts over merged bins,
    the PSI over the same bins (bin `apart`, values the reference never had, stays its own
    there), and the status if the test turns out significant."""
    if apart is None:
        groups = merge_bins(new, old)
        pvalue = chi2_homogeneity_pvalue(*_sums(new, old, groups))
    else:  # the known bins by the chi-square test, the rest by the count test: Bonferroni
        known = np.arange(len(new)) != apart
        groups = merge_bins(new[known], old[known])
        pvalue_known = chi2_homogeneity_pvalue(*_sums(new[known], old[known], groups))
        unseen = unseen_pvalue(round(float(old.sum())), int(new.sum()), int(new[apart]))
        pvalue = min(1.0, 2.0 * min(pvalue_known, unseen))
        stats = {**stats, "pvalue_unseen": unseen}
    effect = groups if apart is None else [*groups, [apart]]  # known bins come first
    new_m, old_m = _sums(new, old, effect)
    psi = _psi(new_m / max(new_m.sum(), 1.0), old_m / max(old_m.sum(), 1.0))
    warn = _or(checker.column.psi_warn, DEFAULT_PSI_WARN)
    fail = _or(checker.column.psi_fail, DEFAULT_PSI_FAIL)
    status: Status = "pass"
    if pvalue < DRIFT_ALPHA:
        status = "fail" if psi > fail else "warn" if psi > warn else "pass"
    message = f"PSI {psi:.4f} over {len(effect)} bins, chi-square p-value {pvalue:.3g}"
    if len(effect) < len(new):
        message += f" ({len(new)} merged to expect {MIN_EXPECTED:g}+ rows each)"
    if status != "pass":
        message += f", PSI above {fail if status == 'fail' else warn:.3g}"
    return checker.result(
        kind,
        status,
        message,
        stats={**stats, "psi": psi, "bins": len(effect), "pvalue": pvalue, "alpha": DRIFT_ALPHA},
    )


def _sums(
    new: np.ndarray, old: np.ndarray, groups: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    return np.array([new[g].sum() for g in groups]), np.array([old[g].sum() for g in groups])


def merge_bins(new: np.ndarray, old: np.ndarray) -> list[list[int]]:
    """Adjacent bins grouped, in order, until each group expects at least MIN_EXPECTED rows
    in the smaller sample under the pooled shares (what the chi-square approximation needs);
    a short last group joins the one before. Empty bins of both samples go with a neighbour."""
    n, m = float(new.sum()), float(old.sum())
    if n <= 0 or m <= 0:
        return [list(range(len(new)))]
    need = MIN_EXPECTED * (n + m) / min(n, m)  # pooled rows a group needs
    pooled = new + old
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0.0
    for i, count in enumerate(pooled):
        current.append(i)
        held += count
        if held >= need:
            groups.append(current)
            current, held = [], 0.0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def unseen_pvalue(n: int, m: int, k: int) -> float:
    """P(K >= k), K the new values (of m) in categories none of n reference values had, when
    all n + m are drawn alike: C(m, k) / C(n + m, k) (the range's count test), in logs."""
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    lg = math.lgamma
    return math.exp(lg(m + 1) - lg(m - k + 1) - lg(n + m + 1) + lg(n + m - k + 1))


def chi2_homogeneity_pvalue(new: np.ndarray, old: np.ndarray) -> float:
    """Pearson's chi-square test that two samples' counts over the same bins come from one
    distribution (k - 1 degrees of freedom); 1.0 with fewer than two bins or an empty sample."""
    n, m = float(new.sum()), float(old.sum())
    if len(new) < 2 or n <= 0 or m <= 0:
        return 1.0
    pooled = (new + old) / (n + m)
    keep = pooled > 0
    if keep.sum() < 2:
        return 1.0
    statistic = 0.0
    for counts, size in ((new, n), (old, m)):
        expected = pooled[keep] * size
        statistic += float(np.sum((counts[keep] - expected) ** 2 / expected))
    from scipy.stats import chi2

    return float(chi2.sf(statistic, int(keep.sum()) - 1))


def judge_drift_family(checks: Sequence[CheckResult]) -> list[CheckResult]:
    """Holm's step-down over the drift tests of one validation (see the module docstring):
    a test not significant within the family passes, with its message saying why."""
    tested = [
        i
        for i, c in enumerate(checks)
        if c.kind in TESTED_KINDS
        and isinstance(c.stats.get("pvalue"), float)
        and isinstance(c.stats.get("alpha"), float)
    ]
    out = list(checks)
    m = len(tested)

    def ratio(i: int) -> float:
        stats = checks[i].stats
        return float(stats["pvalue"]) / max(float(stats["alpha"]), 1e-300)  # type: ignore[arg-type]

    still = True
    for j, i in enumerate(sorted(tested, key=ratio)):
        check = checks[i]
        pvalue, alpha = float(check.stats["pvalue"]), float(check.stats["alpha"])  # type: ignore[arg-type]
        level = alpha / (m - j)
        still = still and pvalue <= level
        stats = {**check.stats, "level": level, "tests": m, "significant": still}
        if still:
            message = check.message
            if check.status != "pass":
                message += f"; significant among {m} drift tests (p <= {level:.3g})"
            out[i] = check.model_copy(update={"stats": stats, "message": message})
        else:
            message = check.message + (
                f"; within what sampling alone gives (needs p <= {level:.3g},"
                f" Holm over {m} drift tests)"
                if check.status != "pass" or pvalue < alpha
                else ""
            )
            out[i] = check.model_copy(update={"status": "pass", "stats": stats, "message": message})
    return out


def _counts_at_or_below(
    s: pd.Series,
    points: np.ndarray,
    value_range: tuple[Any, Any] | None = None,
    nulls: int | None = None,
) -> np.ndarray:
    """How many values of the column are <= each point (`points` sorted and unique, as
    `np.union1d` gives them); NaN and nulls are never counted. Whole numbers in a short span
    are counted by `np.bincount`; other values are placed among the points a block at a time
    (`PointCounter`: one lookup and a comparison a value, no sort).

    `value_range`, when the caller has it (the range check's): the smallest and largest
    non-NaN value of a numpy-typed column, which spares finding them (whole numbers) or
    clipping the grid cells (floats); `nulls`: the column's NaN count (numpy floats)."""
    dtype = s.dtype
    x = s.to_numpy() if isinstance(dtype, np.dtype) else None
    if x is None or dtype.kind not in "iuf":
        value_range = None
    if x is not None and x.size and dtype.kind in "iu":
        counted = _integer_counts_at_or_below(x, points, value_range)
        if counted is not None:
            return counted
    if not points.size or not np.isfinite(points).all():
        return _sorted_counts_at_or_below(s, points)
    nan = not (x is not None and (dtype.kind in "iu" or (dtype.kind == "f" and nulls == 0)))
    span = None if value_range is None else (float(value_range[0]), float(value_range[1]))
    counter = PointCounter(points, span, nan)
    array = s.array
    for start in range(0, len(s), BLOCK):
        if x is not None:
            block = x[start : start + BLOCK]
            counter.add(block if block.dtype == np.float64 else block.astype(np.float64))
        else:
            part = array[start : start + BLOCK]
            counter.add(part.to_numpy(dtype=np.float64, na_value=np.nan))
    return counter.at_or_below()


BLOCK = 1 << 16  # values placed at a time: the block's temporaries stay in the core's cache
WIDEST = 4.0  # the grid spans the values too when that is at most this times the points'


class PointCounter:
    """Counts of values at or below each of `points` (sorted, unique and finite float64),
    added block by block, exactly as comparing each value with each point would give.

    Each value goes to a cell of a uniform grid over [points[0], points[-1]] (`_cells`: a
    subtraction, a product and a clip, all monotone in the value); with `span`, the smallest
    and largest value to be added, when not much wider, the grid covers that span too and
    only NaN needs the clip (none when `nan` is false). A point in a lower cell is
    below the value and one in a higher cell above it, so the value's rank (the points below
    it) is the points of the lower cells plus those of its own cell below it, found by a
    branch-free binary search over at most `depth` points (one comparison when no cell holds
    two points). NaN goes to the last cell and is below no point (`not x <= p`), so its rank
    passes every point and it is never counted. The counts at or below the points are the
    running sums of the ranks' counts."""

    low: float
    scale: float
    last: float

    def __init__(
        self, points: np.ndarray, span: tuple[float, float] | None = None, nan: bool = True
    ) -> None:
        self.size = points.size
        points = points.astype(np.float64)
        # Every value added within `span` (finite, not far wider than the points): the grid
        # covers it, so no value needs clipping to a cell, only NaN (if `nan`) to the last
        low, high = float(points[0]), float(points[-1])
        self.clip = True
        if span is not None and math.isfinite(span[0]) and math.isfinite(span[1]):
            wide_low, wide_high = min(low, span[0]), max(high, span[1])
            if points.size == 1 or wide_high - wide_low <= WIDEST * (high - low):
                low, high, self.clip = wide_low, wide_high, False
        self.nan = nan
        depth, of_points, grid = 0, np.zeros(0, dtype=np.intp), (0.0, 0.0, 0.0)
        # finer grids while one holds 2+ points in a cell (tables of up to 2**18 cells)
        for per_point, most in ((8, 1 << 16), (64, 1 << 16), (256, 1 << 18)):
            self._grid(low, high, min(most, max(16, per_point * points.size)))
            found = self._cells(points)
            deepest = int(np.bincount(found).max())
            if not depth or deepest < depth:
                depth, of_points, grid = deepest, found, (self.low, self.scale, self.last)
            if depth <= 1:
                break
        self.low, self.scale, self.last = grid
        cells = int(self.last) + 1
        self.first = np.searchsorted(of_points, np.arange(cells), side="left").astype(np.intp)
        window = 1 << depth.bit_length()  # a power of two above the depth
        self.steps = [window >> k for k in range(1, depth.bit_length() + 1)]
        self.padded = np.concatenate([points, np.full(window, np.inf)])
        self.threshold = self.padded[self.first]  # each cell's first point at or above it
        self.first_next = self.first + 1
        self.ranks = np.zeros(points.size + window, dtype=np.int64)
        self._y = np.zeros(0, dtype=np.float64)  # the blocks' buffers, made at the first
        self._cell = self._rank = np.zeros(0, dtype=np.intp)
        self._below = np.zeros(0, dtype=bool)

    def _grid(self, low: float, high: float, cells: int) -> None:
        scale = (cells - 1) / (high - low) if high > low else 0.0
        if not (scale > 0 and math.isfinite(scale)):
            cells, scale = 1, 0.0  # one cell: a binary search over every point
        self.low, self.scale, self.last = low, scale, float(cells - 1)

    def _cells(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        cell = np.empty(x.size, dtype=np.intp) if out is None else out
        if self.last == 0:
            cell.fill(0)
            return cell
        y = np.empty(x.size, dtype=np.float64) if out is None else self._y[: x.size]
        with np.errstate(over="ignore"):  # a huge value overflows to inf: the last cell
            np.subtract(x, self.low, out=y)
            np.multiply(y, self.scale, out=y)
        if self.clip or self.nan:
            np.fmin(y, self.last, out=y)  # NaN -> the last cell
        if self.clip:
            np.fmax(y, 0.0, out=y)
        np.copyto(cell, y, casting="unsafe")
        return cell

    def add(self, x: np.ndarray) -> None:
        """Count a block of float64 values."""
        if self._y.size < x.size:
            self._y = np.empty(x.size, dtype=np.float64)
            self._cell = np.empty(x.size, dtype=np.intp)
            self._rank = np.empty(x.size, dtype=np.intp)
            self._below = np.empty(x.size, dtype=bool)
        k = x.size
        cell, rank, below = self._cell[:k], self._rank[:k], self._below[:k]
        self._cells(x, out=cell)
        y = self._y[:k]  # free again: the points each value is compared with
        if len(self.steps) == 1:  # rank: the cell's first point, plus one unless x <= it
            self.first_next.take(cell, out=rank, mode="clip")
            self.threshold.take(cell, out=y, mode="clip")
            np.less_equal(x, y, out=below)
            np.subtract(rank, below, out=rank)
        else:
            self.first.take(cell, out=rank, mode="clip")
            for step in self.steps:
                np.add(rank, step - 1, out=cell)
                self.padded.take(cell, out=y, mode="clip")
                np.less_equal(x, y, out=below)
                np.logical_not(below, out=below)  # NaN too: at or below no point
                np.add(rank, step, out=rank, where=below)
        self.ranks += np.bincount(rank, minlength=self.ranks.size)

    def at_or_below(self) -> np.ndarray:
        return np.cumsum(self.ranks)[: self.size]


def _sorted_counts_at_or_below(s: pd.Series, points: np.ndarray) -> np.ndarray:
    """`_counts_at_or_below` by sorting a chunk at a time (points that are not all finite)."""
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


def _integer_counts_at_or_below(
    x: np.ndarray, points: np.ndarray, value_range: tuple[Any, Any] | None = None
) -> np.ndarray | None:
    """For whole numbers within a span no longer than the column (and exact as floats): each
    value counted (`np.bincount`, a chunk at a time), so the count at or below a point is a
    running sum read at the point's floor — no sort. None when the span is too wide.
    `value_range`: the values' min and max when known."""
    low, high = (int(v) for v in value_range) if value_range else (int(x.min()), int(x.max()))
    span = high - low + 1
    limit = max(x.size, 1 << 16)
    if span > limit or low < -(2**53) or high > 2**53:
        return None
    if low >= 0 and high < limit and x.dtype == np.intp:  # counted as they are: no shift
        counts = np.zeros(high + 1, dtype=np.int64)
        for start in range(0, x.size, CHUNK):
            counts += np.bincount(x[start : start + CHUNK], minlength=high + 1)
        counts = counts[low:]
    else:
        counts = np.zeros(span, dtype=np.int64)
        for start in range(0, x.size, CHUNK):
            counts += np.bincount(
                np.subtract(x[start : start + CHUNK], low, dtype=np.intp), minlength=span
            )
    running = np.cumsum(counts)
    # a whole number is <= p exactly when it is <= floor(p)
    at = np.clip(np.floor(points), low - 1, high) - low
    found = running[np.clip(at, 0, span - 1).astype(np.intp)]
    return np.where(at < 0, 0, found).astype(np.int64)


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
