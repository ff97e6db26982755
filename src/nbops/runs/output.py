"""A run's output notebook after papermill: its skipped cells put back as code cells, and
the partial output a run that died left behind redacted by the secret names (store.py calls
redact_left_output when liveness.py finds the owner gone; execute.py restores skipped cells of
a finished run). Kept apart from execute.py so the store can use it without importing the
executor (which imports the store)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from nbops.redact import redact_notebook_node
from nbops.runs.files import leftover_temporaries, write_text
from nbops.runs.parameters import REDACTED
from nbops.runs.record import RunRecord

OUTPUT_NOTEBOOK = "output.ipynb"
SKIPPED = "skipped"  # the key in a cell's `nbops` metadata that marks it not executed

# Deferred import: nbformat (with jsonschema) in redact_left_output, read only for a run that
# died, so reading the store stays light.


def restore_skipped(executed: Any) -> bool:
    """Turn the skipped cells of an output notebook back into (unexecuted) code cells.
    Returns whether there were any."""
    restored = False
    for cell in executed.cells:
        if cell.cell_type == "raw" and cell.get("metadata", {}).get("nbops", {}).get(SKIPPED):
            cell.cell_type, cell.outputs, cell.execution_count = "code", [], None
            restored = True
    return restored


def redact_left_output(record: RunRecord, run_dir: Path) -> None:
    """Redact the partial output notebook of a run whose process died without finishing it
    (liveness.py), as the process would have, and remove the temporary files it left. The
    secret values are gone with the process: the redaction goes by the secret names."""
    import nbformat

    for temp in leftover_temporaries(run_dir):  # half-written, and may hold a secret
        with contextlib.suppress(OSError):
            temp.unlink()
    output = run_dir / (record.output_notebook or OUTPUT_NOTEBOOK)
    if not output.exists():
        return
    secrets = {p.name for p in record.parameter_schema if p.secret}
    secrets |= {name for name, value in record.parameters.items() if value == REDACTED}
    try:
        executed = nbformat.read(output, as_version=4)
    except Exception:  # written by an nbops without atomic writes: it cannot be redacted
        output.unlink(missing_ok=True)
        record.warnings.append(f"the partial {output.name} was unreadable and is removed")
        return
    restored = restore_skipped(executed)
    if secrets:
        redact_notebook_node(executed, secrets)
    if secrets or restored:
        write_text(output, nbformat.writes(executed))
