"""A bundle's files checked against its manifest, without running any of them: what loading
(nbops.bundle.load) and verifying or signing (nbops.bundle.signing) both read first.

`verify_files` returns every listed file's bytes, each checked against its sha256, and
raises BundleIntegrityError naming the first file that is missing, changed, a link, or
present but not listed (manifest.json, manifest.sig and `__pycache__` folders aside).
`read_schema` parses the bundle's schema (BundleError when it cannot be read);
`check_readable` also judges the model file's types against the allow-list by name, so a
bundle `verify_bundle` passes is one `load_bundle` does not refuse on those grounds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from nbops.bundle.allowlist import trusted_types
from nbops.bundle.manifest import MANIFEST_FILE, SIGNATURE_FILE, BundleManifest, load_json
from nbops.errors import BundleError, BundleIntegrityError, NbopsError

if TYPE_CHECKING:
    from nbops.quality.schema import Schema

__all__ = ["check_readable", "read_schema", "verify_files"]

# Deferred imports: quality.schema (pandas, numpy) in read_schema and skops in check_readable,
# so `nbops bundle sign` and `nbops bundle verify` report a missing or changed file before
# either loads.


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return (
        bool(rel)
        and "\\" not in rel
        and not p.is_absolute()
        and ".." not in p.parts
        and rel == p.as_posix()
    )


def verify_files(folder: Path, manifest: BundleManifest) -> dict[str, bytes]:
    """Every listed file's bytes, each checked against its sha256; BundleIntegrityError naming
    the first file that is missing, changed, a link, or present but not listed."""
    listed = manifest.files
    for rel in listed:
        if not _safe_rel(rel) or rel in (MANIFEST_FILE, SIGNATURE_FILE):
            raise BundleIntegrityError(
                f"the manifest lists an unsafe path {rel!r}",
                location=str(folder / MANIFEST_FILE),
                fix="rebuild the bundle",
            )
    for current, dirs, names in os.walk(folder):
        here = Path(current)
        for d in list(dirs):
            if (here / d).is_symlink():
                raise _integrity(folder, (here / d).relative_to(folder).as_posix(), "is a link")
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file_name in names:
            rel = (here / file_name).relative_to(folder).as_posix()
            if rel in (MANIFEST_FILE, SIGNATURE_FILE):
                continue
            if rel not in listed:
                raise _integrity(folder, rel, "is not listed in the manifest")
            if (here / file_name).is_symlink():
                raise _integrity(folder, rel, "is a link")
    contents: dict[str, bytes] = {}
    for rel, expected in listed.items():
        target = folder / rel
        if target.is_symlink():
            raise _integrity(folder, rel, "is a link")
        try:
            data = target.read_bytes()
        except OSError:
            raise _integrity(folder, rel, "is missing") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise _integrity(folder, rel, "differs from the manifest (sha256 mismatch)")
        contents[rel] = data
    model = manifest.model
    if model.file not in listed or listed[model.file] != model.sha256:
        raise _integrity(folder, model.file, "does not match the manifest's model entry")
    return contents


def check_readable(contents: dict[str, bytes], manifest: BundleManifest) -> None:
    """What loading would refuse before it runs anything, checked without running anything:
    the schema (read, bounded in depth) and every type the manifest and the model file name,
    judged against the allow-list by name alone (nothing is imported, the model not read).
    For `verify_bundle`, so a bundle it passes is one `load_bundle` does not refuse on those
    grounds."""
    from nbops.bundle.skops_import import skops_io

    sio = skops_io()

    read_schema(contents, manifest)
    info = manifest.model
    try:
        untrusted = sio.get_untrusted_types(data=contents[info.file])
    except Exception as e:
        raise BundleIntegrityError(
            f"{info.file} is not a readable skops file ({type(e).__name__})",
            fix="rebuild the bundle",
        ) from None
    trusted_types(untrusted, info.types)


def _integrity(folder: Path, rel: str, what: str) -> BundleIntegrityError:
    return BundleIntegrityError(
        f"{rel} {what}",
        location=str(folder),
        fix="the bundle was changed after it was built; rebuild it (nbops bundle)",
    )


def read_schema(contents: dict[str, bytes], manifest: BundleManifest) -> Schema:
    from nbops.quality.schema import Schema

    name = manifest.input.schema_file
    if name not in contents:
        raise BundleIntegrityError(f"{name} is missing", fix="rebuild the bundle")
    data = load_json(contents[name], what="the bundle's schema", location=name)
    try:
        return Schema.from_dict(data, source=name)
    except (ValueError, RecursionError, NbopsError) as e:
        raise BundleError(f"the bundle's schema cannot be read: {e}", location=name) from None
