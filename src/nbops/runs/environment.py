"""What a run ran on: git state, Python, platform, installed packages, environment variables."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from nbops.redact import redact_environment
from nbops.runs.record import EnvironmentInfo, GitInfo


def git_info(folder: Path) -> GitInfo:
    """Commit, branch and dirty flag of the repository holding `folder` (empty outside git)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    # One git process instead of three: the commit and branch come in status's header lines.
    status = git("status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is not None:
        lines = status.splitlines()
        header = dict(line[2:].partition(" ")[::2] for line in lines if line.startswith("# "))
        commit, branch = header.get("branch.oid"), header.get("branch.head")
        if commit == "(initial)":  # no commit yet: as `rev-parse HEAD` failing
            return GitInfo()
        if commit and branch:
            return GitInfo(
                commit=commit,
                branch="HEAD" if branch == "(detached)" else branch,  # as --abbrev-ref says
                dirty=any(not line.startswith("#") for line in lines),
            )
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(
        commit=commit,
        branch=git("rev-parse", "--abbrev-ref", "HEAD"),
        dirty=bool(status) if status is not None else None,
    )


def safe_environment() -> dict[str, str]:
    """Environment variables fit to record: every name that looks secret (TOKEN, KEY...) and
    every `NBOPS_PARAM_*` left out, credentials inside the other values redacted
    (`DATABASE_URL=postgres://user:***@host/db`; see nbops.redact)."""
    return redact_environment(os.environ)


def installed_packages() -> dict[str, str]:
    """Every installed distribution, lowercase name -> version.

    Reading every package's metadata takes about a second with a few hundred installed, on
    each run; the list is kept (in this process, and in a file in the user's cache folder
    for the next process) under a key that changes when a package is installed, upgraded
    or removed: the interpreter, its search path, and the metadata folders on it (see
    _packages_key). Saving a notebook beside them does not change it.
    """
    key = _packages_key()
    cached = _packages_cache.get(key[0])
    if cached is not None and cached[0] == key:
        return dict(cached[1])
    packages = _read_packages_file(key)
    if packages is None:
        packages = _scan_packages()
        if _racy(key):  # a change in the same clock tick would not change the key: not kept
            return packages
        _write_packages_file(key, packages)
    _packages_cache[key[0]] = (key, packages)
    return dict(packages)


def _racy(key: _PackagesKey) -> bool:
    """Whether an `*.egg-info` folder changed in the last two seconds: a file system's clock
    is coarse, so a change right after this look could leave its mtime as is."""
    now = time.time_ns()
    return any(now - mtime < 2_000_000_000 for _, found in key[1] for _, mtime in found)


def _scan_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


_Stamp = tuple[str, tuple[tuple[str, int], ...]]
_PackagesKey = tuple[str, tuple[_Stamp, ...]]
_packages_cache: dict[str, tuple[_PackagesKey, dict[str, str]]] = {}


def _packages_key() -> _PackagesKey:
    """(interpreter and search path, what each folder on the path holds that
    importlib.metadata reads: the names of its `*.dist-info` folders, which carry the
    version, and its `*.egg-info` ones with their modification times, which may not)."""
    entries = [entry or "." for entry in sys.path]
    stamps = tuple((entry, _metadata_entries(entry)) for entry in entries)
    ident = json.dumps([sys.executable, os.path.abspath("."), entries])
    return hashlib.sha256(ident.encode()).hexdigest()[:16], stamps


def _metadata_entries(entry: str) -> tuple[tuple[str, int], ...]:
    try:
        if not os.path.isdir(entry):  # a zip file on the path, or nothing
            return (("", os.stat(entry).st_mtime_ns),)
        found = []
        with os.scandir(entry) as listing:
            for item in listing:
                if item.name.endswith(".dist-info"):
                    found.append((item.name, 0))
                elif item.name.endswith(".egg-info"):
                    found.append((item.name, item.stat().st_mtime_ns))
        return tuple(sorted(found))
    except OSError:
        return ()


def _packages_file(ident: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbops" / f"packages-{ident}.json"


def _read_packages_file(key: _PackagesKey) -> dict[str, str] | None:
    try:
        data = json.loads(_packages_file(key[0]).read_text("utf-8"))
        stamps = tuple(
            (str(entry), tuple((str(n), int(m)) for n, m in found))
            for entry, found in data["stamps"]
        )
        packages = data["packages"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if stamps != key[1] or not isinstance(packages, dict):
        return None
    return {str(k): str(v) for k, v in packages.items()}


def _write_packages_file(key: _PackagesKey, packages: dict[str, str]) -> None:
    """Keep the list for the next process; a cache that cannot be written is skipped."""
    path = _packages_file(key[0])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".packages-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"stamps": key[1], "packages": packages}, f)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return


def environment_info(kernel: str) -> EnvironmentInfo:
    return EnvironmentInfo(
        python=sys.version.split()[0],
        platform=platform.platform(),
        kernel=kernel,
        packages=installed_packages(),
        variables=safe_environment(),
    )


def installed_kernels() -> list[str]:
    """The names of the Jupyter kernels installed here (what `--kernel` may name)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())
