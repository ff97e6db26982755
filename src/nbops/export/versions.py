"""The history of an export: every version kept, content-addressed.

Layout, beside the exported package folder:

    <out>/<name>/                  the current version (a folder you can install or test)
    <out>/.versions/<name>/index.json
    <out>/.versions/<name>/v1/     a full copy of each version, as it was written
    <out>/.versions/.airflowignore `*`: Airflow skips the whole history

Every kept copy of an `--target airflow` export holds its `airflow_dag.py` with the same
dag_id, and Airflow walks every subfolder of its DAG folder, hidden ones too. So that a DAG
folder pointed at `<out>` (where several pipelines live) loads each pipeline once, the
history folder carries an `.airflowignore` ignoring everything below it (Airflow reads one in
each folder it walks; glob syntax, Airflow's default `[core] dag_ignore_file_syntax`). It is
written, atomically, before any version is copied in, whatever the export's targets.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from nbops._atomic import atomic_write_text, write_files
from nbops.errors import ExportError, VersionNotFoundError

INDEX_FILE = "index.json"
AIRFLOW_IGNORE_FILE = ".airflowignore"
AIRFLOW_IGNORE = (
    "# Written by nbops: the kept versions of exports are not DAGs to load (nbops versions).\n*\n"
)


class VersionEntry(BaseModel):
    """One version of an export."""

    model_config = ConfigDict(extra="forbid")

    version: int
    content_hash: str
    source_path: str
    source_sha256: str
    created_at: str
    steps: int


class VersionIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    name: str
    versions: list[VersionEntry] = []


def history_dir(out_dir: Path, name: str) -> Path:
    return out_dir / ".versions" / name


def read_index(out_dir: Path, name: str) -> VersionIndex:
    path = history_dir(out_dir, name) / INDEX_FILE
    if not path.exists():
        return VersionIndex(name=name)
    try:
        return VersionIndex.model_validate_json(path.read_text("utf-8"))
    except ValueError as exc:
        raise ExportError(
            f"the version index is damaged ({str(exc).splitlines()[0]})",
            location=str(path),
            fix="restore it from version control, or delete the .versions folder to start anew",
        ) from None


def assign_version(index: VersionIndex, content_hash: str) -> tuple[int, bool]:
    """The version for this content: an existing one with the same hash, or the next number.

    Returns (version, is_new).
    """
    for entry in index.versions:
        if entry.content_hash == content_hash:
            return entry.version, False
    return max((e.version for e in index.versions), default=0) + 1, True


def record_version(
    out_dir: Path,
    index: VersionIndex,
    entry: VersionEntry,
    folder: Path,
    files: dict[str, str] | None = None,
    *,
    airflow_ignored: bool = False,
    copied: bool = False,
) -> None:
    """Copy a written export into the history and update the index (both atomically).

    `files`, when given, are what `folder` holds (as write_tree wrote them): the copy is
    written from them rather than read back. `airflow_ignored`: the caller has written the
    history's `.airflowignore` already (ignore_history_in_airflow). `copied`: the caller
    has written the copy already (write_tree into `history_dir(...) / f"v{version}"`)."""
    hdir = history_dir(out_dir, index.name)
    hdir.mkdir(parents=True, exist_ok=True)
    if not airflow_ignored:
        ignore_history_in_airflow(hdir.parent)
    if copied:
        pass
    elif files is None:
        replace_dir(folder, hdir / f"v{entry.version}", copy=True)
    else:
        write_tree(files, hdir / f"v{entry.version}")
    versions = [e for e in index.versions if e.version != entry.version] + [entry]
    index.versions = sorted(versions, key=lambda e: e.version)
    atomic_write_text(hdir / INDEX_FILE, index.model_dump_json(indent=2) + "\n")


def ignore_history_in_airflow(versions_dir: Path) -> None:
    """Write `.versions/.airflowignore` (see the module) unless it is already there."""
    path = versions_dir / AIRFLOW_IGNORE_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if path.read_text("utf-8") == AIRFLOW_IGNORE:
            return
    atomic_write_text(path, AIRFLOW_IGNORE)


def list_versions(out_dir: Path, name: str) -> list[VersionEntry]:
    """Every version of an export, oldest first; VersionNotFoundError if there is none."""
    versions = read_index(out_dir, name).versions
    if not versions:
        raise VersionNotFoundError(
            f"no export named {name!r} in {out_dir}",
            fix="export a notebook first (nbops export NOTEBOOK), or pass the folder with -o",
        )
    return versions


def find_version(out_dir: Path, name: str, ref: str) -> VersionEntry:
    """A version by number (`3`, `v3`), by content-hash prefix, or `latest`."""
    index = VersionIndex(name=name, versions=list_versions(out_dir, name))
    ref = ref.strip()
    if ref == "latest":
        return index.versions[-1]
    number = ref[1:] if ref[:1] in "vV" else ref
    for entry in index.versions:
        if number.isdigit() and entry.version == int(number):
            return entry
    matches = [e for e in index.versions if len(ref) >= 4 and e.content_hash.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"v{e.version}" for e in index.versions)
    raise VersionNotFoundError(f"{name} has no version {ref!r}", fix=f"known versions: {known}")


def diff_versions(out_dir: Path, name: str, old: str, new: str) -> str:
    """A unified diff of the code of two versions (manifests left out)."""
    a, b = find_version(out_dir, name, old), find_version(out_dir, name, new)
    root = history_dir(out_dir, name)
    a_files = _python_files(root / f"v{a.version}")
    b_files = _python_files(root / f"v{b.version}")
    chunks: list[str] = []
    for rel in sorted(set(a_files) | set(b_files)):
        before = a_files.get(rel, "").splitlines(keepends=True)
        after = b_files.get(rel, "").splitlines(keepends=True)
        chunks.extend(
            difflib.unified_diff(before, after, f"v{a.version}/{rel}", f"v{b.version}/{rel}")
        )
    return "".join(chunks)


def _python_files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text("utf-8")
        for p in sorted(folder.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


# -- writing folders atomically -----------------------------------------------------------------
# Files go through nbops._atomic. A folder that replaces an existing one is swapped here:
# _atomic.atomic_directory only publishes a folder that does not exist yet.


def _scratch(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"


def write_tree(files: dict[str, str], target: Path) -> None:
    """Write files into a scratch folder beside `target`, then swap it into place.

    Readers never see a half-written folder: either the old one, or the complete new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _scratch(target)
    try:
        write_files(scratch, files)
        replace_dir(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replace_dir(source: Path, target: Path, *, copy: bool = False) -> None:
    """Put `source` at `target` (moving it, or copying when `copy`), replacing what was there."""
    if copy:
        staged = _scratch(target)
        shutil.copytree(source, staged, ignore=shutil.ignore_patterns("__pycache__"))
        source = staged
    old = _scratch(target) if target.exists() else None
    if old is not None:
        os.rename(target, old)
    os.rename(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def export_lock(out_dir: Path, name: str) -> Iterator[None]:
    """Serialise exports of one name, so concurrent exports cannot interleave their writes."""
    hdir = history_dir(out_dir, name)
    hdir.mkdir(parents=True, exist_ok=True)
    with open(hdir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
