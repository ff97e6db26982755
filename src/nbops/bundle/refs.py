"""Bundle references as the command line takes them: a path (a bundle folder or its archive),
or a registry reference `NAME@ALIAS` / `NAME@VERSION` (`penguins@production`, `penguins@3`).

An existing path always wins over a registry reference, so a folder named `a@b` still loads.
A registry reference is looked up in the project's registry (nbops.runs.registry), and the
bundle found there must still be the one registered: its manifest's sha256 is compared with
the registered one (a bundle rebuilt or edited in place is a RegistryError, exit 41, as is an
unknown model, version or alias). The signature and the files' hashes are checked later, by
whatever loads the bundle.

Light at import (the standard library and nbops.errors): commands resolve a reference before
they import the machinery that loads a bundle.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nbops.bundle.locate import ARCHIVE_SUFFIXES, require_bundle_path
from nbops.errors import BundleError, RegistryError

# Deferred imports: the registry (sqlite3, the run store) and nbops.config, only for a
# registry reference, so that resolving a path stays as light as `require_bundle_path`.

MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedBundle:
    """Where a reference points: the bundle's path, and, for a registry reference, the model
    name, its version and the alias it was reached through."""

    path: Path
    name: str | None = None
    version: int | None = None
    alias: str | None = None

    @property
    def ref(self) -> str:
        """The reference as a user would type it again."""
        if self.name is None:
            return str(self.path)
        return f"{self.name}@{self.alias or self.version}"


def is_registry_ref(ref: str | os.PathLike[str]) -> bool:
    """Whether `ref` is read as a registry reference: it names no existing path and has
    an `@`."""
    text = os.fspath(ref)
    return "@" in text and not Path(text).exists()


def manifest_bytes(path: Path) -> bytes:
    """The bytes of a bundle's manifest.json: in the folder, or the archive's one member
    `<top>/manifest.json` (read, nothing extracted). BundleError when there is none."""
    if path.is_dir():
        try:
            return (path / MANIFEST).read_bytes()
        except OSError:
            raise BundleError(f"{path} has no {MANIFEST}", fix="rebuild the bundle") from None
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        try:
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:
                    parts = PurePosixPath(member.name).parts
                    if len(parts) == 2 and parts[1] == MANIFEST and member.isfile():
                        if member.size > _MAX_MANIFEST_BYTES:
                            break
                        handle = archive.extractfile(member)
                        if handle is not None:
                            return handle.read()
        except (OSError, tarfile.TarError, EOFError):
            pass
        raise BundleError(f"{path} holds no readable {MANIFEST}", fix="rebuild the bundle")
    raise BundleError(
        f"no bundle at {path}", fix="give a bundle folder or its .tar.gz (nbops bundle)"
    )


def manifest_sha256(path: Path) -> str:
    """The sha256 of a bundle's manifest.json bytes: the registry's identity of a bundle."""
    return hashlib.sha256(manifest_bytes(path)).hexdigest()


def resolve_bundle(ref: str | os.PathLike[str], *, store_dir: Path | None = None) -> ResolvedBundle:
    """The bundle `ref` names: an existing bundle path, else a registry reference looked up
    in the registry of `store_dir` (default: the project's store). BundleError for a path
    that holds no bundle, RegistryError for a reference the registry cannot follow."""
    if not is_registry_ref(ref):
        return ResolvedBundle(path=require_bundle_path(ref))
    from nbops.runs.registry import Registry, parse_ref  # deferred: sqlite, the store
    from nbops.runs.store import RunStore

    name, number, alias = parse_ref(os.fspath(ref))
    if store_dir is None:
        from nbops.config import load_project

        store_dir = load_project().store_dir
    registry = Registry(RunStore(store_dir))
    found = registry.get(name, alias if alias is not None else str(number))
    return ResolvedBundle(
        path=check_registered(found.bundle_path, found.manifest_sha256, f"{name} v{found.version}"),
        name=name,
        version=found.version,
        alias=alias,
    )


def check_registered(bundle_path: str, sha256: str, what: str) -> Path:
    """`bundle_path` when the bundle there still has the registered manifest; RegistryError
    naming the path when it is gone or differs."""
    path = Path(bundle_path)
    try:
        current = manifest_sha256(path)
    except BundleError:
        raise RegistryError(
            f"{what} is registered at {path}, but no bundle is there any more",
            fix="restore the bundle, or promote another version (nbops registry list)",
        ) from None
    if current != sha256:
        raise RegistryError(
            f"{what}: the bundle at {path} differs from the one registered (its manifest "
            f"sha256 is {current[:12]}, registered {sha256[:12]})",
            fix="restore the registered bundle, or build a new version (nbops bundle --run ID)",
        )
    return path
