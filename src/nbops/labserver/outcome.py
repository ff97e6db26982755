"""What the panel's run form shows of a run job that ended: the gate verdicts, whether the run
recorded a model, and why no bundle can be built from it (`set_outcome`, which the runs
handler gives the job's worker, see jobs.run_target).

Gates (`run_gates`): the run's own verdicts when it has some (`nbops ci`'s, the inspector's),
else the project's `gates` (`[tool.nbops]`, with its `baseline`) checked against the run's
values as `nbops ci` checks them; nothing is written to the record (the run stays a plain
run, not a CI one). A gate that does not parse, or a baseline run that cannot be read, is
the `error` of the answer, not of the run; a failed run has no verdicts (as in `nbops ci`).

Whether a bundle can be built is the Runs section's rule (history.bundle_blocked): a
completed run with a model and no failed gate of its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nbops.errors import NbopsError
from nbops.gates import evaluate_gates, parse_gate
from nbops.labserver.history import bundle_blocked, gate_verdicts
from nbops.labserver.jobs import RunJob, error_fields, unexpected_error_fields

if TYPE_CHECKING:
    from nbops.config import Project
    from nbops.runs.record import RunRecord

# Deferred import: runs.store (SQLite, pydantic), in run_gates, opened only for a baseline.

log = logging.getLogger(__name__)


def set_outcome(job: RunJob, record: RunRecord, project: Project) -> None:
    """Fill in what the form shows of the ended run: the model, why no bundle, the gates."""
    job.has_model = bool(record.models)
    job.bundle_blocked = bundle_blocked(record, gate_verdicts(record))
    if record.status != "completed":
        return
    try:
        job.gates = run_gates(record, project)
    except Exception as exc:  # the run completed: a fault checking gates must not hide that
        log.exception("nbops: cannot check the gates of run %s", record.run_id)
        job.gates = {"source": "config", "gates": [], "error": unexpected_error_fields(exc)}


def run_gates(record: RunRecord, project: Project) -> dict[str, Any]:
    """The run's gate verdicts: `{"source": "record"|"config"|"none", "gates": [{gate,
    passed, reason}], "error": error fields or None}` (see the module docstring)."""
    recorded = gate_verdicts(record)
    if recorded:
        return {"source": "record", "gates": recorded, "error": None}
    texts = list(project.config.gates)
    if not texts:
        return {"source": "none", "gates": [], "error": None}
    try:
        gates = [parse_gate(text) for text in texts]
        values = dict(record.gate_values())
        if project.config.baseline:
            from nbops.runs.store import RunStore

            baseline = RunStore(project.store_dir).load(project.config.baseline)
            values.update({f"baseline.{k}": v for k, v in baseline.gate_values().items()})
    except NbopsError as exc:
        return {"source": "config", "gates": [], "error": error_fields(exc)}
    verdicts = [
        {"gate": r.gate, "passed": r.passed, "reason": r.reason}
        for r in evaluate_gates(gates, values)
    ]
    return {"source": "config", "gates": verdicts, "error": None}
