"""Who may run code on this machine: ed25519 signatures over a bundle's manifest.

Loading a bundle imports its `code/`. The manifest's sha256 of every file proves the files
are the ones the manifest lists (integrity); it does not say who wrote them, since both live
in the bundle. A signature does: `manifest.sig`, beside `manifest.json`, holds an ed25519
signature over the manifest's exact bytes (prefixed with `SIGNED_PREFIX`, so the key signs
nothing else by accident), made with a private key only its holder has. Verified against a
public key the operator trusts — given outside the bundle — it proves that holder signed
exactly this manifest, hence exactly these files.

    generate_keypair("nbops-signing.key")            # and nbops-signing.pub beside it
    sign_bundle("bundles/churn-v3", "nbops-signing.key")      # a folder or a .tar.gz
    verify_bundle("bundles/churn-v3", trusted_keys=["nbops-signing.pub"],
                  require_signature=True)            # signature + every file's hash, no code run
    load_bundle(path, trusted_keys=[...], require_signature=True)

Key files (reading, generating) are nbops.bundle.keys.

The trust policy (`TrustPolicy`, made by `trust_policy`) is the union of the keys given by
the caller and those in NBOPS_TRUSTED_KEYS (entries separated by os.pathsep, each a path to
a public key file or an inline key); the signature is required when the caller asks or
NBOPS_REQUIRE_SIGNATURE is 1/true/yes. `check_signature` decides, before the manifest is
even parsed and long before any bundled code is imported:

- a `manifest.sig` that is not a valid nbops signature, or whose signature fails against
  every trusted key: refused, always (BundleSignatureError, exit 37) — naming the key that
  signed when it is not trusted, or saying the manifest changed after signing when it is;
- no trusted key given: a signature that does not even match its own declared key is
  refused; one that does is "unverified" (it proves nothing about origin), and refused
  when a signature is required;
- no `manifest.sig`: "unsigned", refused when a signature is required.

The manifest whose signature was checked is the one whose hashes are then checked against
the files: a file rewritten with the manifest's hashes, and not signed again, is refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nbops._atomic import atomic_write_bytes
from nbops.bundle.archive import archive_path, pack, unpack
from nbops.bundle.contents import check_readable, verify_files
from nbops.bundle.keys import (  # KeyPair, TrustedKey, generate_keypair, read_public_key:
    KeyPair,  # re-exported, the names this module had before keys.py (the README's import)
    TrustedKey,
    fingerprint,
    generate_keypair,
    raw_public_bytes,
    read_private_key,
    read_public_key,
    trusted_key_from,
)
from nbops.bundle.manifest import MANIFEST_FILE, SIGNATURE_FILE, BundleManifest
from nbops.errors import (
    BundleError,
    BundleIntegrityError,
    BundleSignatureError,
    ConfigError,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
    )

__all__ = [
    "ENV_REQUIRE_SIGNATURE",
    "ENV_TRUSTED_KEYS",
    "SIGNATURE_FILE",
    "KeyPair",
    "SignatureCheck",
    "TrustPolicy",
    "TrustedKey",
    "check_signature",
    "generate_keypair",
    "read_public_key",
    "sign_bundle",
    "trust_policy",
    "verify_bundle",
]

SIGNED_PREFIX = b"nbops-bundle-manifest-v1\x00"
ENV_TRUSTED_KEYS = "NBOPS_TRUSTED_KEYS"
ENV_REQUIRE_SIGNATURE = "NBOPS_REQUIRE_SIGNATURE"
_KIND = "nbops.signature"
_MAX_SIGNATURE_BYTES = 64 * 1024
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


# -- the policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustPolicy:
    """The keys whose signatures are trusted, and whether a signature is required."""

    keys: tuple[TrustedKey, ...] = ()
    require_signature: bool = False


KeySource = str | os.PathLike[str] | TrustedKey


def trust_policy(
    trusted_keys: Iterable[KeySource] = (),
    require_signature: bool = False,
    *,
    environ: Mapping[str, str] | None = None,
) -> TrustPolicy:
    """The caller's keys plus NBOPS_TRUSTED_KEYS; a signature required when asked or when
    NBOPS_REQUIRE_SIGNATURE is set true. KeyFileError for an unreadable key, ConfigError for
    a NBOPS_REQUIRE_SIGNATURE that is not a yes or a no."""
    env = os.environ if environ is None else environ
    if isinstance(trusted_keys, str | os.PathLike):
        trusted_keys = [trusted_keys]
    keys: list[TrustedKey] = [trusted_key_from(k, str(k)) for k in trusted_keys]
    for entry in env.get(ENV_TRUSTED_KEYS, "").split(os.pathsep):
        if entry.strip():
            keys.append(trusted_key_from(entry.strip(), f"${ENV_TRUSTED_KEYS}"))
    required = env.get(ENV_REQUIRE_SIGNATURE, "").strip().lower()
    if required not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(
            f"${ENV_REQUIRE_SIGNATURE} is {required!r}, not a yes or a no",
            fix=f"set {ENV_REQUIRE_SIGNATURE}=1 to refuse unsigned bundles, or unset it",
        )
    unique: dict[bytes, TrustedKey] = {}
    for key in keys:
        unique.setdefault(key.raw, key)
    required_here = required in ("1", "true", "yes", "on")
    return TrustPolicy(tuple(unique.values()), require_signature or required_here)


# -- signatures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    """What `check_signature` found: "verified" (by `fingerprint`, a trusted key),
    "unverified" (signed by `fingerprint`, but no trusted key was given) or "unsigned"."""

    status: Literal["verified", "unverified", "unsigned"]
    fingerprint: str | None = None

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "key": self.fingerprint}

    def describe(self) -> str:
        if self.status == "verified":
            return f"signature verified (key {self.fingerprint})"
        if self.status == "unverified":
            return (
                f"signed by {self.fingerprint}, but no trusted key was given to check it "
                "(--trusted-key, trusted_keys, or $NBOPS_TRUSTED_KEYS)"
            )
        return "not signed: its code runs with nothing to say who wrote it (nbops bundle sign)"


def _refused(folder: Path, message: str, fix: str) -> BundleSignatureError:
    return BundleSignatureError(message, location=str(folder), fix=fix)


def _read_signature(folder: Path) -> dict[str, Any] | None:
    path = folder / SIGNATURE_FILE
    if path.is_symlink():
        raise _refused(folder, f"{SIGNATURE_FILE} is a link", "sign the bundle again")
    if not path.exists():
        return None
    bad = f"{SIGNATURE_FILE} is not an nbops signature"
    fix = "sign the bundle again (nbops bundle sign BUNDLE --key KEY)"
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_SIGNATURE_BYTES + 1)
    except OSError as e:
        raise _refused(folder, f"{SIGNATURE_FILE} cannot be read ({e.strerror})", fix) from None
    if len(data) > _MAX_SIGNATURE_BYTES:
        raise _refused(folder, f"{bad} (over {_MAX_SIGNATURE_BYTES} bytes)", fix)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise _refused(folder, f"{bad} (not JSON)", fix) from None
    if not isinstance(body, dict) or body.get("kind") != _KIND:
        raise _refused(folder, f"{bad} (no kind {_KIND!r})", fix)
    if body.get("schema_version") != 1 or body.get("algorithm") != "ed25519":
        raise _refused(
            folder,
            f"{SIGNATURE_FILE}: schema_version {body.get('schema_version')!r}, algorithm "
            f"{body.get('algorithm')!r} (this nbops reads 1, ed25519)",
            "sign the bundle with this nbops, or upgrade nbops",
        )
    try:
        signature = base64.b64decode(str(body.get("signature", "")), validate=True)
        key = base64.b64decode(str(body.get("key", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _refused(folder, f"{bad} (signature or key not base64)", fix) from None
    if len(signature) != 64 or len(key) != 32:
        raise _refused(folder, f"{bad} (signature or key of the wrong length)", fix)
    return {"signature": signature, "key": key}


def check_signature(folder: Path, manifest_bytes: bytes, policy: TrustPolicy) -> SignatureCheck:
    """Decide on `folder`'s signature of `manifest_bytes` (see the module docstring);
    BundleSignatureError (exit 37) when refused."""
    signed = _read_signature(folder)
    trust_fix = (
        "give the signer's public key (--trusted-key PATH, trusted_keys in [tool.nbops], "
        f"or ${ENV_TRUSTED_KEYS})"
    )
    if signed is None:
        if policy.require_signature:
            raise _refused(
                folder,
                "the bundle is not signed, and a signature is required",
                "sign it with a trusted key (nbops bundle sign BUNDLE --key KEY)",
            )
        return SignatureCheck("unsigned")
    message = SIGNED_PREFIX + manifest_bytes
    declared = TrustedKey(signed["key"], SIGNATURE_FILE)
    if not policy.keys:
        if not declared.verifies(signed["signature"], message):
            raise _refused(
                folder,
                f"the signature does not match {MANIFEST_FILE}: the manifest was changed "
                "after it was signed",
                "rebuild the bundle, or sign it again if you vouch for its files",
            )
        if policy.require_signature:
            raise _refused(
                folder,
                f"the bundle is signed by {declared.fingerprint}, but no trusted key is "
                "given to check it",
                trust_fix,
            )
        return SignatureCheck("unverified", declared.fingerprint)
    for key in policy.keys:
        if key.verifies(signed["signature"], message):
            return SignatureCheck("verified", key.fingerprint)
    trusted = ", ".join(k.fingerprint for k in policy.keys)
    if any(k.raw == declared.raw for k in policy.keys):
        raise _refused(
            folder,
            f"the signature by {declared.fingerprint} does not match {MANIFEST_FILE}: the "
            "manifest (or the files it lists) was changed after it was signed",
            "rebuild the bundle from its run and sign it again",
        )
    raise _refused(
        folder,
        f"the bundle is signed by {declared.fingerprint}, which is not a trusted key "
        f"(trusted: {trusted})",
        "deploy only bundles signed by a trusted key, or add the signer's public key to the "
        "trusted keys",
    )


def _read_manifest(folder: Path) -> bytes:
    try:
        return (folder / MANIFEST_FILE).read_bytes()
    except OSError:
        raise BundleIntegrityError(
            "the bundle has no manifest.json", location=str(folder), fix="rebuild the bundle"
        ) from None


@dataclass(frozen=True)
class Verification:
    """What `verify_bundle` checked: the signature, and every listed file's sha256."""

    signature: SignatureCheck
    files: int
    name: str
    version: int


@contextlib.contextmanager
def _bundle_folder(path: Path, scratch_parent: Path | None = None) -> Any:
    """The bundle folder of `path`: the folder itself, or an archive safely unpacked into a
    temporary folder (removed after)."""
    if path.is_dir():
        yield path
        return
    if not (path.is_file() and path.name.endswith(_ARCHIVE_SUFFIXES)):
        raise BundleError(
            f"no bundle at {path}", fix="give a bundle folder or its .tar.gz (nbops bundle)"
        )
    tmp = tempfile.mkdtemp(prefix=".nbops-bundle-", dir=scratch_parent)
    try:
        yield unpack(path, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_bundle(
    path: str | os.PathLike[str],
    trusted_keys: Iterable[KeySource] = (),
    *,
    require_signature: bool = False,
) -> Verification:
    """Check a bundle folder or archive without running any of it: its signature against the
    trusted keys (plus the environment's, see `trust_policy`), every file's sha256 against
    the signed manifest, then what loading would refuse before running anything (the schema,
    the model's types against the allow-list by name). Raises BundleSignatureError,
    BundleIntegrityError, BundleError."""
    policy = trust_policy(trusted_keys, require_signature)
    with _bundle_folder(Path(path)) as folder:
        manifest_bytes = _read_manifest(folder)
        check = check_signature(folder, manifest_bytes, policy)
        manifest = BundleManifest.from_json(manifest_bytes, location=str(folder / MANIFEST_FILE))
        check_readable(verify_files(folder, manifest), manifest)
        return Verification(check, len(manifest.files), manifest.name, manifest.version)


def _sign_folder(folder: Path, key: Ed25519PrivateKey) -> str:
    manifest_bytes = _read_manifest(folder)
    manifest = BundleManifest.from_json(manifest_bytes, location=str(folder / MANIFEST_FILE))
    verify_files(folder, manifest)  # sign only files that match the manifest
    raw = raw_public_bytes(key.public_key())
    body = {
        "schema_version": 1,
        "kind": _KIND,
        "algorithm": "ed25519",
        "key": base64.b64encode(raw).decode("ascii"),
        "fingerprint": fingerprint(raw),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signature": base64.b64encode(key.sign(SIGNED_PREFIX + manifest_bytes)).decode("ascii"),
    }
    target = folder / SIGNATURE_FILE
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise BundleError(f"{target} is not a regular file", fix="remove it, then sign again")
    try:
        atomic_write_bytes(target, (json.dumps(body, indent=2) + "\n").encode("ascii"), mode=0o644)
    except OSError as e:
        raise BundleError(
            f"cannot write {SIGNATURE_FILE} ({e.strerror or e})",
            location=str(folder),
            fix="check the folder's permissions",
        ) from None
    return fingerprint(raw)


@dataclass(frozen=True)
class Signed:
    """What `sign_bundle` signed: the paths (the folder, and its archive re-packed beside it
    when there is one; or the archive), and the key's fingerprint."""

    paths: tuple[Path, ...]
    fingerprint: str


def sign_bundle(path: str | os.PathLike[str], key: str | os.PathLike[str]) -> Signed:
    """Sign a bundle folder or `.tar.gz` with the private key in the file `key`.

    The bundle's files are checked against its manifest first (a bundle that fails is not
    signed). A folder gets `manifest.sig`, and its `.tar.gz` beside it, if any, is packed again
    from it; an archive is unpacked (safely), signed and packed again in place, atomically.
    An earlier signature is replaced."""
    private = read_private_key(key)
    source = Path(path)
    if source.is_dir():
        fp = _sign_folder(source, private)
        signed = [source]
        beside = archive_path(source)
        if beside.is_file():
            pack(source)
            signed.append(beside)
        return Signed(tuple(signed), fp)
    with _bundle_folder(source, scratch_parent=source.parent) as folder:
        fp = _sign_folder(folder, private)
        packed = pack(folder)
        try:
            os.replace(packed, source)
        except OSError as e:
            raise BundleError(
                f"cannot replace {source} ({e.strerror or e})",
                location=str(source),
                fix="check the folder's permissions",
            ) from None
    return Signed((source,), fp)
