"""Reading a request body strictly, and the error answers (422) that name the place.

`parse_body` refuses what JSON does not have (NaN, infinities, numbers beyond the float range,
lone UTF-16 surrogates, bytes that are not UTF-8) with FastAPI-style errors locating each
value; `_validation_errors` renders pydantic's errors so that no answer can fail to encode
and no record is echoed back. `RecordError` is a refused record: a 422 with `loc` and `type`.
"""

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from nbops.errors import BundleError

_JSON = "application/json"


MAX_ERRORS = 20  # validation errors listed in one answer
MAX_INT = 2**64  # a larger integer given is not echoed back in an error
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # a UTF-16 surrogate written as \uXXXX


class RecordError(BundleError):
    """A request the server refuses (a 422): where (`loc`, FastAPI's convention) and why."""

    def __init__(
        self,
        message: str,
        *,
        loc: Sequence[str | int] = ("body", "records"),
        kind: str = "bundle_error",
        fix: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.loc = list(loc)
        self.kind = kind

    def detail(self) -> dict[str, Any]:
        return {"type": self.kind, "loc": self.loc, "msg": str(self)}


class _BadBody(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "bad body")
        self.errors = errors


class _NotFinite:
    """What NaN, Infinity, -Infinity or an overflowing number such as 1e309 parse to."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _printable(text: str) -> str:
    """Text safe to write into a UTF-8 answer: a lone surrogate shown as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_body(body: bytes) -> Any:
    """The JSON value of a request body, refusing what JSON does not have (NaN, infinities,
    numbers too large for a float, lone UTF-16 surrogates, bytes that are not UTF-8).

    Raises `_BadBody` with FastAPI-style errors, each locating the value from "body" on.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"the body is not UTF-8 text (byte {e.start}); send JSON encoded as UTF-8"
        raise _BadBody([{"type": "json_invalid", "loc": ["body", e.start], "msg": msg}]) from None
    found = False

    def constant(name: str) -> _NotFinite:
        nonlocal found
        found = True
        return _NotFinite(name)

    def number(literal: str) -> float | _NotFinite:
        value = float(literal)
        if math.isfinite(value):
            return value
        return constant(literal)

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as e:
        msg = f"JSON decode error: {e.msg}"
        raise _BadBody([{"type": "json_invalid", "loc": ["body", e.pos], "msg": msg}]) from None
    except RecursionError:
        msg = "the JSON is nested too deeply"
        raise _BadBody([{"type": "json_invalid", "loc": ["body"], "msg": msg}]) from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        msg = "JSON decode error: a number has too many digits"
        raise _BadBody([{"type": "json_invalid", "loc": ["body"], "msg": msg}]) from None
    if found or _SURROGATE_ESCAPE.search(body):
        errors = _unrepresentable(value)
        if errors:
            raise _BadBody(errors)
    return value


def _unrepresentable(value: Any) -> list[dict[str, Any]]:
    """The places of non-finite numbers and lone surrogates in a parsed JSON value."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, ["body"])]
    while stack and len(errors) < MAX_ERRORS:
        item, loc = stack.pop()
        if isinstance(item, _NotFinite):
            errors.append(
                {
                    "type": "finite_number",
                    "loc": loc,
                    "msg": f"{item.text} is not a number JSON allows (no NaN, no infinities, "
                    "nothing beyond the float range); send a finite number, or null where "
                    "the field may be empty",
                }
            )
        elif isinstance(item, str):
            if _has_surrogate(item):
                errors.append(_surrogate_error(loc, item))
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if _has_surrogate(key):
                    errors.append(_surrogate_error([*loc, _printable(key)], key))
                else:
                    stack.append((child, [*loc, key]))
        elif isinstance(item, list):
            stack.extend((child, [*loc, i]) for i, child in reversed(list(enumerate(item))))
    return errors


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_error(loc: list[str | int], text: str) -> dict[str, Any]:
    return {
        "type": "string_unicode",
        "loc": loc,
        "msg": f"the text {_printable(text)[:80]!r} holds a lone UTF-16 surrogate, which is not "
        "Unicode; send valid Unicode text",
    }


def _validation_errors(errors: Sequence[Any], prefix: Sequence[str | int] = ()) -> list[Any]:
    """pydantic's errors as JSON-safe dicts: type, loc, msg, and the input when it is a
    short scalar (a record or a list is not echoed back)."""
    out: list[Any] = []
    for error in list(errors)[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "type": str(error.get("type", "value_error")),
            "loc": [*prefix, *(_safe_loc(p) for p in error.get("loc", ()))],
            "msg": _printable(str(error.get("msg", ""))),
        }
        given = error.get("input")
        if (
            given is None
            or isinstance(given, bool)
            or (isinstance(given, int) and -MAX_INT <= given <= MAX_INT)
        ):
            item["input"] = given
        elif isinstance(given, float):
            item["input"] = given if math.isfinite(given) else str(given)
        elif isinstance(given, str):
            item["input"] = _printable(given[:200])
        out.append(item)
    return out


def _safe_loc(part: Any) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return _printable(str(part))


def _errors_content(errors: list[Any]) -> bytes:
    return json.dumps({"detail": errors}, allow_nan=False, ensure_ascii=False).encode()
