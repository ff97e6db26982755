"""Serve a bundle over HTTP: a FastAPI app with validation, micro-batching, metrics and logging.

    app = create_app(bundle)              # a fastapi.FastAPI; run it with any ASGI server
    app = server_app(bundle)              # the same endpoints, FastAPI built on first need
    serve(bundle, port=8000)              # or run server_app here with uvicorn, on loopback

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
  histogram), `nbops_batch_wait_seconds` (each batch's wait for more requests, 0 when
  none) and the request log's `nbops_request_log_lines_total{outcome}`.
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
  split), run in a worker thread so the event loop keeps accepting. The wait for more
  requests is adaptive (`batching.batch_window`): a batch waits only for clients seen in
  flight recently that it does not hold, for at most one measured model call and at most
  `batch_wait_ms`, and not at all when fewer than one request arrives per call, so a lone
  client pays no wait; its request is not even handed to the thread: while no other is in
  flight and model calls are short (50 ms at most), it is predicted at once on the event
  loop. Requests that arrive while a batch is predicting form the next one.
  If a merged call raises, each request is predicted alone, so one bad
  request fails alone: a `BundleError` is a 422 with its message (its record found by
  halving the request when one record alone fails), anything else a 500.
- The request path: `POST /predict`, `GET /health`, `/metadata` and `/metrics` without a
  query string are answered by a pure ASGI layer (`_DirectRoutes`) with the same code as the
  FastAPI routes (no router, dependency solving, Request or Response objects); the routes
  answer the rest and document the endpoints. `serve()` and `nbops serve` run `server_app()`:
  the same middleware and answers, and the FastAPI app built (FastAPI imported) only for the
  first request that needs it (the docs, `/openapi.json`, `?proba=true`, any other path or
  method), so a server is healthy ~0.13 s sooner; `create_app()` builds it at once. Both run
  on uvicorn with a transport that writes each answer (status line, headers and body) in one
  piece (`transport.py`).
- Request log: with `log_sample > 0`, that share of successful `/predict` requests is
  appended as JSON lines (`timestamp`, `model`, `version` that answered, `records`,
  `predictions`, and `keys`: the schema's key and `log_keys` columns of the raw records) to
  `log_path` by a background thread (default `<bundle.path>/../<name>-requests.jsonl`).
  A full queue or a failed write drops the line and counts it; it never fails a request.
- Generations: every request is pinned on arrival to the bundle served then and answered by
  it alone (answers carry the header `X-Nbops-Model-Version`). `create_registry_app(
  "penguins@production")` follows a registry alias and swaps in each newly promoted bundle
  once it is checked, loaded, verified and probed, the old one closing when drained; a
  failed swap keeps the old one and shows in `/health` (`swap`). See `generation.py`.
"""

from nbops.bundle.serve.app import (
    ServableBundle,
    create_app,
    create_registry_app,
    serve,
    server_app,
)
from nbops.bundle.serve.body import RecordError, _BadBody, parse_body
from nbops.bundle.serve.middleware import BodySizeLimitMiddleware
from nbops.bundle.serve.request import reference_record, request_model

__all__ = [
    "BodySizeLimitMiddleware",
    "RecordError",
    "ServableBundle",
    "_BadBody",
    "create_app",
    "create_registry_app",
    "parse_body",
    "reference_record",
    "request_model",
    "serve",
    "server_app",
]
