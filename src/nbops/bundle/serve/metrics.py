"""The server's Prometheus metrics: counters and histograms, rendered as text.

`_Metrics` is shared by the event loop (requests, latency) and the prediction thread
(batch sizes, predicted values), under one lock; `render()` gives the text format.
"""

import contextlib
import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbops.bundle.serve.frame import _json_safe
from nbops.errors import NbopsError
from nbops.quality.schema import Schema

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = tuple(float(2**i) for i in range(15))  # 1, 2, 4, ... 16384
WAIT_BUCKETS = (0.0, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0, 10.0)
DEFAULT_VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)
MAX_PREDICTION_VALUES = 100  # distinct predicted values given their own series; then "__other__"


def _number(x: float) -> str:
    x = float(x)
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted({float(b) for b in bounds if math.isfinite(b)}))
        self.counts = [0] * (len(self.bounds) + 1)  # per bucket, the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def observe_many(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if not values.size:
            return
        index = np.searchsorted(np.asarray(self.bounds), values, side="left")
        for i, n in enumerate(np.bincount(index, minlength=len(self.counts)).tolist()):
            self.counts[i] += n
        self.sum += float(values.sum())
        self.count += int(values.size)

    def lines(self, name: str, labels: str = "") -> list[str]:
        prefix = labels + "," if labels else ""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{prefix}le="{_number(bound)}"}} {running}')
        suffix = "{" + labels + "}" if labels else ""
        out.append(f"{name}_sum{suffix} {_number(self.sum)}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class _Metrics:
    """Counters and histograms, shared by the event loop and the prediction thread."""

    def __init__(self, task: str | None, value_buckets: Sequence[float]) -> None:
        self.lock = threading.Lock()
        self.task = task
        self.requests: dict[tuple[str, str], int] = {}
        self.errors = 0
        self.latency: dict[str, _Histogram] = {}
        self.batch = _Histogram(BATCH_BUCKETS)
        self.batch_wait = _Histogram(WAIT_BUCKETS)
        self.predicted_counts: dict[str, int] = {}
        self.predicted_values = _Histogram(value_buckets)
        self.log_lines: dict[str, int] = {"written": 0, "dropped": 0, "failed": 0}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 400:
                self.errors += 1
            histogram = self.latency.get(endpoint)
            if histogram is None:
                histogram = self.latency[endpoint] = _Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)

    def observe_batch_wait(self, seconds: float) -> None:
        with self.lock:
            self.batch_wait.observe(seconds)

    def observe_predictions(self, predictions: np.ndarray, *, has_proba: bool) -> None:
        with self.lock:
            if self.task is None:
                regression = predictions.dtype.kind == "f" and not has_proba
                self.task = "regression" if regression else "classification"
            self.batch.observe(float(len(predictions)))
            if self.task == "regression":
                with contextlib.suppress(TypeError, ValueError):
                    self.predicted_values.observe_many(np.asarray(predictions, dtype=float).ravel())
                return
            for value, n in _value_counts(predictions).items():
                if value not in self.predicted_counts and (
                    len(self.predicted_counts) >= MAX_PREDICTION_VALUES
                ):
                    value = "__other__"
                self.predicted_counts[value] = self.predicted_counts.get(value, 0) + n

    def count_log_lines(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.log_lines[outcome] += n

    def render(self) -> str:
        with self.lock:
            out = [
                "# HELP nbops_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE nbops_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(
                    f'nbops_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {n}'
                )
            out += [
                "# HELP nbops_errors_total HTTP requests answered with a status of 400 or more.",
                "# TYPE nbops_errors_total counter",
                f"nbops_errors_total {self.errors}",
                "# HELP nbops_request_latency_seconds Time from request start to response end.",
                "# TYPE nbops_request_latency_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.latency.items()):
                out += histogram.lines(
                    "nbops_request_latency_seconds", f'endpoint="{_label(endpoint)}"'
                )
            out += [
                "# HELP nbops_batch_size Records per call of the model's predict.",
                "# TYPE nbops_batch_size histogram",
                *self.batch.lines("nbops_batch_size"),
                "# HELP nbops_batch_wait_seconds Time a batch waited for more requests "
                "(adaptive: 0 when no other client is expected).",
                "# TYPE nbops_batch_wait_seconds histogram",
                *self.batch_wait.lines("nbops_batch_wait_seconds"),
            ]
            if self.task == "regression":
                out += [
                    "# HELP nbops_predicted_value Predicted values.",
                    "# TYPE nbops_predicted_value histogram",
                    *self.predicted_values.lines("nbops_predicted_value"),
                ]
            else:
                out += [
                    "# HELP nbops_predictions_total Predictions made, by predicted value.",
                    "# TYPE nbops_predictions_total counter",
                ]
                for value, n in sorted(self.predicted_counts.items()):
                    out.append(f'nbops_predictions_total{{value="{_label(value)}"}} {n}')
            out += [
                "# HELP nbops_request_log_lines_total Sampled requests logged, by outcome.",
                "# TYPE nbops_request_log_lines_total counter",
            ]
            for outcome, n in sorted(self.log_lines.items()):
                out.append(f'nbops_request_log_lines_total{{outcome="{outcome}"}} {n}')
        return "\n".join(out) + "\n"


def _value_counts(predictions: np.ndarray) -> dict[str, int]:
    flat = predictions.ravel()
    try:
        values, counts = np.unique(flat, return_counts=True)
    except TypeError:  # mixed types in an object array
        tally: dict[str, int] = {}
        for v in flat.tolist():
            key = str(_json_safe(v))
            tally[key] = tally.get(key, 0) + 1
        return tally
    return {
        str(_json_safe(v)): int(n) for v, n in zip(values.tolist(), counts.tolist(), strict=True)
    }


def _task_of(bundle: Any) -> str | None:
    for source in (bundle, getattr(bundle, "manifest", None)):
        task = getattr(source, "task", None)
        if isinstance(task, str):
            if "regress" in task.lower():
                return "regression"
            if "class" in task.lower():
                return "classification"
    return None


def _value_buckets(schema: Schema) -> list[float]:
    """Histogram bounds for a regressor's predictions: the label's reference bins if known."""
    if schema.label is not None:
        with contextlib.suppress(NbopsError):
            label = schema.column(schema.label)
            if label.reference is not None and label.reference.bin_edges:
                return list(label.reference.bin_edges)
            if label.quantiles:
                return sorted(label.quantiles.values())
    return list(DEFAULT_VALUE_BUCKETS)
