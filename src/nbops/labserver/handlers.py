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
`problems`, so the panel can show it beside the cell. Likewise `GET suggest` (the tags nbops
proposes, as `nbops tag --suggest --json` prints them) answers 200 with what the proposal
could not resolve in `problems`; `POST suggest` writes the accepted proposals into the file.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import responses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from nbops._jsonsafe import json_safe as _json_safe
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
    """`value` made strict JSON (`nbops._jsonsafe`): NaN and infinities become null, tuples and
    sets lists, keys text, anything else unknown its repr (a parameter default can be any
    Python literal)."""
    return _json_safe(value, fallback=repr)


# How deep a request body may nest: far more than any request of the panel needs, far less
# than what would exhaust the interpreter's recursion limit further on.
MAX_JSON_DEPTH = 64


def shown_value(raw: Any, limit: int = 80) -> str:
    """`raw` quoted for a message: its repr (one line), shortened when long."""
    text = repr(raw)
    if len(text) <= limit:
        return text
    size = f" ({len(raw)} characters)" if isinstance(raw, str) else ""
    return f"{text[: limit - 20]}...{text[-8:]}{size}"


def resolve_in_root(root: Path, raw: Any, *, what: str = "path") -> Path:
    """A request's path, relative to the server root, resolved (symlinks followed).

    Raises ApiError 400 when it is missing, not text (a NUL, a lone surrogate) or too long
    for the system, 403 when it is absolute, leads outside the root or cannot be read.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(
            400,
            f"{what!r} is missing",
            fix=f"give {what!r} as a path relative to the Jupyter server's root folder",
        )
    if "\0" in raw:
        raise ApiError(400, f"{what!r} holds a NUL character", fix="give a plain file path")
    if not _is_unicode(raw):
        raise ApiError(
            400,
            f"{what!r} holds text that is not valid Unicode: {shown_value(raw)}",
            fix="give the file's name as plain text",
        )
    shown = shown_value(raw)
    outside = ApiError(
        403,
        f"{shown} is outside the Jupyter server's root folder",
        fix="open a notebook inside the folder Jupyter was started in; paths are relative "
        "to it and may not leave it (no '..', absolute paths or symlinks pointing outside)",
    )
    # Absolute (on this system), or rooted with a slash or backslash.
    if Path(raw).is_absolute() or Path(raw).drive or raw.startswith(("/", "\\")):
        raise outside
    try:
        resolved = (root / raw).resolve()
    except OSError as exc:
        raise _unreadable(exc, what, shown) or outside from None
    except RuntimeError:  # a symlink loop
        raise outside from None
    if not resolved.is_relative_to(root):
        raise outside
    try:
        os.stat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        pass  # a missing file is the caller's to judge (404, or a folder to create)
    except OSError as exc:
        raise _unreadable(exc, what, shown) or outside from None
    return resolved


def _unreadable(exc: OSError, what: str, shown: str) -> ApiError | None:
    """The refusal for a path the system will not look up; None for a symlink loop (which
    is refused as leading outside)."""
    if exc.errno == errno.ELOOP:
        return None
    if exc.errno == errno.ENAMETOOLONG:
        return ApiError(
            400,
            f"{what!r} is too long for this system: {shown}",
            fix="give a shorter path (each name at most 255 bytes, the whole a few thousand)",
        )
    return ApiError(
        403,
        f"{what!r} {shown} cannot be read: {exc.strerror or type(exc).__name__}",
        fix="check the file's permissions, or give another path",
    )


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, such as "\ud800"
        return False
    return True


def _refuse_deep_or_broken_text(data: Any) -> None:
    """ApiError 400 when a parsed body nests deeper than MAX_JSON_DEPTH or holds a string
    that is not valid Unicode; iterative, so any depth is judged without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                raise ApiError(
                    400,
                    f"the request body holds text that is not valid Unicode: {shown_value(value)}",
                    fix="send text as UTF-8, without lone surrogates such as \\ud800",
                )
            continue
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children)


def _too_deep() -> ApiError:
    return ApiError(
        400,
        f"the request body is nested more than {MAX_JSON_DEPTH} levels deep",
        fix="send a JSON object of plain values, as the panel does",
    )


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
                "fix": "check the request's URL, arguments and body"
                if status_code == 400
                else None,
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
        except RecursionError:  # the parser's own limit, far below 100,000 levels
            raise _too_deep() from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object", fix="send {...}")
        _refuse_deep_or_broken_text(data)
        return data

    def notebook(self, raw: Any) -> Path:
        """The notebook a request names: inside the root, and an existing file."""
        path = resolve_in_root(self.root, raw)
        if not path.is_file():
            raise ApiError(
                404,
                f"no notebook {shown_value(raw)}",
                fix="give the path of a notebook file, relative to the server's root folder",
            )
        return path

    def shown(self, path: Path) -> str:
        """A path for the client: relative to the server root (POSIX), or absolute when it
        lies outside (a project whose pyproject.toml sits above the root)."""
        return relative_to_root(path, self.root) or path.resolve().as_posix()

    def project(self, notebook: Path, *, writes: tuple[str, ...] = ()) -> Project:
        """The nbops project of the notebook's folder, as the command line finds it (its
        store and export folder are where `nbops run` and `nbops export` put them), except
        that it is looked for no higher than the server root.

        `writes`: the folders the request will write to (see project_folders); ApiError 403
        when one of them leads outside the root.
        """
        from nbops.config import load_project

        try:
            project = load_project(notebook.parent, stop=self.root)
        except NbopsError as exc:
            raise nbops_error(exc, self.root, notebook) from None
        confine_to_root(project, self.root, writes)
        return project

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
            project = self.project(path, writes=("export_dir",))
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


# -- where a project writes ---------------------------------------------------------------


def project_folders(project: Project) -> dict[str, Path]:
    """The folders a project's runs, exports and bundles write to, by setting: `store`,
    `export_dir`, `bundles` (not a setting: the fixed folder `nbops bundle` writes to) and
    `tracking_uri` when it names a local file or folder (MLflow's `file:`/`sqlite:` URIs or
    a plain path; relative ones are relative to the server's working folder, as MLflow
    reads them)."""
    from nbops.bundle.from_run import DEFAULT_OUT

    folders = {
        "store": project.root / project.config.store,
        "export_dir": project.root / project.config.export_dir,
        "bundles": project.root / DEFAULT_OUT,
    }
    local = _local_tracking_path(project)
    if local is not None:
        folders["tracking_uri"] = local
    return folders


def _local_tracking_path(project: Project) -> Path | None:
    uri = project.config.tracking_uri
    if project.tracking != "mlflow" or not uri:
        return None
    from urllib.parse import unquote, urlsplit

    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        path = unquote(uri[len("file:") :])
        path = "/" + path.lstrip("/") if path.startswith("//") else path
    elif scheme.startswith("sqlite"):
        path = unquote(uri.split(":///", 1)[1]) if ":///" in uri else ""
    elif len(scheme) <= 1:  # a plain path (a one-letter scheme is a Windows drive)
        path = uri
    else:  # a tracking server (http, databricks, ...): nothing is written here
        return None
    return Path(path) if path else None  # `sqlite://` alone is in memory


# How deep into a folder it writes to nbops looks for a symlink leading out: deep enough for
# what it writes there by name (`.nbops/runs.db`, `.nbops/runs/<id>`, `pipelines/<name>/
# <name>/`, `bundles/<name>-v<N>/`), shallow enough to stay quick in a store of many runs.
LINK_DEPTH = {"store": 2, "export_dir": 3, "bundles": 2, "tracking_uri": 1}


def confine_to_root(project: Project, root: Path, settings: tuple[str, ...]) -> None:
    """ApiError 403 naming the setting and its pyproject.toml when a folder the request
    writes to resolves outside the server root (`../..`, an absolute path, a symlink), or
    holds a symlink leading out where nbops writes (see LINK_DEPTH)."""
    folders = project_folders(project)
    pyproject = project.root / "pyproject.toml"
    where = relative_to_root(pyproject, root) if pyproject.is_file() else None
    for setting in settings:
        folder = folders.get(setting)
        if folder is None:
            continue
        if not _resolves_inside(folder, root):
            raise _leads_outside(project, root, setting, folder, where)
        link = _link_leading_out(folder.resolve(), root, LINK_DEPTH[setting])
        if link is not None:
            raise _leads_outside(project, root, setting, link, where)


def _link_leading_out(folder: Path, root: Path, depth: int) -> Path | None:
    """The first symlink within `depth` levels of `folder` (a folder inside the root) whose
    target lies outside the root; None when there is none (or the folder does not exist)."""
    level = [folder]
    for _ in range(depth):
        below: list[Path] = []
        for current in level:
            try:
                entries = list(os.scandir(current))
            except OSError:  # not a folder, missing, unreadable: nothing written through it
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    if not _resolves_inside(path, root):
                        return path
                elif entry.is_dir(follow_symlinks=False):
                    below.append(path)
        level = below
    return None


def _resolves_inside(folder: Path, root: Path) -> bool:
    try:
        return folder.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        return False


def _leads_outside(
    project: Project, root: Path, setting: str, folder: Path, where: str | None
) -> ApiError:
    """The refusal of a folder outside the root: the setting, where it is set, and why it
    leads out (written so, or a symlink on the way)."""
    by_link = Path(os.path.normpath(folder.absolute())).is_relative_to(root)
    link = relative_to_root(folder.parent, root)
    link_name = f"{link}/{folder.name}" if link not in (None, ".") else folder.name
    if setting == "bundles":
        told = "the bundles folder 'bundles'"
    else:
        given = setting in project.config.model_fields_set
        told = f"{setting} = {shown_value(getattr(project.config, setting))}" + (
            f" (set in [tool.nbops] of {where or 'pyproject.toml'})"
            if given
            else " (the default" + (f", not set in {where})" if where else ")")
        )
    reason = f" ({link_name} resolves outside through a symlink)" if by_link else ""
    change = (
        f"replace the symlink on the way to {link_name} with a folder"
        if by_link
        else f"set {setting} in [tool.nbops] of {where or 'the project pyproject.toml'} to a "
        "folder inside the root"
    )
    return ApiError(
        403,
        f"{told} leads outside the Jupyter server's root folder{reason}; the nbops panel "
        "writes only inside it",
        fix=f"{change}, or start Jupyter in a folder that holds it (the nbops command line "
        "is not confined)",
        setting=setting,
        file=where,
    )


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
    output = find_run_output(path, root)
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
