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

Key files. The private key is PEM (PKCS#8, unencrypted) or an OpenSSH ed25519 private key;
`generate_keypair` writes PEM with mode 0600. A public key is a file holding one line,
`ed25519 <base64 of the 32 raw bytes>` (what `generate_keypair` writes), a PEM public key, or
an OpenSSH `ssh-ed25519 AAAA...` line; inline (the environment), the base64 or the
`ssh-ed25519` line itself. Anything else is a KeyFileError (exit 38) naming the file.

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

from nbops._atomic import atomic_path, atomic_write_bytes
from nbops.bundle.manifest import MANIFEST_FILE, BundleManifest
from nbops.errors import (
    BundleError,
    BundleIntegrityError,
    BundleSignatureError,
    ConfigError,
    KeyFileError,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
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

SIGNATURE_FILE = "manifest.sig"
SIGNED_PREFIX = b"nbops-bundle-manifest-v1\x00"
ENV_TRUSTED_KEYS = "NBOPS_TRUSTED_KEYS"
ENV_REQUIRE_SIGNATURE = "NBOPS_REQUIRE_SIGNATURE"
_KIND = "nbops.signature"
_MAX_KEY_BYTES = 64 * 1024
_MAX_SIGNATURE_BYTES = 64 * 1024
_PUBLIC_PREFIX = "ed25519"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_KEY_FIX = "give an ed25519 key file written by `nbops keygen`"


# -- keys ----------------------------------------------------------------------------------------


def fingerprint(raw_public: bytes) -> str:
    """`ed25519:` and the first 16 bytes of the raw public key's sha256, in hex."""
    return f"{_PUBLIC_PREFIX}:{hashlib.sha256(raw_public).hexdigest()[:32]}"


def _raw(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class TrustedKey:
    """A public key the operator trusts, and where it came from (a path, or the env)."""

    raw: bytes
    source: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class KeyPair:
    """What `generate_keypair` wrote."""

    private_path: Path
    public_path: Path
    fingerprint: str


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if not path.is_file():
            raise KeyFileError(
                f"no {what} file at {path}" if not path.exists() else f"{path} is not a file",
                location=str(path),
                fix=_KEY_FIX if what == "private key" else "give the .pub file of a signing key",
            )
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_BYTES + 1)
    except OSError as e:
        raise KeyFileError(
            f"the {what} file cannot be read ({e.strerror or e})",
            location=str(path),
            fix="check the path and its permissions",
        ) from None
    if len(data) > _MAX_KEY_BYTES:
        raise KeyFileError(
            f"the {what} file is over {_MAX_KEY_BYTES} bytes, not a key",
            location=str(path),
            fix=_KEY_FIX,
        )
    return data


def _public_from_text(text: str, source: str) -> bytes:
    """The raw 32 bytes of a public key written as text (see the module docstring)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stripped = text.strip()
    fix = "give the public key (.pub) of an ed25519 key pair from `nbops keygen`"
    if "PRIVATE KEY" in stripped:
        raise KeyFileError(
            "this is a private key, not a public one",
            location=source,
            fix="give the .pub file written beside it; keep the private key off the server",
        )
    if stripped.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped.encode("ascii", "replace"))
        except (ValueError, TypeError) as e:
            raise KeyFileError(
                f"not a readable PEM public key ({e})", location=source, fix=fix
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(
                f"a {type(key).__name__.removeprefix('_')} key, not ed25519",
                location=source,
                fix=fix,
            )
        return _raw(key)
    words = stripped.split()
    if words and words[0].startswith("ssh-"):
        if words[0] != "ssh-ed25519":
            raise KeyFileError(f"a {words[0]} key, not ed25519", location=source, fix=fix)
        try:
            key = serialization.load_ssh_public_key(" ".join(words[:2]).encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError) as e:
            raise KeyFileError(
                f"not a readable ssh-ed25519 key ({e})", location=source, fix=fix
            ) from None
        assert isinstance(key, Ed25519PublicKey)
        return _raw(key)
    if len(words) >= 2 and words[0] == _PUBLIC_PREFIX:
        encoded = words[1]
    elif len(words) == 1:
        encoded = words[0]
    else:
        raise KeyFileError(
            "not a public key: expected one line 'ed25519 BASE64'", location=source, fix=fix
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(
            "not a public key: the key is not valid base64", location=source, fix=fix
        ) from None
    if len(raw) != 32:
        raise KeyFileError(
            f"not an ed25519 public key: {len(raw)} bytes, not 32", location=source, fix=fix
        )
    return raw


def read_public_key(path: str | os.PathLike[str]) -> TrustedKey:
    """A trusted public key from a file; KeyFileError (exit 38) naming it when it is not one."""
    source = Path(path)
    data = _read_key_file(source, "public key")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(
            "not a public key: the file is not text",
            location=str(source),
            fix="give the .pub file of a key pair from `nbops keygen`",
        ) from None
    return TrustedKey(_public_from_text(text, str(source)), str(source))


def _inline_key(entry: str) -> bool:
    stripped = entry.strip()
    if stripped.startswith(("ssh-ed25519 ", f"{_PUBLIC_PREFIX} ")):
        return True
    try:
        return len(base64.b64decode(stripped, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _key_from(entry: str | os.PathLike[str] | TrustedKey, source: str) -> TrustedKey:
    if isinstance(entry, TrustedKey):
        return entry
    if isinstance(entry, str) and _inline_key(entry) and not Path(entry).is_file():
        return TrustedKey(_public_from_text(entry, source), source)
    return read_public_key(entry)


def read_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The signing key in a file (PEM PKCS#8 or OpenSSH); KeyFileError naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    source = Path(path)
    data = _read_key_file(source, "private key")
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key: Any = serialization.load_ssh_private_key(stripped, password=None)
        elif stripped.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(stripped, password=None)
        else:
            is_public = stripped.startswith((b"ssh-", _PUBLIC_PREFIX.encode()))
            raise KeyFileError(
                "this is a public key, not the private key"
                if is_public
                else "not a private key (no PEM or OpenSSH header)",
                location=str(source),
                fix="sign with the private key file written by `nbops keygen` (not the .pub)"
                if is_public
                else _KEY_FIX,
            )
    except TypeError as e:  # encrypted, and no password given
        raise KeyFileError(
            f"the private key cannot be read ({e})",
            location=str(source),
            fix="give an unencrypted key (nbops keygen writes one; keep it in a secret store)",
        ) from None
    except ValueError as e:
        raise KeyFileError(
            f"not a readable private key ({e})", location=str(source), fix=_KEY_FIX
        ) from None
    except Exception as e:  # cryptography's own errors on a damaged or unsupported key
        if isinstance(e, KeyFileError):
            raise
        raise KeyFileError(
            f"not a readable private key ({type(e).__name__})",
            location=str(source),
            fix=_KEY_FIX,
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"a {type(key).__name__.removeprefix('_')} key, not ed25519",
            location=str(source),
            fix=_KEY_FIX,
        )
    return key


def generate_keypair(
    private_path: str | os.PathLike[str],
    public_path: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> KeyPair:
    """Write a new ed25519 private key (PEM, mode 0600) and its public key (`.pub` beside it
    unless `public_path`), each atomically; KeyFileError when either exists and not `force`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(private_path)
    public = Path(public_path) if public_path is not None else private.with_suffix(".pub")
    if private.resolve() == public.resolve():
        raise KeyFileError(
            "the private and the public key would be the same file",
            location=str(private),
            fix="give another --public path",
        )
    if not force:
        for existing in (private, public):
            if existing.exists() or existing.is_symlink():
                raise KeyFileError(
                    "the file already exists; a key is not overwritten",
                    location=str(existing),
                    fix="choose another path, or --force to replace it (bundles signed with "
                    "the old key no longer verify against the new one)",
                )
    for folder in {private.parent, public.parent}:
        if not folder.is_dir():
            raise KeyFileError(
                f"the folder {folder} does not exist",
                location=str(folder),
                fix="create it first, or give another path",
            )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = _raw(key.public_key())
    line = f"{_PUBLIC_PREFIX} {base64.b64encode(raw).decode('ascii')} {fingerprint(raw)}\n"
    try:
        # Both written before either is renamed into place (the public key first on the way out).
        with (
            atomic_path(private, mode=0o600) as private_tmp,
            atomic_path(public, mode=0o644) as public_tmp,
        ):
            private_tmp.write_bytes(pem)
            public_tmp.write_bytes(line.encode("ascii"))
    except OSError as e:
        raise KeyFileError(
            f"cannot write the key files ({e.strerror or e})",
            location=str(private),
            fix="check the folder's permissions and free space",
        ) from None
    return KeyPair(private, public, fingerprint(raw))


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
    keys: list[TrustedKey] = [_key_from(k, str(k)) for k in trusted_keys]
    for entry in env.get(ENV_TRUSTED_KEYS, "").split(os.pathsep):
        if entry.strip():
            keys.append(_key_from(entry.strip(), f"${ENV_TRUSTED_KEYS}"))
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
    from nbops.bundle.archive import unpack

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
    from nbops.bundle.load import check_readable, verify_files

    policy = trust_policy(trusted_keys, require_signature)
    with _bundle_folder(Path(path)) as folder:
        manifest_bytes = _read_manifest(folder)
        check = check_signature(folder, manifest_bytes, policy)
        manifest = BundleManifest.from_json(manifest_bytes, location=str(folder / MANIFEST_FILE))
        check_readable(verify_files(folder, manifest), manifest)
        return Verification(check, len(manifest.files), manifest.name, manifest.version)


def _sign_folder(folder: Path, key: Ed25519PrivateKey) -> str:
    from nbops.bundle.load import verify_files

    manifest_bytes = _read_manifest(folder)
    manifest = BundleManifest.from_json(manifest_bytes, location=str(folder / MANIFEST_FILE))
    verify_files(folder, manifest)  # sign only files that match the manifest
    raw = _raw(key.public_key())
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
    from nbops.bundle.archive import archive_path, pack

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
