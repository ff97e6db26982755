"""Classification metrics for every slice at once: labels encoded to integers once,
per-slice confusion counts from one `np.bincount`, roc_auc as the Mann-Whitney statistic
(average ranks for ties) from per-slice score histograms or one sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nbops.errors import QualityInputError
from nbops.quality.slices._common import _Array
from nbops.quality.slices.inputs import (
    _no_missing,
    _python_scalar,
    _same_length,
    _small_int_codes,
)


def _sorted_classes(values: list[Any], what: str) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        raise QualityInputError(
            f"the {what} mix types that cannot be ordered ({values[:5]})",
            fix="pass labels=[...] (and pos_label= for a binary task) to fix their order",
        ) from None


def _factorize(values: _Array) -> tuple[_Array, _Array]:
    """Codes and distinct values (in no particular order) of labels: integers (and booleans)
    spanning a small range are counted (a few vectorised passes), others hashed."""
    counted = _small_int_codes(values)
    return counted if counted is not None else pd.factorize(values)


def _encode_labels(
    y_true: _Array, y_pred: _Array, labels: Sequence[Any] | None, pos_label: Any
) -> tuple[_Array, _Array, list[Any], int | None]:
    """Integer codes of y_true and y_pred, the classes, and the positive class's index
    (None for a multiclass task)."""
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise QualityInputError(
                f"{name} holds non-integer numbers, which look like scores, not class labels",
                fix="pass class labels as y_pred and scores or probabilities as y_score, "
                "or task='regression'",
            )
    codes_true, uniques_true = _factorize(y_true)
    codes_pred, uniques_pred = _factorize(y_pred)
    uniques_true = np.asarray(uniques_true, dtype=object)
    uniques_pred = np.asarray(uniques_pred, dtype=object)
    if labels is not None:
        classes = [_python_scalar(value) for value in labels]
        if len(set(classes)) != len(classes) or not classes:
            raise QualityInputError(f"labels must be distinct and not empty: {classes}")
    else:
        seen = pd.unique(np.concatenate([uniques_true, uniques_pred]))
        classes = _sorted_classes([_python_scalar(value) for value in seen], "labels")
    positive: int | None = None
    if pos_label is not None:
        pos_label = _python_scalar(pos_label)
        if pos_label not in classes:
            if labels is not None:
                raise QualityInputError(f"pos_label {pos_label!r} is not one of labels {classes}")
            classes = _sorted_classes([*classes, pos_label], "labels")
        if len(classes) > 2:
            raise QualityInputError(
                f"pos_label is for binary labels, but there are {len(classes)} classes",
                fix="leave pos_label out: multiclass metrics are macro averages",
            )
        positive = classes.index(pos_label)
    elif len(classes) <= 2:
        positive = classes.index(_sorted_classes(list(classes), "labels")[-1])
    index = pd.Index(classes, dtype=object)
    encoded = []
    for name, codes, uniques in (
        ("y_true", codes_true, uniques_true),
        ("y_pred", codes_pred, uniques_pred),
    ):
        lookup = index.get_indexer(pd.Index(uniques, dtype=object))
        if (lookup < 0).any():
            unknown = [_python_scalar(value) for value in uniques[lookup < 0][:5]]
            raise QualityInputError(
                f"{name} has values not in labels: {unknown}", fix="add them to labels="
            )
        if np.array_equal(lookup, np.arange(len(lookup))):  # codes already in class order
            encoded.append(np.asarray(codes, dtype=np.int64))
        else:
            encoded.append(lookup.astype(np.int64)[codes])
    return encoded[0], encoded[1], classes, positive


def _divide(numerator: _Array, denominator: _Array) -> npt.NDArray[np.float64]:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def _count_metric(confusion: _Array, metric: str, positive: int | None) -> _Array:
    """A metric from confusion counts of shape (..., true class, predicted class); NaN where
    it is undefined. Binary (positive given): the positive class's score. Multiclass: the
    macro average over the classes present in y_true or y_pred (as scikit-learn does), an
    undefined per-class value counting as 0."""
    counts = confusion.sum(axis=(-2, -1))
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    if metric == "accuracy":
        return _divide(true_positive.sum(axis=-1), counts)
    actual = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    if positive is not None:
        tp, n_actual, n_predicted = (
            true_positive[..., positive],
            actual[..., positive],
            predicted[..., positive],
        )
        if metric == "precision":
            return _divide(tp, n_predicted)
        if metric == "recall":
            return _divide(tp, n_actual)
        return _divide(2 * tp, n_actual + n_predicted)
    denominator = {"precision": predicted, "recall": actual, "f1": actual + predicted}[metric]
    numerator = 2 * true_positive if metric == "f1" else true_positive
    per_class = np.nan_to_num(_divide(numerator, denominator), nan=0.0)
    present = (actual + predicted) > 0
    return _divide((per_class * present).sum(axis=-1), present.sum(axis=-1))


_COUNT_REASONS = {
    "accuracy": "the slice is empty",
    "precision": "no predicted positives in the slice",
    "recall": "no actual positives in the slice",
    "f1": "no actual or predicted positives in the slice",
}


_SIGN = np.uint64(1 << 63)
_CHUNK = 1 << 16
"""Rows per step of the passes over all rows (sort keys, confusion counts, positions in
slices): a chunk's buffers stay in the CPU caches and in memory already mapped, where whole
arrays of n integers would be fresh pages, which cost more to touch than the work itself."""


def _ordered_bits(score: npt.NDArray[np.float64], negative: bool) -> npt.NDArray[np.uint64]:
    """Each score's bits as an integer that orders as the scores do (-0.0 as 0.0)."""
    bits = np.add(score, 0.0).view(np.uint64)  # a new array
    if negative:  # negatives: every bit flipped; others: the sign bit set
        flip = (bits.view(np.int64) >> 63).view(np.uint64)  # all ones for a negative
        flip |= _SIGN
        bits ^= flip
    # (with no negative score every sign bit is clear: the bits order as the floats)
    return bits


def _sort_by_score(
    score: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_] | None = None
) -> tuple[_Array, npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
    """Rows in ascending score order (uint32 row numbers below 2**32 rows), which of them
    tie with the row before (None: no ties), and `positive` in that order (None if not
    given), without an argsort of the floats.

    Each score's bits, made to order as unsigned integers do, less the smallest score's and
    shifted up over the bits that no score uses, keep their high bits; the positive flag and
    the row number fill the low ones, and those integers are sorted by value (a vectorised
    sort, several times faster than an argsort). Rows whose kept bits are equal (a tie, or
    scores closer than the dropped bits tell apart) are then put in exact order by an
    argsort of their scores alone: as the kept bits order the runs, one argsort of all such
    rows places each in its run. -0.0 ties with 0.0; the scores must not be NaN. The keys
    are built and the row numbers and flags read back chunk by chunk, in cache: the only
    large arrays are the keys and the order, so that little time goes to fresh memory."""
    n = len(score)
    row_bits = max(1, (n - 1).bit_length())
    flag_bits = 0 if positive is None else 1
    low_bits = np.uint64((1 << (row_bits + flag_bits)) - 1)
    negative = bool(n) and bool(score.min() < 0)
    lowest, highest = (
        (0, 0) if not n else _ordered_bits(np.array([score.min(), score.max()]), negative).tolist()
    )
    spare = 64 - (highest - lowest).bit_length()  # high bits no key uses once lowest is taken
    spare = 0 if spare == 64 else spare  # every score the same
    key = np.empty(n, dtype=np.uint64)
    step = np.arange(min(_CHUNK, n), dtype=np.uint64)
    low = np.empty_like(step)
    for begin in range(0, n, _CHUNK):
        part = key[begin : begin + _CHUNK]
        bits = _ordered_bits(score[begin : begin + _CHUNK], negative)
        np.subtract(bits, np.uint64(lowest), out=part)
        part <<= np.uint64(spare)
        part &= ~low_bits
        low_part = low[: len(part)]
        np.add(step[: len(part)], np.uint64(begin), out=low_part)
        if positive is not None:
            flags = positive[begin : begin + _CHUNK].astype(np.uint64)
            flags <<= np.uint64(row_bits)
            low_part |= flags
        part |= low_part
    key.sort()
    order = np.empty(n, dtype=np.uint32 if n <= 1 << 32 else np.int64)
    in_order = None if positive is None else np.empty(n, dtype=bool)
    row_mask = np.uint64((1 << row_bits) - 1)
    for begin in range(0, n, _CHUNK):
        part = key[begin : begin + _CHUNK]
        np.bitwise_and(part, row_mask, out=order[begin : begin + _CHUNK], casting="unsafe")
        if in_order is not None:
            flags = part >> np.uint64(row_bits)
            flags &= np.uint64(1)
            in_order[begin : begin + _CHUNK] = flags
    key >>= np.uint64(row_bits + flag_bits)
    at = np.flatnonzero(key[1:] == key[:-1])
    del key
    if at.size == 0:
        return order, None, in_order
    member = np.zeros(n, dtype=bool)  # rows in a run of equal kept bits
    member[at] = True
    member[at + 1] = True
    positions = np.flatnonzero(member)
    subset = order[positions]
    subset = subset[np.argsort(score[subset], kind="stable")]  # -0.0 == 0.0
    order[positions] = subset
    if in_order is not None and positive is not None:
        in_order[positions] = positive[subset]
    tie = np.zeros(n - 1, dtype=bool)
    tie[at] = score[order[at + 1]] == score[order[at]]  # -0.0 == 0.0
    return order, tie, in_order


class _Ranking:
    """One binary ranking problem for roc_auc: which rows are positive, and how their scores
    order them. Few distinct scores are hashed to dense ranks (`key` = 2 * rank + positive,
    one integer carrying both); many are sorted once (`order`, shared by every family of
    slices), and the ranks are then derived from that order only if something asks for them."""

    def __init__(self, positive: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> None:
        self.positive = positive
        self._key: _Array | None = None
        self._order: _Array | None = None
        self._tie_in_order: npt.NDArray[np.bool_] | None = None
        sample = score[:: max(1, len(score) // 50_000)]
        if len(np.unique(sample)) <= 5_000:  # few distinct scores: hashing beats sorting
            codes, uniques = pd.factorize(score + 0.0, sort=True)  # -0.0 becomes 0.0
            self.n_unique = len(uniques)
            key = np.asarray(codes, dtype=np.int64)  # a new array: doubled in place
            key *= 2
            key += positive
            self._key = key
            self.sorted = False
            return
        # the one sort: every family of slices reuses it
        order, tie, positive_in_order = _sort_by_score(score, positive)
        assert positive_in_order is not None
        self.n_unique = len(score) - (0 if tie is None else int(np.count_nonzero(tie)))
        self._order = order
        self._tie_in_order = tie if self.n_unique < len(score) else None
        self.positive_in_order = positive_in_order
        self.sorted = True

    @property
    def ties(self) -> bool:
        return self.n_unique < len(self.positive)

    def ranks_in_order(self) -> _Array:
        """The dense rank of each row in score order (sorted rankings only)."""
        ranks = np.zeros(len(self.positive), dtype=np.int64)
        if self._tie_in_order is not None:
            np.cumsum(~self._tie_in_order, out=ranks[1:])
        else:
            ranks[1:] = np.arange(1, len(ranks))
        return ranks

    @property
    def key(self) -> _Array:
        """2 * dense rank + positive, per row (computed once, on demand)."""
        if self._key is None:
            ranks = np.empty(len(self.positive), dtype=np.int64)
            ranks[self.order()] = self.ranks_in_order()
            self._key = ranks * 2 + self.positive
        return self._key

    def order(self) -> _Array:
        """Rows sorted by score (computed once)."""
        if self._order is None:
            self._order = np.argsort(self.key)
        return self._order


@dataclass
class _AucCells:
    """Per-slice counts of positives and negatives at each distinct score, in score order:
    slice `s` owns cells start[s]:start[s+1]."""

    positives: _Array
    negatives: _Array
    start: _Array


def _auc_from_counts(positives: _Array, negatives: _Array) -> _Array:
    """roc_auc from positives/negatives counted at each distinct score (last axis, ascending):
    the Mann-Whitney U with ties counted half, over n_pos * n_neg. NaN with only one class."""
    below = 2 * np.cumsum(negatives, axis=-1) - negatives  # 2 * (lower) + (tied) negatives
    twice_u = (positives * below).sum(axis=-1)
    pairs = positives.sum(axis=-1) * negatives.sum(axis=-1)
    return _divide(twice_u, 2 * pairs)


def _auc(
    ranking: _Ranking, codes: _Array | None, n_slices: int, want_cells: bool
) -> tuple[_Array, _AucCells | None]:
    """roc_auc of every slice (NaN where a slice has one class), and the cells a bootstrap
    resamples."""
    if ranking.sorted and not want_cells:
        return _auc_in_score_order(ranking, codes, n_slices), None
    width = 2 * ranking.n_unique
    n_rows = len(ranking.positive)
    if n_slices * ranking.n_unique <= max(n_rows, 1 << 16):
        key = ranking.key if codes is None else codes * width + ranking.key
        histogram = np.bincount(key, minlength=n_slices * width).reshape(n_slices, -1, 2)
        positives, negatives = histogram[:, :, 1], histogram[:, :, 0]
        values = _auc_from_counts(positives, negatives)
        cells = None
        if want_cells:
            slice_of, rank_of = np.nonzero(positives + negatives)
            start = np.searchsorted(slice_of, np.arange(n_slices + 1))
            cells = _AucCells(positives[slice_of, rank_of], negatives[slice_of, rank_of], start)
        return values, cells
    # many slices times many distinct scores: sort rows by (slice, score) instead
    assert codes is not None
    order = ranking.order()
    regroup, slice_of = _group_by_slice(_narrow(codes, n_slices)[order])
    positive: _Array
    if ranking.sorted:
        rank = ranking.ranks_in_order()[regroup]
        positive = ranking.positive_in_order[regroup]
    else:
        key = ranking.key[order[regroup]]
        rank, positive = key >> 1, key & 1
    return _auc_of_groups(slice_of, rank, positive, n_slices, want_cells)


def _group_by_slice(codes_in_order: _Array) -> tuple[_Array, _Array]:
    """The stable permutation that groups rows (given in score order) by slice, keeping score
    order within each slice, and the slice of each row after it."""
    regroup = np.argsort(codes_in_order, kind="stable")
    return regroup, codes_in_order[regroup]


def _narrow(codes: _Array, n_slices: int) -> _Array:
    """Slice codes in the smallest unsigned type that holds them: gathered from a smaller
    array, and stably sorted by a radix sort (8 or 16 bits)."""
    if n_slices <= 1 << 8:
        return codes.astype(np.uint8)
    if n_slices <= 1 << 16:
        return codes.astype(np.uint16)
    return codes


def _auc_in_score_order(ranking: _Ranking, codes: _Array | None, n_slices: int) -> _Array:
    """roc_auc of every slice from the one sort by score. Without ties, a positive's
    negatives below it in its slice are its position in the slice less the positives before
    it, so U = (sum of the positives' positions in their slice) - n_pos (n_pos - 1) / 2
    (`_positions_in_slices`); with ties, the rows are grouped by (slice, score) with a stable
    radix sort and tied negatives count half (`_auc_of_groups`)."""
    in_order = ranking.positive_in_order
    n_rows = len(in_order)
    if not ranking.ties:
        narrow = None if codes is None else _narrow(codes, n_slices)
        total, n_positive, counts = _positions_in_slices(
            in_order, ranking.order(), narrow, n_slices
        )
        u = total - n_positive * (n_positive - 1) // 2
        return _divide(2 * u, 2 * n_positive * (counts - n_positive))
    ranks = ranking.ranks_in_order()
    if codes is None:
        return _auc_of_groups(np.zeros(n_rows, dtype=np.uint8), ranks, in_order, 1, False)[0]
    regroup, slice_of = _group_by_slice(_narrow(codes, n_slices)[ranking.order()])
    return _auc_of_groups(slice_of, ranks[regroup], in_order[regroup], n_slices, False)[0]


def _positions_in_slices(
    positive_in_order: npt.NDArray[np.bool_],
    order: _Array,
    codes: _Array | None,
    n_slices: int,
) -> tuple[_Array, _Array, _Array]:
    """For each slice: the sum of its positives' positions among its rows in score order
    (0 for its lowest score), its number of positives, and its number of rows. `codes` (None:
    one slice) are the rows' slice codes in input order; `order` the rows in score order.
    Taken in chunks of rows in score order: within a chunk, a stable radix sort of the slice
    codes groups the rows by slice in score order; a row's position in its slice is then its
    position in its group plus the slice's rows in the chunks before."""
    total = np.zeros(n_slices, dtype=np.int64)
    n_positive = np.zeros(n_slices, dtype=np.int64)
    seen = np.zeros(n_slices, dtype=np.int64)  # rows of each slice in the chunks before
    start = np.zeros(n_slices + 1, dtype=np.int64)
    running = np.zeros(_CHUNK + 1, dtype=np.int64)
    for begin in range(0, len(positive_in_order), _CHUNK):
        positive = positive_in_order[begin : begin + _CHUNK]
        if codes is None:
            positions = np.flatnonzero(positive)
            total[0] += int(positions.sum()) + begin * len(positions)
            n_positive[0] += len(positions)
            seen[0] += len(positive)
            continue
        chunk = codes[order[begin : begin + _CHUNK]]
        counts = np.bincount(chunk, minlength=n_slices)
        np.cumsum(counts, out=start[1:])
        positions = np.flatnonzero(positive[np.argsort(chunk, kind="stable")])
        first = np.searchsorted(positions, start)  # each slice's positives: first[s]:first[s+1]
        here = np.diff(first)
        np.cumsum(positions, out=running[1 : len(positions) + 1])
        in_group: _Array = running[first[1:]] - running[first[:-1]] - here * start[:-1]
        total += in_group + here * seen
        n_positive += here
        seen += counts
    return total, n_positive, seen


def _auc_of_groups(
    slice_of: _Array, rank: _Array, positive: _Array, n_slices: int, want_cells: bool
) -> tuple[_Array, _AucCells | None]:
    """roc_auc of every slice from rows grouped by slice, in score order within each (`rank`
    the dense rank of the score, `positive` 1 for the positive class): one group per (slice,
    distinct score), a positive counting the negatives below it plus half the tied ones."""
    n_rows = len(slice_of)
    boundary = np.ones(n_rows, dtype=bool)
    boundary[1:] = (slice_of[1:] != slice_of[:-1]) | (rank[1:] != rank[:-1])
    start = np.flatnonzero(boundary)
    end = np.append(start[1:], n_rows)
    cumulative = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(positive, out=cumulative[1:])
    positives = cumulative[end] - cumulative[start]
    negatives = (end - start) - positives
    group_slice = slice_of[start].astype(np.int64)
    negatives_before = np.cumsum(negatives) - negatives
    first = np.searchsorted(group_slice, np.arange(n_slices + 1))
    negatives_before -= negatives_before[first[:-1]][group_slice]
    twice_u = np.bincount(
        group_slice, weights=positives * (2 * negatives_before + negatives), minlength=n_slices
    )
    n_positive = np.bincount(group_slice, weights=positives, minlength=n_slices)
    n_negative = np.bincount(group_slice, weights=negatives, minlength=n_slices)
    values = _divide(twice_u, 2 * n_positive * n_negative)
    cells = _AucCells(positives, negatives, first) if want_cells else None
    return values, cells


@dataclass
class _Classification:
    true: _Array
    pred: _Array
    classes: list[Any]
    positive: int | None
    rankings: list[_Ranking]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def confusion(self, codes: _Array | None, n_slices: int) -> _Array:
        """Confusion counts of every slice, shape (n_slices, true class, predicted class):
        one `np.bincount` of (slice * K + true) * K + pred per chunk of rows, the keys built
        in one small buffer (no array of n keys in fresh memory)."""
        k = self.n_classes
        width = n_slices * k * k
        total = np.zeros(width, dtype=np.int64)
        n_rows = len(self.true)
        buffer = np.empty(min(_CHUNK, n_rows), dtype=np.int64)
        for begin in range(0, n_rows, _CHUNK):
            part = slice(begin, begin + _CHUNK)
            true = self.true[part]
            key = buffer[: len(true)]
            if codes is None:
                np.multiply(true, k, out=key, dtype=np.int64)
            else:
                np.multiply(codes[part], k, out=key, dtype=np.int64)
                key += true
                key *= k
            key += self.pred[part]
            total += np.bincount(key, minlength=width)
        return total.reshape(n_slices, k, k)


def _prepare_classification(
    y_true: _Array,
    y_pred: _Array,
    y_score: Any,
    labels: Sequence[Any] | None,
    pos_label: Any,
    want_auc: bool,
) -> _Classification:
    true, pred, classes, positive = _encode_labels(y_true, y_pred, labels, pos_label)
    n_classes = len(classes)
    rankings: list[_Ranking] = []
    if y_score is not None:
        score = _score_array(y_score, len(true))
        if positive is not None:
            if score.ndim == 2:
                if score.shape[1] != 2:
                    raise QualityInputError(
                        f"y_score has {score.shape[1]} columns but the labels are binary",
                        fix="pass the positive class's score (1-d) or two columns",
                    )
                score = score[:, positive if n_classes == 2 else 1]
            if want_auc:
                rankings = [_Ranking(true == positive, score)]
        else:
            if score.ndim != 2 or score.shape[1] != n_classes:
                raise QualityInputError(
                    f"y_score has shape {score.shape}, but there are {n_classes} classes "
                    f"({classes})",
                    fix="multiclass roc_auc needs one score column per class, "
                    "in the order of labels= (sorted classes by default)",
                )
            if want_auc:
                rankings = [_Ranking(true == k, score[:, k]) for k in range(n_classes)]
    return _Classification(true, pred, classes, positive, rankings)


def _score_array(y_score: Any, n_rows: int) -> npt.NDArray[np.float64]:
    if isinstance(y_score, pd.DataFrame | pd.Series):
        y_score = y_score.to_numpy()
    score = np.asarray(y_score)
    if score.ndim not in (1, 2) or len(score) == 0:
        raise QualityInputError(f"y_score must be 1-d or 2-d and not empty, not {score.shape}")
    _same_length("y_true", n_rows, "y_score", len(score))
    if score.dtype.kind not in "biuf":
        try:
            score = score.astype(np.float64)
        except (TypeError, ValueError):
            raise QualityInputError(f"y_score is not numeric ({score.dtype})") from None
    score = score.astype(np.float64, copy=False)
    _no_missing("y_score", score.reshape(-1))
    return score
