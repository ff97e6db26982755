"""Serving untrusted requests: every bad input is a 4xx naming where it is, never a 500, and a
request gets the same answer whatever else is in flight. A real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from nbops.bundle.load import load_bundle
from nbops.bundle.serve import _BadBody, create_app, parse_body, reference_record
from nbops.quality.schema import Schema, infer_schema

from .conftest import Built
from .test_serve import (
    COLUMNS,
    GOOD,
    FakeBundle,
    churn_pipeline,
    make_frame,
    metric,
    run_in_fresh_loop,
    running,
)

BODY = json.dumps({"records": [GOOD]})


@pytest.fixture(scope="module")
def churn() -> tuple[Pipeline, Schema]:
    """The churn model and schema of test_serve: int, nullable float, categories, bool."""
    frame = make_frame()
    return churn_pipeline(frame), infer_schema(frame[COLUMNS], name="churn")


@pytest.fixture(scope="module")
def url(churn: tuple[Pipeline, Schema]) -> Iterator[str]:
    with running(create_app(FakeBundle(*churn))) as base:
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


def body_of(*texts: str, **top: str) -> str:
    """A request body of JSON record texts, with top-level fields as JSON text."""
    extra = "".join(f", {json.dumps(k)}: {v}" for k, v in top.items())
    return '{"records": [' + ", ".join(texts) + "]" + extra + "}"


def post_raw(client: httpx.Client, content: bytes | str) -> httpx.Response:
    raw = content.encode() if isinstance(content, str) else content
    return client.post("/predict", content=raw, headers={"content-type": "application/json"})


# -- values JSON should not carry: 422 naming the field, and the connection stays usable -------

NON_STANDARD = [
    pytest.param(body_of(good(income="NaN")), [0, "income"], id="NaN-float"),
    pytest.param(body_of(good(age="Infinity")), [0, "age"], id="Infinity-int"),
    pytest.param(body_of(good(income="-Infinity")), [0, "income"], id="-Infinity"),
    pytest.param(body_of(good(income="1e309")), [0, "income"], id="1e309"),
    pytest.param(body_of(good(age="-1e309")), [0, "age"], id="-1e309-int"),
    pytest.param(body_of(good(), good(city='"\\ud800"')), [1, "city"], id="surrogate"),
    pytest.param(body_of(good(plan='"pro\\udfff"')), [0, "plan"], id="low-surrogate"),
    pytest.param(body_of(good(note='"\\udc00"')), [0, "note"], id="surrogate-ignored-field"),
    pytest.param(
        body_of(good(extra='[1, {"deep": NaN}]')),
        [0, "extra", 1, "deep"],
        id="NaN-nested-in-ignored-field",
    ),
    pytest.param(
        body_of(good().replace('{"age"', '{"\\ud800": 1, "age"')),
        [0, "\\ud800"],
        id="surrogate-key",
    ),
    pytest.param('{"records": {"age": NaN}}', ["age"], id="single-record-not-a-list"),
    pytest.param(body_of(good(), x="Infinity"), ["x"], id="top-level-field"),
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
    body = (body_of(good(city='"Os\x00lo"'))).encode().replace(b"\x00", b"\xed\xa0\x80")
    response = post_raw(client, body)
    assert response.status_code == 422, response.text
    assert "UTF-8" in response.json()["detail"][0]["msg"]
    assert post_raw(client, BODY).status_code == 200


def test_an_integer_beyond_64_bits_is_422_naming_the_field(client: httpx.Client) -> None:
    response = post_raw(client, body_of(good(age=str(10**30))))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 0, "age"]
    assert post_raw(client, BODY).status_code == 200


def test_error_bodies_are_strict_json(client: httpx.Client) -> None:
    """Every 422 body parses with a parser that refuses NaN and lone surrogates."""
    bodies = [p.values[0] for p in NON_STANDARD]

    def refuse(constant: str) -> None:
        pytest.fail(f"{constant} in an answer")

    for body in bodies:
        parsed = json.loads(post_raw(client, body).text, parse_constant=refuse)
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # no lone surrogate


# -- values the schema takes but the features code or the model cannot --------------------------


@pytest.fixture(scope="module")
def nullable_bundle(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle (its features code divides `a` by `b`) with a schema where `a` and `c`
    may be null (about 5% of the training rows are), so a request may send null for them."""
    raw = built.raw.copy()
    raw["a"] = raw["a"].astype(float)
    raw.loc[raw.index % 20 == 0, "a"] = np.nan
    raw["c"] = raw["c"].astype(object)
    raw.loc[raw.index % 20 == 1, "c"] = None
    nullable = infer_schema(raw, label="label", name="tiny")
    assert nullable.column("c").nullable and nullable.column("c").max_null_fraction < 0.2
    return built.build(tmp_path_factory.mktemp("nullable"), schema=nullable, plots=None)


@pytest.fixture(scope="module")
def tiny_url(nullable_bundle: Path) -> Iterator[str]:
    with load_bundle(nullable_bundle) as bundle, running(create_app(bundle)) as base:
        yield base


def tiny_records(built: Built, n: int) -> list[dict[str, Any]]:
    return [
        {"a": float(r.a), "b": float(r.b), "c": str(r.c)}
        for r in built.requests.head(n).itertuples()
    ]


def test_a_zero_divisor_in_the_features_code_is_422_naming_the_column_and_record(
    built: Built, tiny_url: str
) -> None:
    records = tiny_records(built, 3)
    records[2]["b"] = 0.0  # the features code computes a / b
    with httpx.Client(base_url=tiny_url, timeout=30) as c:
        response = c.post("/predict", json={"records": records})
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "records", 2]
        assert error["type"] == "non_finite_feature"
        assert "'ratio'" in error["msg"]
        assert c.post("/predict", json={"records": records[:2]}).status_code == 200


def test_a_value_the_model_refuses_is_422_naming_the_record(built: Built, tiny_url: str) -> None:
    records = tiny_records(built, 4)
    records[1]["a"] = None  # allowed by the schema; LogisticRegression refuses NaN
    with httpx.Client(base_url=tiny_url, timeout=30) as c:
        response = c.post("/predict", json={"records": records})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 1]
    assert "the model refuses" in error["msg"] and "NaN" in error["msg"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"c": None}, 200, id="null-where-nullable"),  # 100% null alone
        pytest.param({"b": 0.0}, 422, id="zero-divisor"),
        pytest.param({"a": None}, 422, id="refused-by-the-model"),
    ],
)
def test_a_request_gets_the_same_answer_alone_and_among_others(
    built: Built, tiny_url: str, change: dict[str, Any], status: int
) -> None:
    """Only per-row checks on the request path: the null fraction of one request (100%) is
    not checked, and a bad record fails the same way whatever is batched with it."""
    record = {**tiny_records(built, 1)[0], **change}
    others = tiny_records(built, 40)[1:]
    alone = httpx.post(f"{tiny_url}/predict", json={"records": [record]}, timeout=30)

    async def among_others() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=tiny_url, timeout=30) as c:
            return await asyncio.gather(
                *(c.post("/predict", json={"records": [r]}) for r in others[:20]),
                c.post("/predict", json={"records": [record]}),
                *(c.post("/predict", json={"records": [r]}) for r in others[20:]),
            )

    responses = run_in_fresh_loop(among_others())
    together = responses.pop(20)
    assert alone.status_code == together.status_code == status, (alone.text, together.text)
    assert alone.json() == together.json()
    assert [r.status_code for r in responses] == [200] * len(others)


def test_the_openapi_document_says_which_fields_may_be_null(tiny_url: str) -> None:
    document = httpx.get(f"{tiny_url}/openapi.json", timeout=30).json()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    record = document["components"]["schemas"]["Record"]
    assert sorted(record["required"]) == ["b"]
    assert {"type": "null"} in record["properties"]["c"]["anyOf"]
    # the model one-hot encodes `c` ignoring unknown values: any text is scored, and the
    # categories seen in training are named (an enum would refuse what is served)
    assert {"type": "string"} in record["properties"]["c"]["anyOf"]
    assert "seen in training: x, y, z" in record["properties"]["c"]["description"]
    assert {"type": "null"} not in record["properties"]["b"].get("anyOf", [])
    assert record["properties"]["b"]["type"] == "number"


# -- /health -------------------------------------------------------------------------------------


class Broken(FakeBundle):
    """A bundle whose every prediction fails (its model cannot read the frames it is given)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raise KeyError("feature_0")


def test_health_is_503_for_a_bundle_whose_every_prediction_fails(
    churn: tuple[Pipeline, Schema],
) -> None:
    with running(create_app(Broken(*churn))) as base:
        response = httpx.get(f"{base}/health", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert "KeyError" in body["reason"] and "feature_0" in body["reason"]


def test_health_is_ok_after_predicting_a_reference_record(nullable_bundle: Path) -> None:
    with load_bundle(nullable_bundle) as bundle, running(create_app(bundle)) as base:
        response = httpx.get(f"{base}/health", timeout=30)
        metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert metric(metrics, "nbops_batch_size_count") == 0  # the start-up check is not counted


def test_the_reference_record_is_built_from_the_schema_alone(
    churn: tuple[Pipeline, Schema],
) -> None:
    schema = churn[1]
    record = reference_record(schema, COLUMNS)
    assert record == reference_record(schema, COLUMNS)  # deterministic
    assert record["city"] in ("Oslo", "Lima", "Pune") and record["plan"] in ("free", "pro", "max")
    assert record["age"] == round(schema.column("age").quantiles["0.5"])
    assert record["active"] is False


# -- /docs without a network ---------------------------------------------------------------------


def test_docs_load_swagger_ui_from_the_server_itself(client: httpx.Client, url: str) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    remote = [u for u in urls if re.match(r"(?i)([a-z][a-z0-9+.-]*:)?//", u)]
    assert not remote, f"/docs loads {remote} from elsewhere"
    kinds = {}
    for u in urls:
        asset = client.get(u)
        assert asset.status_code == 200, u
        kinds[u.rsplit(".", 1)[-1]] = asset
    assert "javascript" in kinds["js"].headers["content-type"]
    assert len(kinds["js"].content) > 100_000  # Swagger UI itself, not a stub
    assert kinds["css"].headers["content-type"].startswith("text/css")
    assert b".swagger-ui" in kinds["css"].content
    assert client.get("/openapi.json").json()["paths"]["/predict"]


# -- the body parser -----------------------------------------------------------------------------

BAD_TEXT = ["\ud800", "a\udfffb", "\udbff"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=5),
    st.sampled_from(BAD_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=4), st.sampled_from(BAD_TEXT)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)


def surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def unrepresentable(value: Any, loc: list[Any]) -> list[list[Any]]:
    """The places the parser must refuse: non-finite numbers, text with a lone surrogate."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [loc]
    if isinstance(value, str):
        return [loc] if surrogate(value) else []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unrepresentable(v, [*loc, i])]
    if isinstance(value, dict):
        out: list[list[Any]] = []
        for k, v in value.items():
            if surrogate(k):
                out.append([*loc, k.encode("utf-8", "backslashreplace").decode()])
            else:
                out += unrepresentable(v, [*loc, k])
        return out
    return []


@given(value=json_values, ascii_only=st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_body_parser_refuses_exactly_what_json_does_not_have(
    value: Any, ascii_only: bool
) -> None:
    # as Python writes them: NaN, Infinity; a surrogate as \\udXXX, or as its (invalid) bytes
    text = json.dumps(value, ensure_ascii=ascii_only)
    body = text.encode("utf-8", "surrogatepass")
    bad = unrepresentable(value, ["body"])
    try:
        parsed = parse_body(body)
    except _BadBody as e:
        if surrogate(text):  # raw surrogate bytes: the body is not UTF-8, refused as a whole
            assert [err["type"] for err in e.errors] == ["json_invalid"]
            assert "UTF-8" in e.errors[0]["msg"]
            return
        assert bad, e.errors
        assert sorted(map(str, (err["loc"] for err in e.errors))) == sorted(map(str, bad[:20]))
        json.dumps(e.errors, allow_nan=False, ensure_ascii=False).encode("utf-8")
    else:
        assert not bad
        assert parsed == value


def test_the_openapi_document_gives_the_integer_range_of_the_dtype(url: str) -> None:
    record = httpx.get(f"{url}/openapi.json", timeout=30).json()["components"]["schemas"]["Record"]
    age = record["properties"]["age"]
    assert age["type"] == "integer"
    assert (age["minimum"], age["maximum"]) == (-(2**63), 2**63 - 1)
