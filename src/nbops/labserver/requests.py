"""What a request to the nbops API may hold, and how it is refused.

`ApiError` is a refusal carrying the API's JSON error body (`message`, `fix`, `kind`);
`nbops_error` turns an NbopsError into a 422. `resolve_in_root` resolves a request's path
inside the server's root folder (400 when it is not a usable path, 403 when it leads out),
and `refuse_deep_or_broken_text` judges a parsed body (400 when it nests deeper than
MAX_JSON_DEPTH or holds text that is not Unicode). `json_safe` and `shown_value` make values
fit to send back.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import tornado.web

from nbops._jsonsafe import json_safe as _json_safe
from nbops.errors import NbopsError
from nbops.labserver.jobs import error_fields


class ApiError(tornado.web.HTTPError):
    """A refusal with the contract's JSON body."""

    def __init__(self, status: int, message: str, *, fix: str | None = None, **extra: Any):
        # tornado formats log_message with %-args: keep a literal % literal.
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.body: dict[str, Any] = {
            "message": message,
            "fix": fix,
            "kind": extra.pop("kind", KINDS.get(status, "Error")),
            **extra,
        }


KINDS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
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


def refuse_deep_or_broken_text(data: Any) -> None:
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
            raise too_deep()
        stack.extend((child, depth + 1) for child in children)


def too_deep() -> ApiError:
    return ApiError(
        400,
        f"the request body is nested more than {MAX_JSON_DEPTH} levels deep",
        fix="send a JSON object of plain values, as the panel does",
    )
