"""A zero-byte or damaged runs.db: one error line that suggests `nbops runs repair`, and the
repair rebuilds every run from the record.json files, keeping the damaged file aside."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nbops import errors
from nbops.errors import StoreError
from nbops.runs.store import RunStore
from tests.helpers import run_nbops

from .conftest import make_record


def _zero_bytes(db: Path) -> None:
    db.write_bytes(b"")


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database, it was overwritten " * 200)


def _table_dropped(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE runs")
        connection.execute("CREATE TABLE notes (x TEXT)")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "zero bytes": _zero_bytes,
    "garbage": _garbage,
    "table dropped": _table_dropped,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose store holds three runs, saved through the store (SQLite + record.json)."""
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    store = RunStore(tmp_path / ".nbops")
    for i, status in enumerate(["completed", "failed", "interrupted"]):
        store.save(
            make_record(
                f"20260101-00000{i}-abcde{i}",
                status=status,
                started_at=f"2026-01-01T00:0{i}:00.000+00:00",
                parameters={"rows": i},
            )
        )
    return tmp_path


def _damage(project: Path, how: str) -> None:
    db = project / ".nbops" / "runs.db"
    for side in ("runs.db-wal", "runs.db-shm"):
        (project / ".nbops" / side).unlink(missing_ok=True)
    DAMAGES[how](db)


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_store_is_one_error_line_that_suggests_repair(project: Path, how: str) -> None:
    _damage(project, how)

    listed = run_nbops("runs", "list", cwd=project)

    assert listed.returncode == errors.StoreError.exit_code, listed.stdout + listed.stderr
    (line,) = listed.stderr.strip().splitlines()
    assert "runs.db" in line and "nbops runs repair" in line
    with pytest.raises(StoreError, match="nbops runs repair"):
        RunStore(project / ".nbops")


@pytest.mark.parametrize("how", DAMAGES)
def test_repair_rebuilds_every_run_and_keeps_the_damaged_file(project: Path, how: str) -> None:
    before = run_nbops("runs", "list", cwd=project)
    _damage(project, how)
    damaged = (project / ".nbops" / "runs.db").read_bytes()

    repaired = run_nbops("runs", "repair", cwd=project)
    after = run_nbops("runs", "list", cwd=project)

    assert repaired.returncode == 0, repaired.stderr
    assert "Rebuilt runs.db: 3 runs" in repaired.stdout
    assert after.returncode == 0 and after.stdout == before.stdout
    (kept,) = (project / ".nbops").glob("runs.db.damaged-*[0-9]Z")  # -wal, -shm go with it
    assert kept.name in repaired.stdout and kept.read_bytes() == damaged


def test_repair_keeps_runs_only_the_old_database_still_holds(project: Path) -> None:
    store = RunStore(project / ".nbops")
    lost = store.run_dir("20260101-000001-abcde1") / "record.json"
    lost.unlink()  # a run folder without its record.json

    result = RunStore.repair(project / ".nbops")

    assert (result.runs, result.from_records, result.from_database) == (3, 2, 1)
    assert lost.exists()  # written back from the database's copy
    assert sorted(r.run_id for r in RunStore(project / ".nbops").list()) == [
        "20260101-000000-abcde0",
        "20260101-000001-abcde1",
        "20260101-000002-abcde2",
    ]


def test_a_new_store_without_runs_needs_no_repair(tmp_path: Path) -> None:
    (tmp_path / "runs.db").write_bytes(b"")

    assert RunStore(tmp_path).list() == []
