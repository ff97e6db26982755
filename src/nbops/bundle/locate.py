"""Where a bundle is: a folder, or its `.tar.gz` / `.tgz` archive. Light on purpose (the
standard library and nbops.errors only): the command line refuses a path that holds no
bundle before it imports the machinery that loads, verifies or serves one.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbops.errors import BundleError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def require_bundle_path(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path when it is a folder or a bundle archive file; else the BundleError
    `load_bundle` raises for it ("no bundle at PATH")."""
    source = Path(path)
    if source.is_dir() or (source.is_file() and source.name.endswith(ARCHIVE_SUFFIXES)):
        return source
    raise BundleError(
        f"no bundle at {source}", fix="give a bundle folder or its .tar.gz (nbops bundle)"
    )
