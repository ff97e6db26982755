"""Benchmark of slice metrics against a scikit-learn loop timed in the same run.

    .venv/bin/python bench/bench_slices.py            # 1M rows, then 5M rows
    .venv/bin/python bench/bench_slices.py --quick    # 1M rows only

Synthetic data: a binary label, scores rounded to 2 decimals (so many ties) and 55 slices,
cut two ways: one 55-valued column, and two columns (5 x 11) crossed with no marginals. A
third line uses scores without ties, with the same 8x target: roc_auc then comes from one
sort of all scores (slices grouped afterwards by a stable radix sort of each chunk of rows in
score order) instead of counting a histogram.
The reference is what one would write by hand:

    for each slice: accuracy_score, precision_score, recall_score, f1_score, roc_auc_score

`slice_metrics` computes the same five metrics on the same slices (no confidence
intervals, the loop has none). For each case the script prints both times (best of a few
repeats), the speed-up against the 8x target, whether every value matches (np.allclose),
and slice_metrics' peak traced memory (tracemalloc, in a separate untimed call).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from nbops.quality.slices import SliceReport, slice_metrics

TARGET = 8.0
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def make_data(
    n_rows: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "segment": rng.integers(0, 55, n_rows),
            "region": rng.integers(0, 5, n_rows),
            "channel": rng.integers(0, 11, n_rows),
        }
    )
    y_true = rng.integers(0, 2, n_rows)
    y_score = np.round(np.clip(0.3 * y_true + 0.7 * rng.random(n_rows), 0, 1), 2)
    y_pred = (y_score > 0.5).astype(np.int64)
    return frame, y_true, y_pred, y_score


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def sklearn_loop(
    masks: list[np.ndarray], y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray
) -> np.ndarray:
    out = np.empty((len(masks), len(METRICS)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, mask in enumerate(masks):
            t, p, s = y_true[mask], y_pred[mask], y_score[mask]
            out[i] = (
                accuracy_score(t, p),
                precision_score(t, p),
                recall_score(t, p),
                f1_score(t, p),
                roc_auc_score(t, s),
            )
    return out


def as_matrix(report: SliceReport) -> np.ndarray:
    values = [np.nan if row.value is None else row.value for row in report.rows]
    return np.array(values, dtype=float).reshape(-1, len(METRICS))


def run_case(
    label: str,
    frame: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray,
    repeats: int,
    *,
    target: bool = True,
    **options: object,
) -> float:
    def ours() -> SliceReport:
        return slice_metrics(
            y_true, y_pred, y_score, data=frame, metrics=list(METRICS), ci=None, **options
        )

    ours()  # warm-up: imports, first-touch of memory
    ours_s, report = best_of(repeats, ours)
    assert isinstance(report, SliceReport)
    # the reference rebuilds each slice's rows from its predicate, as a hand loop would
    predicates = [row.slice for row in report.rows[:: len(METRICS)]]
    masks = [predicate.mask(frame) for predicate in predicates]
    loop_s, expected = best_of(
        max(1, repeats - 1), lambda: sklearn_loop(masks, y_true, y_pred, y_score)
    )
    assert isinstance(expected, np.ndarray)
    equal = np.allclose(as_matrix(report), expected, rtol=1e-12, atol=1e-12)

    tracemalloc.start()
    ours()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    ratio = loop_s / ours_s
    verdict = "meets" if ratio >= TARGET else "MISSES"
    verdict = f"{verdict} {TARGET:.0f}x" if target else "info only"
    print(
        f"  {label:<28} {len(predicates):>3} slices  sklearn loop {loop_s:6.3f} s  "
        f"slice_metrics {ours_s:6.3f} s  speed-up {ratio:5.1f}x ({verdict})  "
        f"equal: {'yes' if equal else 'NO'}  peak memory {peak / 2**20:6.0f} MiB"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 1M-row variant")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 5_000_000]
    for n_rows in sizes:
        frame, y_true, y_pred, y_score = make_data(n_rows)
        repeats = 3 if n_rows <= 1_000_000 else 2
        print(f"{n_rows:,} rows, binary label, scores rounded to 2 decimals (ties), 5 metrics:")
        run_case(
            "one 55-valued column", frame, y_true, y_pred, y_score, repeats, slices=["segment"]
        )
        run_case(
            "5 x 11 crossed",
            frame,
            y_true,
            y_pred,
            y_score,
            repeats,
            cross=[("region", "channel")],
        )
        distinct = y_score + np.random.default_rng(1).random(n_rows) * 1e-3
        run_case(
            "55 values, scores w/o ties",
            frame,
            y_true,
            y_pred,
            distinct,
            repeats,
            slices=["segment"],
        )


if __name__ == "__main__":
    main()
