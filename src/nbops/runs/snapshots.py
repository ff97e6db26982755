"""Data snapshots: content-addressed copies of the data a run tracked, kept in the store.

`nbops.track_data(data, name, snapshot=True)` (or `snapshot_data = true` in `[tool.nbops]`)
keeps the data itself, not only its fingerprint, so `nbops rerun` can run on exactly that
data after the file changed. Layout, under the store (`.nbops/`):

    data/objects/<sha[:2]>/<sha>            a file's bytes (sha = sha256 of the bytes)
    data/objects/<sha[:2]>/<sha>.parquet    a frame (sha = track_data's frame fingerprint)
    data/objects/<sha[:2]>/<sha>.json       {kind, bytes, file_sha256, format, created_at}

No table indexes the objects: the run records are the references (each tracked data set's
`snapshot` field: `{"kind": "file"|"parquet"|"dvc", "sha256", "bytes", ...}`, or
`{"skipped": "<why>"}`), so `nbops data gc` deletes the objects no record references.

- Deduplicated: an object of the same sha and size is reused, never written twice.
- Written temp + fsync + rename (runs.files): a reader never sees half an object. A file's
  bytes are hashed while they are copied; a file that changed meanwhile is not kept.
- Caps (`snapshot_max_bytes`, `data_store_max_bytes`): data over them is not kept; the cell
  gets one stderr line naming the setting and `nbops data gc`, the run's record a warning.
  A cap never fails the notebook.
- DVC: a file tracked by DVC (a `PATH.dvc` beside it, or a `dvc.lock` in a folder above it
  up to the DVC repository's root, listing it under `outs`) whose md5 equals the one DVC
  recorded is kept as `kind: "dvc"`: its md5 and the DVC file, no second copy. Restoring it
  reads the DVC cache (`.dvc/cache/files/md5/<2>/<30>`, DVC 3; `.dvc/cache/<2>/<30>`, DVC 2);
  a missing cache entry is DataSnapshotError (exit 42) saying to run `dvc checkout` (or
  `dvc pull`). A cache moved elsewhere by DVC's `cache.dir` setting is not looked for.
- Every restore checks the hash (DataSnapshotError, exit 42, when an object is missing or
  changed).
- Registry pins: `nbops data gc` also keeps the objects a registry event's `detail` names in
  a `reference_snapshot` (a sha, a list of them, or objects with a `sha256`), read from the
  registry journal `.nbops/registry.jsonl` when it exists.

Standard library only at import (the capture API imports it inside the kernel): pandas and
pyarrow are imported only when a frame is written or read; PyYAML only when a DVC file is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import DataSnapshotError
from nbops.runs.files import TEMP_MARK, atomic_path, write_text

# Deferred imports: runs.store (SQLite, pydantic), nbops.config (pydantic) and nbops._paths
# only in the functions that read the store or the project: the capture API imports this
# module inside the kernel, where it loads only the standard library.

DATA_DIR = "data"
OBJECTS_DIR = "objects"
SNAPSHOT_ENV = "NBOPS_SNAPSHOT_DATA"
MAX_BYTES_ENV = "NBOPS_SNAPSHOT_MAX_BYTES"
STORE_MAX_BYTES_ENV = "NBOPS_DATA_STORE_MAX_BYTES"
REGISTRY_JOURNAL = "registry.jsonl"
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_STORE_MAX_BYTES = 20 << 30
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotSettings:
    """Whether track_data keeps copies by default, and the two size caps."""

    enabled: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    store_max_bytes: int = DEFAULT_STORE_MAX_BYTES

    def environment(self) -> dict[str, str]:
        """What `nbops run` gives the kernel (the kernel does not read pyproject.toml)."""
        return {
            SNAPSHOT_ENV: "1" if self.enabled else "0",
            MAX_BYTES_ENV: str(self.max_bytes),
            STORE_MAX_BYTES_ENV: str(self.store_max_bytes),
        }


def settings() -> SnapshotSettings:
    """The settings in force: from the environment `nbops run` gave the kernel, else (an
    interactive kernel) `[tool.nbops]` of the project around the working directory, read
    with tomllib; defaults when neither says."""
    if SNAPSHOT_ENV in os.environ:
        return SnapshotSettings(
            enabled=os.environ[SNAPSHOT_ENV].strip().lower() in ("1", "true", "yes"),
            max_bytes=_int_env(MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
            store_max_bytes=_int_env(STORE_MAX_BYTES_ENV, DEFAULT_STORE_MAX_BYTES),
        )
    from nbops._paths import find_root

    section: dict[str, Any] = {}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        data = tomllib.loads((find_root() / "pyproject.toml").read_text("utf-8"))
        section = data.get("tool", {}).get("nbops", {})
    enabled, max_bytes = section.get("snapshot_data"), section.get("snapshot_max_bytes")
    store_max = section.get("data_store_max_bytes")
    return SnapshotSettings(
        enabled=enabled if isinstance(enabled, bool) else False,
        max_bytes=max_bytes if isinstance(max_bytes, int) else DEFAULT_MAX_BYTES,
        store_max_bytes=store_max if isinstance(store_max, int) else DEFAULT_STORE_MAX_BYTES,
    )


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def human_bytes(size: float) -> str:
    """`2.3 GiB`, `512 B`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


# -- the object store -----------------------------------------------------------------------


def objects_dir(store_dir: Path) -> Path:
    return store_dir / DATA_DIR / OBJECTS_DIR


def object_path(store_dir: Path, sha: str, kind: str) -> Path:
    """Where the object of this sha and kind ("file" or "parquet") lives."""
    name = f"{sha}.parquet" if kind == "parquet" else sha
    return objects_dir(store_dir) / sha[:2] / name


def _meta_path(store_dir: Path, sha: str) -> Path:
    return objects_dir(store_dir) / sha[:2] / f"{sha}.json"


@dataclass(frozen=True)
class StoredObject:
    """One kept object: its sha, kind ("file" or "parquet"), size and what its .json says."""

    sha256: str
    kind: str
    path: Path
    bytes: int
    meta: dict[str, Any] = field(default_factory=dict)


def stored_objects(store_dir: Path) -> list[StoredObject]:
    """Every object in the store (temporary files of unfinished writes left out)."""
    found = []
    root = objects_dir(store_dir)
    if not root.is_dir():
        return []
    for path in sorted(root.glob("*/*")):
        if TEMP_MARK in path.name or path.suffix == ".json" or not path.is_file():
            continue
        kind = "parquet" if path.suffix == ".parquet" else "file"
        sha = path.name.removesuffix(".parquet")
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(_meta_path(store_dir, sha).read_text("utf-8"))
        found.append(StoredObject(sha, kind, path, path.stat().st_size, meta))
    return found


def store_bytes(store_dir: Path) -> int:
    """The size of every kept object (their .json files and temporary files left out)."""
    total = 0
    root = objects_dir(store_dir)
    for path in root.glob("*/*") if root.is_dir() else []:
        if TEMP_MARK not in path.name and path.suffix != ".json":
            with contextlib.suppress(OSError):
                total += path.stat().st_size
    return total


def _existing(store_dir: Path, sha: str, kind: str) -> int | None:
    """The size of a kept object of this sha when it is whole (its size matches its .json)."""
    path = object_path(store_dir, sha, kind)
    try:
        size = path.stat().st_size
        meta = json.loads(_meta_path(store_dir, sha).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return size if meta.get("bytes") == size else None


def _write_meta(store_dir: Path, sha: str, meta: dict[str, Any]) -> None:
    write_text(_meta_path(store_dir, sha), json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Skip(Exception):
    """Data not kept, for the reason given (a cap, a missing library, a changing file)."""

    def __init__(self, reason: str, size: int | None = None) -> None:
        super().__init__(reason)
        self.size = size


def keep(
    data: Any,
    name: str,
    fingerprint: dict[str, Any],
    store_dir: Path,
    limits: SnapshotSettings,
) -> dict[str, Any]:
    """Keep a copy of tracked data (a path or a pandas frame) and return the fingerprint's
    `snapshot` field: `{"kind", "sha256", "bytes", ...}`, or `{"skipped": why}` after one
    line on stderr (a cap, a frame Parquet cannot hold, a file that changed while copied).
    Never raises for those: the notebook goes on."""
    try:
        if fingerprint["type"] == "file":
            path = Path(fingerprint["path"])
            dvc = dvc_entry(path, fingerprint)
            if dvc is not None:
                return dvc
            return _keep_file(path, name, fingerprint, store_dir, limits)
        return _keep_frame(data, name, fingerprint, store_dir, limits)
    except _Skip as exc:
        reason, size = str(exc), exc.size
    except OSError as exc:  # a full disk or an unwritable store: the run goes on without it
        reason, size = f"the store could not take it ({exc})", None
    except Exception as exc:  # never fail the notebook for a copy it did not ask to depend on
        reason, size = f"keeping it failed ({type(exc).__name__}: {_first_line(exc)})", None
    sized = f" ({human_bytes(size)})" if size is not None else ""
    message = f"track_data: {name!r}{sized} not kept: {reason}"
    print(message, file=sys.stderr, flush=True)
    return {"skipped": message}


def _check_caps(name: str, size: int, store_dir: Path, limits: SnapshotSettings) -> None:
    if size > limits.max_bytes:
        raise _Skip(
            f"over snapshot_max_bytes ({human_bytes(limits.max_bytes)}); raise it in "
            "[tool.nbops] or run `nbops data gc`",
            size,
        )
    used = store_bytes(store_dir)
    if used + size > limits.store_max_bytes:
        raise _Skip(
            f"the data store holds {human_bytes(used)} of data_store_max_bytes "
            f"({human_bytes(limits.store_max_bytes)}); run `nbops data gc` or raise it in "
            "[tool.nbops]",
            size,
        )


def _keep_file(
    path: Path, name: str, fingerprint: dict[str, Any], store_dir: Path, limits: SnapshotSettings
) -> dict[str, Any]:
    sha, size = fingerprint["sha256"], int(fingerprint["bytes"])
    entry = {"kind": "file", "sha256": sha, "bytes": size}
    if _existing(store_dir, sha, "file") == size:
        return entry
    _check_caps(name, size, store_dir, limits)
    target = object_path(store_dir, sha, "file")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as temp:
            copied = _copy_hashing(path, temp)
            if copied != sha:
                raise _Skip("the file changed while it was being copied; track it again")
    except FileNotFoundError:
        raise _Skip("the file disappeared while it was being copied") from None
    _write_meta(
        store_dir,
        sha,
        {
            "kind": "file",
            "bytes": size,
            "file_sha256": sha,
            "format": fingerprint.get("format"),
            "created_at": _now(),
        },
    )
    return entry


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _keep_frame(
    data: Any, name: str, fingerprint: dict[str, Any], store_dir: Path, limits: SnapshotSettings
) -> dict[str, Any]:
    sha = fingerprint["sha256"]
    existing = _existing(store_dir, sha, "parquet")
    if existing is not None:
        return {
            "kind": "parquet",
            "sha256": sha,
            "bytes": existing,
            "file_sha256": _meta_sha(store_dir, sha),
        }
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise _Skip("keeping a frame needs pyarrow (pip install pyarrow)") from None
    import pandas as pd

    frame = data.to_frame() if isinstance(data, pd.Series) else data
    in_memory = int(frame.memory_usage(deep=False, index=True).sum())
    if in_memory > 8 * limits.max_bytes:  # far too big: do not write it to find out
        _check_caps(name, in_memory, store_dir, limits)
    target = object_path(store_dir, sha, "parquet")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temp:
        try:
            frame.to_parquet(temp, index=True)
        except OSError:
            raise
        except Exception as exc:  # pyarrow's ArrowInvalid, ArrowTypeError, NotImplemented...
            raise _Skip(f"Parquet cannot hold this frame ({_first_line(exc)})") from None
        size = temp.stat().st_size
        _check_caps(name, size, store_dir, limits)
        file_sha = _file_sha256(temp)
    _write_meta(
        store_dir,
        sha,
        {
            "kind": "parquet",
            "bytes": size,
            "file_sha256": file_sha,
            "format": "parquet",
            "rows": fingerprint.get("rows"),
            "created_at": _now(),
        },
    )
    return {"kind": "parquet", "sha256": sha, "bytes": size, "file_sha256": file_sha}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _meta_sha(store_dir: Path, sha: str) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        value = json.loads(_meta_path(store_dir, sha).read_text("utf-8")).get("file_sha256")
        return value if isinstance(value, str) else None
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- DVC ------------------------------------------------------------------------------------


def _dvc_root(start: Path) -> Path | None:
    """The DVC repository around `start`: the nearest folder above holding `.dvc/`."""
    for folder in [start, *start.parents]:
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _dvc_outs(dvc_file: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        doc = yaml.safe_load(dvc_file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(doc, dict):
        return []
    outs: list[Any] = list(doc.get("outs") or [])
    for stage in (doc.get("stages") or {}).values():  # dvc.lock
        if isinstance(stage, dict):
            outs.extend(stage.get("outs") or [])
    return [o for o in outs if isinstance(o, dict) and isinstance(o.get("path"), str)]


def _dvc_files_for(path: Path) -> Iterator[Path]:
    """The DVC files that may list `path`: `PATH.dvc`, then each `dvc.lock` above it up to
    the DVC repository's root."""
    beside = path.with_name(path.name + ".dvc")
    if beside.is_file():
        yield beside
    root = _dvc_root(path.parent)
    if root is None:
        return
    for folder in [path.parent, *path.parent.parents]:
        lock = folder / "dvc.lock"
        if lock.is_file():
            yield lock
        if folder == root:
            return


def dvc_entry(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The `snapshot` field of a file DVC tracks at its current content (its md5 equals the
    one a `.dvc` or `dvc.lock` file records), or None."""
    md5: str | None = None
    for dvc_file in _dvc_files_for(path):
        for out in _dvc_outs(dvc_file):
            if (dvc_file.parent / out["path"]).resolve() != path.resolve():
                continue
            recorded = out.get("md5")
            if not isinstance(recorded, str):
                continue
            md5 = md5 or _file_md5(path)
            if md5 == recorded:
                root = _dvc_root(dvc_file.parent)
                return {
                    "kind": "dvc",
                    "sha256": fingerprint["sha256"],
                    "bytes": int(fingerprint["bytes"]),
                    "md5": md5,
                    "dvc_file": str(dvc_file.resolve()),
                    "dvc_root": str(root.resolve()) if root else None,
                }
    return None


def dvc_cache_paths(root: Path, md5: str) -> list[Path]:
    """Where DVC keeps a file of this md5: DVC 3's layout, then DVC 2's."""
    cache = root / ".dvc" / "cache"
    return [cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]]


# -- reading kept data back -----------------------------------------------------------------


def snapshot_source(store_dir: Path, snapshot: dict[str, Any], name: str, run_id: str) -> Path:
    """The kept file of a snapshot (the store's object, or DVC's cache entry), checked
    whole against the hash recorded. Raises DataSnapshotError (exit 42)."""
    kind = snapshot.get("kind")
    if kind == "dvc":
        return _dvc_source(snapshot, name, run_id)
    if kind not in ("file", "parquet") or not isinstance(snapshot.get("sha256"), str):
        why = snapshot.get("skipped")
        raise DataSnapshotError(
            f"run {run_id} kept no copy of {name!r}" + (f" ({why})" if why else ""),
            location=str(objects_dir(store_dir)),
            fix="track it with nbops.track_data(..., snapshot=True) (or snapshot_data = true "
            "in [tool.nbops]) in a new run",
        )
    sha = snapshot["sha256"]
    if not _SHA256.fullmatch(sha):  # a hand-edited record must not name a path outside
        raise DataSnapshotError(
            f"run {run_id} records {name!r} with a malformed hash {sha[:80]!r}",
            location=str(objects_dir(store_dir)),
            fix="the run record was edited; the data cannot be restored from it",
        )
    path = object_path(store_dir, sha, kind)
    expected = sha if kind == "file" else snapshot.get("file_sha256") or _meta_sha(store_dir, sha)
    if not path.is_file():
        raise DataSnapshotError(
            f"the copy of {name!r} kept with run {run_id} is missing (object {sha[:12]})",
            location=str(path),
            fix="the data store lost it (deleted by hand?); the data cannot be restored",
        )
    if expected is None or _file_sha256(path) != expected:
        raise DataSnapshotError(
            f"the copy of {name!r} kept with run {run_id} no longer matches its hash "
            f"(object {sha[:12]})",
            location=str(path),
            fix="the object was changed on disk; it cannot be trusted to restore the data",
        )
    return path


def _dvc_source(snapshot: dict[str, Any], name: str, run_id: str) -> Path:
    md5, root = str(snapshot.get("md5", "")), snapshot.get("dvc_root")
    if not _MD5.fullmatch(md5):
        md5 = ""  # malformed: no cache path is built from it
    dvc_file = snapshot.get("dvc_file") or "the .dvc file"
    fix = f"run `dvc checkout {dvc_file}` (or `dvc pull {dvc_file}`) at that DVC version"
    candidates = dvc_cache_paths(Path(root), md5) if root and md5 else []
    for candidate in candidates:
        if candidate.is_file():
            if _file_md5(candidate) != md5:
                raise DataSnapshotError(
                    f"DVC's cached copy of {name!r} (run {run_id}) no longer matches its md5 {md5}",
                    location=str(candidate),
                    fix=fix,
                )
            return candidate
    raise DataSnapshotError(
        f"{name!r} of run {run_id} is tracked by DVC (md5 {md5}) and the DVC cache has no "
        "copy of it",
        location=str(candidates[0]) if candidates else str(dvc_file),
        fix=fix,
    )


def materialise(source: Path, target: Path) -> None:
    """Copy a checked kept file to `target` (temp + fsync + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temp:
        shutil.copyfile(source, temp)


def find_entry(record: Any, name: str) -> Any:
    """The data entry named `name` of a run record. Raises DataSnapshotError."""
    for entry in record.data:
        if entry.name == name:
            return entry
    names = ", ".join(repr(d.name) for d in record.data) or "none"
    raise DataSnapshotError(
        f"run {record.run_id} tracked no data named {name!r} (tracked: {names})",
        fix=f"see `nbops data list --run {record.run_id}`",
    )


def load_snapshot(run_id: str, name: str) -> Any:
    """The data a run tracked as `name`, as it was: a pandas DataFrame for a tracked frame
    (read back from Parquet) and for a tracked CSV, TSV or Parquet file.

    Raises DataSnapshotError (exit 42) when the run kept no copy, the copy is missing or no
    longer matches its hash, or the file is of another format (`nbops data get` writes it).
    """
    import pandas as pd

    from nbops.runs.store import RunStore

    store_dir = _store_dir()
    record = RunStore(store_dir).load(run_id)
    entry = find_entry(record, name)
    snapshot = snapshot_of(entry)
    source = snapshot_source(store_dir, snapshot, name, record.run_id)
    if snapshot.get("kind") == "parquet":
        return pd.read_parquet(source)
    fmt = str((entry.model_extra or {}).get("format", "")).lower()
    if fmt in ("csv", "tsv", "txt"):
        return pd.read_csv(source, sep="\t" if fmt == "tsv" else ",")
    if fmt in ("parquet", "pq"):
        return pd.read_parquet(source)
    raise DataSnapshotError(
        f"{name!r} of run {record.run_id} is a .{fmt or '?'} file, which load_snapshot does "
        "not read into a frame",
        fix=f"write it out with `nbops data get {record.run_id} {name} -o FILE`",
    )


def _store_dir() -> Path:
    """The store of the run in progress (inside `nbops run`), else the project's."""
    run_dir = os.environ.get("NBOPS_RUN_DIR")  # capture.RUN_DIR_ENV (capture imports this)
    if run_dir:
        return Path(run_dir).parent.parent
    from nbops.config import load_project

    return load_project().store_dir


# -- what is referenced, and gc ----------------------------------------------------------------


def snapshot_of(entry: Any) -> dict[str, Any]:
    """A record's data entry's `snapshot` field as a dict ({} when it has none)."""
    snapshot = getattr(entry, "snapshot", None)
    return {k: v for k, v in snapshot.model_dump().items() if v is not None} if snapshot else {}


def registry_pins(store_dir: Path) -> set[str]:
    """The shas registry events pin (`reference_snapshot` in an event's detail, read from the
    registry journal); nothing when there is no journal."""
    journal = store_dir / REGISTRY_JOURNAL
    pins: set[str] = set()
    if not journal.is_file():
        return pins
    for line in journal.read_text("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        _collect_pins(event, pins)
    return pins


def _collect_pins(value: Any, pins: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference_snapshot":
                _pin_values(item, pins)
            else:
                _collect_pins(item, pins)
    elif isinstance(value, list):
        for item in value:
            _collect_pins(item, pins)
    elif isinstance(value, str) and "reference_snapshot" in value:
        with contextlib.suppress(ValueError):  # a detail stored as JSON text
            _collect_pins(json.loads(value), pins)


def _pin_values(value: Any, pins: set[str]) -> None:
    if isinstance(value, str):
        pins.add(value)
    elif isinstance(value, dict):
        sha = value.get("sha256")
        if isinstance(sha, str):
            pins.add(sha)
    elif isinstance(value, list):
        for item in value:
            _pin_values(item, pins)


@dataclass
class GcResult:
    """What `nbops data gc` deleted (or would delete, with dry_run)."""

    deleted: list[StoredObject]
    kept: int
    freed_bytes: int
    pinned: int  # kept objects a registry event pins


def collect_garbage(
    store_dir: Path,
    references: Iterable[str],
    *,
    dry_run: bool = False,
    grace_s: float = 600.0,
) -> GcResult:
    """Delete the objects whose sha is not in `references` (the records' snapshots, the
    events of runs in progress, registry pins). Objects younger than `grace_s` are kept: a
    run may have written one and not yet recorded it. Leftover temporary files older than
    that go too."""
    keep_shas = set(references)
    pins = registry_pins(store_dir)
    keep_shas |= pins
    deleted, kept, pinned = [], 0, 0
    cutoff = time.time() - grace_s
    for obj in stored_objects(store_dir):
        pinned += obj.sha256 in pins
        if obj.sha256 in keep_shas or obj.path.stat().st_mtime > cutoff:
            kept += 1
            continue
        deleted.append(obj)
        if not dry_run:
            obj.path.unlink(missing_ok=True)
            _meta_path(store_dir, obj.sha256).unlink(missing_ok=True)
    root = objects_dir(store_dir)
    if not dry_run and root.is_dir():
        for temp in root.glob(f"*/*{TEMP_MARK}*"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
        for folder in root.iterdir():
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
    return GcResult(deleted, kept, sum(o.bytes for o in deleted), pinned)


# -- the store's view: what runs reference, listing, getting ----------------------------------


def references(store: Any, keep_runs: int | None = None) -> dict[str, list[tuple[str, str]]]:
    """sha -> the (run id, data name) pairs referencing it: every run's record (with
    `keep_runs`, only the newest N runs', and the runs still in progress, whose records the
    store reads with what their event sidecars hold so far)."""
    refs: dict[str, list[tuple[str, str]]] = {}
    for index, record in enumerate(store.list(limit=-1)):
        if keep_runs is not None and index >= keep_runs and record.status != "running":
            continue
        for entry in record.data:
            snapshot = snapshot_of(entry)
            sha = snapshot.get("sha256")
            if isinstance(sha, str) and snapshot.get("kind") in ("file", "parquet"):
                pair = (record.run_id, entry.name)
                if pair not in refs.setdefault(sha, []):
                    refs[sha].append(pair)
    return refs


def list_rows(store: Any, run_ref: str | None = None) -> list[dict[str, Any]]:
    """What `nbops data list` shows: one row per kept object (sha, kind, bytes, names, runs,
    created); with `run_ref`, one row per data set that run tracked (DVC and skipped ones
    included, with `status`)."""
    if run_ref is not None:
        record = store.load(run_ref)
        rows = []
        for entry in record.data:
            snap = snapshot_of(entry)
            kind = snap.get("kind")
            status = "not kept"
            if snap.get("skipped"):
                status = "skipped: " + str(snap["skipped"])
            elif kind in ("file", "parquet"):
                present = object_path(store.directory, str(snap.get("sha256")), kind).is_file()
                status = "kept" if present else "missing"
            elif kind == "dvc":
                status = "dvc: " + str(snap.get("dvc_file"))
            rows.append(
                {
                    "run": record.run_id,
                    "name": entry.name,
                    "type": entry.type,
                    "kind": kind,
                    "sha256": snap.get("sha256", entry.sha256),
                    "bytes": snap.get("bytes"),
                    "status": status,
                }
            )
        return rows
    refs = references(store)
    rows = []
    for obj in stored_objects(store.directory):
        pairs = refs.get(obj.sha256, [])
        rows.append(
            {
                "sha256": obj.sha256,
                "kind": obj.kind,
                "bytes": obj.bytes,
                "names": sorted({name for _, name in pairs}),
                "runs": sorted({run for run, _ in pairs}),
                "created_at": obj.meta.get("created_at"),
            }
        )
    return rows


def get_data(store: Any, run_ref: str, name: str, out: Path) -> Path:
    """Write the data a run kept as `name` to `out` (checked against its hash first): the
    file's bytes; a frame as Parquet, or as CSV when `out` ends in .csv. Raises
    DataSnapshotError (exit 42)."""
    record = store.load(run_ref)
    entry = find_entry(record, name)
    snapshot = snapshot_of(entry)
    source = snapshot_source(store.directory, snapshot, name, record.run_id)
    try:
        if snapshot.get("kind") == "parquet" and out.suffix.lower() == ".csv":
            import pandas as pd

            frame = pd.read_parquet(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as temp:
                frame.to_csv(temp, index=False)
        else:
            materialise(source, out)
    except OSError as exc:
        raise DataSnapshotError(
            f"cannot write the copy of {name!r} of run {record.run_id} ({_first_line(exc)})",
            location=str(out),
            fix="give -o a file path in a writable folder",
        ) from None
    return out
