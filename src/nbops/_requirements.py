"""Pinning what a pipeline imports to the versions installed here (bundles' lock, the
orchestrator targets' packages)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


def pin_installed(requirements: Iterable[str]) -> tuple[list[str], list[str]]:
    """`Name==version`, as installed here, of each requirement (a distribution or an
    importable module name; version specifiers ignored), sorted by name, once each; and the
    requirements that are not installed here."""
    from importlib import metadata

    wanted: list[str] = []
    for req in requirements:
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", str(req))
        if match and match.group(1) not in wanted:
            wanted.append(match.group(1))
    modules: Mapping[str, list[str]] | None = None
    pins: dict[str, str] = {}
    missing: list[str] = []
    for req in wanted:
        try:
            dist = metadata.distribution(req)
        except metadata.PackageNotFoundError:
            if modules is None:
                modules = metadata.packages_distributions()
            candidates = modules.get(req) or modules.get(req.replace("-", "_")) or []
            if not candidates:
                missing.append(req)
                continue
            dist = metadata.distribution(candidates[0])
        canonical = dist.metadata["Name"] or req
        pins[re.sub(r"[-_.]+", "-", canonical).lower()] = f"{canonical}=={dist.version}"
    return [pins[k] for k in sorted(pins)], missing
