"""`nbops export --bundle`'s workflow: after a notebook is exported, run it (as `nbops run`
does) and bundle the model the run logged, with the export just made: the same folder and
name, so the bundle brings no second version and nothing is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbops.bundle.from_run import bundle_from_run
from nbops.export.exporter import ExportResult
from nbops.runs.execute import run_notebook
from nbops.runs.record import RunRecord


@dataclass(frozen=True)
class NotebookBundle:
    """The run the notebook made and the bundle folder built from it."""

    record: RunRecord
    folder: Path


def bundle_exported(
    notebook: Path,
    export: ExportResult,
    *,
    on_run: Callable[[RunRecord], None] | None = None,
) -> NotebookBundle:
    """Run `notebook` and bundle its model with `export` (the export of that notebook just
    made). `on_run` hears the completed run before the bundle is built. Raises what
    `run_notebook` and `bundle_from_run` raise."""
    record = run_notebook(notebook)
    if on_run is not None:
        on_run(record)
    folder = bundle_from_run(record.run_id, export_dir=export.folder.parent, name=export.name)
    return NotebookBundle(record, folder)
