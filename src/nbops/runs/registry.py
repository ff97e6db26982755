"""The model registry: versions of a model name, aliases (production, staging, ...) and the
history of every change, with who, when and why.

    registry = Registry.for_project()
    registry.register(name="penguins", version=3, bundle_path=..., manifest_sha256=..., ...)
    registry.set_alias("penguins", "production", 3, reason="better recall")  # AliasChange
    registry.rollback("penguins", "production", reason="alerts")             # back to the
    registry.get("penguins", "production")   # ModelVersion       previous holder
    registry.history("penguins")             # [RegistryEvent, ...], oldest first

It knows bundles only as paths and manifest facts (nbops.bundle.registration reads them).
Storage: three tables in the run store's runs.db (`model_versions`, `model_aliases`,
`registry_events`) and a journal, `.nbops/registry.jsonl`: every change is appended there
(one JSON line, flushed and fsynced) before its SQLite transaction commits, so a damaged
runs.db loses no promotion: `RunStore.repair` replays the journal (`replay_journal`).

Rules:
- A version is the bundle's `manifest.version` (`bundles/NAME-vN` is `NAME@N`). Registering
  the same (name, version) again with the same manifest sha256 is a no-op; with another one it
  is a RegistryError naming both paths.
- Alias names are `[a-z][a-z0-9_-]{0,39}`, so `NAME@3` is never an alias.
- An alias's holders form a stack read from its events: a promotion pushes, a rollback pops;
  `rollback` moves the alias to the holder under the top (twice goes two promotions back,
  never back and forth). No holder under the top: RegistryError "no previous holder".
- Who: `$NBOPS_ACTOR` when set (a scheduler names itself), else `user@host`. When: UTC ISO
  milliseconds. Why: the caller's `reason`.

Every refusal is a RegistryError (exit 41) with one line saying what and how to fix it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import RegistryError, StoreError
from nbops.runs.files import disk_full
from nbops.runs.registry_journal import COLUMNS as _COLUMNS
from nbops.runs.registry_journal import apply_entry as _apply
from nbops.runs.registry_journal import replay_journal
from nbops.runs.store import REGISTRY_JOURNAL, RunStore, now

ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")
ACTOR_ENV = "NBOPS_ACTOR"
ACTIONS = ("register", "promote", "rollback", "refused")
__all__ = [
    "AliasChange",
    "ModelVersion",
    "Registry",
    "RegistryEvent",
    "actor",
    "check_alias",
    "parse_ref",
    "replay_journal",
]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: where its bundle is and what it was."""

    name: str
    version: int
    bundle_path: str
    manifest_sha256: str
    run_id: str | None = None
    signed_by: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_version: str | None = None
    registered_at: str = ""
    registered_by: str = ""
    aliases: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        """The journal's copy (everything but the aliases, which events give)."""
        data = asdict(self)
        data.pop("aliases")
        return data


@dataclass(frozen=True)
class AliasChange:
    """What an alias change did: `name@alias` went from `previous` (None: new) to `current`."""

    name: str
    alias: str
    previous: int | None
    current: int

    def describe(self) -> str:
        before = "none" if self.previous is None else f"v{self.previous}"
        return f"{self.name}@{self.alias}: {before} -> v{self.current}"


@dataclass(frozen=True)
class RegistryEvent:
    """One recorded change: register, promote, rollback or refused."""

    id: int
    at: str
    who: str
    action: str
    name: str
    alias: str | None
    version: int | None
    previous: int | None
    reason: str | None
    detail: dict[str, Any]


def actor() -> str:
    """Who is acting: $NBOPS_ACTOR, else user@host."""
    given = os.environ.get(ACTOR_ENV, "").strip()
    if given:
        return given
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container with an unknown uid)
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def check_alias(alias: str) -> str:
    """`alias` when it is a valid alias name; RegistryError otherwise."""
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
        raise RegistryError(
            f"{alias!r} is not an alias name",
            fix="use lower-case letters, digits, - and _, starting with a letter, at most 40 "
            "characters (production, staging, shadow-2)",
        )
    return alias


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """`NAME@N` -> (name, N, None); `NAME@ALIAS` -> (name, None, alias); RegistryError for
    anything else."""
    name, sep, selector = ref.rpartition("@")
    if not sep or not name or not selector:
        raise RegistryError(
            f"{ref!r} is not a registry reference",
            fix="give NAME@ALIAS (penguins@production) or NAME@VERSION (penguins@3)",
        )
    if selector.isdigit():
        number = int(selector)
        if number < 1:
            raise RegistryError(f"{ref!r}: versions start at 1", fix="see `nbops registry list`")
        return name, number, None
    return name, None, check_alias(selector)


class Registry:
    """The registry of one run store (the project's `.nbops/`)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.journal = store.directory / REGISTRY_JOURNAL

    @classmethod
    def for_project(cls, start: Path | None = None) -> Registry:
        return cls(RunStore.for_project(start))

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): what it reads is what it
        changes, whatever other processes do meanwhile."""
        try:
            db = sqlite3.connect(self.store.db_path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None
        try:
            db.execute("PRAGMA busy_timeout=60000")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, "write") from None
        finally:
            db.close()

    def _error(self, exc: sqlite3.Error | OSError, doing: str) -> StoreError:
        if disk_full(exc):
            return StoreError(
                f"the disk is full ({exc})",
                location=str(self.store.db_path),
                fix=f"free space in {self.store.directory.resolve()}",
            )
        return StoreError(
            f"cannot {doing} the model registry ({exc})",
            location=str(self.store.db_path),
            fix="check that runs.db is writable; a damaged one: `nbops runs repair`",
        )

    def _append(self, entry: dict[str, Any]) -> None:
        """Append one line to the journal, flushed to disk before the caller commits."""
        line = (json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode()
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(exc, "write the journal of") from None

    def _event(
        self,
        db: sqlite3.Connection,
        *,
        action: str,
        name: str,
        alias: str | None = None,
        version: int | None = None,
        previous: int | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        who: str | None = None,
        model_version: ModelVersion | None = None,
    ) -> None:
        event = {
            "at": now(),
            "who": who or actor(),
            "action": action,
            "name": name,
            "alias": alias,
            "version": version,
            "previous": previous,
            "reason": reason,
            "detail": detail or {},
        }
        entry: dict[str, Any] = {"event": event}
        if model_version is not None:
            entry["model_version"] = model_version.row()
        self._append(entry)  # journal first: a crash before the commit loses nothing
        _apply(db, entry)

    def register(
        self,
        *,
        name: str,
        version: int,
        bundle_path: str | os.PathLike[str],
        manifest_sha256: str,
        run_id: str | None = None,
        signed_by: str | None = None,
        metrics: dict[str, float] | None = None,
        who: str | None = None,
    ) -> ModelVersion:
        """Register a bundle as `name` version `version`; the existing one when that version
        is registered with the same manifest; RegistryError when with another."""
        path = str(Path(bundle_path).resolve())
        with self._writing() as db:
            existing = _version_row(db, name, version)
            if existing is not None:
                if existing.manifest_sha256 == manifest_sha256:
                    return self._with_aliases(db, existing)
                raise RegistryError(
                    f"{name} v{version} is registered from {existing.bundle_path}, with another "
                    f"manifest than {path}",
                    fix="rebuild into the same bundles/ folder, so each build gets the next "
                    "version number",
                )
            who = who or actor()
            model_version = ModelVersion(
                name=name,
                version=version,
                bundle_path=path,
                manifest_sha256=manifest_sha256,
                run_id=run_id,
                signed_by=signed_by,
                metrics=dict(metrics or {}),
                registered_at=now(),
                registered_by=who,
            )
            self._event(
                db,
                action="register",
                name=name,
                version=version,
                who=who,
                model_version=model_version,
            )
            return model_version

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        who: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AliasChange:
        """Point `name@alias` at `version` (a promotion); recorded with who, when and why. The
        version must be registered. Already there: nothing recorded."""
        check_alias(alias)
        with self._writing() as db:
            self._require_version(db, name, version)
            stack = _holders(db, name, alias)
            previous = stack[-1] if stack else None
            if previous == version:
                return AliasChange(name, alias, previous, version)
            self._event(
                db,
                action="promote",
                name=name,
                alias=alias,
                version=version,
                previous=previous,
                reason=reason,
                detail=detail,
                who=who,
            )
            return AliasChange(name, alias, previous, version)

    def rollback(
        self, name: str, alias: str, *, reason: str | None = None, who: str | None = None
    ) -> AliasChange:
        """Move `name@alias` back to the holder before the current one."""
        check_alias(alias)
        with self._writing() as db:
            self._require_name(db, name)
            stack = _holders(db, name, alias)
            if not stack:
                raise RegistryError(
                    f"{alias} of {name} is not set", fix=f"promote a version first ({_LIST})"
                )
            if len(stack) < 2:
                raise RegistryError(
                    f"{alias} of {name} has no previous holder (v{stack[-1]} is the first)",
                    fix=f"promote the version you want instead ({_LIST})",
                )
            current, target = stack[-1], stack[-2]
            self._event(
                db,
                action="rollback",
                name=name,
                alias=alias,
                version=target,
                previous=current,
                reason=reason,
                who=who,
            )
            return AliasChange(name, alias, current, target)

    def record_refusal(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str,
        detail: dict[str, Any] | None = None,
        who: str | None = None,
    ) -> None:
        """Record that promoting `version` to `alias` was refused (a gate failed), and why."""
        check_alias(alias)
        with self._writing() as db:
            self._event(
                db,
                action="refused",
                name=name,
                alias=alias,
                version=version,
                reason=reason,
                detail=detail,
                who=who,
            )

    def set_mlflow_version(self, name: str, version: int, mlflow_version: str) -> None:
        """Note the MLflow model version a registered version is mirrored as."""
        entry = {"mlflow": {"name": name, "version": version, "mlflow_version": mlflow_version}}
        with self._writing() as db:
            self._append(entry)
            _apply(db, entry)

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.store.db_path, timeout=60)
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None
        try:
            db.execute("PRAGMA busy_timeout=60000")
            yield db
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None
        finally:
            db.close()

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Registered versions (of `name`, or of every model), by name then version; naming a
        model with none is a RegistryError."""
        with self._reading() as db:
            if name is not None:
                self._require_name(db, name)
            query = f"SELECT {_COLUMNS} FROM model_versions"
            args: tuple[Any, ...] = ()
            if name is not None:
                query += " WHERE name = ?"
                args = (name,)
            rows = db.execute(query + " ORDER BY name, version", args).fetchall()
            return [self._with_aliases(db, _model_version(r)) for r in rows]

    def get(self, name: str, ref: str | int) -> ModelVersion:
        """The version `ref` names: an alias, or a version number ("3" or 3)."""
        with self._reading() as db:
            self._require_name(db, name)
            if isinstance(ref, int) or str(ref).isdigit():
                return self._with_aliases(db, self._require_version(db, name, int(ref)))
            alias = check_alias(str(ref))
            row = db.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            if row is None:
                held = [a for (a,) in db.execute(_ALIASES_OF, (name,))]
                known = f" (set: {', '.join(held)})" if held else " (none is set)"
                raise RegistryError(
                    f"{name} has no alias {alias!r}{known}",
                    fix=f"promote a version to it: nbops promote {name}@N --alias {alias}",
                )
            return self._with_aliases(db, self._require_version(db, name, int(row[0])))

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version `name@alias` points at now (None when unset): one indexed read, what a
        server polls."""
        with self._reading() as db:
            row = db.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
        return None if row is None else int(row[0])

    def history(self, name: str, alias: str | None = None) -> list[RegistryEvent]:
        """The recorded changes of `name` (of one alias), oldest first."""
        with self._reading() as db:
            self._require_name(db, name)
            query = (
                "SELECT id, at, who, action, name, alias, version, previous, reason, detail"
                " FROM registry_events WHERE name = ?"
            )
            args: tuple[Any, ...] = (name,)
            if alias is not None:
                query += " AND alias = ?"
                args = (name, check_alias(alias))
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [
            RegistryEvent(*row[:9], detail=json.loads(row[9] or "{}"))  # type: ignore[misc]
            for row in rows
        ]

    # -- helpers -----------------------------------------------------------------------------

    def _require_name(self, db: sqlite3.Connection, name: str) -> None:
        if db.execute("SELECT 1 FROM model_versions WHERE name = ? LIMIT 1", (name,)).fetchone():
            return
        names = [n for (n,) in db.execute("SELECT DISTINCT name FROM model_versions")]
        known = f" (registered: {', '.join(sorted(names))})" if names else " (it is empty)"
        raise RegistryError(
            f"no model {name!r} in the registry{known}",
            fix="register a bundle: nbops bundle --run ID, or nbops promote BUNDLE_PATH",
        )

    def _require_version(self, db: sqlite3.Connection, name: str, version: int) -> ModelVersion:
        self._require_name(db, name)
        found = _version_row(db, name, version)
        if found is None:
            numbers = [str(v) for (v,) in db.execute(_VERSIONS_OF, (name,))]
            raise RegistryError(
                f"{name} has no version {version} (registered: {', '.join(numbers)})",
                fix=_LIST,
            )
        return found

    def _with_aliases(self, db: sqlite3.Connection, mv: ModelVersion) -> ModelVersion:
        aliases = tuple(
            a
            for (a,) in db.execute(
                "SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias",
                (mv.name, mv.version),
            )
        )
        return ModelVersion(**{**mv.row(), "aliases": aliases})


_LIST = "see `nbops registry list`"
_ALIASES_OF = "SELECT alias FROM model_aliases WHERE name = ? ORDER BY alias"
_VERSIONS_OF = "SELECT version FROM model_versions WHERE name = ? ORDER BY version"


def _model_version(row: tuple[Any, ...]) -> ModelVersion:
    values = list(row)
    values[6] = json.loads(values[6] or "{}")
    return ModelVersion(*values)


def _version_row(db: sqlite3.Connection, name: str, version: int) -> ModelVersion | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND version = ?", (name, version)
    ).fetchone()
    return None if row is None else _model_version(row)


def _holders(db: sqlite3.Connection, name: str, alias: str) -> list[int]:
    """The alias's holder stack, from its events: a promotion pushes, a rollback pops."""
    stack: list[int] = []
    for action, version in db.execute(
        "SELECT action, version FROM registry_events WHERE name = ? AND alias = ?"
        " AND action IN ('promote', 'rollback') ORDER BY id",
        (name, alias),
    ):
        if action == "promote":
            stack.append(int(version))
        elif stack:
            stack.pop()
    return stack
