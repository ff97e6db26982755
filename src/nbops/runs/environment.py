"""What a run ran on: git state, Python, platform, installed packages, environment variables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


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
