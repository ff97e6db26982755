"""The run record: filled from the capture sidecar's events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nbops.runs.capture import log_artifact, log_metric, track_data
from nbops.runs.events import read_events
from nbops.runs.record import RunRecord

from .conftest import make_record


def metric(name: str, value: Any, step: int | None = None, ts: float = 1.0) -> dict[str, Any]:
    return {"kind": "metric", "name": name, "value": value, "step": step, "ts": ts}


def data(name: str, sha: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "data", "name": name, "type": "file", "sha256": sha, "ts": 1.0, **extra}


def test_metric_events_become_a_history_per_metric_with_steps() -> None:
    record = make_record()

    record.apply_events(
        [metric("loss", 0.9, 0, ts=1.0), metric("acc", 0.5, ts=1.5), metric("loss", 0.4, 1, ts=2.0)]
    )

    assert [(p.value, p.step, p.ts) for p in record.metrics["loss"]] == [
        (0.9, 0, 1.0),
        (0.4, 1, 2.0),
    ]
    assert [(p.value, p.step) for p in record.metrics["acc"]] == [(0.5, None)]


def test_non_finite_metric_written_as_text_is_read_as_a_float() -> None:
    record = make_record()

    record.apply_events([metric("loss", "nan"), metric("gain", "inf")])

    assert math.isnan(record.metrics["loss"][0].value)
    assert record.metrics["gain"][0].value == math.inf


def test_param_events_become_logged_params_last_value_winning() -> None:
    record = make_record()

    record.apply_events(
        [
            {"kind": "param", "name": "model", "value": "rf", "ts": 1.0},
            {"kind": "param", "name": "model", "value": "gbm", "ts": 2.0},
            {"kind": "param", "name": "layers", "value": [8, 4], "ts": 3.0},
        ]
    )

    assert record.logged_params == {"model": "gbm", "layers": [8, 4]}


def test_last_data_fingerprint_of_a_name_wins() -> None:
    record = make_record()

    record.apply_events(
        [data("train", "a" * 64, path="v1.csv"), data("test", "b" * 64), data("train", "c" * 64)]
    )

    assert [(d.name, d.sha256) for d in record.data] == [("train", "c" * 64), ("test", "b" * 64)]


def test_data_fingerprint_keeps_its_extra_fields_without_kind_or_ts() -> None:
    record = make_record()

    record.apply_events([data("train", "a" * 64, path="train.csv", bytes=10)])

    assert record.data[0].model_extra == {"path": "train.csv", "bytes": 10}


def test_artifact_and_model_events_are_listed_in_order() -> None:
    record = make_record()
    events = [
        {"kind": "artifact", "name": "a.txt", "path": "artifacts/a.txt", "ts": 1.0},
        {"kind": "model", "name": "clf", "path": "models/clf.skops", "ts": 2.0},
        {"kind": "artifact", "name": "b.txt", "path": "artifacts/b.txt", "ts": 3.0},
    ]

    record.apply_events(events)

    assert [a["name"] for a in record.artifacts] == ["a.txt", "b.txt"]
    assert record.models == [{"name": "clf", "path": "models/clf.skops", "ts": 2.0}]


def test_unknown_event_kinds_are_ignored() -> None:
    record = make_record()

    record.apply_events([{"kind": "future-thing", "ts": 1.0}, metric("acc", 0.5)])

    assert record.latest_metrics() == {"acc": 0.5}


def test_apply_events_replaces_what_the_record_held() -> None:
    record = make_record()
    record.apply_events([metric("old", 1.0), data("old", "a" * 64)])

    record.apply_events([metric("new", 2.0)])

    assert list(record.metrics) == ["new"]
    assert record.data == []


def test_events_written_by_the_capture_api_fill_a_record(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "train.csv"
    source.write_text("a\n1\n", "utf-8")
    log_metric("loss", 0.8, step=0)
    log_metric("loss", 0.3, step=1)
    track_data(source, "train")
    log_artifact(source)
    record = make_record()

    record.apply_events(read_events(run_dir))

    assert [p.value for p in record.metrics["loss"]] == [0.8, 0.3]
    assert record.data[0].name == "train"
    assert record.artifacts[0]["path"] == "artifacts/train.csv"


def test_latest_metrics_gives_each_metrics_last_value() -> None:
    record = make_record()
    record.apply_events([metric("loss", 0.9, 0), metric("loss", 0.2, 1), metric("acc", 0.7)])

    assert record.latest_metrics() == {"loss": 0.2, "acc": 0.7}


def test_latest_metrics_leaves_out_a_metric_without_points() -> None:
    record = make_record(metrics={"loss": []})

    assert record.latest_metrics() == {}


def test_record_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        RunRecord.model_validate(
            {"run_id": "r", "notebook": "nb.ipynb", "started_at": "t", "surprise": 1}
        )


def test_record_survives_a_json_round_trip() -> None:
    record = make_record(parameters={"n": 3})
    record.apply_events([metric("loss", 0.9, 0), data("train", "a" * 64, path="train.csv")])

    assert RunRecord.model_validate_json(record.model_dump_json()) == record
