"""The panel's Runs section: a notebook's runs as the run store keeps them, under
`/nbops/api/history`.

    GET  history?path=NB[&limit=N]            NB's runs, newest first (any path form the runs
                                              recorded: the panel's, `nbops run`, sweeps, CI)
    GET  history/compare?path=NB&run=A&run=B  parameters and metrics side by side, as
                                              `nbops runs compare` prints them
    POST history/output  {path, run_id}       the run's output notebook, made visible in
                                              `<NB folder>/nbops-runs/` (a copy; reused)
    POST history/rerun   {path, run_id}       `nbops rerun` as a job (poll `runs/<job>`)

Each run of the list (see `run_summary`) says its status, when, the parameters that differ
from the notebook's defaults, the last value of each metric, the gate verdicts, the failing
cell (0-based index) of a failed run, each code cell's step, duration and status (`cells`,
for the DAG), whether it has an output notebook, and whether a
bundle can be built from it (`bundle_blocked`: why not) or was already (`bundle`).

Reads and writes stay inside the server's root: the store must lie inside it (403 as for a
run, see confine.py); the bundles folder is read only when it does, and a store not made
yet is not created by listing it (no runs). Runs of the store that are not the notebook's
are refused (404) by `output` and `rerun`. Errors are the API's JSON one-liners.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web

from nbops.errors import NbopsError, RunError, RunNotFoundError
from nbops.labserver.base import NbopsHandler
from nbops.labserver.jobs import (
    RUN_OUTPUTS_FOLDER,
    RunJob,
    error_fields,
    output_copy_name,
    publish_output_notebook,
    relative_to_root,
)
from nbops.labserver.requests import ApiError, nbops_error, shown_value

if TYPE_CHECKING:
    from nbops.config import Project
    from nbops.runs.record import RunRecord
    from nbops.runs.store import RunStore

# Deferred imports: runs.store, runs.history and bundle.from_run (pydantic, SQLite, papermill)
# load with the first request for runs, not when Jupyter loads the extension.

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_COMPARED = 10
NO_MODEL = (
    "this run recorded no model: call nbops.log_model(model) in the train step, or tag the "
    "cells that fit and use it (train, evaluate), and run again"
)


# -- what the panel shows of a run --------------------------------------------------------------


def run_summary(
    record: RunRecord, bundles: dict[str, dict[str, Any]], *, has_output: bool
) -> dict[str, Any]:
    """One run as the Runs section lists it; `bundles`: the bundles built from runs, by run
    id (see bundles_by_run); `has_output`: its output notebook is in the store."""
    gates = gate_verdicts(record)
    failure = record.failure
    return {
        "run_id": record.run_id,
        "short_id": record.run_id.rsplit("-", 1)[-1],
        "status": record.status,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_s": record.duration_s,
        "sweep_id": record.sweep_id,
        "rerun_of": record.rerun_of,
        "ci": bool(record.gates),
        "parameters": changed_parameters(record),
        "metrics": record.latest_metrics(),
        "gates": gates,
        "failure": None
        if failure is None
        else {
            "cell_index": failure.cell_index,
            "cell_id": failure.cell_id,
            "role": failure.role,
            "ename": failure.ename,
            "evalue": failure.evalue,
        },
        # Each code cell's step tag (`role`), duration and outcome: the DAG's per-step
        # durations and statuses for the selected run.
        "cells": [c.model_dump() for c in record.cells],
        "has_model": bool(record.models),
        "has_output": has_output,
        "bundle_blocked": bundle_blocked(record, gates),
        "bundle": bundles.get(record.run_id),
    }


def changed_parameters(record: RunRecord) -> dict[str, Any]:
    """The run's parameters whose value differs from the notebook's default (as the run
    recorded both); secret ones are never shown."""
    from nbops.runs.parameters import REDACTED

    schema = {p.name: p for p in record.parameter_schema}
    changed = {}
    for name, value in record.parameters.items():
        spec = schema.get(name)
        if value == REDACTED or (spec is not None and spec.secret):
            continue
        if spec is None or _differs(value, spec.default):
            changed[name] = value
    return changed


def _differs(value: Any, default: Any) -> bool:
    # 2 and 2.0 are the same value; True and 1 are not.
    if isinstance(value, bool) or isinstance(default, bool):
        return type(value) is not type(default) or value != default
    return bool(value != default)


def gate_verdicts(record: RunRecord) -> list[dict[str, Any]]:
    """The run's gate results (`nbops ci`'s, else the inspector's): gate, passed, reason."""
    gates = list(record.gates)
    if not gates:
        for entry in record.quality.values():
            if entry.get("kind") == "gates":
                gates = list(entry.get("report", {}).get("gates", []))
    return [
        {"gate": str(g.get("gate")), "passed": bool(g.get("passed")), "reason": g.get("reason")}
        for g in gates
        if isinstance(g, dict)
    ]


def bundle_blocked(record: RunRecord, gates: list[dict[str, Any]]) -> str | None:
    """Why no bundle can be built from the run (None: it can): it did not complete, it
    recorded no model (logged, or captured by nbops), or a gate failed."""
    if record.status != "completed":
        return f"a bundle needs a completed run; this one is {record.status}"
    if not record.models:
        return NO_MODEL
    failed = [g["gate"] for g in gates if not g["passed"]]
    if failed:
        return (
            f"gate failed: {'; '.join(failed)} (`nbops bundle --run ID --override` builds anyway)"
        )
    return None


def bundles_by_run(project: Project, root: Path) -> dict[str, dict[str, Any]]:
    """The newest bundle built from each run, by run id: `{folder, name, version}` (folder
    relative to the server root), read from the manifests in the project's `bundles/`; none
    when that folder lies outside the root (it is not read)."""
    from nbops.bundle.from_run import DEFAULT_OUT

    folder = project.root / DEFAULT_OUT
    if relative_to_root(folder, root) is None or not folder.is_dir():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for manifest in folder.glob("*/manifest.json"):
        bundle = manifest.parent
        shown = relative_to_root(bundle, root)
        if shown is None or relative_to_root(manifest, root) is None:
            continue  # a symlink leading out
        try:
            data = json.loads(manifest.read_bytes())
            run_id = data["source"]["run_id"]
            name, version = str(data["name"]), int(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a bundle nbops can read: not one of a run
        if not isinstance(run_id, str):
            continue
        if run_id not in found or found[run_id]["version"] < version:
            found[run_id] = {"folder": shown, "name": name, "version": version}
    return found


def existing_bundle(project: Project, root: Path, ref: str) -> dict[str, Any] | None:
    """The bundle already built from run `ref` (an id or the end of one), or None (also when
    the store has no such run or cannot be read: building it then says why)."""
    try:
        store = _existing_store(project)
        run_id = store.load(ref).run_id if store is not None else None
    except NbopsError:
        return None
    if run_id is None:
        return None
    return bundles_by_run(project, root).get(run_id)


def list_runs(project: Project, notebook: Path, root: Path, limit: int) -> list[dict[str, Any]]:
    """The notebook's runs, newest first; none when the project has no store yet."""
    store = _existing_store(project)
    if store is None:
        return []
    records = store.list(limit=limit, notebook=str(notebook))
    bundles = bundles_by_run(project, root) if records else {}
    return [run_summary(r, bundles, has_output=_output_exists(store, r)) for r in records]


def _output_exists(store: RunStore, record: RunRecord) -> bool:
    return (
        bool(record.output_notebook)
        and (store.run_dir(record.run_id) / str(record.output_notebook)).is_file()
    )


def compare_runs(project: Project, refs: list[str]) -> dict[str, Any]:
    """`nbops runs compare REFS` as JSON: the runs' ids and a row per parameter and metric,
    each value also as the command prints it (`shown`), `differs` when the runs disagree."""
    from nbops.runs.history import compare

    store = _existing_store(project)
    if store is None:
        raise RunNotFoundError(f"no run store in {project.store_dir}", fix="run the notebook first")
    records = [store.load(ref) for ref in refs]
    return {
        "runs": [r.run_id for r in records],
        "rows": [
            {
                "kind": row.kind,
                "name": row.name,
                "values": row.values,
                "shown": [_shown(v) for v in row.values],
                "differs": row.differs,
            }
            for row in compare(records)
        ],
    }


def _shown(value: Any) -> str:
    """A value as `nbops runs compare` prints it."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def _existing_store(project: Project) -> RunStore | None:
    """The project's run store, or None when it was never made (listing creates nothing)."""
    from nbops.runs.store import RunStore

    if not (project.store_dir / "runs.db").is_file():
        return None
    return RunStore(project.store_dir)


def notebook_run(project: Project, notebook: Path, ref: str) -> RunRecord:
    """Run `ref` of the project's store, which must be a run of `notebook`: ApiError 404
    otherwise (another notebook's run, or none)."""
    store = _existing_store(project)
    if store is not None:
        try:
            record = store.load(ref)
        except NbopsError:
            pass
        else:
            runs = store.list(limit=-1, notebook=str(notebook))
            if any(r.run_id == record.run_id for r in runs):
                return record
    raise ApiError(
        404,
        f"no run {shown_value(ref)} of {notebook.name}",
        fix="pick a run from the notebook's Runs list (nbops runs list --notebook NB)",
    )


def output_notebook(store: RunStore, record: RunRecord, notebook: Path, root: Path) -> str:
    """The visible copy of the run's output notebook, relative to the server root: the copy
    already in `<notebook folder>/nbops-runs/` when there is one of this run (by its name and
    papermill's record of the run), else a new one (publish_output_notebook), never written
    over another file. ApiError 404 when the run kept no output notebook, 409 when no copy
    can be made inside the root."""
    if not record.output_notebook:
        raise ApiError(404, f"run {record.run_id} kept no output notebook",
                       fix="a run that failed before its kernel started has none")  # fmt: skip
    output = store.run_dir(record.run_id) / record.output_notebook
    if not output.is_file():
        raise ApiError(
            404,
            f"the output notebook of run {record.run_id} is gone from the run store",
            fix="run the notebook again",
        )
    in_copies = notebook.parent.name == RUN_OUTPUTS_FOLDER
    folder = notebook.parent if in_copies else notebook.parent / RUN_OUTPUTS_FOLDER
    names = [folder / output_copy_name(notebook, record.run_id, full=f) for f in (False, True)]
    for copy in names:
        shown_copy = relative_to_root(copy, root)
        if shown_copy is not None and _is_copy_of(copy, record.run_id):
            return shown_copy
    if all(copy.exists() for copy in names):  # never written over
        raise ApiError(
            409,
            f"{folder.name}/{names[0].name} and {names[1].name} exist and are not copies of "
            f"run {record.run_id}",
            fix="move or rename one of them, then open the run's output again",
        )
    made = publish_output_notebook(output, notebook, record.run_id, root)
    shown = relative_to_root(made, root) if made is not None else None
    if shown is None:
        raise ApiError(
            409,
            f"cannot copy the output notebook of run {record.run_id} to {folder.name}/ "
            "(see the Jupyter server log)",
            fix=f"make {folder.name}/ a writable folder inside the server's root, or see "
            f"`nbops runs show {record.run_id}` for the store's copy",
        )
    return shown


def _is_copy_of(copy: Path, run_id: str) -> bool:
    """Whether `copy` is an output notebook of run `run_id`: papermill wrote it to
    `<store>/runs/<run id>/output.ipynb` (its metadata says so)."""
    try:
        data = json.loads(copy.read_bytes())
        output_path = str(data["metadata"]["papermill"]["output_path"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return Path(output_path).parent.name == run_id


def rerun_target(run_id: str, project: Project, notebook: Path, root: Path) -> Any:
    """The work of a re-run job (`nbops rerun RUN`): run it again into the project's store and
    fill the job in as a run job (status, run id, metrics, output notebook copy, error)."""

    def target(job: RunJob) -> None:
        from nbops.runs.history import rerun
        from nbops.runs.store import RunStore

        class JobStore(RunStore):
            """The project's store, telling the job the new run's id as soon as it exists.
            The run re-run names its notebook as the panel does (absolute): `nbops run
            NB.ipynb` records the path as typed, relative to a folder that is not the
            server's working folder."""

            def load(self, ref: str) -> RunRecord:
                found = super().load(ref)
                if found.run_id != run_id:
                    return found
                return found.model_copy(update={"notebook": str(notebook)})

            def save(self, record: RunRecord) -> None:
                if record.run_id != run_id:
                    job.run_id = job.run_id or record.run_id
                super().save(record)

        store = JobStore(project.store_dir)
        record: RunRecord | None
        try:
            _, record = rerun(run_id, store=store, project=project)
        except RunError as exc:
            job.run_id = job.run_id or exc.run_id
            job.error = error_fields(exc, root, notebook)
            record = store.load(job.run_id) if job.run_id else None
            if record is not None and record.failure is not None:
                job.error["cell_index"] = record.failure.cell_index
                job.error["cell_id"] = record.failure.cell_id
        if record is None:
            job.status = "failed"
            return
        job.metrics = record.latest_metrics()
        output = store.run_dir(record.run_id) / (record.output_notebook or "")
        if record.output_notebook and output.is_file():
            copy = publish_output_notebook(output, notebook, record.run_id, root)
            opened = copy or output
            job.output_notebook = relative_to_root(opened, root) or opened.as_posix()
        job.status = record.status

    return target


# -- the handlers ---------------------------------------------------------------------------


class HistoryHandler(NbopsHandler):
    """GET history?path=NB[&limit=N]: the notebook's runs from the run store."""

    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        limit = _limit(self.get_query_argument("limit", None))
        project = self.project(path, writes=("store",))  # opening a store writes to it
        try:
            runs = await self.in_thread(list_runs, project, path, self.root, limit)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({"path": raw, "store": self.shown(project.store_dir), "runs": runs})


class CompareHandler(NbopsHandler):
    """GET history/compare?path=NB&run=A&run=B: `nbops runs compare A B` as JSON."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.notebook(self.get_query_argument("path", None))
        refs = [r.strip() for r in self.get_query_arguments("run")]
        if len(refs) < 2 or len(refs) > MAX_COMPARED or not all(refs):
            raise ApiError(
                400,
                f"give 2 to {MAX_COMPARED} runs to compare (got {len(refs)})",
                fix="send run=ID once per run: history/compare?path=NB&run=A&run=B",
            )
        project = self.project(path, writes=("store",))
        try:
            result = await self.in_thread(compare_runs, project, refs)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply(result)


class OutputHandler(NbopsHandler):
    """POST history/output {path, run_id}: the run's output notebook, as a visible copy."""

    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        ref = _run_ref(data)
        project = self.project(path, writes=("store",))

        def find() -> tuple[str, str]:
            from nbops.runs.store import RunStore

            record = notebook_run(project, path, ref)
            store = RunStore(project.store_dir)
            return record.run_id, output_notebook(store, record, path, self.root)

        try:
            run_id, shown = await self.in_thread(find)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({"run_id": run_id, "output_notebook": shown})


class RerunHandler(NbopsHandler):
    """POST history/rerun {path, run_id}: run it again (same parameters and notebook version,
    as `nbops rerun`) as a job; 202 with the job to poll at runs/<job>."""

    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        ref = _run_ref(data)
        project = self.project(path, writes=("store", "tracking_uri"))

        def check() -> tuple[str, list[str]]:
            from nbops.runs.history import rerun_warnings

            record = notebook_run(project, path, ref)
            # As the rerun reads it (see rerun_target): the notebook by its absolute path.
            absolute = record.model_copy(update={"notebook": str(path)})
            return record.run_id, rerun_warnings(absolute)

        try:
            run_id, warnings = await self.in_thread(check)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        job = self.state.runs.submit(
            data["path"],
            rerun_target(run_id, project, path, self.root),
            store_dir=project.store_dir,
        )
        # The notebook as the client names it, not the server's absolute path.
        warnings = [w.replace(str(path), data["path"]) for w in warnings]
        self.reply(
            {"job": job.id, "path": job.notebook, "rerun_of": run_id, "warnings": warnings},
            status=202,
        )


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400,
            f"'limit' must be a whole number from 1 to {MAX_LIMIT}: {shown_value(raw)}",
            fix=f"leave it out for the newest {DEFAULT_LIMIT} runs",
        )
    return limit


def _run_ref(data: dict[str, Any]) -> str:
    ref = data.get("run_id")
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 200:
        raise ApiError(
            400,
            "'run_id' is missing or not a run id",
            fix="give the id of one of the notebook's runs (as history lists them)",
        )
    return ref.strip()


# The routes, relative to the API's root (one line of handlers.handlers adds them).
ROUTES: list[tuple[str, type]] = [
    ("history", HistoryHandler),
    ("history/compare", CompareHandler),
    ("history/output", OutputHandler),
    ("history/rerun", RerunHandler),
]
