"""Per-slice model metrics: how a model does on each subgroup of the data, not just overall.

    report = slice_metrics(y_true, y_pred, y_score, data=frame, slices=["sex", "island"],
                           cross=[("sex", "island")], bins={"body_mass_g": 4})
    report.worst("recall")          # the slice where recall is lowest (among large-enough ones)
    report.gate_values()            # {"slices.recall.min": 0.71, "overall.recall": 0.88, ...}

A slice is a serialisable predicate (`island == "Biscoe"`, `body_mass_g in (3550.0, 4050.0]`,
`sex is missing`, or a conjunction of those for crossed columns), so a later run or a monitor
can recompute exactly the same rows with `predicate.mask(frame)`.

Every metric is computed for all slices of a column at once: labels are encoded to integers
once, per-slice confusion counts come from one `np.bincount`, and roc_auc is the
Mann-Whitney statistic with average ranks for ties (what scikit-learn's trapezoidal ROC area
equals), computed from per-slice score histograms or one sort by (slice, score).
"""

from nbops.quality.slices._common import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    MAX_SLICES_PER_COLUMN,
    REGRESSION_METRICS,
    CiMethod,
    Scalar,
    Task,
)
from nbops.quality.slices.compute import slice_metrics
from nbops.quality.slices.predicates import Condition, Equals, InInterval, IsMissing, SlicePredicate
from nbops.quality.slices.report import SliceMetric, SliceReport

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "MAX_SLICES_PER_COLUMN",
    "REGRESSION_METRICS",
    "CiMethod",
    "Condition",
    "Equals",
    "InInterval",
    "IsMissing",
    "Scalar",
    "SliceMetric",
    "SlicePredicate",
    "SliceReport",
    "Task",
    "slice_metrics",
]
