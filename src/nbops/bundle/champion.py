"""`nbops promote CHALLENGER --alias A --if-better CHAMPION --data FILE`: compare, then promote.

The challenger and the champion score the same labelled rows (`compare.compare_on_data`:
paired bootstrap intervals, McNemar's test for accuracy); when every gate passes the alias
moves to the challenger, with the comparison's summary in the registry event's detail;
otherwise the refusal is recorded (same detail) and BundleGateFailedError (40) raised, the
alias untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbops.errors import BundleGateFailedError

if TYPE_CHECKING:
    from nbops.bundle.compare import DataComparison
    from nbops.config import Project
    from nbops.runs.registry import AliasChange, Registry


# Deferred imports: compare (pandas, scipy), the registry (sqlite3) and the bundle machinery
# load when a promotion is asked for.


@dataclass(frozen=True)
class Promotion:
    """The comparison, and the alias change it allowed."""

    comparison: DataComparison
    change: AliasChange


def promote_if_better(
    challenger: str | os.PathLike[str],
    alias: str,
    *,
    champion: str | os.PathLike[str],
    data: Any,
    label: str | None = None,
    gates: Sequence[str] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    reason: str | None = None,
    trust: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    project: Project | None = None,
) -> Promotion:
    """Promote `challenger` to `alias` only when it passes the gates against `champion` on
    `data` (see the module docstring)."""
    from nbops.bundle.compare import compare_on_data
    from nbops.bundle.refs import resolve_bundle
    from nbops.bundle.registration import promote, register_bundle
    from nbops.runs.registry import Registry, check_alias

    check_alias(alias)
    registry = registry or Registry.for_project()
    store_dir = registry.store.directory
    new = resolve_bundle(challenger, store_dir=store_dir)
    old = resolve_bundle(champion, store_dir=store_dir)
    comparison = compare_on_data(
        old.path,
        new.path,
        data,
        label=label,
        gates=gates,
        n_resamples=n_resamples,
        seed=seed,
        trust=dict(trust or {}),
    )
    detail = {"comparison": comparison.summary()}
    why = reason or f"better than {old.ref}: {comparison.headline()}"
    if not comparison.passed:
        registered = register_bundle(new.path, registry, trust=dict(trust or {}), project=project)
        registry.record_refusal(
            registered.name, alias, registered.version, reason=why, detail=detail
        )
        failed = "; ".join(f"{g.gate} ({g.reason})" for g in comparison.failed_gates)
        raise BundleGateFailedError(
            f"{registered.name} v{registered.version} is not promoted to {alias}: it fails "
            f"{failed} against {old.ref}",
            fix="nbops bundle compare shows the whole comparison; "
            f"{registered.name}@{alias} is unchanged",
        )
    change = promote(
        new.path,
        alias,
        reason=why,
        trust=dict(trust or {}),
        registry=registry,
        detail=detail,
        project=project,
    )
    return Promotion(comparison, change)
