"""The slice report: one `SliceMetric` row per (slice, metric), and `SliceReport`'s views of
them (`worst`, `weakest`, `to_frame`, `gate_values`, JSON round trip with its schema version).

`weak` holds the weak segments a search found (quality.slices.weak, `slice_metrics(...,
weak_segments=True)`): SliceMetric rows too, worst first. Reports without it (older ones)
load with an empty list; the schema version stays 1.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from nbops.errors import QualityInputError, SchemaVersionError
from nbops.quality.slices._common import LOWER_IS_BETTER, CiMethod, Scalar, Task, _Model
from nbops.quality.slices.predicates import SlicePredicate


class SliceMetric(_Model):
    """One metric on one slice.

    `value` is None when the metric is undefined on the slice (`reason` says why). `gap` is
    `value - overall`. `too_small` flags a slice with fewer than `min_size` rows: it is
    reported, but left out of `worst`, `max_gap` and `gate_values`."""

    slice: SlicePredicate
    name: str = Field(description="the slice as text, slice.to_expression()")
    metric: str
    value: float | None
    reason: str | None = None
    count: int = Field(description="rows in the slice")
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: CiMethod | None = None
    gap: float | None = None
    too_small: bool = False


def slice_row(
    predicate: SlicePredicate,
    name: str,
    metric: str,
    value: float,
    interval: tuple[float, float],
    *,
    count: int,
    base: float | None,
    reason: str | None,
    ci_method: CiMethod | None,
    min_size: int,
) -> SliceMetric:
    """One slice's metric as the report holds it (NaN value: undefined, with `reason`; NaN
    low end: no interval; `base`: the overall value the gap is from). The in-memory and the
    streamed slice metrics both make their rows here."""
    defined = not math.isnan(value)
    low, high = interval
    has_ci = defined and not math.isnan(low)
    return SliceMetric(
        slice=predicate,
        name=name,
        metric=metric,
        value=value if defined else None,
        reason=None if defined else reason,
        count=count,
        ci_low=low if has_ci else None,
        ci_high=high if has_ci else None,
        ci_method=ci_method if has_ci else None,
        gap=value - base if defined and base is not None else None,
        too_small=count < min_size,
    )


class SliceReport(_Model):
    """Metrics overall and on every slice, JSON round-trippable (`model_dump_json` /
    `model_validate_json`)."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.slices"] = "nbops.slices"
    task: Task
    metrics: list[str]
    labels: list[Scalar] | None = Field(
        default=None, description="the classes, in the order of y_score's columns"
    )
    pos_label: Scalar | None = Field(default=None, description="binary tasks: the positive class")
    n_rows: int
    min_size: int
    ci: CiMethod | None = None
    confidence: float = 0.95
    overall: dict[str, float | None]
    rows: list[SliceMetric] = Field(default_factory=list)
    weak: list[SliceMetric] = Field(
        default_factory=list, description="weak segments found by a search, worst first"
    )
    sketch_error: dict[str, float] = Field(
        default_factory=dict,
        description="metrics computed from quantile sketches (streamed data): metric -> "
        "bound on |value - exact value| at 99% confidence; every other figure is exact",
    )

    @model_validator(mode="before")
    @classmethod
    def _readable_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("schema_version", 1)
            if isinstance(version, int) and not isinstance(version, bool) and version > 1:
                raise SchemaVersionError(
                    f"this slice report has schema version {version}; this nbops reads 1",
                    fix="upgrade nbops to read it",
                )
        return data

    def _reliable(self, metric: str) -> list[SliceMetric]:
        if metric not in self.metrics:
            raise QualityInputError(
                f"the report has no metric {metric!r}", fix=f"it has {', '.join(self.metrics)}"
            )
        return [
            row
            for row in self.rows
            if row.metric == metric and not row.too_small and row.value is not None
        ]

    def worst(self, metric: str) -> SliceMetric | None:
        """The slice where `metric` is worst: the lowest value, or the highest for error
        metrics (mae, rmse). Only slices that are not too_small and have a value count;
        None when there are none. Raises QualityInputError for a metric not in the report."""
        rows = self._reliable(metric)
        if not rows:
            return None
        if metric in LOWER_IS_BETTER:
            return max(rows, key=lambda row: row.value or 0.0)
        return min(rows, key=lambda row: row.value or 0.0)

    def weakest(self, k: int = 5, metric: str | None = None) -> list[SliceMetric]:
        """The k weakest slices for `metric` (default: the weak segments' metric, else the
        report's first), over the named slices and the weak segments together: ranked by the
        pessimistic end of the interval (the upper bound where higher is better, the lower
        bound for mae and rmse; the value itself when there is no interval), then the value.
        Slices that are too_small or without a value are left out; a slice found both ways
        counts once."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise QualityInputError(f"k must be a whole number >= 1, not {k!r}")
        if metric is None:
            metric = self.weak[0].metric if self.weak else self.metrics[0]
        found_metrics = {row.metric for row in self.weak}
        if metric not in self.metrics and metric not in found_metrics:
            raise QualityInputError(
                f"the report has no metric {metric!r}", fix=f"it has {', '.join(self.metrics)}"
            )
        named = self._reliable(metric) if metric in self.metrics else []
        found = [row for row in self.weak if row.metric == metric and row.value is not None]
        lower_better = metric in LOWER_IS_BETTER
        sign = -1.0 if lower_better else 1.0

        def key(row: SliceMetric) -> tuple[float, float, int]:
            value = row.value if row.value is not None else 0.0
            bound = row.ci_low if lower_better else row.ci_high
            return (sign * (value if bound is None else bound), sign * value, -row.count)

        unique: dict[str, SliceMetric] = {}
        for row in sorted([*named, *found], key=key):
            unique.setdefault(row.name, row)
        return list(unique.values())[:k]

    def max_gap(self, metric: str) -> float | None:
        """The largest |value - overall| over slices that are not too_small (None if none).
        Raises QualityInputError for a metric not in the report."""
        gaps = [abs(row.gap) for row in self._reliable(metric) if row.gap is not None]
        return max(gaps) if gaps else None

    def to_frame(self) -> pd.DataFrame:
        """One row per (slice, metric): slice, columns, metric, value, count, ci_low, ci_high,
        gap, too_small, reason. Undefined values are NaN."""
        columns = [
            "slice",
            "columns",
            "metric",
            "value",
            "count",
            "ci_low",
            "ci_high",
            "gap",
            "too_small",
            "reason",
        ]
        records = [
            {
                "slice": row.name,
                "columns": ", ".join(row.slice.columns),
                "metric": row.metric,
                "value": row.value,
                "count": row.count,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "gap": row.gap,
                "too_small": row.too_small,
                "reason": row.reason,
            }
            for row in self.rows
        ]
        frame = pd.DataFrame.from_records(records, columns=columns)
        floats = {name: "float64" for name in ("value", "ci_low", "ci_high", "gap")}
        return frame.astype({**floats, "count": "int64", "too_small": "bool"})

    def gate_values(self) -> dict[str, float]:
        """Flat values for CI gates: `overall.<metric>`, and over the slices that are not
        too_small, `slices.<metric>.min`, `.max` and `.max_gap` (largest |gap|). A name
        with no value (an undefined metric, no large-enough slice) is left out."""
        values: dict[str, float] = {}
        for metric in self.metrics:
            overall = self.overall.get(metric)
            if overall is not None:
                values[f"overall.{metric}"] = overall
            rows = self._reliable(metric)
            if rows:
                numbers = [row.value for row in rows if row.value is not None]
                values[f"slices.{metric}.min"] = min(numbers)
                values[f"slices.{metric}.max"] = max(numbers)
                gap = self.max_gap(metric)
                if gap is not None:
                    values[f"slices.{metric}.max_gap"] = gap
        for metric in dict.fromkeys(row.metric for row in self.weak):
            numbers = [
                row.value for row in self.weak if row.metric == metric and row.value is not None
            ]
            if numbers:
                if metric in LOWER_IS_BETTER:
                    values[f"weak.{metric}.max"] = max(numbers)
                else:
                    values[f"weak.{metric}.min"] = min(numbers)
        return values
