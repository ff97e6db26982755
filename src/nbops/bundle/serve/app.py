"""The app: `create_app(bundle)` wires the request model, the batcher, the metrics, the
request log and the middleware into a FastAPI app; `serve()` runs it with uvicorn.

The endpoints and the serving behaviour are the package's contract (`nbops.bundle.serve`).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations, and the
# request models are local classes that only a live annotation can name.

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from nbops.bundle.serve.batching import _Batcher
from nbops.bundle.serve.body import (
    _JSON,
    RecordError,
    _BadBody,
    _errors_response,
    _printable,
    _validation_errors,
    parse_body,
)
from nbops.bundle.serve.frame import _json_safe
from nbops.bundle.serve.metrics import _Metrics, _task_of, _value_buckets
from nbops.bundle.serve.middleware import DOCS_ASSETS, BodySizeLimitMiddleware, _ObserveMiddleware
from nbops.bundle.serve.predict import _Job, _Predictor
from nbops.bundle.serve.request import _fields_by_column, reference_record, request_model
from nbops.bundle.serve.request_log import _RequestLog
from nbops.errors import BundleError
from nbops.quality.schema import Schema

logger = logging.getLogger(__name__)

MAX_RECORDS = 10_000
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
