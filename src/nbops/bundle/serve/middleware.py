"""The ASGI middleware: the body size limit (413) and the request observer (metrics).

Both are pure ASGI: `BodySizeLimitMiddleware` reads the body itself (answering 413 when it is
over the limit, declared or received), `_ObserveMiddleware` counts and times every request
and pins each `/predict` request to the generation current when it arrives (marking it as
arriving for that generation's batcher), releasing it once answered, so a model swap never
splits a request between two bundles and an old bundle closes only when drained.
"""

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbops.bundle.serve.body import _JSON
from nbops.bundle.serve.generation import _Serving
from nbops.bundle.serve.metrics import _Metrics

ENDPOINTS = frozenset({"/predict", "/health", "/metadata", "/metrics", "/docs", "/openapi.json"})
_JSON_BYTES = _JSON.encode()
DOCS_ASSETS = "/docs-assets"  # Swagger UI's script, style sheet and icon, from fastapi-offline


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
    """Counts and times every HTTP request; pins /predict requests to a generation."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, serving: _Serving) -> None:
        self.app = app
        self.metrics = metrics
        self.serving = serving

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
            self.serving.pin(scope)
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
            self.serving.release(scope)
            if not recorded:
                recorded = True
                self.metrics.observe_request(endpoint, status, time.perf_counter() - start)


_PROMETHEUS_BYTES = b"text/plain; version=0.0.4; charset=utf-8"


class _DirectRoutes:
    """Answers, itself, `POST /predict`, `GET /health`, `GET /metadata` and `GET /metrics`
    without a query string, with the answers the FastAPI routes send (`core`: the app's
    `_Core`), sparing a request the router, the dependency solving and the Request and
    Response objects; any other request, /predict with a query string (`?proba=true`,
    parsed and refused as FastAPI does) included, goes on to `app`. Inside
    `BodySizeLimitMiddleware`: the body arrives in one piece."""

    def __init__(self, app: ASGIApp, core: Any) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("query_string") or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method"), scope.get("path")
        if method == "POST" and path == "/predict":
            await self._predict(scope, receive, send)
        elif method != "GET":
            await self.app(scope, receive, send)
        elif path == "/health":
            status, content = self.core.health_answer()
            await _send(send, status, content, _JSON_BYTES)
        elif path == "/metadata":
            await _send(send, 200, self.core.metadata_answer(), _JSON_BYTES)
        elif path == "/metrics":
            await _send(send, 200, self.core.metrics_answer(), _PROMETHEUS_BYTES)
        else:
            await self.app(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        content_type = _JSON
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
                break
        answer = await self.core.answer(scope, content_type, b"".join(chunks), False)
        status, content, version = answer
        await _send(send, status, content, _JSON_BYTES, version)


async def _send(
    send: Send, status: int, content: bytes, content_type: bytes, version: str | None = None
) -> None:
    """An answer as Starlette's Response sends it: its length, its type, then (a /predict
    answer) the answering version."""
    headers = [(b"content-length", str(len(content)).encode()), (b"content-type", content_type)]
    if version is not None:
        headers.append((b"x-nbops-model-version", version.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
