"""Adaptive micro-batching: the wait window as a pure function, and a real uvicorn server
on loopback merging concurrent clients' requests while a lone client never waits."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from nbops.bundle.serve import batching, create_app
from nbops.bundle.serve.batching import batch_window
from nbops.quality.schema import Schema, infer_schema
from tests.helpers import running

from .test_serve import COLUMNS, FakeBundle, churn_pipeline, make_frame, metric, records_of

# -- the window, as a pure function ------------------------------------------------------------

seconds = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
maybe_seconds = st.none() | st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


@st.composite
def situations(draw: st.DrawFn) -> dict[str, Any]:
    max_batch = draw(st.integers(1, 256))
    requests = draw(st.integers(1, 64))
    return {
        "requests": requests,
        "records": draw(st.integers(requests, requests * 8)),
        "clients": draw(st.integers(1, 64)),
        "waited": draw(seconds),
        "call_seconds": draw(maybe_seconds),
        "interval": draw(maybe_seconds),
        "max_wait": draw(seconds),
        "max_batch": max_batch,
    }


@given(situations())
def test_the_window_is_never_negative_nor_past_the_bound_nor_longer_than_a_call(
    s: dict[str, Any],
) -> None:
    window = batch_window(**s)
    assert window >= 0.0
    assert window <= max(s["max_wait"] - s["waited"], 0.0)
    if s["call_seconds"] is not None:
        assert window <= max(s["call_seconds"] - s["waited"], 0.0)


@given(situations())
def test_a_batch_holding_every_client_does_not_wait(s: dict[str, Any]) -> None:
    s["clients"] = s["requests"]  # a lone client's batch holds its one request
    assert batch_window(**s) == 0.0


@given(situations())
def test_a_full_batch_does_not_wait(s: dict[str, Any]) -> None:
    s["records"] = max(s["records"], s["max_batch"])
    assert batch_window(**s) == 0.0


@given(situations())
def test_a_next_request_not_expected_within_a_call_is_not_waited_for(s: dict[str, Any]) -> None:
    call = s["max_wait"] if s["call_seconds"] is None else s["call_seconds"]
    s["interval"] = call + 1e-3
    assert batch_window(**s) == 0.0


@given(situations(), st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_the_window_shrinks_as_the_batch_waits(s: dict[str, Any], more: float) -> None:
    later = {**s, "waited": s["waited"] + more}
    assert batch_window(**later) <= batch_window(**s)


@given(situations())
def test_missing_clients_expected_soon_are_waited_for(s: dict[str, Any]) -> None:
    s["clients"] = s["requests"] + 1
    s["records"] = s["requests"]
    s["max_batch"] = max(s["max_batch"], s["records"] + 1)
    s["max_wait"] = 0.01
    s["call_seconds"] = 0.005
    s["waited"] = 0.001
    s["interval"] = 0.002
    assert batch_window(**s) == pytest.approx(0.004)


# -- a real server ---------------------------------------------------------------------------

MODEL_SECONDS = 0.03  # a slow model: a call of its own costs a request this much


class SlowBundle(FakeBundle):
    """A model whose every call takes MODEL_SECONDS, whatever the records (a fixed cost)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(MODEL_SECONDS)
        return super().predict(frame)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame(600)


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame) -> Pipeline:
    return churn_pipeline(frame)


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame[COLUMNS], name="churn")


@pytest.fixture  # a server of its own per test: the clients it has seen are its own
def slow_url(pipeline: Pipeline, schema: Schema) -> Iterator[str]:
    # a wait bound far above the model call: the window is the model's call, measured
    with running(create_app(SlowBundle(pipeline, schema), batch_wait_ms=1000)) as base:
        yield base


def closed_loop(url: str, bodies: list[bytes], clients: int, per_client: int) -> list[bytes]:
    """`clients` threads, each on its own keep-alive connection, sending one request after
    the other; every answer's body (a failure raises)."""
    where = urlsplit(url)
    answers: list[bytes] = []
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
        try:
            barrier.wait(60)
            for i in range(per_client):
                body = bodies[(k * per_client + i) % len(bodies)]
                conn.request(
                    "POST", "/predict", body=body, headers={"content-type": "application/json"}
                )
                response = conn.getresponse()
                data = response.read()
                if response.status != 200:
                    failures.append(f"{response.status}: {data[:200]!r}")
                    return
                answers.append(data)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[0]
    return answers


def batch_figures(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        name: metric(text, name)
        for name in (
            "nbops_batch_size_sum",
            "nbops_batch_size_count",
            "nbops_batch_wait_seconds_sum",
            "nbops_batch_wait_seconds_count",
        )
    } | {"no_wait": metric(text, "nbops_batch_wait_seconds_bucket", le="0")}


def bodies_of(frame: pd.DataFrame) -> list[bytes]:
    return [json.dumps({"records": [r]}).encode() for r in records_of(frame.iloc[:40])]


def test_concurrent_clients_are_merged_into_calls_of_about_one_request_each(
    slow_url: str, frame: pd.DataFrame
) -> None:
    clients, per_client = 4, 12
    before = batch_figures(slow_url)
    answers = closed_loop(slow_url, bodies_of(frame), clients, per_client)
    after = batch_figures(slow_url)
    assert len(answers) == clients * per_client
    records = after["nbops_batch_size_sum"] - before["nbops_batch_size_sum"]
    calls = after["nbops_batch_size_count"] - before["nbops_batch_size_count"]
    assert records == clients * per_client
    # a fixed wait merged about half the clients (2.0 records per call with 4); the adaptive
    # window waits for the clients not yet in the batch, for at most one model call
    assert records / calls >= 3.0


def test_a_lone_client_never_waits_for_a_batch(slow_url: str, frame: pd.DataFrame) -> None:
    before = batch_figures(slow_url)
    closed_loop(slow_url, bodies_of(frame), clients=1, per_client=15)
    after = batch_figures(slow_url)
    batches = after["nbops_batch_wait_seconds_count"] - before["nbops_batch_wait_seconds_count"]
    assert batches >= 15  # one batch per request, every one of them recorded...
    assert after["no_wait"] - before["no_wait"] == batches  # ...without a wait
    assert after["nbops_batch_wait_seconds_sum"] == before["nbops_batch_wait_seconds_sum"]


class ThreadsBundle(FakeBundle):
    """Records the thread each model call runs in; each call takes `seconds` at least."""

    def __init__(self, pipeline: Pipeline, schema: Schema, seconds: float = 0.0) -> None:
        super().__init__(pipeline, schema)
        self.seconds = seconds
        self.threads: list[str] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)
        return super().predict(frame)


def test_a_lone_clients_requests_skip_the_hop_to_the_prediction_thread(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "INLINE_SECONDS", 10.0)  # whatever the machine's load
    bundle = ThreadsBundle(pipeline, schema)
    with running(create_app(bundle)) as url:
        probes = len(bundle.threads)
        answers = closed_loop(url, bodies_of(frame), clients=1, per_client=10)
        served = bundle.threads[probes:]
        loop_thread = {t.name for t in threading.enumerate()} - {"MainThread"}
    expected = pipeline.predict(frame.iloc[:10][COLUMNS]).tolist()
    assert [json.loads(a)["predictions"][0] for a in answers] == expected
    assert len(served) == 10
    # the first call is measured in the prediction thread; the next ones run on the loop
    assert served[0].startswith("nbops-predict")
    assert not any(name.startswith("nbops-predict") for name in served[1:])
    assert set(served[1:]) <= loop_thread


def test_a_slow_model_is_predicted_in_its_thread_even_for_a_lone_client(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "INLINE_SECONDS", 0.01)
    bundle = ThreadsBundle(pipeline, schema, seconds=0.03)  # calls longer than that
    with running(create_app(bundle)) as url:
        probes = len(bundle.threads)
        closed_loop(url, bodies_of(frame), clients=1, per_client=5)
        served = bundle.threads[probes:]
    assert len(served) == 5
    assert all(name.startswith("nbops-predict") for name in served)


def test_requests_received_together_are_batched_not_predicted_one_by_one_on_the_loop(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a lone client's request is predicted on the loop, others arrive; the loop then
    receives them in one turn, each alone in flight until the others' tasks run: they must
    be merged, not predicted one after the other on the loop."""
    monkeypatch.setattr(batching, "INLINE_SECONDS", 10.0)
    bundle = ThreadsBundle(pipeline, schema)
    bundle.hold = threading.Event()  # the request of age 1000 holds its call until set
    bodies = bodies_of(frame)
    held = json.loads(bodies[0])
    held["records"][0]["age"] = 1000
    with running(create_app(bundle)) as url:
        where = urlsplit(url)
        connections = [http.client.HTTPConnection(where.hostname, where.port) for _ in range(9)]
        for conn in connections:  # open, one request at a time: still a lone client
            conn.request("POST", "/predict", body=bodies[1], headers=JSON_HEADERS)
            assert conn.getresponse().read()
        time.sleep(1.2)  # the clients seen recently: one
        first, *others = connections
        first.request("POST", "/predict", body=json.dumps(held).encode(), headers=JSON_HEADERS)
        assert bundle.holding.wait(10)  # predicting on the loop, which receives nothing now
        calls_before = len(bundle.threads)
        for conn, body in zip(others, bodies[2:], strict=False):
            conn.request("POST", "/predict", body=body, headers=JSON_HEADERS)
        time.sleep(0.3)  # all of them sent, waiting for the loop
        bundle.hold.set()
        assert first.getresponse().status == 200
        for conn in others:
            assert conn.getresponse().status == 200
        calls = len(bundle.threads) - calls_before
        for conn in connections:
            conn.close()
    assert not bundle.threads[calls_before - 1].startswith("nbops-predict")  # held on the loop
    assert 1 <= calls < len(others)  # merged into fewer calls than requests


JSON_HEADERS = {"content-type": "application/json"}
