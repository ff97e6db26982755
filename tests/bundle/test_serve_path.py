"""The request path: `POST /predict` answered by the direct ASGI path exactly as by the
FastAPI route, and uvicorn's answers written in one piece (nbops.bundle.serve.transport)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from nbops.bundle.serve import create_app
from nbops.bundle.serve.transport import _Coalescing, coalescing_http
from nbops.quality.schema import Schema, infer_schema
from tests.helpers import running

from .test_serve import COLUMNS, GOOD, FakeBundle, churn_pipeline, make_frame

T = TypeVar("T")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame(600)


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame) -> Pipeline:
    return churn_pipeline(frame)


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame[COLUMNS], name="churn")


@pytest.fixture(scope="module", params=["auto", "coalescing"])
def url(request: pytest.FixtureRequest, pipeline: Pipeline, schema: Schema) -> Iterator[str]:
    http = coalescing_http() if request.param == "coalescing" else "auto"
    with running(create_app(FakeBundle(pipeline, schema), max_body_bytes=50_000), http) as base:
        yield base


JSON = "application/json"
BODIES: list[tuple[str, bytes, str]] = [
    ("one record", json.dumps({"records": [GOOD]}).encode(), JSON),
    ("two records", json.dumps({"records": [GOOD, {**GOOD, "age": 70}]}).encode(), JSON),
    ("a +json type", json.dumps({"records": [GOOD]}).encode(), "application/vnd.x+json"),
    ("not JSON", b'{"records": [', JSON),
    ("NaN", b'{"records": [{"age": NaN}]}', JSON),
    ("not UTF-8", b'{"records": ["\xff"]}', JSON),
    ("a missing field", json.dumps({"records": [{"age": 3}]}).encode(), JSON),
    ("no records", json.dumps({"records": []}).encode(), JSON),
    ("a record the model refuses", json.dumps({"records": [{**GOOD, "age": -4}]}).encode(), JSON),
    ("another content type", json.dumps({"records": [GOOD]}).encode(), "text/plain"),
    ("over the size limit", json.dumps({"records": [GOOD] * 2000}).encode(), JSON),
]


def _answer(url: str, path: str, body: bytes, kind: str) -> tuple[int, bytes, dict[str, str]]:
    response = httpx.post(f"{url}{path}", content=body, headers={"content-type": kind})
    keep = ("content-type", "content-length", "x-nbops-model-version")
    return response.status_code, response.content, {k: response.headers.get(k, "") for k in keep}


@pytest.mark.parametrize(("body", "kind"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_the_direct_path_answers_as_the_route_does(url: str, body: bytes, kind: str) -> None:
    direct = _answer(url, "/predict", body, kind)  # no query string: the direct path
    routed = _answer(url, "/predict?proba=false", body, kind)  # the FastAPI route
    assert direct == routed
    status, content, headers = direct
    assert headers["content-type"] == JSON
    assert int(headers["content-length"]) == len(content)
    assert (headers["x-nbops-model-version"] == "3") == (status == 200)


def test_a_keep_alive_connection_gets_each_answer_whole(url: str, frame: pd.DataFrame) -> None:
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        for i, path in enumerate(["/predict", "/health", "/predict?proba=true", "/docs"] * 5):
            if path == "/docs" or path == "/health":
                conn.request("GET", path)
            else:
                record = {**GOOD, "age": 20 + i}
                conn.request("POST", path, body=json.dumps({"records": [record]}))
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200, data[:300]
            assert len(data) == int(response.headers["content-length"])
    finally:
        conn.close()


def test_docs_assets_are_served_whole(url: str) -> None:
    page = httpx.get(f"{url}/docs").text
    assets = [part.split('"')[0] for part in page.split('"/docs-assets/')[1:]]
    assert assets
    for asset in assets:
        response = httpx.get(f"{url}/docs-assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 100


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.extra = {"peername": ("127.0.0.1", 1)}

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)


def run_in_a_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(make())` in a thread of its own: in a worker whose browser tests left
    playwright's sync API on (its loop counts as running in the main thread), asyncio.run
    refuses the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout=60)


def test_writes_of_one_turn_of_the_loop_go_out_as_one() -> None:
    async def go() -> list[list[bytes]]:
        real = _Transport()
        coalescing = _Coalescing(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        seen = []
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        coalescing.write(b"")
        coalescing.write(memoryview(b"body"))
        seen.append(list(real.writes))  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        seen.append(list(real.writes))
        coalescing.write(b"next")
        coalescing.writelines([b" and", b" more"])
        coalescing.close()  # what is held goes out before the close
        seen.append(list(real.writes))
        await asyncio.sleep(0)
        seen.append(list(real.writes))
        assert real.closed
        assert coalescing.get_extra_info("peername") == ("127.0.0.1", 1)  # the real one's
        return seen

    assert run_in_a_thread(go) == [
        [],
        [b"HTTP/1.1 200 OK\r\n\r\nbody"],
        [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next and more"],
        [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next and more"],
    ]


def test_a_request_without_a_query_string_skips_the_router(
    pipeline: Pipeline, schema: Schema
) -> None:
    app = create_app(FakeBundle(pipeline, schema))
    [route] = [r for r in app.routes if getattr(r, "path", None) == "/predict"]
    routed: list[bytes] = []
    inner = route.app  # type: ignore[attr-defined]

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope.get("query_string"))
        await inner(scope, receive, send)

    route.app = counted  # type: ignore[attr-defined]
    with running(app) as base:
        body = {"records": [GOOD]}
        assert httpx.post(f"{base}/predict", json=body).status_code == 200
        answer = httpx.post(f"{base}/predict?proba=true", json=body)
        assert answer.status_code == 200 and "probabilities" in answer.json()
        assert httpx.post(f"{base}/predict?proba=maybe", json=body).status_code == 422
    assert routed == [b"proba=true", b"proba=maybe"]


# -- the server's app (serve(), nbops serve): FastAPI only when a request needs it ---------------

REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("GET", "/health", None, {}),
    ("GET", "/health?verbose=1", None, {}),
    ("HEAD", "/health", None, {}),
    ("POST", "/health", b"{}", {"content-type": JSON}),
    ("GET", "/health/", None, {}),
    ("GET", "/metadata", None, {}),
    ("GET", "/metrics", None, {}),
    ("GET", "/openapi.json", None, {}),
    ("GET", "/docs", None, {}),
    ("GET", "/nowhere", None, {}),
    ("GET", "/predict", None, {}),
    ("OPTIONS", "/predict", None, {}),
    ("POST", "/predict", json.dumps({"records": [GOOD]}).encode(), {"content-type": JSON}),
    ("POST", "/predict?proba=true", json.dumps({"records": [GOOD]}).encode(), {}),
    ("POST", "/predict?proba=maybe", json.dumps({"records": [GOOD]}).encode(), {}),
    ("POST", "/predict", b'{"records": [', {"content-type": JSON}),
    ("POST", "/predict", json.dumps({"records": [GOOD] * 2000}).encode(), {}),
    ("POST", "/predict", json.dumps({"records": [GOOD]}).encode(), {"content-type": "text/csv"}),
]


def _comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """Status, body and headers, less what differs between two servers by time alone (the
    uptime, the metrics' counts and timings, the date)."""
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "server")}
    if "location" in headers:  # a redirect names the server's own address
        headers["location"] = urlsplit(headers["location"]).path
    content: Any = response.content
    if response.request.url.path == "/health" and response.status_code == 200:
        content = {**response.json(), "uptime_seconds": None}
        headers.pop("content-length", None)
    elif response.request.url.path == "/metrics" and response.status_code == 200:
        content = [line for line in response.text.splitlines() if line.startswith("# ")]
        headers.pop("content-length", None)
    return response.status_code, content, headers


def _ask(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    return httpx.request(
        method, f"{base}{path}", content=body, headers=headers, follow_redirects=False
    )


def test_the_server_app_answers_every_request_as_create_app_does(
    pipeline: Pipeline, schema: Schema
) -> None:
    from nbops.bundle.serve.app import server_app
    from nbops.bundle.serve.middleware import _DirectRoutes

    options = {"max_body_bytes": 50_000}
    reference = create_app(FakeBundle(pipeline, schema), **options)
    # the reference answers everything with its FastAPI routes (no direct path)
    reference.user_middleware = [m for m in reference.user_middleware if m.cls is not _DirectRoutes]
    with (
        running(reference) as routed,
        running(server_app(FakeBundle(pipeline, schema), **options)) as direct,
    ):
        for method, path, body, headers in REQUESTS:
            expected = _comparable(_ask(routed, method, path, body, headers))
            got = _comparable(_ask(direct, method, path, body, headers))
            assert got == expected, (method, path)


def test_the_server_app_builds_fastapi_only_for_a_request_that_needs_it(
    pipeline: Pipeline, schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.bundle.serve import app as app_module

    built: list[bool] = []
    real = app_module._fastapi_app

    def counted(core: Any, *, outer: bool) -> Any:
        built.append(outer)
        return real(core, outer=outer)

    monkeypatch.setattr(app_module, "_fastapi_app", counted)
    server = app_module.server_app(FakeBundle(pipeline, schema))
    with running(server) as base:
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        assert httpx.post(f"{base}/predict", json={"records": [GOOD]}).status_code == 200
        assert httpx.get(f"{base}/metadata").status_code == 200
        assert "nbops_requests_total" in httpx.get(f"{base}/metrics").text
        assert built == []  # the common requests are answered without FastAPI
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda _: httpx.get(f"{base}/docs"), range(8)))
        assert [p.status_code for p in pages] == [200] * 8
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "churn 3"
    assert built == [False]  # once, for all eight, inside the server's own middleware
