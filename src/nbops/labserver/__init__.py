"""The jupyter_server extension behind nbops' JupyterLab panel: an HTTP API under
`/nbops/api/` (see handlers.py for the endpoints).

Enabled by `jupyter-config/jupyter_server_config.d/nbops.json` (installed into
`etc/jupyter/jupyter_server_config.d`), or `--ServerApp.jpserver_extensions='{"nbops": True}'`.
jupyter_server is imported only here, never by `import nbops`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Deferred import: the handlers (jupyter_server, tornado) load when the server loads the
# extension, not when jupyter_server or a test imports nbops.labserver to find it.


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the API handlers with the server (called by jupyter_server)."""
    from nbops.labserver.handlers import API, LabState, handlers

    root = Path(serverapp.root_dir).expanduser().resolve()
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", handlers(base_url, LabState(root=root)))
    serverapp.log.info("nbops: API at %s%s/ (root folder %s)", base_url, API, root)
