"""The app: `create_app(bundle)` wires the request model, the batcher, the metrics, the
request log and the middleware into a FastAPI app; `serve()` runs it with uvicorn.

The endpoints and the serving behaviour are the package's contract (`nbops.bundle.serve`).

What a server needs to answer (`_Core`: the generations, the batcher, the metrics, the request
log, the health) is built apart from the FastAPI app that routes and documents it. The server
`serve()` and `nbops serve` run (`_ServerApp`) answers `POST /predict`, `GET /health`,
`/metadata` and `/metrics` without a query string itself, with the very code of the routes,
and builds the FastAPI app (importing FastAPI: ~0.13 s, a tenth of a server's start) only for
the first request that needs it: the docs, the OpenAPI document, `?proba=true`, any other path
or method. `create_app()` returns the FastAPI app, built at once, as before.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations, and the
# request models are local classes that only a live annotation can name.

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
import types
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from pydantic import BaseModel, ValidationError
from starlette.types import Message, Receive, Scope, Send

from nbops.bundle.serve.body import (
    _JSON,
    RecordError,
    _BadBody,
    _errors_content,
    _validation_errors,
    parse_body,
)
from nbops.bundle.serve.generation import (
    GENERATION,
    _Generation,
    _Serving,
    _Swapper,
)
from nbops.bundle.serve.metrics import _Metrics, _task_of, _value_buckets
from nbops.bundle.serve.middleware import (
    DOCS_ASSETS,
    BodySizeLimitMiddleware,
    _DirectRoutes,
    _ObserveMiddleware,
)
from nbops.bundle.serve.predict import _Job
from nbops.bundle.serve.request_log import _RequestLog
from nbops.errors import BundleError
from nbops.quality.schema import Schema

if TYPE_CHECKING:
    from fastapi import FastAPI

# Deferred imports: FastAPI (only when its app is built), and loading bundles, the registry
# and the project config, only for create_registry_app (a plain create_app needs none of them).

logger = logging.getLogger(__name__)

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
# the most a batch waits for more requests; the window itself is adaptive (batching.py):
# at most one measured model call, none for a lone client
DEFAULT_BATCH_WAIT_MS = 50.0


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


def _predict_response() -> type[BaseModel]:
    """The documented answer of /predict (the OpenAPI document's; answers are built directly)."""
    from pydantic import Field

    class PredictResponse(BaseModel):
        predictions: list[Any] = Field(description="one prediction per record, in order")
        probabilities: list[Any] | None = Field(
            None, description="with ?proba=true: one row of class probabilities per record"
        )
        classes: list[Any] | None = Field(None, description="with ?proba=true: the class order")
        model: str
        version: str

    return PredictResponse


def _error(status: int, message: str, *, kind: str | None = None) -> tuple[int, bytes, None]:
    """An error answer of /predict: (status, JSON body, no version)."""
    if kind is None:
        body: Any = {"detail": message}
    else:
        body = {"detail": [{"type": kind, "loc": ["body", "records"], "msg": message}]}
    return status, json.dumps(body).encode(), None


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


class _Core:
    """What a server of `bundle` answers with, whatever routes it: the generations, the
    batcher, the metrics, the request log and the health, and the answers of the endpoints
    (each as status, body and the answering version), which the FastAPI routes and the
    direct path (`_DirectRoutes`) both send."""

    def __init__(
        self,
        bundle: ServableBundle,
        *,
        max_body_bytes: int = 1_000_000,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
        max_batch: int = 64,
        log_sample: float = 0.0,
        log_path: str | Path | None = None,
        log_keys: Sequence[str] = (),
        _swapper: _Swapper | None = None,
        _ref: str | None = None,
    ) -> None:
        _check_options(max_body_bytes, batch_wait_ms, max_batch, log_sample)
        self.max_body_bytes = max_body_bytes
        self.log_sample = log_sample
        self.swapper = _swapper
        self.ref = _ref
        self.metrics = _Metrics(_task_of(bundle), _value_buckets(bundle.schema))
        self.first = _Generation(
            bundle,
            self.metrics,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            log_keys=log_keys,
        )
        self.serving = _Serving(self.first, _ref)
        self.request_log: _RequestLog | None = None
        if log_sample > 0:
            path = (
                Path(log_path)
                if log_path is not None
                else _default_log_path(bundle, self.first.name)
            )
            self.request_log = _RequestLog(path, self.metrics)
        self.started = time.monotonic()
        self.health: dict[str, Any] = {"status": "starting"}
        self.state = types.SimpleNamespace(
            serving=self.serving,
            batcher=self.first.batcher,  # the first bundle's (the only one without a registry)
            metrics=self.metrics,
            request_log=self.request_log,
            health=self.health,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """The server's life: the start-up probe, the registry's swapper while it serves,
        then the batcher, the bundles and the request log closed."""
        loop = asyncio.get_running_loop()
        failure = await loop.run_in_executor(None, self.first.probe)
        if failure is None:
            self.health.update(status="ok")
        else:
            self.health.update(status="failing", reason=failure)
            logger.error("the bundle fails on a reference record: %s", failure)
        async with contextlib.AsyncExitStack() as stack:
            if self.swapper is not None:
                await stack.enter_async_context(self.swapper.running(self.serving))
            yield
        await self.serving.aclose()
        if self.request_log is not None:
            await loop.run_in_executor(None, self.request_log.close)

    async def answer(
        self, scope: Scope, content_type: str, data: bytes, proba: bool
    ) -> tuple[int, bytes, str | None]:
        """A /predict answer: (status, JSON body, the version answering, None for an error)."""
        generation: _Generation = scope.get(GENERATION) or self.serving.current
        kind = content_type.split(";")[0].strip().lower()
        if kind != _JSON and not kind.endswith("+json"):
            return _error(415, "send the body as JSON, with the content-type application/json")
        try:
            raw = parse_body(data)
            body = generation.request_body.model_validate(raw)
        except _BadBody as e:
            return 422, _errors_content(e.errors), None
        except ValidationError as e:
            errors = e.errors(include_url=False, include_context=False)
            return 422, _errors_content(_validation_errors(errors, ("body",))), None
        generation.batcher.arrived(scope)
        if proba and not generation.predictor.has_proba:
            return _error(422, "this model gives no probabilities", kind="no_probabilities")
        records: list[BaseModel] = body.records  # type: ignore[attr-defined]
        columns = {
            column: [getattr(r, attr) for r in records] for column, attr in generation.fields
        }
        try:
            outcome = await generation.batcher.submit(_Job(columns, len(records), proba))
        except RecordError as e:
            return 422, _errors_content([e.detail()]), None
        except BundleError as e:
            return _error(422, str(e), kind="bundle_error")
        except Exception as e:
            logger.error("prediction failed", exc_info=e)
            return _error(500, f"prediction failed ({type(e).__name__}); see the server log")
        payload: dict[str, Any] = {"predictions": outcome.predictions}
        if proba:
            payload["probabilities"] = outcome.probabilities
            if generation.classes_json is not None:
                payload["classes"] = generation.classes_json
        payload["model"] = generation.name
        payload["version"] = generation.version
        if self.request_log is not None and random.random() < self.log_sample:
            keys = _keys(raw, generation.keys)
            self.request_log.put(records, outcome, generation.name, generation.version, keys)
        return 200, json.dumps(payload, allow_nan=False).encode(), generation.version

    def health_answer(self) -> tuple[int, bytes]:
        """GET /health: (status, JSON body)."""
        current = self.serving.current
        body = {
            **self.health,
            "model": current.name,
            "version": current.version,
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "queued": current.batcher.queued,
            "signature": current.signature_json,
        }
        if self.ref is not None:
            body["ref"] = self.ref
            body["swap"] = self.serving.swap
        if current is not self.first:  # a swapped-in bundle passed its probe before it served
            body["status"] = "ok"
            body.pop("reason", None)
        status = 503 if body["status"] == "failing" else 200
        return status, json.dumps(body, ensure_ascii=False).encode()

    def metadata_answer(self) -> bytes:
        """GET /metadata: the manifest (and, through a registry alias, what is served)."""
        current = self.serving.current
        if self.ref is None:
            return bytes(current.manifest_body)
        body = {**current.manifest, "served": self.serving.described()}
        return json.dumps(body, ensure_ascii=False).encode()

    def metrics_answer(self) -> bytes:
        """GET /metrics: the Prometheus text."""
        text = self.metrics.render()
        if self.ref is not None:
            text += self.serving.prometheus()
        return text.encode()


def create_app(
    bundle: ServableBundle,
    *,
    max_body_bytes: int = 1_000_000,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    max_batch: int = 64,
    log_sample: float = 0.0,
    log_path: str | Path | None = None,
    log_keys: Sequence[str] = (),
    _swapper: _Swapper | None = None,
    _ref: str | None = None,
) -> "FastAPI":
    """A FastAPI app serving `bundle`: /predict, /health, /metadata, /metrics, /docs.
    `log_keys`: columns of the raw records the request log keeps under `keys` (besides the
    schema's key), never given to the model: an id to join labels that arrive later."""
    core = _Core(
        bundle,
        max_body_bytes=max_body_bytes,
        batch_wait_ms=batch_wait_ms,
        max_batch=max_batch,
        log_sample=log_sample,
        log_path=log_path,
        log_keys=log_keys,
        _swapper=_swapper,
        _ref=_ref,
    )
    return _fastapi_app(core, outer=True)


def _fastapi_app(core: _Core, *, outer: bool) -> "FastAPI":
    """The FastAPI app of `core`: its routes, the OpenAPI document and the docs. `outer`: it
    is the server's app itself, with the server's life and the middleware (`create_app`);
    otherwise `_ServerApp` runs those around it."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import Response
    from fastapi_offline import FastAPIOffline

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with core.lifespan():
            yield

    name, version, ref = core.first.name, core.first.version, core.ref
    app = FastAPIOffline(
        title=f"{name} {version}" if ref is None else ref,
        description=f"Predictions from the nbops bundle {name} {version}."
        if ref is None
        else f"Predictions from the nbops bundle {ref} points at (see /metadata).",
        version=version,
        lifespan=lifespan if outer else None,
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    for key, value in vars(core.state).items():
        setattr(app.state, key, value)

    async def request_validation_error(request: Request, exc: Exception) -> Response:
        """FastAPI's 422 for a bad query parameter, rendered so that it cannot fail."""
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return Response(
            _errors_content(_validation_errors(errors)), status_code=422, media_type=_JSON
        )

    app.add_exception_handler(RequestValidationError, request_validation_error)

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
        response_model=_predict_response(),
        responses=error_responses,
        openapi_extra={"requestBody": request_schema},
    )
    async def predict(request: Request, proba: bool = False) -> Response:
        """Predict the records, in order."""
        kind = request.headers.get("content-type", _JSON)
        answer = await core.answer(request.scope, kind, await request.body(), proba)
        status, content, answered = answer
        headers = {"X-Nbops-Model-Version": answered} if answered is not None else None
        return Response(content, status_code=status, media_type=_JSON, headers=headers)

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
        """The server answers, with the model and version it serves; 503 when the model
        failed on a reference record at start-up (`reason` says how). `swap` is the last
        switch to a newly promoted bundle tried (status ok or failed, version, reason)."""
        status, content = core.health_answer()
        return Response(content, status_code=status, media_type=_JSON)

    @app.get("/metadata")
    async def metadata() -> Response:
        """The bundle's manifest; served through a registry alias, `served` says which
        version answers, since when, and the swaps so far."""
        return Response(core.metadata_answer(), media_type=_JSON)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Counters and histograms in the Prometheus text format."""
        return Response(core.metrics_answer(), media_type=_PROMETHEUS)

    described: dict[str, _Generation | None] = {"generation": None}

    def openapi() -> dict[str, Any]:
        current = core.serving.current
        if app.openapi_schema is None or described["generation"] is not current:
            document = get_openapi(
                title=app.title,
                version=current.version,
                description=app.description,
                routes=app.routes,
            )
            body_schema = current.request_body.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body_schema.pop("$defs", {}))
            schemas["PredictRequest"] = body_schema
            app.openapi_schema = document
            described["generation"] = current
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if outer:
        app.add_middleware(_DirectRoutes, core=core)  # innermost: bodies within the limit
        app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=core.max_body_bytes)
        app.add_middleware(_ObserveMiddleware, metrics=core.metrics, serving=core.serving)
    return app


class _ServerApp:
    """The ASGI app `serve()` and `nbops serve` run: the server's life (`_Core.lifespan`),
    the middleware, the endpoints answered directly (`_DirectRoutes`), and the FastAPI app,
    built on the first request that needs it (in a worker thread, so the event loop keeps
    answering), for everything else. `state` is what `create_app`'s `app.state` holds."""

    def __init__(self, core: _Core) -> None:
        self.core = core
        self.state = core.state
        self._app: Any = None
        self._building: asyncio.Future[Any] | None = None
        self._lock = threading.Lock()
        direct = _DirectRoutes(self._routed, core=core)
        limited = BodySizeLimitMiddleware(direct, max_body_bytes=core.max_body_bytes)
        self._stack = _ObserveMiddleware(limited, metrics=core.metrics, serving=core.serving)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._stack(scope, receive, send)

    def fastapi(self) -> "FastAPI":
        """The FastAPI app (built now if it was not yet)."""
        with self._lock:
            if self._app is None:
                self._app = _fastapi_app(self.core, outer=False)
            return self._app

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            if self._building is None or (
                self._building.done() and self._building.exception() is not None
            ):
                self._building = asyncio.get_running_loop().run_in_executor(None, self.fastapi)
            app = await asyncio.shield(self._building)
        await app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around `_Core.lifespan`, as Starlette's router runs it."""
        started = False
        await receive()  # lifespan.startup
        try:
            async with self.core.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                message: Message = await receive()  # lifespan.shutdown
                assert message["type"] == "lifespan.shutdown"
        except BaseException as exc:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": f"{type(exc).__name__}: {exc}"})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def _keys(raw: Any, keys: list[str]) -> dict[str, list[Any]] | None:
    """The schema's key columns of the raw records (the request model drops them), as
    {column: [value per record]}; None when the schema names no key."""
    if not keys:
        return None
    records = raw.get("records", []) if isinstance(raw, dict) else []
    return {key: [r.get(key) if isinstance(r, dict) else None for r in records] for key in keys}


def create_registry_app(
    ref: str,
    *,
    store_dir: Path | None = None,
    trust: dict[str, Any] | None = None,
    poll: float = 1.0,
    **options: Any,
) -> "FastAPI":
    """A server of `NAME@ALIAS` (or `NAME@N`) from the registry of `store_dir` (default: the
    project's): the version the reference points at now, and, for an alias, a switch to each
    version promoted to it while it runs (load, verify, probe, then swap; see
    nbops.bundle.serve.generation). `options` go to `create_app`."""
    core = _registry_core(ref, store_dir=store_dir, trust=trust, poll=poll, **options)
    return _fastapi_app(core, outer=True)


def _registry_core(
    ref: str,
    *,
    store_dir: Path | None = None,
    trust: dict[str, Any] | None = None,
    poll: float = 1.0,
    **options: Any,
) -> _Core:
    from nbops.bundle.load import load_bundle
    from nbops.bundle.refs import resolve_bundle
    from nbops.runs.registry import parse_ref

    if not isinstance(poll, int | float) or not 0.05 <= poll <= 3600:
        raise BundleError(f"poll must be from 0.05 to 3600 seconds, not {poll!r}")
    if store_dir is None:
        from nbops.config import load_project

        store_dir = load_project().store_dir
    trust = dict(trust or {})
    resolved = resolve_bundle(ref, store_dir=store_dir)
    name, _, alias = parse_ref(ref)
    bundle = load_bundle(resolved.path, **trust)
    swapper = None
    if alias is not None:
        swapper = _Swapper(
            name=name,
            alias=alias,
            store_dir=store_dir,
            trust=trust,
            poll=poll,
            build=lambda loaded: _Generation(
                loaded,
                core.metrics,
                max_batch=options.get("max_batch", 64),
                batch_wait_ms=options.get("batch_wait_ms", DEFAULT_BATCH_WAIT_MS),
                log_keys=options.get("log_keys", ()),
            ),
        )
    core = _Core(bundle, _swapper=swapper, _ref=ref, **options)
    core.first.owned = True
    return core


def server_app(bundle: ServableBundle, **options: Any) -> _ServerApp:
    """The ASGI app `serve()` runs (`options` as for `create_app`): the same endpoints and
    answers as `create_app`'s, FastAPI built only for the docs and the less common requests."""
    return _ServerApp(_Core(bundle, **options))


def registry_server_app(ref: str, **options: Any) -> _ServerApp:
    """`server_app` of a registry reference (`options` as for `create_registry_app`)."""
    return _ServerApp(_registry_core(ref, **options))


def run_uvicorn(app: Any, host: str, port: int, *, log_level: str = "warning") -> None:
    """Run `app` with uvicorn until interrupted: no websockets, the lifespan on, each answer
    written in one piece (transport.py)."""
    import uvicorn

    from nbops.bundle.serve.transport import coalescing_http

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws="none",
        lifespan="on",
        http=coalescing_http(),
    )


def serve(
    bundle: ServableBundle,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "warning",
    **options: Any,
) -> None:
    """Serve `bundle` with uvicorn until interrupted; `options` go to `create_app`. The
    server's objects are built without the cyclic collector's passes, then frozen
    (nbops._gc)."""
    from nbops._gc import loaded_for_life

    with loaded_for_life():
        app = server_app(bundle, **options)
    run_uvicorn(app, host, port, log_level=log_level)
