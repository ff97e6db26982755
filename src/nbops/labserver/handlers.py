"""The HTTP API of the JupyterLab extension, under `/nbops/api/`.

Every handler is an authenticated jupyter_server APIHandler speaking JSON. Paths in requests
are relative to the server's root folder; a path that leaves it (`..`, an absolute path, a
symlink pointing outside) is refused with 403. Errors are always JSON:
`{"error": {"message", "fix", "kind", ...}}` — 400 for a bad request, 403 outside the root,
404 for a missing notebook or job, 409 when an export is already running, 422 when nbops
refuses the notebook or the parameters (the error names the cell when it can).

Nothing is written outside the root either. A notebook's project is looked for from its
folder up to the root, never above it (a pyproject.toml above the root is not read). The
folders an endpoint writes to (`store`, `export_dir`, `bundles/`, a local MLflow
`tracking_uri`) must resolve inside the root and hold no symlink leading out where nbops
writes by name (see LINK_DEPTH): one that leads out (`../..`, an absolute path, a symlink)
is refused with 403 naming the setting and its pyproject.toml, before anything is written.

Bad input is a 400 with a one-line message, never a 500: a path too long for the system or
holding text that is not Unicode, a body that is not a JSON object, nested deeper than
MAX_JSON_DEPTH or holding lone surrogates. A value the request sent back in a message is
shortened.

Analysis problems are not failed requests: `GET analysis` answers 200 with the problem in
`problems`, so the panel can show it beside the cell, with its one-click fix where it has
one (fixes.py), and the notebook's last export (`last_export`, null when none) saying
whether it was made from the notebook as saved now. Likewise `GET suggest` (the tags nbops
proposes, as `nbops tag --suggest --json` prints them) answers 200 with what the proposal
could not resolve in `problems`; `POST suggest` writes the accepted proposals into the file.

`POST export` takes the export's `target` (package, kfp or airflow: `nbops export --target`)
and says where the files went; see exporttarget.py.

The Runs section's endpoints (`history`: a notebook's runs from the run store, compared,
their output notebooks, re-run) are in history.py. `POST bundle` for a run that already has
a bundle answers that bundle (`existing: true`) instead of building a new version.

This module holds the handlers; their base is in base.py, the request checks in requests.py,
the confinement of a project's folders in confine.py, what the panel reads of a notebook in
panel.py, and the run jobs in jobs.py (their progress in progress.py, what the run form shows
when they end in outcome.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join

from nbops.errors import NbopsError
from nbops.labserver.base import LabState, NbopsHandler
from nbops.labserver.confine import confine_to_root
from nbops.labserver.exporttarget import (
    engine_targets,
    requested_target,
    target_options,
    written_files,
)
from nbops.labserver.history import ROUTES as HISTORY_ROUTES
from nbops.labserver.history import existing_bundle
from nbops.labserver.jobs import run_target
from nbops.labserver.outcome import set_outcome
from nbops.labserver.panel import analyse_for_panel, panel_warning, run_form_parameters
from nbops.labserver.requests import (
    MAX_JSON_DEPTH,
    ApiError,
    json_safe,
    nbops_error,
    resolve_in_root,
    shown_value,
)
from nbops.notebook.tags import vocabulary

# Re-exported: the request checks, the panel's reading and the handlers' base lived here
# before they had modules of their own (requests.py, confine.py, panel.py, base.py).
__all__ = [
    "API",
    "MAX_JSON_DEPTH",
    "ApiError",
    "LabState",
    "NbopsHandler",
    "analyse_for_panel",
    "confine_to_root",
    "handlers",
    "json_safe",
    "nbops_error",
    "resolve_in_root",
    "shown_value",
]

# Deferred imports, inside the handlers that use them: export.exporter, runs.execute and
# bundle.from_run (pydantic, SQLite, the notebook analysis), and notebook.read, suggest and
# tagwrite, and labserver.fixes (the notebook analysis, some twenty modules): they load with
# the first request that needs them, not when Jupyter loads the extension at every server
# start.

API = "nbops/api"


class VocabularyHandler(NbopsHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.reply(vocabulary())


class AnalysisHandler(NbopsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        result = await self.in_thread(analyse_for_panel, path, self.root)
        result["path"] = raw  # as the client named it
        result["last_export"] = await self.in_thread(self._last_export, path)
        self.reply(result)

    def _last_export(self, path: Path) -> dict[str, Any] | None:
        """The notebook's export in its project's export folder, if any (fixes.last_export):
        the panel says when it was made from an older notebook. None when the project cannot
        be read (the export itself reports that)."""
        from nbops.labserver.fixes import last_export

        try:
            project = self.project(path)
        except ApiError:
            return None
        found = last_export(path, (project.root / project.config.export_dir).resolve())
        if found is not None:
            found["folder"] = self.shown(found["folder"])
        return found


class ParametersHandler(NbopsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        project = self.project(path)
        try:
            specs = await self.in_thread(run_form_parameters, path, project.config.secret_params)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({"path": raw, "parameters": specs})


class ExportHandler(NbopsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        target = requested_target(data)  # package, kfp or airflow (exporttarget.py)
        project = None
        if data.get("out_dir") is not None:
            out = resolve_in_root(self.root, data["out_dir"], what="out_dir")
        else:
            project = self.project(path, writes=("export_dir",))
            out = (project.root / project.config.export_dir).resolve()
        options = target_options(lambda: project or self.project(path), target)
        if not self.state.export_lock.try_acquire():
            raise ApiError(
                409,
                "an export is already running",
                fix="wait for it to finish, then export again",
            )
        try:
            from nbops.export.exporter import export_notebook

            result = await self.in_thread(
                lambda: export_notebook(path, out, targets=engine_targets(target), options=options)
            )
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        finally:
            self.state.export_lock.release()
        self.reply(
            {
                "name": result.name,
                "version": result.version,
                "content_hash": result.content_hash,
                "source_sha256": result.manifest.source.sha256,
                "folder": self.shown(result.folder),
                "package": self.shown(result.package_dir),
                "new_version": result.new_version,
                "steps": len(result.manifest.steps),
                "warnings": [panel_warning(d) for d in result.diagnostics],
                **written_files(result, target, self.shown),
            }
        )


class RunsHandler(NbopsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ApiError(
                400,
                "'parameters' must be a JSON object of names and values",
                fix='send {"parameters": {"name": value}}',
            )
        all_cells = data.get("all_cells", False)
        if not isinstance(all_cells, bool):
            raise ApiError(400, "'all_cells' must be true or false", fix='send {"all_cells": true}')
        project = self.project(path, writes=("store", "tracking_uri"))
        from nbops.runs.execute import prepare_run

        try:
            prepared = await self.in_thread(
                lambda: prepare_run(path, parameters, project=project, all_cells=all_cells)
            )
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        job = self.state.runs.submit(
            data["path"],
            run_target(prepared, project, self.root, lambda j, r: set_outcome(j, r, project)),
            store_dir=project.store_dir,
        )
        self.reply({"job": job.id, "path": job.notebook}, status=202)

    @tornado.web.authenticated
    def get(self) -> None:
        self.reply({"jobs": [j.to_json() for j in self.state.runs.all()]})


class RunJobHandler(NbopsHandler):
    @tornado.web.authenticated
    def get(self, job_id: str) -> None:
        job = self.state.runs.get(job_id)
        if job is None:
            raise ApiError(
                404,
                f"no run job {shown_value(job_id)}",
                fix="jobs are kept while the server runs; start the run again",
            )
        self.reply(job.to_json())


class BundleHandler(NbopsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        run_id = data.get("run_id")
        if not isinstance(run_id, str) or not run_id.strip():
            raise ApiError(400, "'run_id' is missing", fix="give the id of a completed run")
        project = self.project(path, writes=("store", "export_dir", "bundles"))
        built = await self.in_thread(existing_bundle, project, self.root, run_id.strip())
        if built is not None:  # a second click shows the bundle, not a new version of it
            self.reply({**built, "run_id": run_id.strip(), "existing": True})
            return
        from nbops.bundle.from_run import bundle_from_run

        try:
            folder = await self.in_thread(lambda: bundle_from_run(run_id.strip(), project=project))
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({"folder": self.shown(folder), "run_id": run_id.strip()})


class SuggestHandler(NbopsHandler):
    """Suggested tags (`nbops tag --suggest --json`): GET proposes, POST writes the accepted
    ones (`cells`: indexes or ids; all when absent) as `nbops tag --write` does."""

    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        force = self.get_query_argument("force", "false").lower() in ("1", "true", "yes")
        suggestion = await self._suggest(path, force)
        self.reply({**suggestion.to_json(), "notebook": raw})

    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        force = data.get("force", False)
        cells = data.get("cells")
        if not isinstance(force, bool):
            raise ApiError(400, "'force' must be true or false", fix='send {"force": true}')
        if cells is not None and not (
            isinstance(cells, list) and all(isinstance(c, int | str) for c in cells)
        ):
            raise ApiError(
                400,
                "'cells' must be a list of cell indexes or ids",
                fix='send {"cells": [0, 3]} (indexes from 0) or cell ids; leave it out for all',
            )
        suggestion = await self._suggest(path, force)
        indexes = None if cells is None else _cell_indexes(suggestion, cells)
        from nbops.notebook.tagwrite import write_suggestion

        try:
            written = await self.in_thread(write_suggestion, suggestion, indexes)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({**suggestion.to_json(), "notebook": data["path"], "written": written})

    async def _suggest(self, path: Path, force: bool) -> Any:
        from nbops.notebook.read import read_notebook
        from nbops.notebook.suggest import suggest_roles

        try:
            return await self.in_thread(lambda: suggest_roles(read_notebook(path), force=force))
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None


def _cell_indexes(suggestion: Any, cells: list[int | str]) -> list[int]:
    """Cell indexes from indexes or ids; ApiError 400 naming one that is not a code cell."""
    by_id = {c.cell_id: c.index for c in suggestion.cells if c.cell_id}
    known = {c.index for c in suggestion.cells}
    indexes = []
    for cell in cells:
        index = cell if isinstance(cell, int) else by_id.get(cell)
        if index is None or index not in known:
            raise ApiError(
                400,
                f"no code cell {cell!r} in the suggestion",
                fix="give code cells by index (from 0) or id, as GET suggest lists them",
            )
        indexes.append(index)
    return indexes


class NotFoundHandler(NbopsHandler):
    """Anything else under /nbops/api/: a JSON 404, not Jupyter's HTML page."""

    @tornado.web.authenticated
    def get(self, rest: str) -> None:
        raise ApiError(404, f"no nbops API endpoint {shown_value(rest)}", fix="see nbops.labserver")

    post = put = delete = patch = get


def handlers(base_url: str, state: LabState) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL patterns of the API, under the server's base URL."""
    kwargs = {"state": state}
    routes: list[tuple[str, type]] = [
        ("vocabulary", VocabularyHandler),
        ("analysis", AnalysisHandler),
        ("parameters", ParametersHandler),
        ("export", ExportHandler),
        ("runs", RunsHandler),
        (r"runs/(?P<job_id>[A-Za-z0-9_-]+)", RunJobHandler),
        ("bundle", BundleHandler),
        ("suggest", SuggestHandler),
        *HISTORY_ROUTES,  # the Runs section: history, history/compare, /output, /rerun
        (r"(?P<rest>.*)", NotFoundHandler),
    ]
    return [(url_path_join(base_url, API, pattern), cls, kwargs) for pattern, cls in routes]
