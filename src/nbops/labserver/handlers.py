"""The HTTP API of the JupyterLab extension, under `/nbops/api/`.

Every handler is an authenticated jupyter_server APIHandler speaking JSON. Paths in requests
are relative to the server's root folder; a path that leaves it (`..`, an absolute path, a
symlink pointing outside) is refused with 403. Errors are always JSON:
`{"error": {"message", "fix", "kind", ...}}` — 400 for a bad request, 403 outside the root,
404 for a missing notebook or job, 409 when an export is already running, 422 when nbops
refuses the notebook or the parameters (the error names the cell when it can).

Analysis problems are not failed requests: `GET analysis` answers 200 with the problem in
`problems`, so the panel can show it beside the cell. Likewise `GET suggest` (the tags nbops
proposes, as `nbops tag --suggest --json` prints them) answers 200 with what the proposal
could not resolve in `problems`; `POST suggest` writes the accepted proposals into the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import responses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from nbops.errors import NbopsError, TagError
from nbops.labserver.jobs import (
    ExclusiveLock,
    RunJobs,
    error_fields,
    find_run_output,
    relative_to_root,
    run_target,
)

if TYPE_CHECKING:
    from nbops.config import Project

T = TypeVar("T")

API = "nbops/api"


@dataclass
class LabState:
    """What the handlers of one server share."""

    root: Path  # the server's root folder, resolved
    export_lock: ExclusiveLock = field(default_factory=ExclusiveLock)
    runs: RunJobs = field(default_factory=RunJobs)


class ApiError(tornado.web.HTTPError):
    """A refusal with the contract's JSON body."""

    def __init__(self, status: int, message: str, *, fix: str | None = None, **extra: Any):
        # tornado formats log_message with %-args: keep a literal % literal.
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.body: dict[str, Any] = {
            "message": message,
            "fix": fix,
            "kind": extra.pop("kind", _KINDS.get(status, "Error")),
            **extra,
        }


_KINDS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
          409: "Busy", 500: "InternalError"}  # fmt: skip


def nbops_error(exc: NbopsError, root: Path, notebook: Path | None = None) -> ApiError:
    """An NbopsError as a 422 with the error's kind, fix and cell."""
    body = error_fields(exc, root, notebook)
    return ApiError(422, body.pop("message"), fix=body.pop("fix"), **body)


def json_safe(value: Any) -> Any:
    """`value` made strict JSON: NaN and infinities become null, tuples and sets lists, keys
    text, anything else unknown its repr (a parameter default can be any Python literal)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, set | frozenset):
        return [json_safe(v) for v in sorted(value, key=repr)]
    if isinstance(value, Path):
        return value.as_posix()
    return repr(value)


def resolve_in_root(root: Path, raw: Any, *, what: str = "path") -> Path:
    """A request's path, relative to the server root, resolved (symlinks followed).

    Raises ApiError 400 when it is missing or not text, 403 when it is absolute or leads
    outside the root.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(
            400,
            f"{what!r} is missing",
            fix=f"give {what!r} as a path relative to the Jupyter server's root folder",
        )
    if "\0" in raw:
        raise ApiError(400, f"{what!r} holds a NUL character", fix="give a plain file path")
    outside = ApiError(
        403,
        f"{raw!r} is outside the Jupyter server's root folder",
        fix="open a notebook inside the folder Jupyter was started in; paths are relative "
        "to it and may not leave it (no '..', absolute paths or symlinks pointing outside)",
    )
    # Absolute (on this system), or rooted with a slash or backslash.
    if Path(raw).is_absolute() or Path(raw).drive or raw.startswith(("/", "\\")):
        raise outside
    try:
        resolved = (root / raw).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise outside from None
    if not resolved.is_relative_to(root):
        raise outside
    return resolved


class NbopsHandler(APIHandler):
    """Shared by every nbops handler: the state, JSON replies and JSON errors."""

    state: LabState

    def initialize(self, state: LabState) -> None:
        self.state = state

    @property
    def root(self) -> Path:
        return self.state.root

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(json_safe(data), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as `{"error": {...}}`, never a page or a traceback (those go to the
        server log, which tornado writes before calling this)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = exc.body
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message % exc.args if exc.log_message else None
            body = {
                "message": message or exc.reason or responses.get(status_code, "error"),
                "fix": None,
                "kind": _KINDS.get(status_code, "Error"),
            }
        else:
            body = {
                "message": "the nbops server extension met an unexpected error"
                + (f": {type(exc).__name__}: {exc}" if exc is not None else ""),
                "fix": "see the Jupyter server log for the traceback",
                "kind": "InternalError",
            }
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": json_safe(body)}, allow_nan=False))

    def body(self) -> dict[str, Any]:
        """The request's JSON body, which must be an object."""
        try:
            data = json.loads(self.request.body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(
                400, "the request body is not valid JSON", fix="send a JSON object"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object", fix="send {...}")
        return data

    def notebook(self, raw: Any) -> Path:
        """The notebook a request names: inside the root, and an existing file."""
        path = resolve_in_root(self.root, raw)
        if not path.is_file():
            raise ApiError(
                404,
                f"no notebook {raw!r}",
                fix="give the path of a notebook file, relative to the server's root folder",
            )
        return path

    def shown(self, path: Path) -> str:
        """A path for the client: relative to the server root (POSIX), or absolute when it
        lies outside (a project whose pyproject.toml sits above the root)."""
        return relative_to_root(path, self.root) or path.resolve().as_posix()

    def project(self, notebook: Path) -> Project:
        """The nbops project of the notebook's folder, as the command line finds it: its
        store and export folder are where `nbops run` and `nbops export` put them."""
        from nbops.config import load_project

        try:
            return load_project(notebook.parent)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, notebook) from None

    async def in_thread(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking nbops work off the IOLoop, so the server stays responsive."""
        return await IOLoop.current().run_in_executor(None, func, *args)


class VocabularyHandler(NbopsHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from nbops.notebook.tags import vocabulary

        self.reply(vocabulary())


class AnalysisHandler(NbopsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        result = await self.in_thread(analyse_for_panel, path, self.root)
        result["path"] = raw  # as the client named it
        self.reply(result)


class ParametersHandler(NbopsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("path", None)
        path = self.notebook(raw)
        project = self.project(path)
        try:
            specs = await self.in_thread(_parameters, path, project.config.secret_params)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        self.reply({"path": raw, "parameters": specs})


class ExportHandler(NbopsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        path = self.notebook(data.get("path"))
        if data.get("out_dir") is not None:
            out = resolve_in_root(self.root, data["out_dir"], what="out_dir")
        else:
            project = self.project(path)
            out = (project.root / project.config.export_dir).resolve()
        if not self.state.export_lock.try_acquire():
            raise ApiError(
                409,
                "an export is already running",
                fix="wait for it to finish, then export again",
            )
        try:
            from nbops.export.exporter import export_notebook

            result = await self.in_thread(export_notebook, path, out)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        finally:
            self.state.export_lock.release()
        self.reply(
            {
                "name": result.name,
                "version": result.version,
                "content_hash": result.content_hash,
                "folder": self.shown(result.folder),
                "package": self.shown(result.package_dir),
                "new_version": result.new_version,
                "steps": len(result.manifest.steps),
                "warnings": [_warning(d) for d in result.diagnostics],
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
        project = self.project(path)
        from nbops.runs.execute import prepare_run

        try:
            prepared = await self.in_thread(
                lambda: prepare_run(path, parameters, project=project, all_cells=all_cells)
            )
        except NbopsError as exc:
            raise nbops_error(exc, self.root, path) from None
        job = self.state.runs.submit(
            data["path"],
            run_target(prepared, project, self.root),
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
                f"no run job {job_id!r}",
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
        project = self.project(path)
        from nbops.bundle.make import bundle_from_run

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
        raise ApiError(404, f"no nbops API endpoint {rest!r}", fix="see nbops.labserver")

    post = put = delete = patch = get


# -- analysis for the panel ---------------------------------------------------------------


def analyse_for_panel(path: Path, root: Path) -> dict[str, Any]:
    """The cells, parameters, steps, problems and warnings of a notebook, as far as they can
    be read: a problem in the notebook is reported in `problems`, never raised.

    `run_output` is null for a source notebook; for a run's output notebook (see
    find_run_output) it is `{"run_id", "source"}`, the source relative to the server root
    (null when unknown or outside the root): the panel exports and runs the source instead.
    """
    from nbops.notebook.analysis import analyse
    from nbops.notebook.read import read_notebook

    result: dict[str, Any] = {
        "cells": [],
        "parameters": [],
        "steps": [],
        "problems": [],
        "warnings": [],
        "tagged": False,
        "run_output": _run_output(path, root),
    }
    try:
        nb = read_notebook(path)
    except TagError:
        # A cell's tags cannot be understood: list the cells anyway, each bad one a problem.
        cells, problems = _cells_leniently(path, root)
        result.update(cells=cells, problems=problems, tagged=True)
        return result
    except NbopsError as exc:
        result["problems"] = [_problem(exc, root, path)]
        return result
    result["cells"] = [
        {
            "index": c.index,
            "id": c.cell_id,
            "type": c.cell_type,
            "role": c.role.value if c.role else None,
            "tag": str(c.tag.step_tag) if c.tag else None,
        }
        for c in nb.cells
    ]
    result["tagged"] = bool(nb.tagged_cells)
    try:
        graph = analyse(nb)
    except NbopsError as exc:
        result["problems"] = [_problem(exc, root, path)]
        result["parameters"] = _parameters_if_readable(nb)
        return result
    result["parameters"] = [
        {"name": p.name, "type": p.type_source, "default": p.default, "description": p.description}
        for p in graph.parameters
    ]
    result["steps"] = [
        {
            "key": s.key,
            "role": s.role.value,
            "name": s.name,
            "cells": [{"index": a.cell.index, "id": a.cell.cell_id} for a in s.cells],
            "inputs": [{"name": i.name, "source": i.source, "step": i.step} for i in s.inputs],
            "outputs": list(s.outputs),
        }
        for s in graph.steps
    ]
    result["warnings"] = [_warning(d) for d in graph.diagnostics]
    return result


def _run_output(path: Path, root: Path) -> dict[str, Any] | None:
    output = find_run_output(path)
    if output is None:
        return None
    source = relative_to_root(output.source, root) if output.source else None
    return {"run_id": output.run_id, "source": source}


def _problem(exc: NbopsError, root: Path, notebook: Path) -> dict[str, Any]:
    return error_fields(exc, root, notebook)


def _warning(diagnostic: Any) -> dict[str, Any]:
    location = diagnostic.location
    number = getattr(location, "number", None)
    return {
        "message": diagnostic.message,
        "cell_index": number - 1 if number is not None else None,
        "cell_id": getattr(location, "cell_id", None) or None,
        "line": getattr(location, "line", None),
    }


def _parameters_if_readable(nb: Any) -> list[dict[str, Any]]:
    from nbops.runs.parameters import parameter_specs

    try:
        specs = parameter_specs(nb)
    except NbopsError:
        return []
    return [
        {"name": s.name, "type": s.type, "default": s.default, "description": s.description}
        for s in specs
    ]


def _parameters(path: Path, secret_names: list[str]) -> list[dict[str, Any]]:
    """The run form's parameters; a secret's default is not sent (null): leave it empty to
    use the notebook's value."""
    from nbops.notebook.read import read_notebook
    from nbops.runs.parameters import parameter_specs

    specs = parameter_specs(read_notebook(path), secret_names)
    return [
        {
            "name": s.name,
            "type": s.type,
            "default": None if s.secret else s.default,
            "description": s.description,
            "secret": s.secret,
        }
        for s in specs
    ]


def _cells_leniently(path: Path, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every cell with its role where its tags can be read, and a problem for each cell
    whose tags cannot (read_notebook stops at the first)."""
    from nbops.errors import CellLocation
    from nbops.notebook import read as reading
    from nbops.notebook.tags import cell_tag

    try:
        raw = path.read_bytes()
        nb = (
            reading._read_percent_script(raw, path)
            if path.suffix == ".py"
            else reading._read_ipynb(raw, path)
        )
    except (OSError, NbopsError) as exc:
        error = exc if isinstance(exc, NbopsError) else NbopsError(str(exc))
        return [], [_problem(error, root, path)]
    cells: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for index, c in enumerate(nb.cells):
        cid = str(c.get("id") or "")
        tag = None
        if c.cell_type == "code":
            tags = [str(t) for t in c.get("metadata", {}).get("tags", [])]
            try:
                tag = cell_tag(tags, CellLocation(str(path), index + 1, cid))
            except TagError as exc:
                problems.append(_problem(exc, root, path))
        cells.append(
            {
                "index": index,
                "id": cid,
                "type": c.cell_type,
                "role": tag.role.value if tag else None,
                "tag": str(tag.step_tag) if tag else None,
            }
        )
    return cells, problems


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
        (r"(?P<rest>.*)", NotFoundHandler),
    ]
    return [(url_path_join(base_url, API, pattern), cls, kwargs) for pattern, cls in routes]
