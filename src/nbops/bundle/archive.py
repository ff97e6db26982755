"""A bundle folder as one `.tar.gz`, and back, refusing anything unsafe before extracting.

`pack(folder)` writes `<folder>.tar.gz` beside the folder: the same bytes for the same files
(sorted names, no timestamps, owners or modes carried over; gzip without a name or time),
every member under the folder's name. `unpack(archive, dest)` reads every member header first
and refuses the archive — BundleIntegrityError, nothing extracted — when a member has an
absolute path, a `..` component or a backslash, is a symlink, a hard link, a device, a FIFO
or a sparse file, appears twice, lies outside the single top-level folder, or as soon as the
sizes the headers declare add up to more than `max_bytes` (or `max_members` of them), or to
more than `max_ratio` times the archive's own size. Only then are the members extracted,
each checked by tarfile's "data" filter as a second guard, into a scratch folder renamed
into place; the copy counts what it writes and stops mid-member, removing the scratch
folder, once the total passes `max_bytes`, or once the total or one member expands more than
`max_ratio` times the compressed bytes read for it (zip-bomb guards; sizes under 1 MiB are
never refused for their ratio).

The limits default to 1 GiB and 100x; the environment variables `NBOPS_BUNDLE_MAX_BYTES`
(bytes, or with a K/M/G suffix) and `NBOPS_BUNDLE_MAX_RATIO` change them for every command
that loads a bundle (`predict`, `serve`, `monitor`, `bundle compare`).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from nbops._atomic import atomic_directory, atomic_path
from nbops.errors import BundleError, BundleIntegrityError

DEFAULT_MAX_BYTES = 1024**3
DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_MEMBERS = 100_000
MAX_BYTES_ENV = "NBOPS_BUNDLE_MAX_BYTES"
MAX_RATIO_ENV = "NBOPS_BUNDLE_MAX_RATIO"
RATIO_FLOOR = 1024**2  # sizes below this are never refused for their ratio
_CHUNK = 1024**2
_RAW_READ = 16 * 1024  # compressed bytes read at a time: how finely the ratio is measured
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?)?\s*$", re.IGNORECASE)
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
    try:
        with (
            atomic_path(target) as tmp,
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
    except OSError as e:
        raise BundleError(f"cannot write {target}: {e}", location=str(root)) from None
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
    if member.issparse():
        raise _refuse(archive, f"member {name!r} is a sparse file")
    if not (member.isfile() or member.isdir()):
        raise _refuse(archive, f"member {name!r} is not a regular file or a folder")
    return parts


def limits_from_env() -> tuple[int, float]:
    """`(max_bytes, max_ratio)`: the defaults, or `NBOPS_BUNDLE_MAX_BYTES` /
    `NBOPS_BUNDLE_MAX_RATIO` when set. BundleError naming the variable when one is not a
    positive number."""
    max_bytes = DEFAULT_MAX_BYTES
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if text:
        match = _SIZE.match(text)
        value = 0
        if match:
            unit = (match.group(2) or "").upper()[:1]
            value = int(match.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]
        if value <= 0:
            raise BundleError(
                f"{MAX_BYTES_ENV}={text!r} is not a size",
                fix="give a positive number of bytes, e.g. 1073741824 or 1G",
            )
        max_bytes = value
    max_ratio = DEFAULT_MAX_RATIO
    text = os.environ.get(MAX_RATIO_ENV, "").strip()
    if text:
        try:
            ratio = float(text)
        except ValueError:
            ratio = 0.0
        if not (ratio >= 1.0 and ratio < float("inf")):
            raise BundleError(
                f"{MAX_RATIO_ENV}={text!r} is not a ratio",
                fix="give a number of at least 1, e.g. 100",
            )
        max_ratio = ratio
    return max_bytes, max_ratio


class _Sizes:
    """The declared members of an archive, checked one at a time (module docstring)."""

    def __init__(
        self,
        archive: Path,
        *,
        compressed: int | None,
        max_bytes: int,
        max_ratio: float,
        max_members: int,
    ) -> None:
        self.archive = archive
        self.compressed = compressed
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.max_members = max_members
        self.count = 0
        self.total = 0
        self.top: str | None = None
        self.seen: set[tuple[str, ...]] = set()

    def add(self, member: tarfile.TarInfo) -> tuple[str, ...]:
        archive = self.archive
        self.count += 1
        if self.count > self.max_members:
            raise _refuse(archive, f"more than {self.max_members} members")
        parts = _member_parts(archive, member)
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise _refuse(
                archive, f"members lie in more than one folder ({self.top!r}, {parts[0]!r})"
            )
        if member.isfile() and len(parts) == 1:
            raise _refuse(archive, f"member {member.name!r} is not inside a folder")
        if parts in self.seen:
            raise _refuse(archive, f"member {member.name!r} appears twice")
        self.seen.add(parts)
        self.total += max(0, member.size) if member.isfile() else 0
        if self.total > self.max_bytes:
            raise _too_big(archive, self.max_bytes)
        if self.compressed is not None and _over_ratio(self.total, self.compressed, self.max_ratio):
            raise _refuse(
                archive,
                f"its members declare {_human(self.total)}, more than {self.max_ratio:g} "
                f"times its {_human(self.compressed)} (a decompression bomb?)",
            )
        return parts


def _over_ratio(size: int, compressed: int, max_ratio: float) -> bool:
    return size > RATIO_FLOOR and size > max_ratio * max(compressed, 1)


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _too_big(archive: Path, max_bytes: int) -> BundleIntegrityError:
    return BundleIntegrityError(
        f"unsafe archive: its members add up to more than {max_bytes} bytes",
        location=str(archive),
        fix=f"only unpack bundles written by `nbops bundle`; {MAX_BYTES_ENV} raises the limit",
    )


def check_members(
    archive: Path,
    members: list[tarfile.TarInfo],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_ratio: float = DEFAULT_MAX_RATIO,
    compressed: int | None = None,
) -> str:
    """Check every member (see the module docstring); return the single top-level folder.
    `compressed`: the archive's size, for the ratio check (None: no ratio check)."""
    if not members:
        raise _refuse(archive, "it is empty")
    sizes = _Sizes(
        archive,
        compressed=compressed,
        max_bytes=max_bytes,
        max_ratio=max_ratio,
        max_members=max_members,
    )
    for member in members:
        sizes.add(member)
    assert sizes.top is not None
    return sizes.top


class _Metered(io.RawIOBase):
    """The archive file, read a little at a time so that the compressed bytes consumed so far
    (`position`) are known finely while the gzip stream is decompressed."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[:_RAW_READ]
        return self._handle.readinto(view)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    @property
    def position(self) -> int:
        return self._handle.tell()


def unpack(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_ratio: float | None = None,
) -> Path:
    """Extract a bundle archive into `dest` and return the bundle folder (`dest/<top>`).

    `max_bytes`/`max_ratio`: None takes them from the environment or the defaults
    (`limits_from_env`). Raises BundleIntegrityError for an unsafe or unreadable archive
    (having extracted nothing, or removed what it had written when the limits are passed
    while extracting); BundleError when `dest/<top>` already exists.
    """
    source = Path(archive)
    target_dir = Path(dest)
    if max_bytes is None or max_ratio is None:
        env_bytes, env_ratio = limits_from_env()
        max_bytes = env_bytes if max_bytes is None else max_bytes
        max_ratio = env_ratio if max_ratio is None else max_ratio
    limit, ratio = max_bytes, max_ratio
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as e:
        raise BundleIntegrityError(
            f"not a readable .tar.gz ({e})", location=str(source), fix="pack the bundle again"
        ) from None
    with handle:
        compressed = os.fstat(handle.fileno()).st_size
        metered = _Metered(handle)
        try:
            gz = gzip.GzipFile(fileobj=metered, mode="rb")
            tar = tarfile.open(fileobj=gz, mode="r:")  # noqa: SIM115 - closed below
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            raise BundleIntegrityError(
                f"not a readable .tar.gz ({e})", location=str(source), fix="pack the bundle again"
            ) from None
        with tar:
            sizes = _Sizes(
                source,
                compressed=compressed,
                max_bytes=limit,
                max_ratio=ratio,
                max_members=max_members,
            )
            members: list[tuple[tarfile.TarInfo, tuple[str, ...]]] = []
            try:
                for member in tar:
                    members.append((member, sizes.add(member)))
            except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
                raise BundleIntegrityError(
                    f"the archive is damaged ({e})",
                    location=str(source),
                    fix="pack the bundle again",
                ) from None
            if not members or sizes.top is None:
                raise _refuse(source, "it is empty")
            top = sizes.top
            final = target_dir / top
            if final.exists() or final.is_symlink():
                raise BundleError(f"{final} already exists", fix="unpack into an empty folder")
            target_dir.mkdir(parents=True, exist_ok=True)
            try:
                # removed with what it holds on any exception, SIGTERM's Terminated included
                with atomic_directory(final) as scratch:
                    _extract(tar, members, scratch, source, metered, limit, ratio)
            except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
                raise BundleIntegrityError(
                    f"cannot extract the archive ({e})",
                    location=str(source),
                    fix="pack it again",
                ) from None
    return final


def _extract(
    tar: tarfile.TarFile,
    members: list[tuple[tarfile.TarInfo, tuple[str, ...]]],
    scratch: Path,
    source: Path,
    metered: _Metered,
    max_bytes: int,
    max_ratio: float,
) -> None:
    """Write the checked members under `scratch` (the top-level folder's contents: `scratch`
    becomes that folder), counting every chunk (module docstring)."""
    written = 0
    for member, parts in members:
        try:
            tarfile.data_filter(member, str(scratch))  # a second guard on the path and type
        except tarfile.FilterError as e:
            raise _refuse(source, str(e)) from None
        target = scratch.joinpath(*parts[1:])
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        data = tar.extractfile(member)
        if data is None:  # pragma: no cover - a regular file always has data
            raise _refuse(source, f"member {member.name!r} has no data")
        assert tar.fileobj is not None
        tar.fileobj.seek(member.offset_data)  # there first, so the bytes read are its own
        started = metered.position
        own = 0
        with data, open(target, "xb") as out:
            while chunk := data.read(_CHUNK):
                own += len(chunk)
                written += len(chunk)
                if written > max_bytes:
                    raise _too_big(source, max_bytes)
                if _over_ratio(
                    own, metered.position - started + _RAW_READ, max_ratio
                ) or _over_ratio(written, metered.position, max_ratio):
                    raise _refuse(
                        source,
                        f"member {member.name!r} expands more than {max_ratio:g} times "
                        f"(stopped after writing {_human(own)} of it; a decompression bomb?)",
                    )
                out.write(chunk)
