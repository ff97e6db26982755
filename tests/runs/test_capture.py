"""The in-notebook capture API: each call appends one event to the run's events.jsonl."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import nbops.runs.capture as capture
from nbops.runs.capture import (
    log_artifact,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    track_data,
)
from nbops.runs.events import EVENTS_FILE, read_events
from nbops.runs.store import RunStore


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["kind"] == kind]


def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": ["x", "y", "z"]})


# --- events under `nbops run` ---------------------------------------------------------------


def test_log_metric_appends_a_metric_event(run_dir: Path) -> None:
    log_metric("accuracy", 0.93)

    [event] = read_events(run_dir)
    assert event["kind"] == "metric"
    assert event["name"] == "accuracy"
    assert event["value"] == 0.93
    assert event["step"] is None
    assert isinstance(event["ts"], float)


def test_each_call_appends_one_line(run_dir: Path) -> None:
    log_metric("loss", 1.0, step=0)
    log_metric("loss", 0.5, step=1)

    lines = (run_dir / EVENTS_FILE).read_text("utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1]


def test_log_metrics_appends_one_event_per_metric_with_the_step(run_dir: Path) -> None:
    log_metrics({"accuracy": 0.9, "f1": 0.8}, step=3)

    assert [(e["name"], e["value"], e["step"]) for e in events_of(run_dir, "metric")] == [
        ("accuracy", 0.9, 3),
        ("f1", 0.8, 3),
    ]


def test_metric_accepts_numpy_and_bool_values(run_dir: Path) -> None:
    import numpy as np

    log_metric("n", np.float32(0.25))
    log_metric("ok", True)

    assert [e["value"] for e in events_of(run_dir, "metric")] == [0.25, 1.0]


def test_non_finite_metric_is_stored_as_text(run_dir: Path) -> None:
    log_metric("loss", float("nan"))

    [event] = events_of(run_dir, "metric")
    assert event["value"] == "nan"


@pytest.mark.parametrize("value", ["high", None, [1, 2], {"a": 1}, object()])
def test_log_metric_refuses_a_value_that_is_not_a_number(run_dir: Path, value: object) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        log_metric("accuracy", value)

    assert read_events(run_dir) == []


@pytest.mark.parametrize("name", ["", "   ", None])
def test_log_metric_refuses_an_empty_name(run_dir: Path, name: object) -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        log_metric(name, 1.0)  # type: ignore[arg-type]


def test_log_metric_refuses_a_step_that_is_not_an_integer(run_dir: Path) -> None:
    with pytest.raises(ValueError):
        log_metric("loss", 0.1, step=0.5)  # type: ignore[arg-type]


def test_log_param_and_log_params_append_param_events(run_dir: Path) -> None:
    log_param("optimizer", "adam")
    log_params({"layers": [64, 32], "dropout": 0.1})

    assert [(e["name"], e["value"]) for e in events_of(run_dir, "param")] == [
        ("optimizer", "adam"),
        ("layers", [64, 32]),
        ("dropout", 0.1),
    ]


def test_param_value_json_cannot_hold_is_written_as_text(run_dir: Path) -> None:
    log_param("where", Path("data/raw"))

    [event] = events_of(run_dir, "param")
    assert event["value"] == str(Path("data/raw"))


def test_log_artifact_copies_the_file_and_records_it(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "report.txt"
    source.write_text("all good\n", "utf-8")

    stored = log_artifact(source)

    assert stored == run_dir / "artifacts" / "report.txt"
    assert stored.read_text("utf-8") == "all good\n"
    [event] = events_of(run_dir, "artifact")
    assert event["path"] == "artifacts/report.txt"
    assert event["sha256"] == hashlib.sha256(b"all good\n").hexdigest()
    assert event["bytes"] == len(b"all good\n")


def test_log_artifact_can_rename_the_file(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "report.txt"
    source.write_text("x", "utf-8")

    stored = log_artifact(source, name="summary.txt")

    assert stored.name == "summary.txt"
    assert events_of(run_dir, "artifact")[0]["name"] == "summary.txt"


def test_log_artifact_of_a_missing_file_raises(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        log_artifact(tmp_path / "nope.txt")

    assert read_events(run_dir) == []


def test_events_go_to_the_folder_in_the_environment(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_metric("a", 1)
    other = tmp_path / "other-run"
    monkeypatch.setenv(capture.RUN_DIR_ENV, str(other))
    monkeypatch.delenv(capture.RUN_ID_ENV)

    log_metric("b", 2)

    assert [e["name"] for e in read_events(run_dir)] == ["a"]
    assert [e["name"] for e in read_events(other)] == ["b"]
    assert capture.active_run().run_id == "other-run"


# --- read_events ----------------------------------------------------------------------------


def test_read_events_of_a_run_without_sidecar_is_empty(tmp_path: Path) -> None:
    assert read_events(tmp_path) == []


def test_read_events_skips_a_torn_last_line(run_dir: Path) -> None:
    log_metric("a", 1)
    log_metric("b", 2)
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "metric", "name": "c", "va')

    assert [e["name"] for e in read_events(run_dir)] == ["a", "b"]


# --- track_data -----------------------------------------------------------------------------


def test_track_data_of_a_file_records_its_sha256(run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n" * 1000)

    fingerprint = track_data(data, "train")

    assert fingerprint["type"] == "file"
    assert fingerprint["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert fingerprint["bytes"] == data.stat().st_size
    assert fingerprint["format"] == "csv"
    [event] = events_of(run_dir, "data")
    assert event["name"] == "train"
    assert event["sha256"] == fingerprint["sha256"]


def test_track_data_accepts_a_path_as_text(run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n", "utf-8")

    assert track_data(str(data), "train")["sha256"] == hashlib.sha256(b"a\n1\n").hexdigest()


def test_track_data_of_a_missing_file_raises(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        track_data(tmp_path / "nope.csv", "train")


def test_track_data_of_a_frame_records_rows_columns_and_schema(run_dir: Path) -> None:
    fingerprint = track_data(frame(), "features")

    assert fingerprint["type"] == "dataframe"
    assert fingerprint["rows"] == 3
    assert fingerprint["columns"] == ["a", "b", "c"]
    assert fingerprint["schema"]["a"] == "int64"
    assert fingerprint["schema"]["b"] == "float64"
    assert len(fingerprint["sha256"]) == 64
    assert events_of(run_dir, "data")[0]["rows"] == 3


def test_frame_hash_is_the_same_for_an_equal_frame_built_again(run_dir: Path) -> None:
    first = track_data(frame(), "features")["sha256"]
    again = track_data(frame(), "features")["sha256"]

    assert first == again


def test_frame_hash_changes_when_a_value_changes(run_dir: Path) -> None:
    changed = frame()
    changed.loc[1, "b"] = 1.25

    assert track_data(changed, "x")["sha256"] != track_data(frame(), "x")["sha256"]


def test_frame_hash_changes_when_a_column_is_renamed(run_dir: Path) -> None:
    renamed = frame().rename(columns={"a": "A"})

    assert track_data(renamed, "x")["sha256"] != track_data(frame(), "x")["sha256"]


def test_frame_hash_changes_when_the_index_changes(run_dir: Path) -> None:
    reindexed = frame().set_axis([10, 11, 12])

    assert track_data(reindexed, "x")["sha256"] != track_data(frame(), "x")["sha256"]


def test_track_data_of_a_series_is_fingerprinted_as_a_frame(run_dir: Path) -> None:
    fingerprint = track_data(pd.Series([1, 2], name="y"), "target")

    assert fingerprint["columns"] == ["y"]
    assert fingerprint["rows"] == 2


def test_track_data_refuses_other_objects(run_dir: Path) -> None:
    with pytest.raises(TypeError, match="list"):
        track_data([1, 2, 3], "numbers")


# --- log_model ------------------------------------------------------------------------------


def test_log_model_writes_a_skops_file_that_loads_back(run_dir: Path) -> None:
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.4, 0.6], [0.7, 0.2]])
    y = np.array([0, 1, 0, 1, 0, 1])
    model = LogisticRegression().fit(X, y)

    path = log_model(model, name="clf")

    assert path == run_dir / "models" / "clf.skops"
    loaded = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    assert (loaded.predict(X) == model.predict(X)).all()
    [event] = events_of(run_dir, "model")
    assert event["format"] == "skops"
    assert event["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert event["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# --- outside `nbops run` ------------------------------------------------------------------


@pytest.mark.usefixtures("ipython_session")
def test_first_interactive_call_opens_a_run_in_the_project_store(project: Path) -> None:
    log_metric("accuracy", 0.91)

    [record] = RunStore(project / ".nbops").list()
    assert record.mode == "interactive"
    assert record.status == "running"
    assert record.latest_metrics() == {"accuracy": 0.91}


@pytest.mark.usefixtures("ipython_session")
def test_interactive_calls_of_one_session_share_one_run(project: Path) -> None:
    log_metric("accuracy", 0.91)
    log_param("model", "rf")

    [record] = RunStore(project / ".nbops").list()
    assert record.logged_params == {"model": "rf"}


@pytest.mark.usefixtures("ipython_session")
def test_interactive_run_found_from_a_subfolder_of_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = project / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)

    log_metric("accuracy", 0.5)

    assert len(RunStore(project / ".nbops").list()) == 1
    assert not (sub / ".nbops").exists()


def test_calls_in_a_plain_python_process_record_nothing(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "report.txt"
    source.write_text("x", "utf-8")

    log_metric("accuracy", 0.5)
    track_data(source, "report")

    assert log_artifact(source) is None
    assert not (project / ".nbops").exists()
