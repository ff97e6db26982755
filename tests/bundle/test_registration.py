"""Bundles into the registry (nbops.bundle.registration): a build is registered whatever the
signature policy; a promotion is verified under it, before the alias moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.bundle.keys import generate_keypair
from nbops.bundle.registration import promote, register_bundle
from nbops.bundle.signing import sign_bundle
from nbops.errors import BundleSignatureError
from nbops.runs.registry import Registry
from nbops.runs.store import RunStore


def test_a_fresh_build_registers_under_a_required_signature_but_is_not_promoted(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_REQUIRE_SIGNATURE", "1")
    registry = Registry(RunStore(tmp_path / ".nbops"))

    registered = register_bundle(bundle_copy, registry, verify=False)

    assert (registered.name, registered.version, registered.signed_by) == ("tiny", 1, None)
    with pytest.raises(BundleSignatureError, match="not signed"):
        promote(bundle_copy, "production", registry=registry)
    assert [e.action for e in registry.history("tiny")] == ["register"]


def test_the_signer_of_a_bundle_is_registered(bundle_copy: Path, tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path / "ops.key")
    sign_bundle(bundle_copy, pair.private_path)
    registry = Registry(RunStore(tmp_path / ".nbops"))

    change = promote(
        bundle_copy, "production", registry=registry, trust={"trusted_keys": [pair.public_path]}
    )

    assert (change.previous, change.current) == (None, 1)
    assert registry.get("tiny", "production").signed_by == pair.fingerprint
