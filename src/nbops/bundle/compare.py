"""Champion vs challenger: two bundles' metrics and slice metrics, and the gates' verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.bundle.load import load_bundle
from nbops.config import load_project
from nbops.gates import GateResult, evaluate_gate, parse_gate

# Deferred import: quality.slices (pandas) in gate_values, only for a bundle that holds slice
# metrics, so `nbops bundle compare` reports a missing bundle before pandas loads.


@dataclass
class BundleComparison:
    rows: list[tuple[str, float | None, float | None]]
    gates: list[GateResult]


def gate_values(manifest: Any) -> dict[str, float]:
    """What gates can name for a bundle: its run's metrics and its slice metrics' values.

    Slice metrics that are not an nbops slice report (`build_bundle` takes any mapping, and
    the model card shows it as given) add no values: a gate naming one fails as unknown."""
    values = dict(manifest.source.metrics)
    if manifest.source.slice_metrics:
        from pydantic import ValidationError

        from nbops.quality.slices import SliceReport

        try:
            report = SliceReport.model_validate(manifest.source.slice_metrics)
        except ValidationError:
            return values
        values.update(report.gate_values())
    return values


def compare_bundles(
    champion: Path, challenger: Path, *, extra_gates: list[str], **trust: Any
) -> BundleComparison:
    """Load (and verify) both bundles; check the project's gates (plus `extra_gates`) on the
    challenger, with the champion's values as `baseline.NAME`. `trust`: load_bundle's
    `trusted_keys` and `require_signature`."""
    a = gate_values(load_bundle(champion, **trust).manifest)
    b = gate_values(load_bundle(challenger, **trust).manifest)
    rows = [(name, a.get(name), b.get(name)) for name in sorted(set(a) | set(b))]
    texts = [*load_project().config.gates, *extra_gates]
    values = {**b, **{f"baseline.{k}": v for k, v in a.items()}}
    return BundleComparison(rows, [evaluate_gate(parse_gate(t), values) for t in texts])
