"""`slice_metrics` over data read in chunks (partitioned Parquet, a glob, a Dask
DataFrame): y_true, y_pred, y_score and the slice columns are column names of the data.

Per chunk, for every slice family (a column, or a cross of columns), the confusion counts
per (slice, true class, predicted class) are added up: accuracy, precision, recall and F1
(binary, and multiclass macro averages) and their Wilson intervals are then exactly the
in-memory ones. Binary roc_auc comes from one KLL sketch (Apache DataSketches, K=`KLL_K`)
of the positives' and one of the negatives' scores per slice: the Mann-Whitney AUC with the
negatives' CDF from one sketch, weighted by the other's retained items, is within
eps_pos + eps_neg of the exact value (eps the sketch's two-sided normalised rank error at
99% confidence), recorded in `report.sketch_error["roc_auc"]`.

Not streamed (a QualityInputError says so, with the fix): regression, bins= (quantile
bins need the whole column), ci="bootstrap", weak_segments, multiclass roc_auc.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import MAX_SLICES_PER_COLUMN, CiMethod
from nbops.quality.slices.classification import _COUNT_REASONS, _count_metric, _encode_labels
from nbops.quality.slices.columns import _slice_value, cross_codes
from nbops.quality.slices.inputs import _python_scalar, _resolve_metrics
from nbops.quality.slices.intervals import _wilson
from nbops.quality.slices.predicates import Equals, IsMissing, SlicePredicate
from nbops.quality.slices.report import SliceMetric, SliceReport, slice_row
from nbops.quality.stream.source import open_source

KLL_K = 2000
_MISSING = object()


def auc_sketch_error(k: int = KLL_K) -> float:
    """Bound on |roc_auc from two KLL sketches - exact roc_auc| (99% confidence)."""
    from datasketches import kll_doubles_sketch

    return 2.0 * float(kll_doubles_sketch.get_normalized_rank_error(k, True))


class _Ids:
    """Global ids of the values seen, in order of first sight."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.ids: dict[Any, int] = {}
        self.values: list[Any] = []

    def codes(self, series: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        codes = np.asarray(codes, dtype=np.int64)
        has_missing = bool((codes < 0).any())
        mapping = np.zeros(len(uniques) + 1, dtype=np.int64)
        for i, value in enumerate([*uniques, *([_MISSING] if has_missing else [])]):
            key = value if value is _MISSING else _python_scalar(value)
            found = self.ids.get(key)
            if found is None:
                found = self.ids[key] = len(self.values)
                self.values.append(key)
                if len(self.values) > MAX_SLICES_PER_COLUMN + 1:
                    raise QualityInputError(
                        f"{self.what} makes more than {MAX_SLICES_PER_COLUMN} slices",
                        fix="slice on a coarser column",
                    )
            mapping[i] = found
        return mapping[codes]  # -1 (missing) -> the last entry


class _Family:
    """Confusion counts per (slice, true, predicted) of one slice column or cross."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.parts = [_Ids(f"column {c!r}") for c in columns]
        self.combos: dict[tuple[int, ...], int] = {}
        self.keys: list[tuple[int, ...]] = []
        self.confusion = np.zeros((0, 0, 0), dtype=np.int64)
        self.sketches: list[dict[int, Any]] = []  # per slice: true class id -> KLL sketch

    def slice_codes(self, chunk: pd.DataFrame) -> np.ndarray:
        codes = [part.codes(chunk[c]) for part, c in zip(self.parts, self.columns, strict=True)]
        sizes = [len(part.values) for part in self.parts]
        present, inverse = cross_codes(codes, sizes)  # mixed radix: one int a row
        tuples = [
            tuple(int(i) for i in idx)
            for idx in zip(*np.unravel_index(present, sizes), strict=True)
        ]
        lookup = np.empty(len(tuples), dtype=np.int64)
        for i, t in enumerate(tuples):
            found = self.combos.get(t)
            if found is None:
                found = self.combos[t] = len(self.keys)
                self.keys.append(t)
            lookup[i] = found
        if len(self.keys) > MAX_SLICES_PER_COLUMN:
            raise QualityInputError(
                f"the cross of {', '.join(self.columns)} makes more than "
                f"{MAX_SLICES_PER_COLUMN} slices",
                fix="slice on coarser columns",
            )
        return lookup[inverse]

    def add(self, codes: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int) -> None:
        n = len(self.keys)
        counts = np.bincount((codes * k + true) * k + pred, minlength=n * k * k)
        self.confusion = _grow(self.confusion, n, k)
        self.confusion += counts.reshape(n, k, k)


def _grow(array: np.ndarray, n: int, k: int) -> np.ndarray:
    if array.shape == (n, k, k):
        return array
    out = np.zeros((n, k, k), dtype=np.int64)
    a, b = array.shape[0], array.shape[1]
    out[:a, :b, :b] = array
    return out


def _sketch_auc(positives: Any, negatives: Any) -> float:
    """Mann-Whitney AUC (ties half) from two KLL sketches; NaN with one class."""
    if positives.is_empty() or negatives.is_empty():
        return math.nan
    items = np.array(list(positives), dtype=np.float64)  # (item, weight) rows
    x, where = np.unique(items[:, 0], return_inverse=True)
    w = np.bincount(where.reshape(-1), weights=items[:, 1])
    x = x.tolist()
    below = np.asarray(negatives.get_cdf(x, False)[:-1])
    at_or_below = np.asarray(negatives.get_cdf(x, True)[:-1])
    return float(np.sum(w * (below + at_or_below) / 2) / w.sum())


def stream_slice_metrics(
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    slices: Any,
    *,
    data: Any,
    task: str,
    metrics: Sequence[str] | None,
    cross: Sequence[Sequence[str]] | None,
    bins: Mapping[str, int] | None,
    min_size: int,
    ci: CiMethod | None,
    labels: Sequence[Any] | None,
    pos_label: Any,
    confidence: float,
    weak_segments: Any,
) -> SliceReport:
    """See the module docstring."""
    refuse = [
        (task != "classification", "task='regression'", "read the columns into memory"),
        (bool(bins), "bins=", "bin the column in the data first (a partition column works)"),
        (ci == "bootstrap", "ci='bootstrap'", "use ci='wilson' (exact from the counts)"),
        (weak_segments not in (False, None), "weak_segments", "search a sample in memory"),
    ]
    for refused, what, fix in refuse:
        if refused:
            raise QualityInputError(f"{what} is not supported on streamed data", fix=fix)
    for name, value in (("y_true", y_true), ("y_pred", y_pred), ("y_score", y_score)):
        if value is not None and not isinstance(value, str):
            raise QualityInputError(
                f"with data= a folder, glob or Dask DataFrame, {name} is a column name, "
                f"not {type(value).__name__}",
                fix=f"pass {name}='COLUMN'",
            )
    metric_names = _resolve_metrics(task, metrics, y_score is not None)
    if not 0 < confidence < 1:
        raise QualityInputError(f"confidence must be between 0 and 1, not {confidence!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise QualityInputError(f"min_size must be a whole number >= 0, not {min_size!r}")
    names = [slices] if isinstance(slices, str) else list(slices or [])
    families_columns: list[tuple[str, ...]] = [(c,) for c in names]
    for item in cross or []:
        families_columns.append((item,) if isinstance(item, str) else tuple(item))
    source = open_source(data)
    needed = list(
        dict.fromkeys(
            [
                y_true,
                y_pred,
                *([y_score] if y_score else []),
                *names,
                *(c for f in families_columns for c in f),
            ]
        )
    )
    source.require(needed, "slice_metrics")
    want_auc = "roc_auc" in metric_names
    classes = _Ids("y_true and y_pred")
    overall = _Family(())
    families = [_Family(cols) for cols in families_columns]
    n_rows = 0
    score_chunks = want_auc
    for chunk in source.chunks(needed):
        true_s, pred_s = chunk[y_true], chunk[y_pred]
        for name, s in ((y_true, true_s), (y_pred, pred_s)):
            if s.isna().any():
                row = n_rows + int(np.flatnonzero(np.asarray(s.isna()))[0])
                raise QualityInputError(
                    f"column {name!r} has a missing value (row {row})",
                    location=source.where,
                    fix="drop or fill the rows without a label or prediction",
                )
        for name, s in ((y_true, true_s), (y_pred, pred_s)):
            x = s.to_numpy()
            if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
                raise QualityInputError(
                    f"{name} holds non-integer numbers, which look like scores, not class labels",
                    fix="pass class labels as y_pred and scores or probabilities as y_score",
                )
        t = classes.codes(true_s)
        p = classes.codes(pred_s)
        k = len(classes.values)
        zeros = np.zeros(len(chunk), dtype=np.int64)
        overall.keys = [()]
        overall.add(zeros, t, p, k)
        codes_by_family = [f.slice_codes(chunk) for f in families]
        for family, codes in zip(families, codes_by_family, strict=True):
            family.add(codes, t, p, k)
        if score_chunks:
            score = chunk[y_score].to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(score).any():
                raise QualityInputError(
                    f"column {y_score!r} has missing scores",
                    location=source.where,
                    fix="drop or fill the rows without a score",
                )
            _sketch_chunk(overall, families, codes_by_family, zeros, t, score)
        n_rows += len(chunk)
    if n_rows == 0:
        raise QualityInputError("the data has no rows", location=source.where)
    # classes in the in-memory order, and the positive class
    values = [v for v in classes.values if v is not _MISSING]
    _, _, ordered, positive = _encode_labels(
        np.asarray(values, dtype=object), np.asarray(values, dtype=object), labels, pos_label
    )
    index = [classes.ids[v] for v in ordered if v in classes.ids]
    if want_auc and positive is None:
        raise QualityInputError(
            "multiclass roc_auc is not supported on streamed data",
            fix="leave roc_auc out (metrics=[...]) or compute it on a sample in memory",
        )
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    k_all = len(ordered)

    def confusion_of(family: _Family) -> np.ndarray:
        c = _grow(family.confusion, len(family.keys), len(classes.values))
        out = np.zeros((c.shape[0], k_all, k_all), dtype=np.int64)
        pos_of = {cid: i for i, cid in enumerate(index)}
        for a, ca in pos_of.items():
            for b, cb in pos_of.items():
                out[:, ca, cb] = c[:, a, b]
        return out

    positive_cid = index[positive] if positive is not None else None

    def auc_of(family: _Family, k: int) -> float:
        if not family.sketches or k >= len(family.sketches):
            return math.nan
        # sketches are per (slice, class id): positives are those of the positive class
        per_class = family.sketches[k]
        assert positive_cid is not None
        pos = per_class.get(positive_cid)
        neg = _merged([s for cid, s in per_class.items() if cid != positive_cid])
        if pos is None or neg is None:
            return math.nan
        return _sketch_auc(pos, neg)

    def values_of(
        family: _Family,
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        confusion = confusion_of(family)
        counts = confusion.sum(axis=(1, 2))
        out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        n = confusion.shape[0]
        for metric in metric_names:
            low = np.full(n, np.nan)
            high = np.full(n, np.nan)
            if metric == "roc_auc":
                vals = np.array([auc_of(family, s) for s in range(n)])
            else:
                vals = _count_metric(confusion, metric, positive)
                proportion = metric == "accuracy" or (
                    positive is not None and metric in ("precision", "recall")
                )
                if ci is not None and proportion:
                    tp = np.diagonal(confusion, axis1=1, axis2=2)
                    if metric == "accuracy":
                        low, high = _wilson(tp.sum(axis=1), counts, z)
                    else:
                        assert positive is not None
                        axis = 1 if metric == "precision" else 2
                        trials = confusion.sum(axis=axis)[:, positive]
                        low, high = _wilson(tp[:, positive], trials, z)
            out[metric] = (vals, low, high)
        return counts, out

    _, overall_values = values_of(overall)
    overall_dict = {
        m: (None if math.isnan(v[0][0]) else float(v[0][0])) for m, v in overall_values.items()
    }
    rows: list[SliceMetric] = []
    for family in families:
        counts, results = values_of(family)
        for s in _slice_order(family):
            predicate = _predicate(family, family.keys[s])
            name = predicate.to_expression()
            count = int(counts[s])
            for metric in metric_names:
                vals, lows, highs = results[metric]
                reason = (
                    "only one class in y_true in the slice"
                    if metric == "roc_auc"
                    else _COUNT_REASONS[metric]
                )
                rows.append(
                    slice_row(
                        predicate,
                        name,
                        metric,
                        float(vals[s]),
                        (float(lows[s]), float(highs[s])),
                        count=count,
                        base=overall_dict[metric],
                        reason=reason,
                        ci_method="wilson",
                        min_size=min_size,
                    )
                )
    return SliceReport(
        task="classification",
        metrics=metric_names,
        labels=ordered,
        pos_label=ordered[positive] if positive is not None else None,
        n_rows=n_rows,
        min_size=min_size,
        ci=ci,
        confidence=confidence,
        overall=overall_dict,
        rows=rows,
        sketch_error={"roc_auc": auc_sketch_error()} if want_auc else {},
    )


def _merged(sketches: list[Any]) -> Any:
    from datasketches import kll_doubles_sketch

    found = [s for s in sketches if not s.is_empty()]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    out = kll_doubles_sketch(KLL_K)
    for s in found:
        out.merge(s)
    return out


def _sketch_chunk(
    overall: _Family,
    families: list[_Family],
    codes_by_family: list[np.ndarray],
    zeros: np.ndarray,
    true: np.ndarray,
    score: np.ndarray,
) -> None:
    """Scores into one KLL sketch per (slice, true class id) of every family."""
    from datasketches import kll_doubles_sketch

    for family, codes in [(overall, zeros), *zip(families, codes_by_family, strict=True)]:
        n_slices = len(family.keys)
        while len(family.sketches) < n_slices:
            family.sketches.append({})
        key = codes * (int(true.max()) + 1) + true
        if n_slices * (int(true.max()) + 1) < 1 << 16:
            key = key.astype(np.uint16)  # a stable sort of uint16 is a radix sort
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        ends = np.r_[starts[1:], len(sorted_key)]
        width = int(true.max()) + 1
        for a, b in zip(starts, ends, strict=True):
            k = int(sorted_key[a])
            s, cid = divmod(k, width)
            per_class = family.sketches[s]
            sketch = per_class.get(cid)
            if sketch is None:
                sketch = per_class[cid] = kll_doubles_sketch(KLL_K)
            sketch.update(score[order[a:b]])


def _slice_order(family: _Family) -> list[int]:
    """Slices in the in-memory order: each column's values sorted, missing last."""

    def rank(part: _Ids) -> dict[int, tuple[int, Any]]:
        present = [(i, v) for i, v in enumerate(part.values) if v is not _MISSING]
        try:
            ordered = sorted(present, key=lambda iv: iv[1])
        except TypeError:
            ordered = present
        out = {i: (0, pos) for pos, (i, _) in enumerate(ordered)}
        for i, v in enumerate(part.values):
            if v is _MISSING:
                out[i] = (1, 0)
        return out

    ranks = [rank(part) for part in family.parts]
    return sorted(
        range(len(family.keys)),
        key=lambda s: tuple(r[i] for r, i in zip(ranks, family.keys[s], strict=True)),
    )


def _predicate(family: _Family, key: tuple[int, ...]) -> SlicePredicate:
    conditions: list[Any] = []
    for column, part, i in zip(family.columns, family.parts, key, strict=True):
        value = part.values[i]
        if value is _MISSING:
            conditions.append(IsMissing(column=column))
        else:
            conditions.append(Equals(column=column, value=_slice_value(column, value)))
    return SlicePredicate(conditions=conditions)
