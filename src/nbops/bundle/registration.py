"""Bundles into the model registry: register a built bundle, promote one to an alias.

    register_bundle("bundles/penguins-v3", registry)           # -> ModelVersion (verified)
    promote("penguins@3", "production", reason="better recall", registry=registry)
    promote("bundles/penguins-v3", "staging", trust={"require_signature": True})

`register_bundle` verifies the bundle (its signature under the trust options and every
file's sha256 against the manifest, nothing of it run) and registers it as
(`manifest.name`, `manifest.version`) with the manifest's sha256, its run, its signer and its
metrics. `promote` takes a path or a registry reference (`NAME@N`, `NAME@ALIAS`), verifies
the bundle as a server would (with `require_signature` when asked), registers it if needed
and only then moves the alias; `detail` is kept in the event (a comparison's summary, for
`promote --if-better`, which records a refusal with `Registry.record_refusal` instead).

With a `project` whose tracking is MLflow, both are mirrored to MLflow's model registry
(nbops.runs.tracking): a mirror failure after the local change is a StoreError saying the
change is in the store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from nbops.bundle.manifest import BundleManifest
from nbops.bundle.refs import check_registered, manifest_bytes, resolve_bundle
from nbops.bundle.signing import verify_bundle
from nbops.config import Project
from nbops.errors import RegistryError
from nbops.runs.registry import AliasChange, ModelVersion, Registry, check_alias

# Deferred imports: nbops.runs.tracking (MLflow), only when the project mirrors to it.


def register_bundle(
    path: str | os.PathLike[str],
    registry: Registry,
    *,
    trust: dict[str, Any] | None = None,
    who: str | None = None,
    project: Project | None = None,
) -> ModelVersion:
    """Verify the bundle at `path` and register it (a no-op when it already is)."""
    source = Path(path)
    raw = manifest_bytes(source)
    verification = verify_bundle(source, **(trust or {}))
    if manifest_bytes(source) != raw:
        raise RegistryError(
            f"{source}: the manifest changed while it was verified", fix="try again"
        )
    manifest = BundleManifest.from_json(raw, location=str(source / "manifest.json"))
    registered = registry.register(
        name=manifest.name,
        version=manifest.version,
        bundle_path=source,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        run_id=manifest.source.run_id,
        signed_by=verification.signature.fingerprint,
        metrics=dict(manifest.source.metrics),
        who=who,
    )
    if _mirrored(project):
        assert project is not None
        registered = _mirror_version(project, registry, registered)
    return registered


def _mirror_version(project: Project, registry: Registry, mv: ModelVersion) -> ModelVersion:
    """`mv`, mirrored to MLflow's model registry if it is not yet."""
    if mv.mlflow_version is not None:
        return mv
    from nbops.runs.tracking import mirror_model_version

    mlflow_version = mirror_model_version(project, mv)
    registry.set_mlflow_version(mv.name, mv.version, mlflow_version)
    return registry.get(mv.name, mv.version)


def promote(
    ref_or_path: str | os.PathLike[str],
    alias: str,
    *,
    reason: str | None = None,
    trust: dict[str, Any] | None = None,
    registry: Registry | None = None,
    who: str | None = None,
    detail: dict[str, Any] | None = None,
    project: Project | None = None,
) -> AliasChange:
    """Point `alias` at the bundle `ref_or_path` names, once it is verified and registered."""
    check_alias(alias)
    registry = registry or Registry.for_project()
    resolved = resolve_bundle(ref_or_path, store_dir=registry.store.directory)
    registered = register_bundle(resolved.path, registry, trust=trust, who=who, project=project)
    change = registry.set_alias(
        registered.name, alias, registered.version, reason=reason, who=who, detail=detail
    )
    _mirror_alias(project, registry, change)
    return change


def rollback(
    name: str,
    alias: str,
    *,
    reason: str | None = None,
    registry: Registry | None = None,
    who: str | None = None,
    trust: dict[str, Any] | None = None,
    project: Project | None = None,
) -> AliasChange:
    """Move `name@alias` back to its previous holder, once that bundle is checked: still the
    one registered, and verified under `trust`."""
    registry = registry or Registry.for_project()
    registry.get(name, alias)  # the model and the alias exist
    history = registry.history(name, alias)
    stack: list[int] = []
    for event in history:
        if event.action == "promote" and event.version is not None:
            stack.append(event.version)
        elif event.action == "rollback" and stack:
            stack.pop()
    if len(stack) >= 2:  # check the target before the alias moves (rollback re-checks)
        target = registry.get(name, stack[-2])
        path = check_registered(
            target.bundle_path, target.manifest_sha256, f"{name} v{target.version}"
        )
        verify_bundle(path, **(trust or {}))
    change = registry.rollback(name, alias, reason=reason, who=who)
    _mirror_alias(project, registry, change)
    return change


def _mirrored(project: Project | None) -> bool:
    return project is not None and project.tracking == "mlflow"


def _mirror_alias(project: Project | None, registry: Registry, change: AliasChange) -> None:
    if not _mirrored(project) or change.previous == change.current:
        return
    from nbops.runs.tracking import mirror_alias

    assert project is not None
    target = _mirror_version(project, registry, registry.get(change.name, change.current))
    mirror_alias(project, target, change.alias)
