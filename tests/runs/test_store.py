"""The run store: records saved to SQLite (and record.json), found by id, listed newest first."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import RunNotFoundError, StoreError
from nbops.runs.events import EVENTS_FILE
from nbops.runs.files import leftover_temporaries
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore

from .conftest import make_record

WRITERS_THREADS = 8
WRITERS_PROCESSES = 4
RECORDS_EACH = 25


def started(n: int) -> str:
    """A start time `n` minutes after a fixed moment: later n, newer run."""
    return f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00.000+00:00"


def save_many(directory: str, writer: int, barrier: Any) -> None:
    """Save RECORDS_EACH distinct records from one writer (a thread or a spawned process)."""
    # generous: spawned processes import nbops slowly on a loaded 2-core machine
    barrier.wait(timeout=600)
    store = RunStore(Path(directory))
    for i in range(RECORDS_EACH):
        store.save(
            make_record(
                f"w{writer:02d}-{i:03d}",
                notebook=f"nb{writer}.ipynb",
                started_at=started(writer * RECORDS_EACH + i),
                parameters={"writer": writer, "i": i},
            )
        )


def test_saved_record_loads_back_equal(store: RunStore) -> None:
    record = make_record(
        parameters={"n": 3, "name": "rf"},
        metrics={"accuracy": [{"value": 0.9, "step": None, "ts": 1.0}]},
        duration_s=1.5,
    )

    store.save(record)

    assert store.load(record.run_id) == record


def test_saving_again_replaces_the_record(store: RunStore) -> None:
    record = make_record(status="running")
    store.save(record)
    record.status = "failed"

    store.save(record)

    assert store.load(record.run_id).status == "failed"
    assert len(store.list()) == 1


def test_save_writes_a_record_json_copy(store: RunStore) -> None:
    record = make_record(parameters={"n": 3})

    store.save(record)

    copy = store.run_dir(record.run_id) / "record.json"
    assert RunRecord.model_validate(json.loads(copy.read_text("utf-8"))) == record
    assert leftover_temporaries(copy.parent) == []


def test_run_loads_by_unique_prefix(store: RunStore) -> None:
    store.save(make_record("20260101-000000-aaaaaa"))
    store.save(make_record("20260102-000000-bbbbbb"))

    assert store.load("20260102").run_id == "20260102-000000-bbbbbb"


def test_latest_loads_the_newest_run(store: RunStore) -> None:
    store.save(make_record("b-run", started_at=started(2)))
    store.save(make_record("a-run", started_at=started(1)))

    assert store.load("latest").run_id == "b-run"


def test_unknown_run_is_not_found(store: RunStore) -> None:
    store.save(make_record("20260101-000000-aaaaaa"))

    with pytest.raises(RunNotFoundError, match="'2027'"):
        store.load("2027")


def test_latest_of_an_empty_store_is_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        store.load("latest")


def test_ambiguous_prefix_is_not_found(store: RunStore) -> None:
    store.save(make_record("20260101-000000-aaaaaa"))
    store.save(make_record("20260101-000000-bbbbbb"))

    with pytest.raises(RunNotFoundError, match="more than one run"):
        store.load("20260101")


def test_run_loads_by_unique_end_of_its_id(store: RunStore) -> None:
    store.save(make_record("20260101-000000-aaaaaa"))
    store.save(make_record("20260101-000000-bbbbbb"))

    assert store.load("bbbbbb").run_id == "20260101-000000-bbbbbb"


def test_ambiguous_end_of_id_is_not_found(store: RunStore) -> None:
    store.save(make_record("20260101-000000-aaaa11"))
    store.save(make_record("20260102-000000-bbbb11"))

    with pytest.raises(RunNotFoundError, match="more than one run"):
        store.load("11")


def test_exact_id_loads_even_when_it_starts_another_id(store: RunStore) -> None:
    store.save(make_record("run-1"))
    store.save(make_record("run-10"))

    assert store.load("run-1").run_id == "run-1"


@pytest.mark.parametrize("ref", ["", "%", "_"])
def test_empty_reference_is_not_found(store: RunStore, ref: str) -> None:
    store.save(make_record("20260101-000000-aaaaaa"))

    with pytest.raises(RunNotFoundError):
        store.load(ref)


def test_list_gives_the_newest_first(store: RunStore) -> None:
    for n, run_id in [(2, "b"), (3, "c"), (1, "a")]:
        store.save(make_record(run_id, started_at=started(n)))

    assert [r.run_id for r in store.list()] == ["c", "b", "a"]


def test_list_stops_at_the_limit(store: RunStore) -> None:
    for n in range(5):
        store.save(make_record(f"run-{n}", started_at=started(n)))

    assert [r.run_id for r in store.list(limit=2)] == ["run-4", "run-3"]


def test_list_filters_by_notebook(store: RunStore) -> None:
    store.save(make_record("a", notebook="train.ipynb", started_at=started(1)))
    store.save(make_record("b", notebook="eval.ipynb", started_at=started(2)))
    store.save(make_record("c", notebook="train.ipynb", started_at=started(3)))

    assert [r.run_id for r in store.list(notebook="train.ipynb")] == ["c", "a"]


def test_list_of_an_empty_store_is_empty(store: RunStore) -> None:
    assert store.list() == []


def test_running_record_gets_its_metrics_from_the_sidecar(store: RunStore) -> None:
    record = make_record(status="running")
    store.save(record)
    events = [
        {"kind": "metric", "name": "loss", "value": 0.9, "step": 0, "ts": 1.0},
        {"kind": "metric", "name": "loss", "value": 0.4, "step": 1, "ts": 2.0},
    ]
    (store.run_dir(record.run_id) / EVENTS_FILE).write_text(
        "".join(json.dumps(e) + "\n" for e in events), "utf-8"
    )

    assert store.load(record.run_id).latest_metrics() == {"loss": 0.4}
    assert store.list()[0].latest_metrics() == {"loss": 0.4}


def test_finished_record_keeps_its_saved_metrics(store: RunStore) -> None:
    record = make_record(
        status="completed", metrics={"loss": [{"value": 0.5, "step": None, "ts": 1.0}]}
    )
    store.save(record)
    (store.run_dir(record.run_id) / EVENTS_FILE).write_text(
        json.dumps({"kind": "metric", "name": "loss", "value": 9.0, "step": None, "ts": 2.0})
        + "\n",
        "utf-8",
    )

    assert store.load(record.run_id).latest_metrics() == {"loss": 0.5}


def test_interactive_run_is_saved_as_running(store: RunStore) -> None:
    record = store.start_interactive_run("20260101-000000-cccccc")

    loaded = store.load("20260101-000000-cccccc")
    assert loaded == record
    assert (loaded.mode, loaded.status, loaded.notebook) == (
        "interactive",
        "running",
        "(interactive)",
    )


def test_garbage_database_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / ".nbops"
    folder.mkdir()
    (folder / "runs.db").write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError) as info:
        RunStore(folder)

    assert str(folder / "runs.db") in str(info.value)


def test_store_folder_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / ".nbops"
    folder.write_text("not a folder", "utf-8")

    with pytest.raises(StoreError):
        RunStore(folder)


def test_database_damaged_after_opening_is_a_store_error_on_list(store: RunStore) -> None:
    store.save(make_record())
    store.db_path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError):
        store.list()


def test_opening_a_new_store_waits_for_a_concurrent_writer(tmp_path: Path) -> None:
    folder = tmp_path / ".nbops"
    folder.mkdir()
    writer = sqlite3.connect(folder / "runs.db", isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.3, lambda: (writer.execute("COMMIT"), writer.close()))
    release.start()
    try:
        RunStore(folder)
    finally:
        release.join()


def test_writers_in_threads_and_processes_at_once_lose_nothing(tmp_path: Path) -> None:
    directory = tmp_path / ".nbops"
    RunStore(directory)  # created first; a brand-new store under a writer has its own test
    ctx = multiprocessing.get_context("spawn")
    writers = WRITERS_THREADS + WRITERS_PROCESSES
    barrier = ctx.Barrier(writers)
    processes = [
        ctx.Process(target=save_many, args=(str(directory), WRITERS_THREADS + p, barrier))
        for p in range(WRITERS_PROCESSES)
    ]
    errors: list[BaseException] = []

    def thread_writer(writer: int) -> None:
        try:
            save_many(str(directory), writer, barrier)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_writer, args=(t,)) for t in range(WRITERS_THREADS)]
    for worker in [*processes, *threads]:
        worker.start()
    for thread in threads:
        thread.join(timeout=600)
    for process in processes:
        process.join(timeout=600)

    assert errors == []
    assert [p.exitcode for p in processes] == [0] * WRITERS_PROCESSES
    records = RunStore(directory).list(limit=1000)
    assert len(records) == writers * RECORDS_EACH
    assert {r.run_id for r in records} == {
        f"w{w:02d}-{i:03d}" for w in range(writers) for i in range(RECORDS_EACH)
    }
    with sqlite3.connect(directory / "runs.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
