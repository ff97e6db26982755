"""Bundle references as the command line takes them: a path (a bundle folder or its archive),
or a registry reference `NAME@ALIAS` / `NAME@VERSION` (`penguins@production`, `penguins@3`).

An existing path always wins over a registry reference, so a folder named `a@b` still loads.
Light at import (the standard library and nbops.errors): commands resolve a reference before
they import the machinery that loads a bundle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nbops.bundle.locate import require_bundle_path


@dataclass(frozen=True)
class ResolvedBundle:
    """Where a reference points: the bundle's path, and, for a registry reference, the model
    name, its version and the alias it was reached through."""

    path: Path
    name: str | None = None
    version: int | None = None
    alias: str | None = None


def resolve_bundle(ref: str | os.PathLike[str], *, store_dir: Path | None = None) -> ResolvedBundle:
    """The bundle `ref` names. Paths only for now: registry references arrive with the
    registry (Part A of issue 15)."""
    return ResolvedBundle(path=require_bundle_path(ref))
