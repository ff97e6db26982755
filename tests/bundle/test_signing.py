"""Signed bundles: who may run code on this machine.

Loading a bundle imports its `code/`; the manifest's hashes live in the bundle, so anyone who
can rewrite a file can rewrite its hash. A signature over the manifest, checked against a
public key given outside the bundle, says who made it. Each attack below rewrites a file and
the manifest's hashes (as an attacker would), and plants code that leaves a marker file when
imported: refused means the marker never appears.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.bundle.archive import pack
from nbops.bundle.keys import generate_keypair, read_private_key, read_public_key
from nbops.bundle.load import load_bundle
from nbops.bundle.signing import SIGNATURE_FILE, sign_bundle, trust_policy, verify_bundle
from nbops.errors import BundleIntegrityError, BundleSignatureError, ConfigError, KeyFileError
from tests.helpers import run_nbops

from .conftest import Built, rows


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path
    fingerprint: str


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    pair = generate_keypair(folder / "release.key")
    return Keys(pair.private_path, pair.public_path, pair.fingerprint)


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("other-keys")
    pair = generate_keypair(folder / "attacker.key")
    return Keys(pair.private_path, pair.public_path, pair.fingerprint)


@pytest.fixture(autouse=True)
def _no_trust_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBOPS_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("NBOPS_REQUIRE_SIGNATURE", raising=False)


def plant_code(folder: Path, marker: Path) -> None:
    """Add code to the bundled package that writes `marker` when imported, and rewrite the
    manifest's hash of that file — every hash in the manifest matches the files after."""
    rel = "code/tiny/__init__.py"
    target = folder / rel
    target.write_text(target.read_text() + f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][rel] = hashlib.sha256(target.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


# -- keys ----------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_a_public_key(
    tmp_path: Path,
) -> None:
    pair = generate_keypair(tmp_path / "k.key")
    assert pair.public_path == tmp_path / "k.pub"
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in (tmp_path / "k.key").read_text()
    assert "PRIVATE" not in (tmp_path / "k.pub").read_text()
    assert read_public_key(pair.public_path).fingerprint == pair.fingerprint
    private = read_private_key(pair.private_path)
    assert read_public_key(pair.public_path).verifies(private.sign(b"m"), b"m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.pub"]  # no temp left


@pytest.mark.parametrize("existing", ["k.key", "k.pub"])
def test_keygen_refuses_to_overwrite_a_key_unless_forced(tmp_path: Path, existing: str) -> None:
    generate_keypair(tmp_path / "k.key")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    if existing == "k.pub":
        (tmp_path / "k.key").unlink()
        before.pop("k.key")
    with pytest.raises(KeyFileError, match="already exists") as refused:
        generate_keypair(tmp_path / "k.key")
    assert refused.value.exit_code == 38 and "--force" in str(refused.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    replaced = generate_keypair(tmp_path / "k.key", force=True)
    assert (tmp_path / "k.pub").read_bytes() != before.get("k.pub")
    assert read_public_key(tmp_path / "k.pub").fingerprint == replaced.fingerprint


def _rsa_pem(private: bool) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


BAD_PUBLIC = {
    "missing": None,
    "empty": b"",
    "not text": b"\xff\xfe\x00binary",
    "garbage": b"hello world, this is not a key\n",
    "short base64": b"ed25519 " + base64.b64encode(b"x" * 31) + b"\n",
    "rsa pem": "rsa-public",
    "rsa ssh": b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ comment\n",
    "a private key": "private",
    "huge": b"A" * 70_000,
}


@pytest.mark.parametrize("kind", list(BAD_PUBLIC))
def test_a_trusted_key_that_is_not_an_ed25519_public_key_is_one_line_exit_38(
    tmp_path: Path, keys: Keys, kind: str
) -> None:
    path = tmp_path / "trusted.pub"
    content = BAD_PUBLIC[kind]
    if content == "rsa-public":
        content = _rsa_pem(private=False)
    elif content == "private":
        content = keys.private.read_bytes()
    if content is not None:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(KeyFileError) as refused:
        read_public_key(path)
    assert refused.value.exit_code == 38
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("kind", ["missing", "a public key", "garbage", "rsa", "a folder"])
def test_a_signing_key_that_is_not_an_ed25519_private_key_is_one_line_exit_38(
    tmp_path: Path, keys: Keys, kind: str
) -> None:
    path = tmp_path / "signing.key"
    if kind == "a public key":
        path.write_bytes(keys.public.read_bytes())
    elif kind == "garbage":
        path.write_bytes(
            b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n"
        )
    elif kind == "rsa":
        path.write_bytes(_rsa_pem(private=True))
    elif kind == "a folder":
        path.mkdir()
    with pytest.raises(KeyFileError) as refused:
        read_private_key(path)
    assert refused.value.exit_code == 38 and str(path) in str(refused.value)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200) | st.sampled_from(["ed25519 ", "ssh-ed25519 AAAA", "-----BEGIN"]))
def test_any_public_key_text_is_read_or_refused_as_a_key_file_error(text: str) -> None:
    from nbops.bundle.keys import _public_from_text

    try:
        raw = _public_from_text(text, "inline")
    except KeyFileError as e:
        assert e.exit_code == 38 and "inline" in str(e)
    else:
        assert len(raw) == 32


# -- loading -------------------------------------------------------------------------------------


def test_a_signed_bundle_loads_verified_by_its_key_and_predicts(
    bundle_copy: Path, built: Built, keys: Keys
) -> None:
    signed = sign_bundle(bundle_copy, keys.private)
    assert signed.fingerprint == keys.fingerprint and (bundle_copy / SIGNATURE_FILE).is_file()
    bundle = load_bundle(bundle_copy, trusted_keys=[keys.public], require_signature=True)
    assert bundle.signature.verified and bundle.signature.fingerprint == keys.fingerprint
    np.testing.assert_array_equal(
        bundle.predict(built.requests), built.model.predict(built.features)
    )


@pytest.mark.parametrize("require", [False, True], ids=["trusted-key", "trusted-key+required"])
def test_a_file_and_its_manifest_hash_rewritten_after_signing_are_refused_before_any_import(
    bundle_copy: Path, keys: Keys, tmp_path: Path, require: bool
) -> None:
    sign_bundle(bundle_copy, keys.private)
    marker = tmp_path / "pwned"
    plant_code(bundle_copy, marker)
    with pytest.raises(BundleSignatureError, match="changed after it was signed") as refused:
        load_bundle(bundle_copy, trusted_keys=[keys.public], require_signature=require)
    assert refused.value.exit_code == 37
    assert not marker.exists()


def test_a_signature_removed_with_the_rewrite_is_refused_when_a_signature_is_required(
    bundle_copy: Path, keys: Keys, tmp_path: Path
) -> None:
    sign_bundle(bundle_copy, keys.private)
    marker = tmp_path / "pwned"
    plant_code(bundle_copy, marker)
    (bundle_copy / SIGNATURE_FILE).unlink()
    with pytest.raises(BundleSignatureError, match="not signed"):
        load_bundle(bundle_copy, trusted_keys=[keys.public], require_signature=True)
    assert not marker.exists()


def test_a_bundle_rewritten_and_signed_again_by_another_key_is_refused(
    bundle_copy: Path, keys: Keys, other_keys: Keys, tmp_path: Path
) -> None:
    sign_bundle(bundle_copy, keys.private)
    marker = tmp_path / "pwned"
    plant_code(bundle_copy, marker)
    sign_bundle(bundle_copy, other_keys.private)
    for require in (False, True):
        with pytest.raises(BundleSignatureError, match="not a trusted key") as refused:
            load_bundle(bundle_copy, trusted_keys=[keys.public], require_signature=require)
        assert other_keys.fingerprint in str(refused.value)
    assert not marker.exists()


def test_an_unsigned_bundle_is_refused_when_a_signature_is_required(bundle_copy: Path) -> None:
    with pytest.raises(BundleSignatureError, match="not signed") as refused:
        load_bundle(bundle_copy, require_signature=True)
    assert "nbops bundle sign" in str(refused.value)


def test_an_unsigned_bundle_loads_as_unsigned_when_no_signature_is_required(
    bundle_copy: Path, keys: Keys
) -> None:
    bundle = load_bundle(bundle_copy, trusted_keys=[keys.public])
    assert bundle.signature.status == "unsigned" and not bundle.signature.verified


def test_a_signed_bundle_with_no_trusted_key_is_unverified_and_refused_when_required(
    bundle_copy: Path, keys: Keys
) -> None:
    sign_bundle(bundle_copy, keys.private)
    bundle = load_bundle(bundle_copy)
    assert bundle.signature.status == "unverified"
    assert bundle.signature.fingerprint == keys.fingerprint
    with pytest.raises(BundleSignatureError, match="no trusted key"):
        load_bundle(bundle_copy, require_signature=True)


def test_a_manifest_changed_after_signing_is_refused_even_with_no_trusted_key(
    bundle_copy: Path, keys: Keys, tmp_path: Path
) -> None:
    sign_bundle(bundle_copy, keys.private)
    marker = tmp_path / "pwned"
    plant_code(bundle_copy, marker)
    with pytest.raises(BundleSignatureError, match="changed after it was signed"):
        load_bundle(bundle_copy)
    assert not marker.exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.binary(max_size=300)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(["kind", "schema_version", "algorithm", "signature", "key"]),
            st.one_of(st.none(), st.integers(), st.text(max_size=90), st.just("nbops.signature")),
        ),
    )
)
def test_a_damaged_signature_file_is_always_refused_as_a_signature_error(
    bundle_copy: Path, keys: Keys, content: bytes
) -> None:
    (bundle_copy / SIGNATURE_FILE).write_bytes(content)
    for trusted in ([], [keys.public]):
        with pytest.raises(BundleSignatureError) as refused:
            verify_bundle(bundle_copy, trusted)
        assert refused.value.exit_code == 37 and "\n" not in str(refused.value)


def test_trusted_keys_and_the_requirement_come_from_the_environment(
    bundle_copy: Path, keys: Keys, other_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_bundle(bundle_copy, keys.private)
    inline = keys.public.read_text().split()[1]  # the base64 alone, as a container gets it
    monkeypatch.setenv("NBOPS_TRUSTED_KEYS", os.pathsep.join([str(other_keys.public), inline]))
    monkeypatch.setenv("NBOPS_REQUIRE_SIGNATURE", "1")
    assert load_bundle(bundle_copy).signature.fingerprint == keys.fingerprint
    (bundle_copy / SIGNATURE_FILE).unlink()
    with pytest.raises(BundleSignatureError, match="not signed"):
        load_bundle(bundle_copy)
    monkeypatch.setenv("NBOPS_REQUIRE_SIGNATURE", "perhaps")
    with pytest.raises(ConfigError, match="NBOPS_REQUIRE_SIGNATURE"):
        trust_policy()
    monkeypatch.setenv("NBOPS_TRUSTED_KEYS", str(keys.private))
    monkeypatch.setenv("NBOPS_REQUIRE_SIGNATURE", "0")
    with pytest.raises(KeyFileError, match="private key"):
        load_bundle(bundle_copy)


# -- signing -------------------------------------------------------------------------------------


def test_signing_a_folder_packs_its_archive_again_signed(
    bundle_copy: Path, keys: Keys, tmp_path: Path
) -> None:
    archive = pack(bundle_copy)
    signed = sign_bundle(bundle_copy, keys.private)
    assert signed.paths == (bundle_copy, archive)
    with load_bundle(archive, trusted_keys=[keys.public], require_signature=True) as bundle:
        assert bundle.signature.verified


def test_signing_an_archive_signs_it_in_place_and_a_rewritten_archive_is_refused(
    bundle_copy: Path, keys: Keys, other_keys: Keys, tmp_path: Path
) -> None:
    archive = pack(bundle_copy)
    sign_bundle(archive, keys.private)
    assert sorted(p.name for p in archive.parent.iterdir()) == ["tiny-v1", "tiny-v1.tar.gz"]
    result = verify_bundle(archive, [keys.public], require_signature=True)
    assert result.signature.verified and result.files > 5
    # the attacker unpacks it, plants code, fixes the hash, packs it again
    import shutil

    shutil.rmtree(bundle_copy)
    from nbops.bundle.archive import unpack

    evil = unpack(archive, tmp_path / "work")
    marker = tmp_path / "pwned"
    plant_code(evil, marker)
    os.replace(pack(evil), archive)
    with pytest.raises(BundleSignatureError):
        load_bundle(archive, trusted_keys=[keys.public, other_keys.public])
    assert not marker.exists()


def test_a_bundle_whose_files_differ_from_its_manifest_is_not_signed(
    bundle_copy: Path, keys: Keys
) -> None:
    (bundle_copy / "schema.json").write_text("{}")
    with pytest.raises(BundleIntegrityError, match=r"schema\.json"):
        sign_bundle(bundle_copy, keys.private)
    assert not (bundle_copy / SIGNATURE_FILE).exists()


def test_verify_checks_every_file_against_the_signed_manifest_without_importing_code(
    bundle_copy: Path, keys: Keys, tmp_path: Path
) -> None:
    sign_bundle(bundle_copy, keys.private)
    (bundle_copy / "code" / "tiny" / "__init__.py").write_text("open('x','w')\n")
    with pytest.raises(BundleIntegrityError, match=r"code/tiny/__init__\.py"):
        verify_bundle(bundle_copy, [keys.public], require_signature=True)


# -- the command line and a served bundle --------------------------------------------------------


@pytest.mark.slow
def test_cli_keygen_sign_and_predict_refuse_a_tampered_bundle(
    bundle_copy: Path, built: Built, tmp_path: Path
) -> None:
    made = run_nbops("keygen", "ops.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    again = run_nbops("keygen", "ops.key", cwd=tmp_path)
    assert again.returncode == 38 and again.stderr.count("\n") == 1, again.stderr
    built.requests.head(10).to_csv(tmp_path / "batch.csv", index=False)

    unsigned = run_nbops(
        "predict", str(bundle_copy), "batch.csv", "--require-signature",
        "--trusted-key", "ops.pub", cwd=tmp_path,
    )  # fmt: skip
    assert unsigned.returncode == 37 and "not signed" in unsigned.stderr
    assert "Traceback" not in unsigned.stderr

    signed = run_nbops("bundle", "sign", str(bundle_copy), "--key", "ops.key", cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    scored = run_nbops(
        "predict", str(bundle_copy), "batch.csv", "--require-signature",
        "--trusted-key", "ops.pub", cwd=tmp_path,
    )  # fmt: skip
    assert scored.returncode == 0 and "warning" not in scored.stderr, scored.stderr

    marker = tmp_path / "pwned"
    plant_code(bundle_copy, marker)
    refused = run_nbops(
        "predict", str(bundle_copy), "batch.csv", "--trusted-key", "ops.pub", cwd=tmp_path
    )
    assert refused.returncode == 37, refused.stderr
    assert refused.stderr.startswith("nbops: error:") and refused.stderr.count("\n") == 1
    assert not marker.exists()
    verified = run_nbops(
        "bundle", "verify", str(bundle_copy), "--trusted-key", "ops.pub", cwd=tmp_path
    )
    assert verified.returncode == 37, verified.stderr


@pytest.mark.slow
def test_cli_refuses_an_unsigned_bundle_when_the_project_requires_signatures(
    bundle_copy: Path, built: Built, tmp_path: Path, keys: Keys
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.nbops]\nrequire_signature = true\ntrusted_keys = ["{keys.public}"]\n'
    )
    built.requests.head(5).to_csv(project / "batch.csv", index=False)
    refused = run_nbops("predict", str(bundle_copy), "batch.csv", cwd=project)
    assert refused.returncode == 37 and "not signed" in refused.stderr, refused.stderr
    sign_bundle(bundle_copy, keys.private)
    scored = run_nbops("predict", str(bundle_copy), "batch.csv", cwd=project)
    assert scored.returncode == 0, scored.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(bundle_copy: Path, keys: Keys, tmp_path: Path) -> Iterator[str]:
    sign_bundle(bundle_copy, keys.private)
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed after the server stops
    env = {**os.environ, "NBOPS_TRUSTED_KEYS": str(keys.public), "NBOPS_REQUIRE_SIGNATURE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "serve", str(bundle_copy), "--port", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"no /health (exit {proc.poll()}): {(tmp_path / 'serve.log').read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_a_served_signed_bundle_says_which_key_verified_it_and_predicts(
    served: str, built: Built, keys: Keys
) -> None:
    health = httpx.get(f"{served}/health", timeout=10).json()
    assert health["signature"] == {"status": "verified", "key": keys.fingerprint}
    records = rows(built.requests.head(8))
    answer = httpx.post(f"{served}/predict", json={"records": records}, timeout=30)
    assert answer.status_code == 200, answer.text
    expected = built.model.predict(built.features.head(8)).tolist()
    assert answer.json()["predictions"] == expected


@pytest.mark.slow
def test_serve_refuses_a_bundle_signed_by_an_untrusted_key_with_one_line(
    bundle_copy: Path, other_keys: Keys, keys: Keys, tmp_path: Path
) -> None:
    sign_bundle(bundle_copy, other_keys.private)
    refused = run_nbops(
        "serve", str(bundle_copy), "--port", str(_free_port()), "--trusted-key", str(keys.public),
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 37, refused.stderr
    assert "not a trusted key" in refused.stderr and refused.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["a link", "a folder"])
def test_a_signature_that_is_not_a_regular_file_is_refused(
    bundle_copy: Path, keys: Keys, tmp_path: Path, kind: str
) -> None:
    sign_bundle(bundle_copy, keys.private)
    signature = bundle_copy / SIGNATURE_FILE
    if kind == "a link":
        os.replace(signature, tmp_path / "elsewhere.sig")
        signature.symlink_to(tmp_path / "elsewhere.sig")
    else:
        signature.unlink()
        signature.mkdir()
    with pytest.raises(BundleSignatureError, match=SIGNATURE_FILE):
        load_bundle(bundle_copy, trusted_keys=[keys.public])
