"""Serve a bundle over HTTP (see `nbops.bundle.serve.app` for the contract)."""

from nbops.bundle.serve.app import (
    BodySizeLimitMiddleware,
    RecordError,
    ServableBundle,
    _BadBody,
    create_app,
    parse_body,
    reference_record,
    request_model,
    serve,
)

__all__ = [
    "BodySizeLimitMiddleware",
    "RecordError",
    "ServableBundle",
    "_BadBody",
    "create_app",
    "parse_body",
    "reference_record",
    "request_model",
    "serve",
]
