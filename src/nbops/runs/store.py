"""The embedded run store: a SQLite database and a folder per run, under `.nbops/`.

    .nbops/runs.db                 one row per run: id, notebook, status, start, the record
    .nbops/runs/<run id>/          output.ipynb, events.jsonl (the capture sidecar),
                                   artifacts/, models/, record.json (a copy of the record)

The database runs in WAL mode with a busy timeout, and every write is one short transaction
on its own connection, so many runs (threads or processes) can write at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nbops.errors import RunNotFoundError, StoreError
from nbops.runs.capture import read_events
from nbops.runs.record import RunRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RunStore:
    """Runs of one project, kept in `directory` (the project's `.nbops/`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db_path = directory / "runs.db"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._use_wal()
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the run store ({exc})",
                location=str(self.db_path),
                fix="check that the folder is writable, or move the damaged runs.db aside",
            ) from None

    def _use_wal(self, wait_s: float = 60.0) -> None:
        """Switch the database to WAL once. The switch takes no busy timeout of its own, so
        it is retried while another process holds the database (a sweep's first runs)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with self._connect() as db:
                    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
                    if mode != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def for_project(cls, start: Path | None = None) -> RunStore:
        from nbops.config import load_project

        return cls(load_project(start).store_dir)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=60)
        try:
            db.execute("PRAGMA busy_timeout=60000")
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for queries; a damaged database is a StoreError, not a traceback."""
        try:
            with self._connect() as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot read the run store ({exc})",
                location=str(self.db_path),
                fix="move the damaged runs.db aside; the run folders next to it keep record.json",
            ) from None

    def run_dir(self, run_id: str) -> Path:
        return self.directory / "runs" / run_id

    def save(self, record: RunRecord) -> None:
        """Insert or replace a run's record (and write its record.json copy)."""
        text = record.model_dump_json()
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT OR REPLACE INTO runs (run_id, notebook, status, started_at, record)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.run_id, record.notebook, record.status, record.started_at, text),
                )
            folder = self.run_dir(record.run_id)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "record.json.tmp"
            tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
            tmp.replace(folder / "record.json")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot save run {record.run_id} ({exc})", location=str(self.db_path)
            ) from None

    def load(self, ref: str) -> RunRecord:
        """A run by id, a unique start or end of its id (`064d2f`), or `latest`."""
        if not ref.replace("%", "").replace("_", "").strip():
            raise RunNotFoundError(f"no run {ref!r}", fix="give a run id (see `nbops runs list`)")
        with self._reading() as db:
            if ref == "latest":
                rows = db.execute(
                    "SELECT record FROM runs ORDER BY started_at DESC LIMIT 1"
                ).fetchall()
            else:
                exact = db.execute("SELECT record FROM runs WHERE run_id = ?", (ref,)).fetchall()
                clean = ref.replace("%", "").replace("_", "")
                rows = (
                    exact
                    or db.execute(
                        "SELECT record FROM runs WHERE run_id LIKE ? OR run_id LIKE ? LIMIT 2",
                        (clean + "%", "%" + clean),
                    ).fetchall()
                )
        if not rows:
            raise RunNotFoundError(
                f"no run {ref!r} in {self.db_path}", fix="see `nbops runs list` for run ids"
            )
        if len(rows) > 1:
            raise RunNotFoundError(
                f"{ref!r} matches more than one run", fix="give more characters of the run id"
            )
        return self._live(RunRecord.model_validate_json(rows[0][0]))

    def list(self, limit: int = 50, notebook: str | None = None) -> list[RunRecord]:
        """The newest runs first."""
        query, args = "SELECT record FROM runs", []
        if notebook:
            query += " WHERE notebook = ?"
            args.append(notebook)
        query += " ORDER BY started_at DESC LIMIT ?"
        args.append(str(limit))
        with self._reading() as db:
            rows = db.execute(query, args).fetchall()
        return [self._live(RunRecord.model_validate_json(r[0])) for r in rows]

    def _live(self, record: RunRecord) -> RunRecord:
        """An unfinished run's record with what its sidecar holds so far."""
        if record.status == "running":
            record.apply_events(read_events(self.run_dir(record.run_id)))
        return record

    def start_interactive_run(self, run_id: str, notebook: str = "(interactive)") -> RunRecord:
        record = RunRecord(run_id=run_id, mode="interactive", notebook=notebook, started_at=now())
        self.save(record)
        return record
