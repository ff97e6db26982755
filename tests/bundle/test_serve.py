"""Serving a bundle over HTTP: a real uvicorn server on loopback, exercised with httpx."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from nbops.bundle.load import load_bundle
from nbops.bundle.serve import create_app, request_model
from nbops.errors import BundleError
from nbops.quality.schema import Schema, infer_schema
from tests.helpers import running

from .conftest import Built
from .conftest import rows as records_from

COLUMNS = ["age", "income", "city", "plan", "active"]


def run_in_fresh_loop(coroutine):  # type: ignore[no-untyped-def]
    """asyncio.run in a thread of its own: another test (playwright's sync API) may keep an
    event loop running in the main thread for the whole session."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def make_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = rng.normal(50_000, 12_000, n)
    income[rng.random(n) < 0.05] = np.nan
    city = rng.choice(np.array(["Oslo", "Lima", "Pune"]), n)
    plan = rng.choice(np.array(["free", "pro", "max"]), n)
    active = rng.random(n) < 0.4
    score = (age > 50).astype(int) + (city == "Lima") + (plan == "max") + active + rng.random(n)
    label = np.where(score > 2.0, "churn", "stay")
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "city": city,
            "plan": plan,
            "active": active,
            "label": label,
        }
    )


class Manifest(BaseModel):
    name: str
    version: str
    task: str = "classification"
    columns: list[str]


class FakeBundle:
    """What the bundle loader gives serving: a manifest, a schema, predict and predict_proba."""

    def __init__(self, pipeline: Pipeline, schema: Schema, path: Path | None = None) -> None:
        self.pipeline = pipeline
        self.schema = schema
        self.request_columns = list(COLUMNS)
        self.manifest = Manifest(name="churn", version="3", columns=COLUMNS)
        self.classes = list(pipeline.classes_)
        self.path = path
        self.calls: list[int] = []
        self.hold: threading.Event | None = None  # when set up, calls wait for it...
        self.holding = threading.Event()  # ...after saying so here

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(frame))
        if self.hold is not None and (frame["age"] == 1000).any():
            self.holding.set()
            self.hold.wait(10)
        if (frame["age"] < 0).any():
            raise BundleError("age cannot be negative")
        return self.pipeline.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(frame)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame) -> Pipeline:
    return churn_pipeline(frame)


def churn_pipeline(frame: pd.DataFrame) -> Pipeline:
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("categories", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])],
                    remainder="passthrough",
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=20, random_state=0)),
        ]
    )
    return model.fit(frame[COLUMNS], frame["label"])


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame[COLUMNS], name="churn")


@pytest.fixture(scope="module")
def bundle(pipeline: Pipeline, schema: Schema, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return FakeBundle(pipeline, schema, tmp_path_factory.mktemp("bundles") / "churn-3")


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "requests.jsonl"


@pytest.fixture(scope="module")
def url(bundle: FakeBundle, log_path: Path) -> Iterator[str]:
    app = create_app(bundle, log_sample=1.0, log_path=log_path, max_body_bytes=100_000)
    with running(app) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


def records_of(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df[COLUMNS].to_dict(orient="records"):
        row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        if isinstance(row["income"], float) and np.isnan(row["income"]):
            row["income"] = None
        out.append(row)
    return out


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text; 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    )
    found = re.search(pattern, text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def assert_healthy(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- the request model -------------------------------------------------------------------------


def test_request_model_follows_the_schema(schema: Schema) -> None:
    model = request_model(schema, COLUMNS)
    fields = model.model_fields
    assert fields["age"].annotation is int and fields["age"].is_required()
    assert fields["income"].annotation == float | None and not fields["income"].is_required()
    assert fields["active"].annotation is bool
    city = fields["city"].annotation
    assert city is not None and set(get_args(city)) == {"Oslo", "Lima", "Pune"}
    assert getattr(city, "__origin__", None) is Literal
    ok = model.model_validate(
        {"age": 40, "income": 1, "city": "Oslo", "plan": "pro", "active": True}
    )
    assert ok.model_dump() == {
        "age": 40,
        "income": 1.0,
        "city": "Oslo",
        "plan": "pro",
        "active": True,
    }
    with pytest.raises(ValidationError) as e:
        model.model_validate({"age": "40", "city": "Rome", "plan": "pro", "active": 1, "x": 1})
    located = {err["loc"][0]: err["type"] for err in e.value.errors()}
    assert located == {"age": "int_type", "city": "literal_error", "active": "bool_type"}


def test_request_model_ignores_fields_that_are_not_request_columns(schema: Schema) -> None:
    model = request_model(schema, COLUMNS)
    record = model.model_validate({**GOOD, "customer_id": 17, "churned": "yes"})
    assert record.model_dump(by_alias=True) == GOOD


def test_request_model_takes_any_column_name() -> None:
    df = pd.DataFrame(
        {
            "a name": [1.0, 2.0],
            "class": ["x", "y"],
            "json": [True, False],
            "_id": [1, 2],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01"]),
        }
    )
    model = request_model(infer_schema(df), list(df.columns))
    record = model.model_validate(
        {"a name": 1, "class": "x", "json": False, "_id": 3, "when": "2024-03-01T10:00:00"}
    )
    dumped = record.model_dump()
    assert list(dumped) == list(df.columns)
    assert dumped["a name"] == 1.0 and dumped["_id"] == 3
    assert json.loads(record.model_dump_json())["when"].startswith("2024-03-01T10:00:00")
    with pytest.raises(BundleError, match="'nope' is not in the bundle's schema"):
        request_model(infer_schema(df), ["nope"])


# -- predicting --------------------------------------------------------------------------------


def test_predict_one_and_many(
    client: httpx.Client, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    rows = frame.iloc[:300]
    expected = pipeline.predict(rows[COLUMNS]).tolist()
    one = client.post("/predict", json={"records": records_of(rows.iloc[:1])})
    assert one.status_code == 200, one.text
    assert one.json() == {"predictions": expected[:1], "model": "churn", "version": "3"}
    many = client.post("/predict", json={"records": records_of(rows)})
    assert many.status_code == 200
    assert many.json()["predictions"] == expected


def test_predict_probabilities(
    client: httpx.Client, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    rows = frame.iloc[:5]
    response = client.post("/predict", params={"proba": "true"}, json={"records": records_of(rows)})
    assert response.status_code == 200
    body = response.json()
    assert body["classes"] == ["churn", "stay"]
    np.testing.assert_allclose(body["probabilities"], pipeline.predict_proba(rows[COLUMNS]))


GOOD = {"age": 40, "income": 52_000.0, "city": "Oslo", "plan": "pro", "active": False}


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"age": None}, "age", "missing"),
        ({"age": "forty"}, "age", "int_type"),
        ({"active": "yes"}, "active", "bool_type"),
    ],
)
def test_bad_record_is_422_naming_the_field(
    client: httpx.Client, change: dict[str, Any], field: str, kind: str
) -> None:
    record = {**GOOD, **change}
    if change.get(field, 0) is None:
        del record[field]
    response = client.post("/predict", json={"records": [GOOD, record]})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 1, field]
    assert error["type"] == kind
    assert_healthy(client)


@pytest.mark.parametrize(
    "content", [b'{"records": [{"age": 4', b"", b"[1, 2]", b'{"records": []}', b'{"rows": []}']
)
def test_malformed_body_is_422(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "detail" in response.json()
    assert_healthy(client)


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    big = json.dumps({"records": [GOOD] * 2000}).encode()  # ~170 kB, the limit is 100 kB
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "100000 bytes" in response.json()["detail"]
    assert_healthy(client)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size is counted
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_healthy(client)
    fits = client.post("/predict", json={"records": [GOOD] * 500})
    assert fits.status_code == 200


def test_health_and_metadata(client: httpx.Client, bundle: FakeBundle) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "churn" and health["version"] == "3"
    assert client.get("/metadata").json() == bundle.manifest.model_dump(mode="json")
    assert client.get("/docs").status_code == 200
    openapi = client.get("/openapi.json").json()
    assert "/predict" in openapi["paths"]
    assert "Record" in openapi["components"]["schemas"]


def test_metrics(client: httpx.Client) -> None:
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    client.post("/predict", json={"records": [GOOD, GOOD]})
    client.post("/predict", json={"records": [{**GOOD, "age": "x"}]})
    after = client.get("/metrics").text
    ok = {"endpoint": "/predict", "status": "200"}
    assert (
        metric(after, "nbops_requests_total", **ok)
        == metric(before.text, "nbops_requests_total", **ok) + 1
    )
    bad = {"endpoint": "/predict", "status": "422"}
    assert metric(after, "nbops_requests_total", **bad) >= 1 + metric(
        before.text, "nbops_requests_total", **bad
    )
    assert metric(after, "nbops_errors_total") > metric(before.text, "nbops_errors_total")
    latency = "nbops_request_latency_seconds"
    assert metric(after, f"{latency}_count", endpoint="/predict") >= 2 + metric(
        before.text, f"{latency}_count", endpoint="/predict"
    )
    assert metric(after, f"{latency}_bucket", endpoint="/predict", le="+Inf") == metric(
        after, f"{latency}_count", endpoint="/predict"
    )
    assert metric(after, f"{latency}_sum", endpoint="/predict") > 0
    predicted = sum(metric(after, "nbops_predictions_total", value=v) for v in ("churn", "stay"))
    assert predicted >= 2 + sum(
        metric(before.text, "nbops_predictions_total", value=v) for v in ("churn", "stay")
    )
    assert metric(after, "nbops_batch_size_count") > 0
    assert "# TYPE nbops_batch_size histogram" in after
    for line in after.splitlines():  # every sample line parses as the text format
        assert line.startswith("#") or re.fullmatch(
            r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+', line
        ), line


def test_concurrent_single_rows_are_batched(
    url: str, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    rows = frame.iloc[1000:1032]
    expected = pipeline.predict(rows[COLUMNS]).tolist()
    records = records_of(rows)
    before = httpx.get(f"{url}/metrics").text

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            return await asyncio.gather(
                *(c.post("/predict", json={"records": [r]}) for r in records)
            )

    responses = run_in_fresh_loop(go())
    assert [r.status_code for r in responses] == [200] * 32
    assert [r.json()["predictions"][0] for r in responses] == expected
    after = httpx.get(f"{url}/metrics").text
    calls = metric(after, "nbops_batch_size_count") - metric(before, "nbops_batch_size_count")
    single = metric(after, "nbops_batch_size_bucket", le="1") - metric(
        before, "nbops_batch_size_bucket", le="1"
    )
    assert metric(after, "nbops_batch_size_sum") - metric(before, "nbops_batch_size_sum") == 32
    assert single < calls < 32  # some calls merged several requests


def test_request_log(client: httpx.Client, log_path: Path, frame: pd.DataFrame) -> None:
    records = records_of(frame.iloc[:3])
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    deadline = time.monotonic() + 60
    while True:
        # only whole lines: the server may be halfway through writing the last one
        lines = log_path.read_text().split("\n")[:-1] if log_path.exists() else []
        found = [json.loads(line) for line in lines if json.loads(line)["records"] == records]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert found, "the sampled request was not logged"
    entry = found[-1]
    assert entry["predictions"] == predictions
    assert entry["model"] == "churn" and entry["version"] == "3"
    assert entry["timestamp"].endswith("+00:00")
    metrics = client.get("/metrics").text
    assert metric(metrics, "nbops_request_log_lines_total", outcome="written") >= 1


# -- one bad request in a batch, options -------------------------------------------------------


def test_a_bad_request_in_a_batch_fails_alone(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame
) -> None:
    bundle = FakeBundle(pipeline, schema)
    bundle.hold = threading.Event()
    app = create_app(bundle)
    rows = records_of(frame.iloc[:3])
    blocker = {**rows[0], "age": 1000}
    poison = {**rows[1], "age": -5}

    async def go(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            first = asyncio.ensure_future(c.post("/predict", json={"records": [blocker]}))
            assert await asyncio.to_thread(bundle.holding.wait, 5)
            rest = [
                asyncio.ensure_future(c.post("/predict", json={"records": [r]}))
                for r in (rows[0], poison, rows[2])
            ]
            for _ in range(500):  # until the three wait in the queue behind the first call
                if app.state.batcher.queued == 3:
                    break
                await asyncio.sleep(0.01)
            assert app.state.batcher.queued == 3
            assert bundle.hold is not None
            bundle.hold.set()
            return await asyncio.gather(first, *rest)

    with running(app) as base:
        first, good1, bad, good2 = run_in_fresh_loop(go(base))
    expected = pipeline.predict(pd.DataFrame([rows[0], rows[2]])[COLUMNS]).tolist()
    assert first.status_code == 200
    assert [good1.status_code, bad.status_code, good2.status_code] == [200, 422, 200]
    assert [good1.json()["predictions"][0], good2.json()["predictions"][0]] == expected
    assert "age cannot be negative" in bad.json()["detail"][0]["msg"]
    # at start-up, one call trying an unseen category of each categorical column (city,
    # plan: a record each), and the reference record; then the first call, the merged call
    # that failed, each request alone
    assert bundle.calls == [2, 1, 1, 3, 1, 1, 1]


def test_options_are_checked(pipeline: Pipeline, schema: Schema, tmp_path: Path) -> None:
    bundle = FakeBundle(pipeline, schema)
    for options in ({"max_batch": 0}, {"max_body_bytes": -1}, {"log_sample": 2.0}):
        with pytest.raises(BundleError):
            create_app(bundle, **options)
    with pytest.raises(BundleError, match="give log_path"):
        create_app(bundle, log_sample=0.5)
    bundle.path = tmp_path / "bundles" / "churn-3"
    app = create_app(bundle, log_sample=0.5)
    assert app.state.request_log.path == tmp_path / "bundles" / "churn-requests.jsonl"


class Regressor:
    """A regression bundle without predict_proba, whose model answers NaN for x == 0."""

    def __init__(self) -> None:
        self.schema = infer_schema(
            pd.DataFrame({"x": [0.5, 1.5, 2.5], "y": [1.0, 2.0, 3.0]}), label="y"
        )
        self.request_columns = ["x"]
        self.manifest = Manifest(name="reg", version="1", task="regression", columns=["x"])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame["x"].to_numpy()
        return np.where(x == 0, np.nan, 2 * x)


def test_regression_bundle() -> None:
    app = create_app(Regressor(), max_body_bytes=5_000_000)
    with running(app) as base, httpx.Client(base_url=base, timeout=10) as c:
        response = c.post("/predict", json={"records": [{"x": 1}, {"x": 0}, {"x": 2.5}]})
        assert response.status_code == 200
        assert response.json()["predictions"] == [2.0, None, 5.0]
        no_proba = c.post("/predict", params={"proba": "true"}, json={"records": [{"x": 1}]})
        assert no_proba.status_code == 422
        assert no_proba.json()["detail"][0]["msg"] == "this model gives no probabilities"
        too_many = c.post("/predict", json={"records": [{"x": 1}] * 10_001})
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["type"] == "too_long"
        assert c.post("/predict", json={"records": [{"x": 1}] * 10_000}).status_code == 200
        assert c.get("/predict").status_code == 405
        assert c.get("/nowhere").status_code == 404
        text = c.get("/metrics").text
    assert "# TYPE nbops_predicted_value histogram" in text
    assert "nbops_predictions_total" not in text
    assert metric(text, "nbops_predicted_value_count") == 10_002  # NaN is not counted
    assert metric(text, "nbops_predicted_value_bucket", le="+Inf") == 10_002
    assert metric(text, "nbops_requests_total", endpoint="other", status="404") == 1
    assert metric(text, "nbops_requests_total", endpoint="/predict", status="405") == 1


def test_a_client_that_hangs_up_mid_body(client: httpx.Client, url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(
                b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b'content-length: 5000\r\n\r\n{"records": [{"age": 4'
            )
    assert_healthy(client)
    assert client.post("/predict", json={"records": [GOOD]}).status_code == 200


def test_a_loaded_bundle_answers_probabilities_with_its_classes(built: Built) -> None:
    records = records_from(built.requests.head(3))
    with load_bundle(built.folder) as bundle, running(create_app(bundle)) as base:
        response = httpx.post(
            f"{base}/predict", params={"proba": "true"}, json={"records": records}, timeout=30
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["classes"] == built.model.classes_.tolist()
    np.testing.assert_allclose(
        body["probabilities"], built.model.predict_proba(built.features.head(3))
    )


def test_a_category_the_training_data_lacked_is_scored_when_the_model_takes_it(
    client: httpx.Client, pipeline: Pipeline
) -> None:
    """The model one-hot encodes with handle_unknown="ignore": a new city is scored, as
    `Bundle.predict` and `nbops predict` score it (nbops monitor reports the new category)."""
    record = {**GOOD, "city": "Rome"}
    response = client.post("/predict", json={"records": [record]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pipeline.predict(pd.DataFrame([record])).tolist()
    city = client.get("/openapi.json").json()["components"]["schemas"]["Record"]["properties"]
    assert "seen in training: " in city["city"]["description"]


def test_a_category_the_model_cannot_score_is_422_naming_the_field_and_the_categories(
    frame: pd.DataFrame, schema: Schema, tmp_path: Path
) -> None:
    strict = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("categories", OneHotEncoder(), ["city", "plan"])], remainder="passthrough"
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=5, random_state=0)),
        ]
    ).fit(frame[COLUMNS], frame["label"])
    app = create_app(FakeBundle(strict, schema, tmp_path / "strict-1"))
    with running(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/predict", json={"records": [GOOD, {**GOOD, "city": "Rome"}]})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 1, "city"] and error["type"] == "literal_error"
