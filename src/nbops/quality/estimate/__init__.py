"""Performance without labels, and with them when they arrive.

- `calibration`: is the classifier's probability calibrated on the labelled reference
  (ECE, consistency-resampling p-value), and a cross-fitted isotonic/Platt fix if not;
- `cbpe`: expected accuracy / precision / recall / F1 from calibrated probabilities, with
  intervals, overall and per slice (`Slicer`);
- `realised`: the metrics once labels arrive, compared with the reference and the estimate.

Layer 2 (quality): numpy, pandas and scikit-learn only; `nbops.bundle.monitor` wires it to
bundles and request logs.
"""

from nbops.quality.estimate.calibration import (
    CalibrationReport,
    calibrate,
    check_calibration,
    expected_calibration_error,
)
from nbops.quality.estimate.cbpe import (
    METRICS,
    GroupMetrics,
    Interval,
    Slicer,
    estimate_performance,
    expected_confusion,
)
from nbops.quality.estimate.realised import (
    Comparison,
    compare_realised,
    realised_classification,
    realised_regression,
)

__all__ = [
    "METRICS",
    "CalibrationReport",
    "Comparison",
    "GroupMetrics",
    "Interval",
    "Slicer",
    "calibrate",
    "check_calibration",
    "compare_realised",
    "estimate_performance",
    "expected_calibration_error",
    "expected_confusion",
    "realised_classification",
    "realised_regression",
]
