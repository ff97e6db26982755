"""What a drift plot shows: a column's reference distribution beside the current one, on the
reference's own bins (numbers) or categories, from the schema's reference statistics."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_MAX_CATEGORIES = 12


def drift_distributions(
    schema: Any, data: Any, column: str
) -> tuple[list[str], list[float], list[float]] | None:
    """(labels, reference shares, current shares) for one column, or None when the schema
    keeps no reference statistics for it or `data` is not a frame holding it."""
    import pandas as pd

    spec = next((c for c in schema.columns if c.name == column), None)
    if spec is None or spec.reference is None or not isinstance(data, pd.DataFrame):
        return None
    if column not in data.columns:
        return None
    ref = spec.reference
    values = data[column].dropna()
    if ref.bin_edges and ref.proportions:
        # The edges are cut points: bins are x <= e0, e0 < x <= e1, ..., x > e_last.
        edges = np.asarray(ref.bin_edges, dtype=float)
        numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
        counts = np.bincount(np.searchsorted(edges, numbers, side="left"), minlength=len(edges) + 1)
        total = max(int(counts.sum()), 1)
        labels = [f"<={edges[0]:.3g}"]
        labels += [f"{lo:.3g}..{hi:.3g}" for lo, hi in itertools.pairwise(edges)]
        labels.append(f">{edges[-1]:.3g}")
        return labels, list(ref.proportions), [c / total for c in counts.tolist()]
    if ref.frequencies:
        top = sorted(ref.frequencies, key=lambda k: -ref.frequencies[k])[:_MAX_CATEGORIES]
        shares = values.astype(str).value_counts(normalize=True)
        current = [float(shares.get(k, 0.0)) for k in top]
        labels = [*top, "(other)"]
        reference = [float(ref.frequencies[k]) for k in top]
        reference.append(max(0.0, 1.0 - sum(reference)))
        current.append(max(0.0, 1.0 - sum(current)))
        return labels, reference, current
    return None
