"""Installing nbops installs the prebuilt JupyterLab extension and enables the server one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

JUPYTER = str(Path(sys.executable).with_name("jupyter"))


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_lab_extension_is_installed_and_enabled() -> None:
    proc = subprocess.run(
        [JUPYTER, "labextension", "list"], capture_output=True, text=True, check=False
    )
    listing = _plain(proc.stdout + proc.stderr)
    assert re.search(r"nbops-jupyterlab v\S+ enabled\s+OK", listing), listing


def test_the_server_extension_is_enabled() -> None:
    proc = subprocess.run(
        [JUPYTER, "server", "extension", "list"], capture_output=True, text=True, check=False
    )
    listing = _plain(proc.stdout + proc.stderr)
    assert re.search(r"nbops enabled", listing) and re.search(r"nbops \S+ OK", listing), listing
