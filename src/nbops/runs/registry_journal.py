"""The model registry's journal, `.nbops/registry.jsonl`: one JSON line per change, what
`apply_entry` writes into the registry's tables of runs.db, and `replay_journal` replays into
a rebuilt database (`RunStore.repair`). Lines: `{"event": {...}, "model_version": {...}}`
(a registration carries the version's row) or `{"mlflow": {name, version, mlflow_version}}`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

COLUMNS = (
    "name, version, bundle_path, manifest_sha256, run_id, signed_by, metrics, mlflow_version,"
    " registered_at, registered_by"
)


def apply_entry(db: sqlite3.Connection, entry: dict[str, Any]) -> None:
    """Apply one journal entry to the tables (a new change, or a replayed one)."""
    if "mlflow" in entry:
        m = entry["mlflow"]
        db.execute(
            "UPDATE model_versions SET mlflow_version = ? WHERE name = ? AND version = ?",
            (m["mlflow_version"], m["name"], m["version"]),
        )
        return
    mv = entry.get("model_version")
    if mv is not None:
        db.execute(
            f"INSERT OR REPLACE INTO model_versions ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                mv["name"],
                mv["version"],
                mv["bundle_path"],
                mv["manifest_sha256"],
                mv.get("run_id"),
                mv.get("signed_by"),
                json.dumps(mv.get("metrics") or {}),
                mv.get("mlflow_version"),
                mv["registered_at"],
                mv["registered_by"],
            ),
        )
    e = entry["event"]
    db.execute(
        "INSERT INTO registry_events (at, who, action, name, alias, version, previous, reason,"
        " detail) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            e["at"],
            e["who"],
            e["action"],
            e["name"],
            e.get("alias"),
            e.get("version"),
            e.get("previous"),
            e.get("reason"),
            json.dumps(e.get("detail") or {}, ensure_ascii=False),
        ),
    )
    if e["action"] in ("promote", "rollback") and e.get("alias"):
        db.execute(
            "INSERT INTO model_aliases (name, alias, version, set_at) VALUES (?,?,?,?)"
            " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version,"
            " set_at = excluded.set_at",
            (e["name"], e["alias"], e["version"], e["at"]),
        )


def replay_journal(db_path: Path, journal: Path) -> int:
    """Rebuild the registry's tables of the database `db_path` (a fresh one) from the
    journal; returns the events replayed. Lines that cannot be read (a torn last line) are
    skipped."""
    if not journal.is_file():
        return 0
    events = 0
    with sqlite3.connect(db_path, timeout=60) as db:
        db.execute("DELETE FROM registry_events")
        db.execute("DELETE FROM model_aliases")
        db.execute("DELETE FROM model_versions")
        for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                apply_entry(db, entry)
            except (ValueError, KeyError, TypeError, sqlite3.Error):
                continue
            events += "event" in entry
    db.close()
    return events
