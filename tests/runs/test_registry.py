"""The model registry (nbops.runs.registry): versions, aliases as holder stacks, who/when/why,
the journal that `RunStore.repair` replays. Bundles are only paths and manifest facts here."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import RegistryError, StoreError
from nbops.runs.registry import Registry, check_alias, parse_ref
from nbops.runs.store import RunStore


def _registry(tmp_path: Path) -> Registry:
    return Registry(RunStore(tmp_path / ".nbops"))


def _register(registry: Registry, version: int, name: str = "penguins") -> None:
    registry.register(
        name=name,
        version=version,
        bundle_path=f"/bundles/{name}-v{version}",
        manifest_sha256=f"{version:064x}",
        run_id=f"run-{version}",
        metrics={"accuracy": 0.9 + version / 100},
    )


def test_rollback_goes_back_one_promotion_at_a_time_never_back_and_forth(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    for v in (1, 2, 3):
        _register(registry, v)
        registry.set_alias("penguins", "production", v, reason=f"ship {v}")

    first = registry.rollback("penguins", "production", reason="alerts")
    second = registry.rollback("penguins", "production")

    assert (first.previous, first.current) == (3, 2)
    assert (second.previous, second.current) == (2, 1)
    assert registry.get("penguins", "production").version == 1
    with pytest.raises(RegistryError, match="no previous holder"):
        registry.rollback("penguins", "production")


def test_a_promotion_after_a_rollback_is_rolled_back_to_the_holder_before_it(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    for v in (1, 2, 3):
        _register(registry, v)
    registry.set_alias("penguins", "production", 1)
    registry.set_alias("penguins", "production", 2)
    registry.rollback("penguins", "production")  # back to 1
    registry.set_alias("penguins", "production", 3)

    assert registry.rollback("penguins", "production").current == 1


def test_every_change_is_recorded_with_who_when_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_ACTOR", "airflow:loop/run-7")
    registry = _registry(tmp_path)
    _register(registry, 1)
    _register(registry, 2)
    registry.set_alias("penguins", "production", 1, reason="first deploy")
    registry.set_alias("penguins", "production", 2, reason="better", detail={"diff": 0.03})
    registry.record_refusal("penguins", "production", 1, reason="gate", detail={"p": 0.4})
    registry.rollback("penguins", "production", reason="alerts")

    events = registry.history("penguins")

    assert [(e.action, e.alias, e.version, e.previous, e.reason) for e in events] == [
        ("register", None, 1, None, None),
        ("register", None, 2, None, None),
        ("promote", "production", 1, None, "first deploy"),
        ("promote", "production", 2, 1, "better"),
        ("refused", "production", 1, None, "gate"),
        ("rollback", "production", 1, 2, "alerts"),
    ]
    assert {e.who for e in events} == {"airflow:loop/run-7"}
    assert events[3].detail == {"diff": 0.03}
    assert all(e.at.endswith("+00:00") for e in events)


def test_registering_a_version_again_with_the_same_manifest_is_a_no_op(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry, 1)
    _register(registry, 1)

    assert len(registry.versions("penguins")) == 1
    assert [e.action for e in registry.history("penguins")] == ["register"]


def test_registering_another_manifest_under_a_registered_version_is_refused(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    _register(registry, 1)
    with pytest.raises(RegistryError, match=r"penguins v1 is registered from /bundles/penguins-v1"):
        registry.register(
            name="penguins",
            version=1,
            bundle_path="/elsewhere/penguins-v1",
            manifest_sha256="f" * 64,
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.get("gentoo", "production"), "no model 'gentoo' in the registry"),
        (lambda r: r.get("penguins", "9"), "penguins has no version 9"),
        (lambda r: r.get("penguins", "staging"), "penguins has no alias 'staging'"),
        (lambda r: r.set_alias("penguins", "production", 9), "penguins has no version 9"),
        (lambda r: r.set_alias("penguins", "Prod", 1), "'Prod' is not an alias name"),
        (lambda r: r.rollback("penguins", "staging"), "staging of penguins is not set"),
    ],
    ids=["model", "version", "alias", "promote-version", "alias-name", "rollback-unset"],
)
def test_what_the_registry_cannot_do_is_a_registry_error(
    tmp_path: Path, call: object, message: str
) -> None:
    registry = _registry(tmp_path)
    _register(registry, 1)
    with pytest.raises(RegistryError, match=message):
        call(registry)  # type: ignore[operator]


@given(st.text(max_size=45))
def test_alias_names_are_lower_case_words_that_are_never_a_version_number(text: str) -> None:
    valid = (
        0 < len(text) <= 40
        and text[0] in "abcdefghijklmnopqrstuvwxyz"
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in text)
    )
    if valid:
        assert check_alias(text) == text
        assert parse_ref(f"m@{text}") == ("m", None, text)
    else:
        with pytest.raises(RegistryError):
            check_alias(text)


def test_a_reference_with_a_number_names_a_version() -> None:
    assert parse_ref("a@b@12") == ("a@b", 12, None)
    for bad in ("penguins", "@production", "penguins@", "penguins@0"):
        with pytest.raises(RegistryError):
            parse_ref(bad)


def test_the_registry_survives_a_zeroed_database_through_repair(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for v in (1, 2):
        _register(registry, v)
        registry.set_alias("penguins", "production", v, reason=f"ship {v}")
    registry.set_alias("penguins", "staging", 1)
    registry.set_mlflow_version("penguins", 2, "7")
    before = (registry.versions(), registry.history("penguins"))
    (tmp_path / ".nbops" / "runs.db").write_bytes(b"")

    with pytest.raises(StoreError, match="nbops runs repair"):
        RunStore(tmp_path / ".nbops")  # an empty database is damage, not a fresh registry
    repaired = RunStore.repair(tmp_path / ".nbops")

    after = Registry(RunStore(tmp_path / ".nbops"))
    assert repaired.registry_events == len(before[1])
    assert (after.versions(), after.history("penguins")) == before
    assert after.get("penguins", "production").mlflow_version == "7"
    assert after.rollback("penguins", "production").current == 1  # the stack came back too


def test_the_journal_is_written_before_the_database(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry, 1)
    registry.set_alias("penguins", "production", 1, reason="first")

    lines = [json.loads(x) for x in registry.journal.read_text().splitlines()]
    assert [line["event"]["action"] for line in lines] == ["register", "promote"]
    assert lines[0]["model_version"]["manifest_sha256"] == f"{1:064x}"


def test_concurrent_promotions_each_record_the_holder_they_replaced(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for v in range(1, 9):
        _register(registry, v)
    threads = [
        threading.Thread(target=registry.set_alias, args=("penguins", "production", v))
        for v in range(1, 9)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    promotions = [e for e in registry.history("penguins") if e.action == "promote"]
    assert len(promotions) == 8
    assert [e.previous for e in promotions[1:]] == [e.version for e in promotions[:-1]]
