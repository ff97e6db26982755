"""ed25519 key files for signing bundles: reading a private or a public key, and generating a
key pair (nbops.bundle.signing signs and verifies with them).

The private key is PEM (PKCS#8, unencrypted) or an OpenSSH ed25519 private key;
`generate_keypair` writes PEM with mode 0600. A public key is a file holding one line,
`ed25519 <base64 of the 32 raw bytes>` (what `generate_keypair` writes), a PEM public key, or
an OpenSSH `ssh-ed25519 AAAA...` line; inline (the environment), the base64 or the
`ssh-ed25519` line itself. Anything else is a KeyFileError (exit 38) naming the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops._atomic import atomic_path
from nbops.errors import KeyFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "KeyPair",
    "TrustedKey",
    "fingerprint",
    "generate_keypair",
    "read_private_key",
    "read_public_key",
]

_MAX_KEY_BYTES = 64 * 1024
_PUBLIC_PREFIX = "ed25519"
_KEY_FIX = "give an ed25519 key file written by `nbops keygen`"


def fingerprint(raw_public: bytes) -> str:
    """`ed25519:` and the first 16 bytes of the raw public key's sha256, in hex."""
    return f"{_PUBLIC_PREFIX}:{hashlib.sha256(raw_public).hexdigest()[:32]}"


def raw_public_bytes(public: Ed25519PublicKey) -> bytes:
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
        return raw_public_bytes(key)
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
        return raw_public_bytes(key)
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


def trusted_key_from(entry: str | os.PathLike[str] | TrustedKey, source: str) -> TrustedKey:
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
    raw = raw_public_bytes(key.public_key())
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
