"""The base of every nbops API handler: the state one server's handlers share (`LabState`),
JSON replies and JSON errors, the request's body, notebook and project (`NbopsHandler`).

A module of its own so that the handlers of several modules (handlers.py, history.py) share
it without importing one another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import responses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop

from nbops.errors import NbopsError
from nbops.labserver.confine import confine_to_root
from nbops.labserver.jobs import ExclusiveLock, RunJobs, relative_to_root
from nbops.labserver.requests import (
    KINDS,
    ApiError,
    json_safe,
    nbops_error,
    refuse_deep_or_broken_text,
    resolve_in_root,
    shown_value,
    too_deep,
)

if TYPE_CHECKING:
    from nbops.config import Project

# Deferred import: config (pydantic) loads with the first request that needs a project, not
# when Jupyter loads the extension at every server start.

T = TypeVar("T")


@dataclass
class LabState:
    """What the handlers of one server share."""

    root: Path  # the server's root folder, resolved
    export_lock: ExclusiveLock = field(default_factory=ExclusiveLock)
    runs: RunJobs = field(default_factory=RunJobs)


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
                "kind": KINDS.get(status_code, "Error"),
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
            raise too_deep() from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object", fix="send {...}")
        refuse_deep_or_broken_text(data)
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
