"""The request log: a sample of successful requests appended as JSON lines.

Each line: `timestamp`, `model`, `version` (the bundle version that answered: a server of a
registry alias switches versions while it runs), `records` (the request columns),
`predictions` (and `probabilities`), and `keys`, the schema's key columns taken from the raw
records ({column: [value per record]}, never given to the model), so labels that arrive
later can be joined to the predictions (`nbops monitor --labels`).

A background thread writes the lines; a full queue or a failed write drops the line and
counts it (`nbops_request_log_lines_total{outcome}`), never failing a request.
"""

import contextlib
import json
import logging
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nbops.bundle.serve.metrics import _Metrics
from nbops.bundle.serve.predict import _Outcome

logger = logging.getLogger(__name__)

LOG_QUEUE_SIZE = 10_000

# timestamp, records, outcome, model name, version, keys
_Entry = tuple[str, list[BaseModel], _Outcome, str, str, dict[str, list[Any]] | None]


class _RequestLog:
    """Appends sampled requests as JSON lines from a background thread."""

    def __init__(self, path: Path, metrics: _Metrics) -> None:
        self.path = path
        self.metrics = metrics
        self._queue: queue.Queue[_Entry | None] = queue.Queue(maxsize=LOG_QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False

    def put(
        self,
        records: list[BaseModel],
        outcome: _Outcome,
        name: str,
        version: str,
        keys: dict[str, list[Any]] | None = None,
    ) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_loop, name="nbops-request-log", daemon=True
                    )
                    self._thread.start()
        try:
            entry = (datetime.now(UTC).isoformat(), records, outcome, name, version, keys)
            self._queue.put_nowait(entry)
        except queue.Full:
            self.metrics.count_log_lines("dropped")

    def close(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)
        self._thread = None

    def _line(
        self,
        timestamp: str,
        records: list[BaseModel],
        outcome: _Outcome,
        name: str,
        version: str,
        keys: dict[str, list[Any]] | None,
    ) -> str:
        entry: dict[str, Any] = {
            "timestamp": timestamp,
            "model": name,
            "version": version,
            "records": [r.model_dump(mode="json", by_alias=True) for r in records],
            "predictions": outcome.predictions,
        }
        if outcome.probabilities is not None:
            entry["probabilities"] = outcome.probabilities
        if keys is not None:
            entry["keys"] = keys
        return json.dumps(entry, allow_nan=False, default=str, ensure_ascii=False)

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < 1000:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for item in items:
                if item is None:
                    stop = True
                    continue
                try:
                    lines.append(self._line(*item))
                except Exception as e:  # an unserialisable value: drop the line, keep serving
                    self._warn(f"cannot serialise a sampled request: {e}")
                    self.metrics.count_log_lines("failed")
            if not lines:
                continue
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
            except OSError as e:
                self._warn(f"cannot write the request log {self.path}: {e}")
                self.metrics.count_log_lines("failed", len(lines))
            else:
                self.metrics.count_log_lines("written", len(lines))

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("%s (further request-log errors are only counted)", message)
