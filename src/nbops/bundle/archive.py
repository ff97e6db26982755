"""A bundle folder as one `.tar.gz`, and back, refusing anything unsafe before extracting.

`pack(folder)` writes `<folder>.tar.gz` beside the folder: the same bytes for the same files
(sorted names, no timestamps, owners or modes carried over; gzip without a name or time),
every member under the folder's name. `unpack(archive, dest)` reads every member header first
and refuses the archive — BundleIntegrityError, nothing extracted — when a member has an
absolute path, a `..` component or a backslash, is a symlink, a hard link, a device or a FIFO,
appears twice, lies outside the single top-level folder, or when the members add up to more
than `max_bytes` (or `max_members` of them); only then are they extracted, with tarfile's
"data" filter as a second guard, into a scratch folder renamed into place.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile
import uuid
from pathlib import Path, PurePosixPath

from nbops.errors import BundleError, BundleIntegrityError

DEFAULT_MAX_BYTES = 4 * 1024**3
DEFAULT_MAX_MEMBERS = 100_000
_SKIPPED = frozenset({"__pycache__"})
_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_path(folder: Path) -> Path:
    """Where `pack` writes the archive of `folder`."""
    return folder.parent / f"{folder.name}.tar.gz"


def pack(folder: str | os.PathLike[str]) -> Path:
    """Write `<folder>.tar.gz` beside `folder` (atomically) and return its path.

    `__pycache__` folders are left out; a symlink in the folder is refused (BundleError).
    """
    root = Path(folder)
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder", fix="pack a bundle folder")
    files: list[str] = []
    for current, dirs, names in os.walk(root):
        here = Path(current)
        for d in list(dirs):
            if (here / d).is_symlink():
                raise BundleError(
                    f"{(here / d).relative_to(root)} is a symlink", location=str(root)
                )
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for n in names:
            path = here / n
            if path.is_symlink() or not path.is_file():
                raise BundleError(
                    f"{path.relative_to(root)} is not a regular file", location=str(root)
                )
            files.append(path.relative_to(root).as_posix())
    target = archive_path(root)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for rel in sorted(files):
                data_path = root / rel
                info = tarfile.TarInfo(f"{root.name}/{rel}")
                info.size = data_path.stat().st_size
                info.mode = 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(data_path, "rb") as handle:
                    tar.addfile(info, handle)
        os.replace(tmp, target)
    except OSError as e:
        raise BundleError(f"cannot write {target}: {e}", location=str(root)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _refuse(archive: Path, message: str) -> BundleIntegrityError:
    return BundleIntegrityError(
        f"unsafe archive: {message}",
        location=str(archive),
        fix="only unpack bundles written by `nbops bundle`",
    )


def _member_parts(archive: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    name = member.name
    if not name or "\x00" in name:
        raise _refuse(archive, "a member has an empty name")
    if "\\" in name:
        raise _refuse(archive, f"member {name!r} has a backslash in its path")
    if name.startswith("/") or _DRIVE.match(name) or PurePosixPath(name).is_absolute():
        raise _refuse(archive, f"member {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise _refuse(archive, f"member {name!r} leaves the folder ('..')")
    if not parts:
        raise _refuse(archive, f"member {name!r} has no path")
    if member.issym() or member.islnk():
        raise _refuse(archive, f"member {name!r} is a link (to {member.linkname!r})")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise _refuse(archive, f"member {name!r} is a device or a FIFO")
    if not (member.isfile() or member.isdir()):
        raise _refuse(archive, f"member {name!r} is not a regular file or a folder")
    return parts


def check_members(
    archive: Path,
    members: list[tarfile.TarInfo],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> str:
    """Check every member (see the module docstring); return the single top-level folder."""
    if not members:
        raise _refuse(archive, "it is empty")
    if len(members) > max_members:
        raise _refuse(archive, f"more than {max_members} members")
    total = 0
    top: str | None = None
    seen: set[tuple[str, ...]] = set()
    for member in members:
        parts = _member_parts(archive, member)
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise _refuse(archive, f"members lie in more than one folder ({top!r}, {parts[0]!r})")
        if member.isfile() and len(parts) == 1:
            raise _refuse(archive, f"member {member.name!r} is not inside a folder")
        if parts in seen:
            raise _refuse(archive, f"member {member.name!r} appears twice")
        seen.add(parts)
        total += max(0, member.size) if member.isfile() else 0
        if total > max_bytes:
            raise _refuse(archive, f"its members add up to more than {max_bytes} bytes")
    assert top is not None
    return top


def unpack(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Path:
    """Extract a bundle archive into `dest` and return the bundle folder (`dest/<top>`).

    Raises BundleIntegrityError, having extracted nothing, for an unsafe or unreadable
    archive; BundleError when `dest/<top>` already exists.
    """
    source = Path(archive)
    target_dir = Path(dest)
    try:
        tar = tarfile.open(source, mode="r:gz")  # noqa: SIM115 - closed by the `with` below
    except (OSError, EOFError, tarfile.TarError) as e:
        raise BundleIntegrityError(
            f"not a readable .tar.gz ({e})", location=str(source), fix="pack the bundle again"
        ) from None
    with tar:
        try:
            members = []
            for member in tar:
                members.append(member)
                if len(members) > max_members:
                    break
        except (OSError, EOFError, tarfile.TarError) as e:
            raise BundleIntegrityError(
                f"the archive is damaged ({e})", location=str(source), fix="pack the bundle again"
            ) from None
        top = check_members(source, members, max_bytes=max_bytes, max_members=max_members)
        final = target_dir / top
        if final.exists() or final.is_symlink():
            raise BundleError(f"{final} already exists", fix="unpack into an empty folder")
        target_dir.mkdir(parents=True, exist_ok=True)
        scratch = target_dir / f".{top}.unpack-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        try:
            tar.extractall(scratch, members=members, filter="data")
            os.rename(scratch / top, final)
        except (OSError, EOFError, tarfile.TarError) as e:
            raise BundleIntegrityError(
                f"cannot extract the archive ({e})", location=str(source), fix="pack it again"
            ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return final
