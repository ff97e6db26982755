"""Drift references streamed from a folder, glob or Dask DataFrame: numeric bins and CDF
points are quantiles of a KLL sketch (Apache DataSketches, K=`KLL_K`; each point's rank is
within `kll_rank_error()` of the rows at 99% confidence), the counts in them exact (a second
pass); category and boolean frequencies exact. `SKETCHED` marks the statistics built so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nbops.errors import QualityInputError
from nbops.quality.schema.infer import boolean_counts, column_family
from nbops.quality.schema.model import NUMERIC_KINDS, ReferenceStats, Schema
from nbops.quality.stream.source import is_stream_input, open_source

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
        below = {
            name: np.zeros(np.union1d(e, g).size, dtype=np.int64)
            for name, (e, g, _) in plans.items()
        }
        for chunk in source.chunks(list(plans)):
            for name, (e, g, _) in plans.items():
                x = chunk[name].to_numpy(dtype=np.float64, na_value=np.nan)
                x = x[np.isfinite(x)]
                points_all = np.union1d(e, g)
                where = np.searchsorted(points_all, x, side="left")
                below[name] += np.cumsum(
                    np.bincount(where, minlength=points_all.size + 1)[: points_all.size]
                )
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
            SKETCHED[id(stats)] = error
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
SKETCHED: dict[int, float] = {}
