"""The embedded run store: a SQLite database and a folder per run, under `.nbops/`.

    .nbops/runs.db                 one row per run: id, notebook, status, start, the record
    .nbops/runs/<run id>/          output.ipynb, events.jsonl (the capture sidecar),
                                   artifacts/, models/, record.json (a copy of the record)
    .nbops/registry.jsonl          the model registry's journal (nbops.runs.registry): its
                                   tables (model_versions, model_aliases, registry_events)
                                   live in runs.db, every change also appended here first

The database runs in WAL mode with a busy timeout, and every write is one short transaction
on its own connection, so many runs (threads or processes) can write at once.

The database is an index: every run's record.json holds the same record, so a damaged
runs.db (zero bytes, not a database, its table gone) is rebuilt from them by `repair`
(`nbops runs repair`), which every damaged-store error suggests; the registry's tables are
rebuilt from its journal. An empty database next to run folders (or a registry journal) is
damage too, never a fresh store: opening it would hide every run and model version.

Readers judge runs still marked `running` (liveness.py): one whose process is gone is stored
as `killed` (or `abandoned`), with its partial output notebook redacted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nbops.config import load_project
from nbops.errors import DiskFullError, RunNotFoundError, StoreError
from nbops.runs.events import read_events
from nbops.runs.files import clear_mark, disk_full, release_space, write_text
from nbops.runs.liveness import owner_gone
from nbops.runs.output import redact_left_output
from nbops.runs.record import RunRecord
from nbops.runs.registry_journal import replay_journal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    bundle_path TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    run_id TEXT,
    signed_by TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    mlflow_version TEXT,
    registered_at TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS registry_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT NOT NULL,
    alias TEXT,
    version INTEGER,
    previous INTEGER,
    reason TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS registry_events_alias ON registry_events (name, alias, id);
PRAGMA user_version = 2;
"""
REGISTRY_JOURNAL = "registry.jsonl"  # every registry change, replayed by `repair`


RECORD_FILE = "record.json"
REPAIR_FIX = (
    "run `nbops runs repair`: it rebuilds runs.db from the runs' record.json files and keeps "
    "the damaged file as runs.db.damaged-<time>"
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Repair:
    """What `RunStore.repair` did."""

    runs: int  # runs in the rebuilt database
    from_records: int  # of which read from record.json files
    from_database: int  # of which only the damaged database still had
    unreadable: list[Path]  # record.json files that could not be read (left in place)
    damaged_copy: Path | None  # where the damaged database was moved
    registry_events: int = 0  # registry events replayed from the journal


class RunStore:
    """Runs of one project, kept in `directory` (the project's `.nbops/`)."""

    def __init__(self, directory: Path, *, _rebuilding: bool = False) -> None:
        self.directory = directory
        self.db_path = directory / "runs.db"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._use_wal()
            with self._connect() as db:
                if not _rebuilding:
                    self._refuse_lost_index(db)
                db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if disk_full(exc):
                raise self._disk_full(exc) from None
            raise self._sqlite_error(
                exc, "open", "check that the folder and runs.db are writable"
            ) from None
        except OSError as exc:
            if disk_full(exc):
                raise self._disk_full(exc) from None
            raise StoreError(
                f"cannot open the run store ({exc})",
                location=str(self.db_path),
                fix="check that the folder and runs.db are writable",
            ) from None

    def _refuse_lost_index(self, db: sqlite3.Connection) -> None:
        """A database without the runs table (zero bytes, or the table dropped) next to run
        folders has lost its index: creating an empty one would hide every run."""
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if "runs" in tables:
            return
        records = self.record_files()
        journal = self.directory / REGISTRY_JOURNAL
        if not records and journal.is_file() and journal.stat().st_size > 0:
            raise StoreError(
                f"the run store is damaged: runs.db has no runs table, but the model registry's "
                f"journal {journal} holds changes",
                location=str(self.db_path),
                fix=REPAIR_FIX,
            )
        if records:
            what = "is empty" if not tables else "has no runs table"
            raise StoreError(
                f"the run store is damaged: runs.db {what}, but {len(records)} runs are in "
                f"{self.directory / 'runs'}",
                location=str(self.db_path),
                fix=REPAIR_FIX,
            )

    def record_files(self) -> list[Path]:
        """Every run folder's record.json."""
        return sorted((self.directory / "runs").glob(f"*/{RECORD_FILE}"))

    def _disk_full(self, exc: BaseException) -> DiskFullError:
        return DiskFullError(
            f"the disk is full ({exc})",
            location=str(self.db_path),
            fix=f"free space in {self.directory.resolve()}",
        )

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
            raise self._sqlite_error(
                exc, "read", "check that runs.db is readable, then try again"
            ) from None

    def _sqlite_error(self, exc: sqlite3.Error, doing: str, fix: str) -> StoreError:
        """A StoreError for SQLite's error: a damaged database suggests `nbops runs repair`;
        anything else says what could not be done to the store and `fix`."""
        if _damaged(exc):
            return StoreError(
                f"the run store is damaged ({exc})", location=str(self.db_path), fix=REPAIR_FIX
            )
        return StoreError(
            f"cannot {doing} the run store ({exc})", location=str(self.db_path), fix=fix
        )

    def run_dir(self, run_id: str) -> Path:
        return self.directory / "runs" / run_id

    def save(self, record: RunRecord) -> None:
        """Insert or replace a run's record (and write its record.json copy)."""
        self._insert(record)
        try:
            folder = self.run_dir(record.run_id)
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / RECORD_FILE, record.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            if disk_full(exc):
                raise self._disk_full(exc) from None
            raise StoreError(
                f"cannot save run {record.run_id} ({exc})",
                location=str(self.run_dir(record.run_id)),
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
        """The newest runs first; with `notebook`, only that notebook's runs, whatever path
        form recorded them (relative to where the run started, or absolute)."""
        with self._reading() as db:
            if not notebook:
                rows = db.execute(
                    "SELECT record FROM runs ORDER BY started_at DESC LIMIT ?", (str(limit),)
                ).fetchall()
            else:
                wanted = {notebook, *self._notebook_keys(notebook)}
                rows = []
                for indexed, record in db.execute(
                    "SELECT notebook, record FROM runs ORDER BY started_at DESC"
                ):
                    if 0 <= limit <= len(rows):
                        break
                    if indexed in wanted or self._notebook_keys(indexed, cwd=False) & wanted:
                        rows.append((record,))
        return [self._live(RunRecord.model_validate_json(r[0])) for r in rows]

    def latest(self, notebook: str) -> RunRecord:
        """The newest run of `notebook` (any path form; see `list`)."""
        found = self.list(limit=1, notebook=notebook)
        if not found:
            raise RunNotFoundError(
                f"no run of {notebook} in {self.db_path}",
                fix=f"run it first (nbops run {notebook}), or see `nbops runs list`",
            )
        return found[0]

    def _notebook_keys(self, notebook: str, *, cwd: bool = True) -> set[str]:
        """The absolute paths `notebook` may name: itself when absolute; else taken from the
        working folder (`cwd`) and from the project root (the folder holding the store)."""
        path = Path(notebook).expanduser()
        if path.is_absolute():
            return {str(path.resolve())}
        bases = [Path.cwd(), self.directory.parent] if cwd else [self.directory.parent]
        return {str((base / path).resolve()) for base in bases}

    def _index_path(self, notebook: str) -> str:
        """The path the runs table indexes a run under: the notebook's absolute path, read
        from where the run is saved (the run's own folder on its first save, when a relative
        path means what it meant when typed). Names that are no path ("(interactive)") stay."""
        if notebook.startswith("(") or not notebook.strip():
            return notebook
        path = Path(notebook).expanduser()
        if not path.is_absolute():
            here, root = Path.cwd() / path, self.directory.parent / path
            path = here if here.exists() or not root.exists() else root
        return str(path.resolve())

    def _live(self, record: RunRecord) -> RunRecord:
        """An unfinished run's record with what its sidecar holds so far; a run whose process
        is gone is stored as such (liveness.py), its partial output redacted."""
        if record.status != "running":
            return record
        folder = self.run_dir(record.run_id)
        record.apply_events(read_events(folder))
        gone = owner_gone(record, folder)
        if gone is None:
            return record
        redact_left_output(gone, folder)
        try:
            self.save(gone)
        except StoreError:  # a read-only store still shows what it found
            return gone
        release_space(folder)  # what the dead process held for its final record
        clear_mark(folder)
        return gone

    # -- repair ------------------------------------------------------------------------------

    @classmethod
    def repair(cls, directory: Path) -> Repair:
        """Rebuild runs.db from the record.json files of the run folders; runs only the old
        database still holds (if it can be read at all) are kept too; the registry's tables are
        replayed from its journal (registry.jsonl). The old database is
        moved aside as runs.db.damaged-<time>, never deleted."""
        db_path = directory / "runs.db"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        damaged: Path | None = None
        salvaged: dict[str, str] = {}
        if db_path.exists():
            salvaged = _salvage_rows(db_path)
            damaged = db_path.with_name(f"runs.db.damaged-{stamp}")
            try:
                db_path.replace(damaged)
                for suffix in ("-wal", "-shm"):  # the journal belongs with the damaged file
                    side = db_path.with_name(db_path.name + suffix)
                    if side.exists():
                        side.replace(damaged.with_name(damaged.name + suffix))
            except OSError as exc:
                raise StoreError(
                    f"cannot move the damaged runs.db aside ({exc})",
                    location=str(db_path),
                    fix="check that the folder is writable",
                ) from None
        store = cls(directory, _rebuilding=True)  # a new, empty database
        unreadable: list[Path] = []
        from_records = 0
        for path in store.record_files():
            try:
                record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                unreadable.append(path)
                continue
            store._insert(record)
            salvaged.pop(record.run_id, None)
            from_records += 1
        from_database = 0
        for text in salvaged.values():
            try:
                record = RunRecord.model_validate_json(text)
            except ValueError:
                continue
            store.save(record)  # writes its missing record.json too
            from_database += 1
        events = replay_journal(store.db_path, directory / REGISTRY_JOURNAL)
        return Repair(
            from_records + from_database, from_records, from_database, unreadable, damaged, events
        )

    def _insert(self, record: RunRecord) -> None:
        try:
            with self._connect() as db:
                # The notebook column keeps what the first save indexed (see _index_path).
                db.execute(
                    "INSERT INTO runs (run_id, notebook, status, started_at, record)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
                    " status = excluded.status, started_at = excluded.started_at,"
                    " record = excluded.record",
                    (
                        record.run_id,
                        self._index_path(record.notebook),
                        record.status,
                        record.started_at,
                        record.model_dump_json(),
                    ),
                )
        except sqlite3.Error as exc:
            if disk_full(exc):
                raise self._disk_full(exc) from None
            fix = REPAIR_FIX if _damaged(exc) else None
            raise StoreError(
                f"cannot save run {record.run_id} ({exc})", location=str(self.db_path), fix=fix
            ) from None

    def start_interactive_run(self, run_id: str, notebook: str = "(interactive)") -> RunRecord:
        record = RunRecord(run_id=run_id, mode="interactive", notebook=notebook, started_at=now())
        self.save(record)
        return record


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether a SQLite error means a damaged database (rather than a locked, unreadable or
    read-only one)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return isinstance(exc, sqlite3.DatabaseError)  # not a database, malformed
    return "no such table" in str(exc) or "malformed" in str(exc)


def _salvage_rows(db_path: Path) -> dict[str, str]:
    """The records a damaged database still gives, by run id (none when it gives nothing)."""
    rows: dict[str, str] = {}
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return rows
    try:
        for run_id, text in db.execute("SELECT run_id, record FROM runs"):
            rows[str(run_id)] = str(text)
    except sqlite3.Error:
        pass  # what was read before the damage is kept
    finally:
        db.close()
    return rows
