"""Serving untrusted requests: every bad input is a 4xx naming where it is, never a 500, and a
request gets the same answer whatever else is in flight. A real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from nbops.bundle.load import load_bundle
from nbops.bundle.serve import create_app
from nbops.quality.schema import Schema, infer_schema

from .conftest import Built
from .test_serve import (  # noqa: F401 (frame, pipeline, schema: fixtures)
    COLUMNS,
    GOOD,
    FakeBundle,
    Manifest,
    frame,
    pipeline,
    run_in_fresh_loop,
    running,
    schema,
)

BODY = json.dumps({"records": [GOOD]})


@pytest.fixture(scope="module")
def url(pipeline: Pipeline, schema: Schema) -> Iterator[str]:
    with running(create_app(FakeBundle(pipeline, schema))) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def good(**changes: str) -> str:
    """GOOD as JSON text with some fields' JSON text replaced verbatim (NaN, "\\ud800"...)."""
    fields = {k: json.dumps(v) for k, v in GOOD.items()}
    fields.update(changes)
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def post_raw(client: httpx.Client, content: bytes | str) -> httpx.Response:
    raw = content.encode() if isinstance(content, str) else content
    return client.post("/predict", content=raw, headers={"content-type": "application/json"})


# -- values JSON should not carry: 422 naming the field, and the connection stays usable -------

NON_STANDARD = [
    pytest.param('{"records": [%s]}' % good(income="NaN"), [0, "income"], id="NaN-float"),
    pytest.param('{"records": [%s]}' % good(age="Infinity"), [0, "age"], id="Infinity-int"),
    pytest.param('{"records": [%s]}' % good(income="-Infinity"), [0, "income"], id="-Infinity"),
    pytest.param('{"records": [%s]}' % good(income="1e309"), [0, "income"], id="1e309"),
    pytest.param('{"records": [%s]}' % good(age="-1e309"), [0, "age"], id="-1e309-int"),
    pytest.param('{"records": [%s]}' % good(city='"NaN"'), [0, "city"], id="NaN-text-category"),
    pytest.param(
        '{"records": [%s, %s]}' % (good(), good(city='"\\ud800"')), [1, "city"], id="surrogate"
    ),
    pytest.param('{"records": [%s]}' % good(plan='"pro\\udfff"'), [0, "plan"], id="low-surrogate"),
    pytest.param(
        '{"records": [%s]}' % good(note='"\\udc00"'), [0, "note"], id="surrogate-ignored-field"
    ),
    pytest.param(
        '{"records": [%s]}' % good(extra='[1, {"deep": NaN}]'),
        [0, "extra", 1, "deep"],
        id="NaN-nested-in-ignored-field",
    ),
    pytest.param(
        '{"records": [%s]}' % good().replace('{"age"', '{"\\ud800": 1, "age"'),
        [0, "\\ud800"],
        id="surrogate-key",
    ),
    pytest.param('{"records": {"age": NaN}}', ["age"], id="single-record-not-a-list"),
    pytest.param('{"records": [%s], "x": Infinity}' % good(), ["x"], id="top-level-field"),
    pytest.param("NaN", [], id="whole-body"),
]


@pytest.mark.parametrize(("body", "where"), NON_STANDARD)
def test_non_standard_json_values_are_422_naming_the_field(
    client: httpx.Client, body: str, where: list[Any]
) -> None:
    response = post_raw(client, body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert ["body", "records", *where] in [e["loc"] for e in errors] or ["body", *where] in [
        e["loc"] for e in errors
    ], errors
    # the same keep-alive connection answers the next request
    assert post_raw(client, BODY).status_code == 200


def test_invalid_utf8_is_422(client: httpx.Client) -> None:
    body = (
        ('{"records": [%s]}' % good(city='"Os\x00lo"')).encode().replace(b"\x00", b"\xed\xa0\x80")
    )
    response = post_raw(client, body)
    assert response.status_code == 422, response.text
    assert "UTF-8" in response.json()["detail"][0]["msg"]
    assert post_raw(client, BODY).status_code == 200


def test_an_integer_beyond_64_bits_is_422_naming_the_field(client: httpx.Client) -> None:
    response = post_raw(client, '{"records": [%s]}' % good(age=str(10**30)))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 0, "age"]
    assert post_raw(client, BODY).status_code == 200


def test_error_bodies_are_strict_json(client: httpx.Client) -> None:
    """Every 422 body parses with a parser that refuses NaN and lone surrogates."""
    bodies = [p.values[0] for p in NON_STANDARD]
    for body in bodies:
        text = post_raw(client, body).text
        parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in {text}"))
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # no lone surrogate
