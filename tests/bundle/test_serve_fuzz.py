"""Fuzzing the server from its own OpenAPI document (schemathesis): no request is a 5xx.

A real uvicorn server on loopback serving a loaded bundle whose features code divides one
column by another; requests that follow the document (positive) and that break it (negative)
are sent to every operation, a bounded number of each, and every status is counted.
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from nbops.bundle.load import load_bundle
from nbops.bundle.serve import create_app
from nbops.quality.schema import infer_schema

from .conftest import Built
from .test_serve import Manifest, running


def fuzz(base: str, operation: Any, cases: int, seen: collections.Counter[int]) -> None:
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    server_errors: list[str] = []

    @given(case=strategy)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call(base_url=base, timeout=30)
        seen[response.status_code] += 1
        if response.status_code >= 500:
            server_errors.append(f"{response.status_code} {response.text[:300]} for {case.body!r}")

    send()
    assert not server_errors, server_errors[:5]


class Kinds:
    """A bundle of every column kind, in narrow dtypes (int32, float32, timestamps), whose
    model divides by one of them: values the JSON types allow but the dtypes do not hold."""

    def __init__(self) -> None:
        frame = pd.DataFrame(
            {
                "when": pd.to_datetime(["2024-01-01", "2024-06-01", "2025-01-01"]),
                "n": np.array([1, 2, 3], dtype=np.int32),
                "x": np.array([0.5, 1.5, 2.5], dtype=np.float32),
                "flag": [True, False, True],
                "tier": pd.Categorical(["a", "b", "a"]),
                "note": ["p", None, "q"],
                "y": [1.0, 2.0, 3.0],
            }
        )
        self.schema = infer_schema(frame, label="y")
        self.request_columns = ["when", "n", "x", "flag", "tier", "note"]
        self.manifest = Manifest(
            name="kinds", version="1", task="regression", columns=self.request_columns
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        days = (frame["when"] - pd.Timestamp("2024-01-01")).dt.days.to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            value = days / frame["n"].to_numpy(dtype=float) + frame["x"].to_numpy(dtype=float)
        if not np.isfinite(value).all():
            raise ValueError("Input contains infinity or a value too large for dtype('float64').")
        return value


@pytest.mark.parametrize(("which", "cases"), [("tiny", 100), ("kinds", 60)])
def test_requests_generated_from_the_openapi_document_are_never_a_5xx(
    built: Built, which: str, cases: int
) -> None:
    start = time.monotonic()
    seen: collections.Counter[int] = collections.Counter()
    with contextlib.ExitStack() as stack:
        bundle: Any = (
            Kinds() if which == "kinds" else stack.enter_context(load_bundle(built.folder))
        )
        base = stack.enter_context(running(create_app(bundle)))
        document = httpx.get(f"{base}/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        labels = sorted(op.label for op in operations)
        assert labels == ["GET /health", "GET /metadata", "GET /metrics", "POST /predict"]
        for operation in operations:
            fuzz(base, operation, cases if operation.method.upper() == "POST" else 5, seen)
        assert httpx.get(f"{base}/health", timeout=30).json()["status"] == "ok"
    tried = sum(seen.values())
    print(f"fuzzing {which}: {tried} requests in {time.monotonic() - start:.1f}s, {dict(seen)}")
    assert tried >= cases  # the cases were sent, not skipped
    assert seen[200] > 0 and seen[422] > 0  # both good and bad requests were among them
    assert not [s for s in seen if s >= 500]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])
