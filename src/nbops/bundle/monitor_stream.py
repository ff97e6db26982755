"""`nbops monitor` on data larger than memory: a request log (JSON lines, read a block of
lines at a time) or recent records as partitioned Parquet (a folder or a glob) or a Dask
DataFrame, in chunks with bounded memory.

Per chunk: the records are validated (`stream_validate`: every count merged exactly), the
bundle predicts the chunk (or the log's predictions are taken), and the predictions are
counted per class, overall and per value of each request column with at most 20 values
(the in-memory rule of `prediction_distribution`, over the whole data): class shares are
exact. For a regressor the quantiles come from KLL sketches (Apache DataSketches): each
quantile's rank is within `kll_rank_error()` of the rows at 99% confidence, and the
measure's name says so.

Performance estimation (`--reference`, `--labels`, `--window`) needs the rows' probabilities
in memory and reads the log whole, as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbops.bundle.monitor import MonitorReport, prediction_shifts
from nbops.bundle.monitor import prediction_reference as reference_of
from nbops.errors import QualityInputError
from nbops.quality.stream.reference import KLL_K, kll_rank_error
from nbops.quality.stream.source import open_source
from nbops.quality.stream.validate import stream_validate

# records per chunk of a log (NBOPS_STREAM_LOG_LINES sets it, as tests do to cut a small log)
LOG_LINES = int(os.environ.get("NBOPS_STREAM_LOG_LINES", "20000"))
STREAM_LOG_BYTES = 256 << 20  # logs at least this big are read in chunks by nbops monitor
MAX_CATEGORIES = 20


@dataclass
class JsonlLog:
    """A request log read a block of lines at a time: records (a frame) and predictions."""

    path: Path
    columns: list[str]
    where: str = ""
    predictions: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.where = str(self.path)

    def require(self, columns: Sequence[str], what: str) -> None:  # pragma: no cover
        return None

    def blocks(self) -> Iterator[tuple[pd.DataFrame, list[Any]]]:
        records: list[dict[str, Any]] = []
        predictions: list[Any] = []
        seen = False
        try:
            handle = self.path.open("r", encoding="utf-8")
        except OSError as exc:
            raise QualityInputError(
                f"cannot read the request log ({exc.strerror})", location=self.where
            ) from None
        with handle:
            for line in handle:
                entry = _entry(line)
                if entry is None:
                    continue
                records.extend(entry[0])
                predictions.extend(entry[1])
                if len(records) >= LOG_LINES:
                    seen = True
                    yield self._frame(records), predictions
                    records, predictions = [], []
        if records:
            seen = True
            yield self._frame(records), predictions
        if not seen:
            raise QualityInputError(
                "the request log holds no complete records with predictions",
                location=self.where,
                fix="serve with request logging on (nbops serve --log-sample 0.1)",
            )

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame.from_records(records).reindex(columns=self.columns)

    def chunks(self, columns: Sequence[str] | None, rows: int | None = None) -> Iterator[Any]:
        for frame, _ in self.blocks():
            yield frame if columns is None else frame[list(columns)]


def _entry(line: str) -> tuple[list[dict[str, Any]], list[Any]] | None:
    """A log line's records and predictions, or None for a line to skip (as `read_log`)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    records, predictions = entry.get("records", []), entry.get("predictions", [])
    if not isinstance(records, list) or not isinstance(predictions, list):
        return None
    if len(records) != len(predictions) or not all(isinstance(r, dict) for r in records):
        return None
    return records, predictions


def log_columns(path: Path, limit: int = 1000) -> list[str]:
    """The record fields of the log's first lines, in order."""
    found: dict[str, None] = {}
    with path.open("r", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            entry = _entry(line)
            for record in entry[0] if entry else []:
                found.update(dict.fromkeys(record))
            if i >= limit:
                break
    return list(found)


class _Predictions:
    """Prediction counts (classes) or sketches (numbers), overall and per column value."""

    def __init__(self) -> None:
        self.numeric: bool | None = None
        self.counts: dict[str, dict[str, int]] = {}
        self.sums: dict[str, float] = {}
        self.sketches: dict[str, Any] = {}
        self.values: dict[str, set[str]] = {}
        self.dropped: set[str] = set()

    def add(self, frame: pd.DataFrame, predictions: Any) -> None:
        values = pd.Series(np.asarray(predictions)).reset_index(drop=True)
        frame = frame.reset_index(drop=True)
        if self.numeric is None:
            self.numeric = values.dtype.kind in "fc"
        self._add("overall", values)
        for column in frame.columns:
            col = frame[column]
            if column in self.dropped or col.dtype.kind in "fc":
                self.dropped.add(str(column))
                continue
            seen = self.values.setdefault(str(column), set())
            seen.update(str(v) for v in col.dropna().unique()[: MAX_CATEGORIES + 1])
            if len(seen) > MAX_CATEGORIES:
                self.dropped.add(str(column))
                continue
            text = col.astype(str)
            for value, index in text.groupby(text).groups.items():
                self._add(f"{column} == {value!r}", values.loc[index])

    def _add(self, name: str, part: pd.Series) -> None:
        if self.numeric:
            from datasketches import kll_doubles_sketch

            sketch = self.sketches.setdefault(name, kll_doubles_sketch(KLL_K))
            x = part.to_numpy(dtype=np.float64)
            sketch.update(x)
            self.sums[name] = self.sums.get(name, 0.0) + float(x.sum())
            return
        into = self.counts.setdefault(name, {})
        for k, v in part.astype(str).value_counts().items():
            into[str(k)] = into.get(str(k), 0) + int(v)

    def distribution(self) -> dict[str, Any]:
        def describe(name: str) -> dict[str, Any]:
            if self.numeric:
                sketch = self.sketches[name]
                qs = [float(sketch.get_quantile(q, True)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)]
                return {"rows": int(sketch.n), "mean": self.sums[name] / sketch.n, "quantiles": qs}
            counts = self.counts[name]
            total = sum(counts.values())
            shares = sorted(counts.items(), key=lambda kv: -kv[1])
            return {"rows": total, "shares": {k: v / total for k, v in shares}}

        names = self.sketches if self.numeric else self.counts
        slices = {
            name: describe(name)
            for name in names
            if name != "overall" and name.split(" == ")[0] not in self.dropped
        }
        return {
            "kind": "regression" if self.numeric else "classification",
            "overall": describe("overall"),
            "slices": slices,
        }


def stream_monitor(
    bundle: Any,
    data: Any = None,
    log: Path | None = None,
    *,
    warn_shift: float = 0.1,
    fail_shift: float = 0.2,
) -> Any:
    """The MonitorReport of `nbops.bundle.monitor.monitor`, from chunks (module docstring)."""
    schema = bundle.schema
    references = {c.name: c.reference for c in schema.columns if c.reference is not None}
    request = list(bundle.request_columns)
    predictions = _Predictions()
    if log is not None:
        source: Any = JsonlLog(Path(log), log_columns(Path(log)))

        def feed() -> None:
            for frame, predicted in source.blocks():
                predictions.add(frame[[c for c in request if c in frame.columns]], predicted)

    else:
        source = open_source(data)
        source.require(request, "monitor")

        def feed() -> None:
            for frame in source.chunks(request):
                predictions.add(frame, bundle.predict(frame))

    validation = stream_validate(source, schema, environment="serving", references=references)
    feed()
    report = MonitorReport(validation)
    reference = reference_of(bundle)
    if not reference:
        return report
    current = predictions.distribution()
    note = ""
    if current["kind"] == "regression":
        note = f" (KLL quantiles, rank error {kll_rank_error():.2g})"
    report.shifts.extend(prediction_shifts(reference, current, warn_shift, fail_shift, note))
    return report
