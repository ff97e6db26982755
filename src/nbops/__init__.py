"""nbops: from a tagged notebook to a versioned pipeline package, tracked runs and a bundle.

Importing nbops is cheap (it runs in every user's kernel): the functions below load their
machinery on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from nbops._version import __version__

__all__ = [
    "CellLocation",
    "ExportResult",
    "NbopsError",
    "StepGraph",
    "__version__",
    "analyse",
    "check_export",
    "export_notebook",
    "hash_split",
    "infer_schema",
    "inspect",
    "inspection",
    "load_bundle",
    "load_snapshot",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "read_notebook",
    "run_notebook",
    "slice_metrics",
    "track_data",
    "validate",
]

# Public name -> module that defines it; imported lazily by __getattr__.
_LAZY = {
    "CellLocation": "nbops.errors",
    "NbopsError": "nbops.errors",
    "ExportResult": "nbops.export.exporter",
    "check_export": "nbops.export.exporter",
    "export_notebook": "nbops.export.exporter",
    "StepGraph": "nbops.notebook.analysis",
    "analyse": "nbops.notebook.analysis",
    "read_notebook": "nbops.notebook.read",
    "run_notebook": "nbops.runs.execute",
    # The in-notebook capture API: standard library only at import.
    "log_artifact": "nbops.runs.capture",
    "log_metric": "nbops.runs.capture",
    "log_metrics": "nbops.runs.capture",
    "log_model": "nbops.runs.capture",
    "log_param": "nbops.runs.capture",
    "log_params": "nbops.runs.capture",
    "track_data": "nbops.runs.capture",
    "load_snapshot": "nbops.runs.snapshots",
    # Data validation, slice metrics and the inspector.
    "infer_schema": "nbops.workbench.api",
    "validate": "nbops.workbench.api",
    "slice_metrics": "nbops.workbench.api",
    "hash_split": "nbops.quality.split",
    "inspect": "nbops.workbench.inspector",
    "inspection": "nbops.workbench.inspector",
    "load_bundle": "nbops.bundle.load",
}

if TYPE_CHECKING:
    from nbops.bundle.load import load_bundle
    from nbops.errors import CellLocation, NbopsError
    from nbops.export.exporter import ExportResult, check_export, export_notebook
    from nbops.notebook.analysis import StepGraph, analyse
    from nbops.notebook.read import read_notebook
    from nbops.quality.split import hash_split
    from nbops.runs.capture import (
        log_artifact,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        track_data,
    )
    from nbops.runs.execute import run_notebook
    from nbops.runs.snapshots import load_snapshot
    from nbops.workbench.api import infer_schema, slice_metrics, validate
    from nbops.workbench.inspector import inspect, inspection


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server's entry point: the extension lives in nbops.labserver."""
    return [{"module": "nbops.labserver"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "nbops-jupyterlab"}]
