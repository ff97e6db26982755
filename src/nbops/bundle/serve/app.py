"""Serve a bundle over HTTP: a FastAPI app with validation, micro-batching, metrics and logging.

    app = create_app(bundle)              # a fastapi.FastAPI; run it with any ASGI server
    serve(bundle, port=8000)              # or run it here with uvicorn, on loopback

Endpoints:

- `POST /predict` takes `{"records": [{...}, ...]}` (1 to 10,000 records) and answers
  `{"predictions": [...], "model": name, "version": v}`; `?proba=true` adds
  `"probabilities"` (and `"classes"` when the bundle names them) for a bundle with
  `predict_proba`. Each record is checked against a pydantic model generated from the
  bundle's schema (`request_model`): one field per request column, typed from the column's
  kind, required unless the column is nullable, categories as a `Literal`; fields that are
  not request columns (an id, the label, a column the serving code drops) are accepted and
  ignored, as `nbops predict` and `Bundle.predict` ignore extra columns; a bad record is a
  422 naming the field and the reason (FastAPI's error format, `{"detail": [{"type",
  "loc", "msg"}]}`). The OpenAPI document describes exactly this model.
- `GET /health` → `{"status": "ok", "model", "version", "uptime_seconds", "queued",
  "signature"}`; `signature` is `{"status": "verified" | "unverified" | "unsigned", "key":
  fingerprint}` for a loaded bundle (`nbops.bundle.signing`), null for another object. 503
  with `"status": "failing"` and a `reason` when the model failed, at start-up, on one
  reference record built from the schema (`reference_record`).
- `GET /metadata` → the bundle's manifest.
- `GET /metrics` → Prometheus text format: `nbops_requests_total{endpoint,status}`,
  `nbops_errors_total` (responses with a status of 400 or more),
  `nbops_request_latency_seconds{endpoint}` (histogram), the predictions — a count per
  predicted value, `nbops_predictions_total{value}`, for a classifier, a histogram
  `nbops_predicted_value` for a regressor — `nbops_batch_size` (records per `predict` call,
  histogram) and the request log's `nbops_request_log_lines_total{outcome}`.
- `/docs` (Swagger UI, its assets served under `/docs-assets` from the fastapi-offline
  package: no CDN), `/openapi.json`.

Serving behaviour:

- Body size: a pure ASGI middleware answers 413 (JSON) when Content-Length, or the bytes
  actually received, exceed `max_body_bytes`. Nothing a client sends stops the server, and
  no input is a 5xx: the body is parsed strictly (`parse_body`): bytes that are not UTF-8,
  malformed JSON, NaN, infinities, numbers beyond the float range (1e309) and lone UTF-16
  surrogates, anywhere in the body, are a 422 whose `loc` names the place; a body sent as
  another content type is a 415. Error answers are strict JSON and echo no record back.
- Per-row checks only: a record is judged by the request model (types, nullability,
  categories, the integer range of the column's dtype) and by what its own values do — a
  value the column's dtype cannot hold, an infinity in the model's input (the features code
  divided by zero: `non_finite_feature`, naming the computed column) or a `ValueError`
  (or overflow) from the model are `RecordError`s, a 422 naming the record. Dataset-level
  checks (null fractions, drift) are monitoring's, so a request's answer does not depend on
  what is batched with it.
- Micro-batching: validated requests are queued; one worker task merges queued requests
  into one `bundle.predict` call on a DataFrame of all their records (at most `max_batch`
  records per call; a single request larger than that is predicted alone, in one call, not
  split), run in a worker thread so the event loop keeps accepting. It waits up to
  `batch_wait_ms` for more requests, but only while other `/predict` requests are being
  received, so a lone client pays no wait. Requests that arrive while a batch is predicting
  form the next one. If a merged call raises, each request is predicted alone, so one bad
  request fails alone: a `BundleError` is a 422 with its message (its record found by
  halving the request when one record alone fails), anything else a 500.
- Request log: with `log_sample > 0`, that share of successful `/predict` requests is
  appended as JSON lines (`timestamp`, `model`, `version`, `records`, `predictions`) to
  `log_path` by a background thread (default `<bundle.path>/../<name>-requests.jsonl`).
  A full queue or a failed write drops the line and counts it; it never fails a request.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations, and the
# request models are local classes that only a live annotation can name.

import asyncio
import contextlib
import json
import keyword
import logging
import math
import queue
import random
import re
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbops.errors import BundleError, NbopsError
from nbops.quality.schema import ColumnSchema, Schema

__all__ = [
    "BodySizeLimitMiddleware",
    "RecordError",
    "ServableBundle",
    "create_app",
    "parse_body",
    "reference_record",
    "request_model",
    "serve",
]

logger = logging.getLogger(__name__)

MAX_RECORDS = 10_000
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = tuple(float(2**i) for i in range(15))  # 1, 2, 4, ... 16384
DEFAULT_VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)
MAX_PREDICTION_VALUES = 100  # distinct predicted values given their own series; then "__other__"
LOG_QUEUE_SIZE = 10_000
SMALL_BATCH = 256  # calls with fewer records run on one OpenMP thread
ENDPOINTS = frozenset({"/predict", "/health", "/metadata", "/metrics", "/docs", "/openapi.json"})
DOCS_ASSETS = "/docs-assets"  # Swagger UI's script, style sheet and icon, from fastapi-offline
_ARRIVING = "nbops.arriving"  # scope key: this /predict request is counted in `arriving`
_JSON = "application/json"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class ServableBundle(Protocol):
    """What serving needs of a loaded bundle (`predict_proba`, `path`, `classes` optional).

    A bundle that also has `transform(frame)` and a `model` with `predict` (a loaded
    `nbops.bundle.load.Bundle`) is predicted in those two steps, the model's input checked
    for infinities in between."""

    @property
    def manifest(self) -> Any: ...  # a pydantic model with `name` and `version`

    @property
    def schema(self) -> Schema: ...

    @property
    def request_columns(self) -> list[str]: ...

    def predict(self, frame: pd.DataFrame) -> Any: ...


# -- the request model -------------------------------------------------------------------------


def request_model(
    schema: Schema, columns: Sequence[str], *, name: str = "Record", strict: bool = True
) -> type[BaseModel]:
    """A pydantic model of one request record: a field per column, typed from the schema.

    integer → int, float → float (integers accepted), boolean → bool, string → str,
    categorical → `Literal[...]` of its categories (str when it has none), datetime →
    datetime (ISO 8601 text). A nullable column is optional (default None); any other is
    required. Fields that are not request columns are ignored (extra columns of raw records,
    as `Bundle.predict` ignores them); NaN and infinities are refused. With `strict` (the default)
    values are not converted between types: "3" is not an integer and 1 is not a boolean.
    Fields are looked up by the column's own name (an alias when it is not a usable Python
    identifier); `model_dump(by_alias=True)` gives the records back keyed by column.
    """
    if not columns:
        raise BundleError("the bundle names no request columns, so there is nothing to serve")
    if len(set(columns)) != len(columns):
        raise BundleError(f"the request columns name a column twice: {list(columns)}")
    fields: dict[str, Any] = {}
    for i, column_name in enumerate(columns):
        try:
            column = schema.column(column_name)
        except NbopsError as e:
            raise BundleError(
                f"request column {column_name!r} is not in the bundle's schema",
                fix="rebuild the bundle so its schema covers every column the model reads",
            ) from e
        python_type, constrained = _python_type(column)
        options: dict[str, Any] = {"alias": column_name}
        if strict and not constrained:
            options["strict"] = True
        if column.kind == "integer":  # what the frame's integer dtype holds
            low, high = _integer_range(column)
            options["ge"], options["le"] = low, high
        example = _example(column)
        if example is not None:
            options["examples"] = [example]
        if column.nullable:
            fields[_attribute(column_name, i)] = (python_type | None, Field(None, **options))
        else:
            fields[_attribute(column_name, i)] = (python_type, Field(..., **options))
    config = ConfigDict(
        extra="ignore",
        allow_inf_nan=False,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _python_type(column: ColumnSchema) -> tuple[Any, bool]:
    """The field type for a column, and whether it is a Literal (which takes no `strict`)."""
    kind = column.kind
    if kind == "integer":
        return int, False
    if kind == "float":
        return float, False
    if kind == "boolean":
        return bool, False
    if kind == "categorical" and column.categories:
        return Literal.__getitem__(tuple(column.categories)), True
    if kind in ("string", "categorical"):
        return str, False
    # datetime: ISO text is accepted (strict mode would refuse text from parsed JSON)
    return datetime, True


def _attribute(column_name: str, index: int) -> str:
    """The Python attribute name of a column's field: its own name when that is usable."""
    usable = (
        column_name.isidentifier()
        and not keyword.iskeyword(column_name)
        and not column_name.startswith(("_", "model_"))
        and not hasattr(BaseModel, column_name)
    )
    return column_name if usable else f"field_{index}"


def _integer_range(column: ColumnSchema) -> tuple[int, int]:
    dtype = _numpy_dtype(column.dtype)
    if dtype is None or dtype.kind not in "iu":
        dtype = np.dtype(np.int64)
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _example(column: ColumnSchema) -> Any:
    """A typical value of a column, from its schema alone (deterministic): the median of a
    number, the most frequent category or text, False, the earliest timestamp; None when the
    schema tells nothing of a text column."""
    kind = column.kind
    frequencies = column.reference.frequencies if column.reference is not None else None
    if kind in ("categorical", "string"):
        known = [c for c in (frequencies or {}) if not column.categories or c in column.categories]
        if known:
            assert frequencies is not None
            return max(sorted(known), key=lambda c: frequencies[c])
        return column.categories[0] if column.categories else None
    if kind in ("integer", "float"):
        middle: Any = (column.quantiles or {}).get("0.5")
        if middle is None:
            middle = column.min
        if isinstance(middle, int | float) and math.isfinite(middle):
            if kind == "integer":
                low, high = _integer_range(column)
                return min(max(round(middle), low), high)
            return float(middle)
        return 0 if kind == "integer" else 0.0
    if kind == "boolean":
        return False
    if kind == "datetime":
        return str(column.min) if isinstance(column.min, str) else "2024-01-01T00:00:00"
    return None


def reference_record(schema: Schema, columns: Sequence[str]) -> dict[str, Any]:
    """One request record built from the schema (`_example` of each column, "" for a text
    column the schema says nothing of): what `/health` predicts at start-up."""
    record: dict[str, Any] = {}
    for name in columns:
        column = schema.column(name)
        value = _example(column)
        if value is None and not column.nullable:
            value = ""
        record[name] = value
    return record


def _fields_by_column(model: type[BaseModel]) -> list[tuple[str, str]]:
    return [(info.alias or attr, attr) for attr, info in model.model_fields.items()]


# -- building the frame ------------------------------------------------------------------------


def _numpy_dtype(text: str | None) -> np.dtype[Any] | None:
    if not text:
        return None
    try:
        dtype = np.dtype(text)
    except TypeError:
        return None
    return dtype


def _column_values(column: ColumnSchema, values: list[Any]) -> Any:
    """One column of the frame, from validated values, in the dtype the model was fit on."""
    kind = column.kind
    has_null = column.nullable and any(v is None for v in values)
    if kind == "float":
        dtype = _numpy_dtype(column.dtype)
        return np.array(values, dtype=dtype if dtype is not None and dtype.kind == "f" else float)
    if kind == "integer":
        dtype = _numpy_dtype(column.dtype)
        if dtype is None and column.dtype:  # an extension dtype such as Int64
            with contextlib.suppress(TypeError, ValueError):
                return pd.array(values, dtype=column.dtype)
        if has_null:
            return np.array(values, dtype=float)
        return np.array(values, dtype=dtype if dtype is not None and dtype.kind in "iu" else int)
    if kind == "boolean":
        return np.array(values, dtype=object if has_null else bool)
    if kind in ("string", "categorical"):
        if column.dtype == "category":
            return pd.Categorical(values, categories=column.categories)
        return values
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    reference = str(column.dtype or "")
    if reference.startswith("datetime64") and "," not in reference:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy() if "," not in reference else stamps.array


def _json_values(values: np.ndarray) -> list[Any]:
    """An array as JSON-safe Python values: NaN and infinities → None, numpy scalars → Python."""
    kind = values.dtype.kind
    if kind in "biuUS":
        return list(values.tolist())
    if kind == "f":
        out: list[Any] = values.tolist()
        return out if bool(np.isfinite(values).all()) else [_json_safe(v) for v in out]
    return [_json_safe(v) for v in values.tolist()]


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, datetime | date | pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(value):
            return None
    return str(value)


# -- reading a request body --------------------------------------------------------------------


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


def _errors_response(status: int, errors: list[Any]) -> Response:
    return Response(
        json.dumps({"detail": errors}, allow_nan=False, ensure_ascii=False),
        status_code=status,
        media_type=_JSON,
    )


# -- metrics -----------------------------------------------------------------------------------


def _number(x: float) -> str:
    x = float(x)
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted({float(b) for b in bounds if math.isfinite(b)}))
        self.counts = [0] * (len(self.bounds) + 1)  # per bucket, the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def observe_many(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if not values.size:
            return
        index = np.searchsorted(np.asarray(self.bounds), values, side="left")
        for i, n in enumerate(np.bincount(index, minlength=len(self.counts)).tolist()):
            self.counts[i] += n
        self.sum += float(values.sum())
        self.count += int(values.size)

    def lines(self, name: str, labels: str = "") -> list[str]:
        prefix = labels + "," if labels else ""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{prefix}le="{_number(bound)}"}} {running}')
        suffix = "{" + labels + "}" if labels else ""
        out.append(f"{name}_sum{suffix} {_number(self.sum)}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class _Metrics:
    """Counters and histograms, shared by the event loop and the prediction thread."""

    def __init__(self, task: str | None, value_buckets: Sequence[float]) -> None:
        self.lock = threading.Lock()
        self.task = task
        self.requests: dict[tuple[str, str], int] = {}
        self.errors = 0
        self.latency: dict[str, _Histogram] = {}
        self.batch = _Histogram(BATCH_BUCKETS)
        self.predicted_counts: dict[str, int] = {}
        self.predicted_values = _Histogram(value_buckets)
        self.log_lines: dict[str, int] = {"written": 0, "dropped": 0, "failed": 0}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 400:
                self.errors += 1
            histogram = self.latency.get(endpoint)
            if histogram is None:
                histogram = self.latency[endpoint] = _Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)

    def observe_predictions(self, predictions: np.ndarray, *, has_proba: bool) -> None:
        with self.lock:
            if self.task is None:
                regression = predictions.dtype.kind == "f" and not has_proba
                self.task = "regression" if regression else "classification"
            self.batch.observe(float(len(predictions)))
            if self.task == "regression":
                with contextlib.suppress(TypeError, ValueError):
                    self.predicted_values.observe_many(np.asarray(predictions, dtype=float).ravel())
                return
            for value, n in _value_counts(predictions).items():
                if value not in self.predicted_counts and (
                    len(self.predicted_counts) >= MAX_PREDICTION_VALUES
                ):
                    value = "__other__"
                self.predicted_counts[value] = self.predicted_counts.get(value, 0) + n

    def count_log_lines(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.log_lines[outcome] += n

    def render(self) -> str:
        with self.lock:
            out = [
                "# HELP nbops_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE nbops_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(
                    f'nbops_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {n}'
                )
            out += [
                "# HELP nbops_errors_total HTTP requests answered with a status of 400 or more.",
                "# TYPE nbops_errors_total counter",
                f"nbops_errors_total {self.errors}",
                "# HELP nbops_request_latency_seconds Time from request start to response end.",
                "# TYPE nbops_request_latency_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.latency.items()):
                out += histogram.lines(
                    "nbops_request_latency_seconds", f'endpoint="{_label(endpoint)}"'
                )
            out += [
                "# HELP nbops_batch_size Records per call of the model's predict.",
                "# TYPE nbops_batch_size histogram",
                *self.batch.lines("nbops_batch_size"),
            ]
            if self.task == "regression":
                out += [
                    "# HELP nbops_predicted_value Predicted values.",
                    "# TYPE nbops_predicted_value histogram",
                    *self.predicted_values.lines("nbops_predicted_value"),
                ]
            else:
                out += [
                    "# HELP nbops_predictions_total Predictions made, by predicted value.",
                    "# TYPE nbops_predictions_total counter",
                ]
                for value, n in sorted(self.predicted_counts.items()):
                    out.append(f'nbops_predictions_total{{value="{_label(value)}"}} {n}')
            out += [
                "# HELP nbops_request_log_lines_total Sampled requests logged, by outcome.",
                "# TYPE nbops_request_log_lines_total counter",
            ]
            for outcome, n in sorted(self.log_lines.items()):
                out.append(f'nbops_request_log_lines_total{{outcome="{outcome}"}} {n}')
        return "\n".join(out) + "\n"


def _value_counts(predictions: np.ndarray) -> dict[str, int]:
    flat = predictions.ravel()
    try:
        values, counts = np.unique(flat, return_counts=True)
    except TypeError:  # mixed types in an object array
        tally: dict[str, int] = {}
        for v in flat.tolist():
            key = str(_json_safe(v))
            tally[key] = tally.get(key, 0) + 1
        return tally
    return {
        str(_json_safe(v)): int(n) for v, n in zip(values.tolist(), counts.tolist(), strict=True)
    }


def _task_of(bundle: Any) -> str | None:
    for source in (bundle, getattr(bundle, "manifest", None)):
        task = getattr(source, "task", None)
        if isinstance(task, str):
            if "regress" in task.lower():
                return "regression"
            if "class" in task.lower():
                return "classification"
    return None


def _value_buckets(schema: Schema) -> list[float]:
    """Histogram bounds for a regressor's predictions: the label's reference bins if known."""
    if schema.label is not None:
        with contextlib.suppress(NbopsError):
            label = schema.column(schema.label)
            if label.reference is not None and label.reference.bin_edges:
                return list(label.reference.bin_edges)
            if label.quantiles:
                return sorted(label.quantiles.values())
    return list(DEFAULT_VALUE_BUCKETS)


# -- predicting --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    columns: dict[str, list[Any]]
    n: int
    proba: bool
    future: "asyncio.Future[_Outcome] | None" = None
    probe: bool = False  # the start-up check: not counted in the metrics


@dataclass
class _Outcome:
    predictions: list[Any]
    probabilities: list[Any] | None = None


class _Predictor:
    """Runs in the prediction thread: frames, the serving code, the model, splitting, metrics.

    A bundle with `transform` and `model` (a loaded `Bundle`) is predicted in two steps, so
    the model's input can be checked: an infinity there (the serving code divided by zero) is
    a `RecordError` naming the column and the record, as is a `ValueError` from the model.
    Any other bundle is predicted with its `predict`, a `ValueError` mapped the same way.
    """

    def __init__(self, bundle: Any, metrics: _Metrics) -> None:
        self.bundle = bundle
        self.metrics = metrics
        self.columns = [bundle.schema.column(c) for c in bundle.request_columns]
        model = getattr(bundle, "model", None)
        self.staged = callable(getattr(bundle, "transform", None)) and callable(
            getattr(model, "predict", None)
        )
        if self.staged:
            self.has_proba = callable(getattr(model, "predict_proba", None))
        else:
            self.has_proba = callable(getattr(bundle, "predict_proba", None))
        self._openmp: Any = None  # threadpoolctl's controller of the OpenMP runtimes, once made

    def _threads(self, n: int) -> contextlib.AbstractContextManager[Any]:
        """One OpenMP thread for a small batch: a thread team costs more than it saves there,
        and its spinning threads take the CPU the event loop needs (the limit is per thread)."""
        if n >= SMALL_BATCH:
            return contextlib.nullcontext()
        if self._openmp is None:
            try:
                from threadpoolctl import ThreadpoolController

                self._openmp = ThreadpoolController().select(user_api="openmp")
            except Exception:  # threadpoolctl comes with scikit-learn; without it, no limit
                self._openmp = False
        if not self._openmp:
            return contextlib.nullcontext()
        return self._openmp.limit(limits=1)

    def run(self, jobs: list[_Job]) -> list[_Outcome | BaseException]:
        try:
            return list(self._predict(jobs))
        except Exception as e:
            if len(jobs) == 1:
                return [self._located(jobs[0], e)]
            logger.debug("a batch of %d requests failed (%s); predicting each alone", len(jobs), e)
        outcomes: list[_Outcome | BaseException] = []
        for job in jobs:
            try:
                outcomes.extend(self._predict([job]))
            except Exception as e:
                outcomes.append(self._located(job, e))
        return outcomes

    def frame(self, jobs: list[_Job]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for column in self.columns:
            if len(jobs) == 1:
                values = jobs[0].columns[column.name]
            else:
                values = [v for job in jobs for v in job.columns[column.name]]
            data[column.name] = _checked_column(column, values)
        return pd.DataFrame(data, copy=False)

    def _outputs(self, frame: pd.DataFrame, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and probabilities) for a frame: the place model errors come from."""
        n = len(frame)
        with self._threads(n):
            if self.staged:
                features = self.bundle.transform(frame)
                _check_finite(features, getattr(self.bundle.model, "feature_names_in_", None))
                model = self.bundle.model
                predictions = np.asarray(_model_call(model.predict, features))
                probabilities = None
                if proba:
                    probabilities = np.asarray(_model_call(model.predict_proba, features))
            else:
                predictions = np.asarray(_model_call(self.bundle.predict, frame))
                probabilities = None
                if proba:
                    probabilities = np.asarray(_model_call(self.bundle.predict_proba, frame))
        if predictions.ndim == 0 or len(predictions) != n:
            raise BundleError(f"the model returned {predictions.size} predictions for {n} records")
        if probabilities is not None and (probabilities.ndim == 0 or len(probabilities) != n):
            raise BundleError(
                f"the model returned {probabilities.size} probabilities for {n} records"
            )
        return predictions, probabilities

    def _predict(self, jobs: list[_Job]) -> list[_Outcome]:
        frame = self.frame(jobs)
        predictions, probabilities = self._outputs(frame, any(job.proba for job in jobs))
        if not all(job.probe for job in jobs):
            self.metrics.observe_predictions(predictions, has_proba=self.has_proba)
        outcomes, start = [], 0
        for job in jobs:
            end = start + job.n
            proba = None
            if job.proba and probabilities is not None:
                proba = _json_values(probabilities[start:end])
            outcomes.append(_Outcome(_json_values(predictions[start:end]), proba))
            start = end
        return outcomes

    def _located(self, job: _Job, error: BaseException) -> BaseException:
        """The error of one request, as a `RecordError` naming its record where one record
        alone fails (found by halving); errors that are not about the input pass unchanged."""
        if not isinstance(error, BundleError | ValueError | ArithmeticError | RuntimeWarning):
            return error
        if isinstance(error, RecordError):
            if len(error.loc) > 2:  # it names its record already
                return error
            located = error
        else:
            message = _printable(str(error))[:500]
            if not isinstance(error, BundleError):
                message = f"the model refuses the records ({type(error).__name__}: {message})"
            located = RecordError(message, kind="bundle_error")
        if job.n < 2:
            located.loc = ["body", "records", 0]
            return located
        try:
            frame = self.frame([job])
        except Exception:
            return located

        def fails(rows: int) -> bool:
            try:
                self._outputs(frame.iloc[:rows], job.proba)
            except Exception:
                return True
            return False

        low, high = 1, job.n  # the shortest failing prefix is within [low, high]
        while low < high:
            middle = (low + high) // 2
            if fails(middle):
                high = middle
            else:
                low = middle + 1
        record = low - 1
        try:
            self._outputs(frame.iloc[record : record + 1], job.proba)
        except Exception as e:  # that record fails alone: name it, with its own error
            alone = self._located(_Job({}, 1, job.proba), e)
            if isinstance(alone, RecordError):
                alone.loc = ["body", "records", record, *alone.loc[3:]]
                return alone
        return located


def _model_call(function: Callable[[Any], Any], data: Any) -> Any:
    """Call the model; its ValueError (an input it refuses) is a RecordError."""
    try:
        return function(data)
    except NbopsError:
        raise
    except (ValueError, ArithmeticError, RuntimeWarning) as e:
        # RuntimeWarning: numpy's overflow warning, raised where warnings are errors
        message = _printable(str(e))[:500]
        raise RecordError(
            f"the model refuses the records ({type(e).__name__}: {message})",
            fix="send values like the ones the model was trained on (schema.json)",
        ) from None


def _checked_column(column: ColumnSchema, values: list[Any]) -> Any:
    """`_column_values`, refusing values the column's dtype cannot hold (a RecordError)."""
    try:
        with np.errstate(over="ignore"):
            array = _column_values(column, values)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as e:
        record = _first_bad_value(column, values)
        loc: list[str | int] = ["body", "records"]
        if record is not None:
            loc += [record, column.name]
        raise RecordError(
            f"column {column.name!r}: a value the model's dtype ({column.dtype}) cannot hold "
            f"({type(e).__name__}: {_printable(str(e))[:200]})",
            loc=loc,
            kind="value_out_of_range",
        ) from None
    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
        infinite = np.isinf(array)
        if infinite.any():
            record = int(np.argmax(infinite))
            raise RecordError(
                f"column {column.name!r}: {values[record]!r} is beyond the range of the "
                f"model's dtype ({array.dtype})",
                loc=["body", "records", record, column.name],
                kind="value_out_of_range",
            )
    return array


def _first_bad_value(column: ColumnSchema, values: list[Any]) -> int | None:
    for i, value in enumerate(values):
        try:
            with np.errstate(over="ignore"):
                _column_values(column, [value])
        except Exception:
            return i
    return None


def _check_finite(features: Any, names: Any = None) -> None:
    """Refuse a model input holding an infinity: RecordError naming the column and record."""
    found: tuple[int, str] | None = None
    if isinstance(features, pd.DataFrame):
        for name in features.columns:
            series = features[name]
            if series.dtype.kind in "fc":
                infinite = np.isinf(series.to_numpy())
                if infinite.any():
                    found = int(np.argmax(infinite)), str(name)
                    break
    elif isinstance(features, np.ndarray) and features.dtype.kind in "fc":
        infinite = np.isinf(features)
        if infinite.any():
            where = np.argwhere(infinite)[0]
            column = int(where[1]) if features.ndim > 1 else 0
            label = f"feature {column}"
            if names is not None and column < len(names):
                label = str(names[column])
            found = int(where[0]), label
    elif hasattr(features, "tocoo") and getattr(features, "dtype", None) is not None:
        coo = features.tocoo()
        if coo.data.dtype.kind in "fc":
            infinite = np.isinf(coo.data)
            if infinite.any():
                i = int(np.argmax(infinite))
                found = int(coo.row[i]), f"feature {int(coo.col[i])}"
    if found is not None:
        record, label = found
        raise RecordError(
            f"the serving code makes column {_printable(label)!r} infinite for this record "
            "(a division by zero, or an overflow); the model cannot predict it",
            loc=["body", "records", record],
            kind="non_finite_feature",
            fix="send values the notebook's features code can compute",
        )


class _Batcher:
    """Queues requests and merges them into `predict` calls, one at a time, off the loop."""

    def __init__(
        self,
        run: Callable[[list[_Job]], list[_Outcome | BaseException]],
        *,
        max_batch: int,
        wait_seconds: float,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.arriving = 0  # /predict requests received but not yet queued (or finished)
        self._pending: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch: list[_Job] = []  # the batch being predicted

    @property
    def queued(self) -> int:
        return len(self._pending)

    def arrival(self, scope: Scope) -> None:
        scope[_ARRIVING] = True
        self.arriving += 1

    def arrived(self, scope: Scope) -> None:
        if scope.pop(_ARRIVING, False):
            self.arriving -= 1

    async def submit(self, job: _Job) -> _Outcome:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._work(), name="nbops-batcher")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-predict")
        future: asyncio.Future[_Outcome] = loop.create_future()
        job.future = future
        self._pending.append(job)
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _take(self, batch: list[_Job], n: int) -> int:
        """Move queued jobs into the batch while they fit; the first one always does."""
        while self._pending and n < self.max_batch:
            job = self._pending[0]
            if batch and n + job.n > self.max_batch:
                break
            self._pending.popleft()
            batch.append(job)
            n += job.n
        return n

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch: list[_Job] = []
            n = self._take(batch, 0)
            deadline = loop.time() + self.wait_seconds
            # wait for more only while other requests are on their way in
            while n < self.max_batch and not self._pending and self.arriving > 0:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await wakeup.wait()
                n = self._take(batch, n)
            self._batch = batch
            try:
                outcomes = await loop.run_in_executor(self._executor, self.run, batch)
            except Exception as e:  # the runner catches model errors; this is a bug or shutdown
                outcomes = [e] * len(batch)
            if len(outcomes) != len(batch):
                outcomes = [RuntimeError("the predictor lost track of a request")] * len(batch)
            self._batch = []
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future is None or job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in [*self._batch, *self._pending]:
            if job.future is not None and not job.future.done():
                job.future.set_exception(BundleError("the server is shutting down"))
        self._batch = []
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# -- the request log ---------------------------------------------------------------------------


class _RequestLog:
    """Appends sampled requests as JSON lines from a background thread."""

    def __init__(self, path: Path, metrics: _Metrics, name: str, version: str) -> None:
        self.path = path
        self.metrics = metrics
        self.name = name
        self.version = version
        self._queue: queue.Queue[tuple[str, list[BaseModel], _Outcome] | None] = queue.Queue(
            maxsize=LOG_QUEUE_SIZE
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False

    def put(self, records: list[BaseModel], outcome: _Outcome) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="nbops-request-log", daemon=True
                    )
                    self._thread.start()
        try:
            self._queue.put_nowait((datetime.now(UTC).isoformat(), records, outcome))
        except queue.Full:
            self.metrics.count_log_lines("dropped")

    def close(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)
        self._thread = None

    def _line(self, timestamp: str, records: list[BaseModel], outcome: _Outcome) -> str:
        entry: dict[str, Any] = {
            "timestamp": timestamp,
            "model": self.name,
            "version": self.version,
            "records": [r.model_dump(mode="json", by_alias=True) for r in records],
            "predictions": outcome.predictions,
        }
        if outcome.probabilities is not None:
            entry["probabilities"] = outcome.probabilities
        return json.dumps(entry, allow_nan=False, default=str, ensure_ascii=False)

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < 1000:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for item in items:
                if item is None:
                    stop = True
                    continue
                try:
                    lines.append(self._line(*item))
                except Exception as e:  # an unserialisable value: drop the line, keep serving
                    self._warn(f"cannot serialise a sampled request: {e}")
                    self.metrics.count_log_lines("failed")
            if not lines:
                continue
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
            except OSError as e:
                self._warn(f"cannot write the request log {self.path}: {e}")
                self.metrics.count_log_lines("failed", len(lines))
            else:
                self.metrics.count_log_lines("written", len(lines))

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("%s (further request-log errors are only counted)", message)


# -- middleware --------------------------------------------------------------------------------


async def _send_json(send: Send, status: int, body: Any, *, close: bool = False) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", _JSON.encode()), (b"content-length", str(len(content)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class BodySizeLimitMiddleware:
    """Answers 413 when a request body is over `max_body_bytes` (declared or received).

    A body within the limit is read here and handed to the app in one piece (the app would
    read it whole anyway). An oversized body is still read, and dropped, up to `drain_bytes`
    so the client can read the answer; past that the connection is closed.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_bytes: int = 64_000_000) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif key == b"transfer-encoding":
                chunked = True
        if declared is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        too_large = declared is not None and declared > self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and not too_large:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > self.max_body_bytes:
                too_large = True
            else:
                chunks.append(chunk)
        if too_large:
            drained = size
            while more and (declared or drained) <= self.drain_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                drained += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
            detail = f"the request body is over the limit of {self.max_body_bytes} bytes"
            await _send_json(send, 413, {"detail": detail}, close=True)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _ObserveMiddleware:
    """Counts and times every HTTP request; marks /predict requests as arriving."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, batcher: _Batcher) -> None:
        self.app = app
        self.metrics = metrics
        self.batcher = batcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in ENDPOINTS:
            endpoint = path
        elif path.startswith(DOCS_ASSETS + "/"):
            endpoint = DOCS_ASSETS
        else:
            endpoint = "other"
        if endpoint == "/predict" and scope.get("method") == "POST":
            self.batcher.arrival(scope)
        start = time.perf_counter()
        status = 500
        recorded = False

        async def observed_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and not recorded
            ):
                recorded = True
                self.metrics.observe_request(endpoint, status, time.perf_counter() - start)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.batcher.arrived(scope)
            if not recorded:
                recorded = True
                self.metrics.observe_request(endpoint, status, time.perf_counter() - start)


# -- the app -----------------------------------------------------------------------------------


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="one prediction per record, in order")
    probabilities: list[Any] | None = Field(
        None, description="with ?proba=true: one row of class probabilities per record"
    )
    classes: list[Any] | None = Field(None, description="with ?proba=true: the class order")
    model: str
    version: str


def _error(status: int, message: str, *, kind: str | None = None) -> Response:
    if kind is None:
        body: Any = {"detail": message}
    else:
        body = {"detail": [{"type": kind, "loc": ["body", "records"], "msg": message}]}
    return Response(json.dumps(body), status_code=status, media_type=_JSON)


def _check_options(
    max_body_bytes: int, batch_wait_ms: float, max_batch: int, log_sample: float
) -> None:
    if (
        isinstance(max_body_bytes, bool)
        or not isinstance(max_body_bytes, int)
        or max_body_bytes < 1
    ):
        raise BundleError(f"max_body_bytes must be a positive integer, not {max_body_bytes!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise BundleError(f"max_batch must be a positive integer, not {max_batch!r}")
    if not isinstance(batch_wait_ms, int | float) or not 0 <= batch_wait_ms <= 10_000:
        raise BundleError(f"batch_wait_ms must be from 0 to 10000, not {batch_wait_ms!r}")
    if not isinstance(log_sample, int | float) or not 0 <= log_sample <= 1:
        raise BundleError(f"log_sample must be from 0 to 1, not {log_sample!r}")


def _default_log_path(bundle: Any, name: str) -> Path:
    location = getattr(bundle, "path", None)
    if location is None:
        raise BundleError(
            "log_sample is set but there is nowhere to write the request log",
            fix="give log_path",
        )
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "bundle"
    return Path(location).resolve().parent / f"{safe}-requests.jsonl"


def create_app(
    bundle: ServableBundle,
    *,
    max_body_bytes: int = 1_000_000,
    batch_wait_ms: float = 2.0,
    max_batch: int = 64,
    log_sample: float = 0.0,
    log_path: str | Path | None = None,
) -> FastAPI:
    """A FastAPI app serving `bundle`: /predict, /health, /metadata, /metrics, /docs."""
    _check_options(max_body_bytes, batch_wait_ms, max_batch, log_sample)
    manifest = bundle.manifest
    name, version = str(manifest.name), str(manifest.version)
    manifest_body = json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False).encode()
    schema = bundle.schema
    record_model = request_model(schema, bundle.request_columns)
    fields = _fields_by_column(record_model)
    request_body = create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(
            list[record_model],  # type: ignore[valid-type]
            Field(min_length=1, max_length=MAX_RECORDS, description="the records to predict"),
        ),
    )
    metrics = _Metrics(_task_of(bundle), _value_buckets(schema))
    predictor = _Predictor(bundle, metrics)
    batcher = _Batcher(predictor.run, max_batch=max_batch, wait_seconds=batch_wait_ms / 1000)
    request_log: _RequestLog | None = None
    if log_sample > 0:
        path = Path(log_path) if log_path is not None else _default_log_path(bundle, name)
        request_log = _RequestLog(path, metrics, name, version)
    classes = getattr(bundle, "classes", None)
    classes_json = _json_safe(list(classes)) if classes is not None else None
    started = time.monotonic()
    health: dict[str, Any] = {"status": "starting"}
    signature = getattr(bundle, "signature", None)  # nbops.bundle.signing.SignatureCheck
    signature_json = signature.as_dict() if signature is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        failure = await loop.run_in_executor(None, _probe, predictor, record_model, fields)
        if failure is None:
            health.update(status="ok")
        else:
            health.update(status="failing", reason=failure)
            logger.error("the bundle fails on a reference record: %s", failure)
        yield
        await batcher.aclose()
        if request_log is not None:
            await loop.run_in_executor(None, request_log.close)

    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title=f"{name} {version}",
        description=f"Predictions from the nbops bundle {name} {version}.",
        version=version,
        lifespan=lifespan,
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.request_log = request_log
    app.state.health = health
    app.add_exception_handler(RequestValidationError, _request_validation_error)

    error_responses: dict[int | str, dict[str, Any]] = {
        413: {"description": "the request body is over the size limit"},
        415: {"description": "the body is not sent as application/json"},
        422: {
            "description": "a record is invalid (where, and the reason), the JSON is malformed "
            "or holds NaN, an infinity or a lone surrogate, or the model cannot predict a record"
        },
        500: {"description": "the model failed on the records (a fault of the server)"},
    }
    request_schema = {
        "required": True,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=error_responses,
        openapi_extra={"requestBody": request_schema},
    )
    async def predict(request: Request, proba: bool = False) -> Response:
        """Predict the records, in order."""
        kind = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
        if kind != _JSON and not kind.endswith("+json"):
            return _error(415, "send the body as JSON, with the content-type application/json")
        try:
            body = request_body.model_validate(parse_body(await request.body()))
        except _BadBody as e:
            return _errors_response(422, e.errors)
        except ValidationError as e:
            errors = e.errors(include_url=False, include_context=False)
            return _errors_response(422, _validation_errors(errors, ("body",)))
        batcher.arrived(request.scope)
        if proba and not predictor.has_proba:
            return _error(422, "this model gives no probabilities", kind="no_probabilities")
        records: list[BaseModel] = body.records  # type: ignore[attr-defined]
        columns = {column: [getattr(r, attr) for r in records] for column, attr in fields}
        try:
            outcome = await batcher.submit(_Job(columns, len(records), proba))
        except RecordError as e:
            return _errors_response(422, [e.detail()])
        except BundleError as e:
            return _error(422, str(e), kind="bundle_error")
        except Exception as e:
            logger.error("prediction failed", exc_info=e)
            return _error(500, f"prediction failed ({type(e).__name__}); see the server log")
        payload: dict[str, Any] = {"predictions": outcome.predictions}
        if proba:
            payload["probabilities"] = outcome.probabilities
            if classes_json is not None:
                payload["classes"] = classes_json
        payload["model"] = name
        payload["version"] = version
        if request_log is not None and random.random() < log_sample:
            request_log.put(records, outcome)
        return Response(json.dumps(payload, allow_nan=False), media_type=_JSON)

    @app.get(
        "/health",
        responses={
            503: {
                "description": "the model fails on a reference record built from the "
                "bundle's schema at start-up: every prediction would fail"
            }
        },
    )
    async def health_check() -> Response:
        """The server answers, with the model it serves; 503 when the model failed on a
        reference record at start-up (`reason` says how)."""
        body = {
            **health,
            "model": name,
            "version": version,
            "uptime_seconds": round(time.monotonic() - started, 3),
            "queued": batcher.queued,
            "signature": signature_json,
        }
        status = 503 if health["status"] == "failing" else 200
        return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=_JSON)

    @app.get("/metadata")
    async def metadata() -> Response:
        """The bundle's manifest."""
        return Response(manifest_body, media_type=_JSON)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Counters and histograms in the Prometheus text format."""
        return Response(metrics.render(), media_type=_PROMETHEUS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            body_schema = request_body.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body_schema.pop("$defs", {}))
            schemas["PredictRequest"] = body_schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(_ObserveMiddleware, metrics=metrics, batcher=batcher)
    return app


def _probe(predictor: _Predictor, record_model: type[BaseModel], fields: Any) -> str | None:
    """Predict one reference record built from the schema: None, or why it fails."""
    try:
        record = record_model.model_validate(
            reference_record(predictor.bundle.schema, [c.name for c in predictor.columns])
        )
        columns = {column: [getattr(record, attr)] for column, attr in fields}
        [outcome] = predictor.run([_Job(columns, 1, False, probe=True)])
    except Exception as e:
        outcome = e
    if isinstance(outcome, BaseException):
        return _printable(f"{type(outcome).__name__}: {outcome}")[:500]
    return None


async def _request_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a bad query parameter, rendered so that it cannot fail."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _errors_response(422, _validation_errors(errors))


def serve(
    bundle: ServableBundle,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "warning",
    **options: Any,
) -> None:
    """Serve `bundle` with uvicorn until interrupted; `options` go to `create_app`."""
    import uvicorn

    app = create_app(bundle, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="none", lifespan="on")
