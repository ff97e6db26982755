"""What the panel's run form shows of a run job while it runs: its progress cell by cell.

Progress. A job knows its plan (`run_plan`): the code cells the run executes, in order, each
with its index in the notebook (from 0) and its step tag (`transform:features`; None when
untagged); `skip` cells are not in it unless the run executes them. While the run goes,
papermill saves the output notebook in the run folder (`<store>/runs/<run id>/output.ipynb`,
atomically) as each cell starts and ends, with the cell's state in `metadata.papermill.status`
(`pending`, `running`, `completed`, `failed`); `run_progress` reads it, matching cells by the
id the run gave them (the notebook's, see runs/execute.py), so the cells papermill and nbops
insert (the injected parameters, the capture cells) are not counted. Once the run ended, the
record's cells say the same (`finished_progress`). Both give::

    {"total": 23, "done": 6, "current": {"index": 8, "position": 7, "step": "train"},
     "failed": null, "cells": [{"index", "step", "status"}, ...],
     "steps": [{"step", "cells", "done", "status"}, ...]}

`position` counts the plan's cells from 1 (`cell 7 of 23`), `index` is the notebook's; a
cell's status is `pending`, `running`, `ok`, `error`, or `not run` (the run ended first); a
step's is `pending`, `running`, `done`, `error` or `not run`. No output notebook yet (the
kernel is starting) is all pending.

The gates, the model and the bundle at the end are outcome.py's.

Standard library only (jobs.py imports it at the top).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbops.notebook.read import NotebookModel

# Deferred import: notebook.tags, in run_plan, so that jobs.py (and the server extension it
# is part of) loads this module without the notebook package.

# papermill's cell states (papermill.engines.NotebookExecutionManager) as the panel names them.
_PAPERMILL_STATUS = {
    "pending": "pending",
    "running": "running",
    "completed": "ok",
    "failed": "error",
}
_FINISHED = {"ok", "error"}


@dataclass(frozen=True)
class PlannedCell:
    """A code cell the run executes: its id in the executed notebook, index, step tag."""

    id: str
    index: int
    step: str | None


def run_plan(notebook: NotebookModel, *, all_cells: bool = False) -> list[PlannedCell]:
    """The code cells a run of `notebook` executes, in order (`skip` cells only with
    `all_cells`; the cells papermill or nbops inserted in an output notebook never)."""
    from nbops.notebook.tags import Role

    return [
        PlannedCell(
            id=cell.cell_id, index=cell.index, step=str(cell.tag.step_tag) if cell.tag else None
        )
        for cell in notebook.cells
        if cell.cell_type == "code"
        and not cell.injected
        and (all_cells or cell.role is not Role.SKIP)
    ]


def cell_states(output: Path) -> dict[str, str] | None:
    """Each code cell's state in papermill's output notebook, by cell id (pending, running,
    ok, error); None when there is no readable output notebook yet."""
    try:
        data = json.loads(output.read_bytes())
    except (OSError, ValueError):
        return None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        return None
    states: dict[str, str] = {}
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata")
        papermill = meta.get("papermill") if isinstance(meta, dict) else None
        status = papermill.get("status") if isinstance(papermill, dict) else None
        if isinstance(cell.get("id"), str):
            states[cell["id"]] = _PAPERMILL_STATUS.get(str(status), "pending")
    return states


def run_progress(plan: list[PlannedCell], output: Path) -> dict[str, Any]:
    """The progress of a running run from its output notebook (see the module docstring)."""
    states = cell_states(output) or {}
    return progress([(c, states.get(c.id, "pending")) for c in plan])


def pending(plan: list[PlannedCell]) -> dict[str, Any]:
    """The progress of a run whose kernel has not started a cell yet."""
    return progress([(c, "pending") for c in plan])


def finished_progress(plan: list[PlannedCell], cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The progress of a run that ended, from its record's cells (CellRun as dicts); cells the
    run did not reach are `not run`."""
    by_index = {c.get("index"): str(c.get("status")) for c in cells}
    shown = []
    for cell in plan:
        status = by_index.get(cell.index, "not run")
        shown.append((cell, "not run" if status == "skipped" else status))
    return progress(shown)


def progress(cells: list[tuple[PlannedCell, str]]) -> dict[str, Any]:
    """Count, locate and group by step the cells' states (see the module docstring)."""
    current = failed = None
    for position, (cell, status) in enumerate(cells, start=1):
        where = {"index": cell.index, "position": position, "step": cell.step}
        if status == "running" and current is None:
            current = where
        if status == "error" and failed is None:
            failed = where
    steps: dict[str, list[str]] = {}
    for cell, status in cells:
        if cell.step is not None:
            steps.setdefault(cell.step, []).append(status)
    return {
        "total": len(cells),
        "done": sum(status in _FINISHED for _, status in cells),
        "current": current,
        "failed": failed,
        "cells": [{"index": c.index, "step": c.step, "status": s} for c, s in cells],
        "steps": [
            {
                "step": step,
                "cells": len(states),
                "done": sum(s in _FINISHED for s in states),
                "status": _step_status(states),
            }
            for step, states in steps.items()
        ],
    }


def _step_status(states: list[str]) -> str:
    if "error" in states:
        return "error"
    if all(s == "ok" for s in states):
        return "done"
    if "running" in states or any(s == "ok" for s in states):
        return "running"
    if all(s == "not run" for s in states):
        return "not run"
    return "pending"
