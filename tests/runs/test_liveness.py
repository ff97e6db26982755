"""A run still marked `running` whose process is gone is stored as `killed` (this host: its
pid and start time) or `abandoned` (another host: its heartbeat), by whoever reads the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from nbops.runs.files import DISK_FULL_MARK
from nbops.runs.liveness import HEARTBEAT_FILE, STALE_S, heartbeat, this_process
from nbops.runs.record import ParameterSchema, RunOwner
from nbops.runs.store import RunStore

from .conftest import make_record


def _owned_by(owner: RunOwner, store: RunStore, run_id: str = "20260101-000000-aaaaaa") -> None:
    store.save(make_record(run_id, status="running", owner=owner))


def _gone_process() -> RunOwner:
    """The owner record of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = this_process().model_copy(update={"pid": proc.pid})
    proc.wait()
    return owner


def test_a_run_whose_process_is_alive_stays_running(store: RunStore) -> None:
    _owned_by(this_process(), store)

    assert store.load("latest").status == "running"


def test_a_run_whose_process_is_gone_is_stored_as_killed(store: RunStore) -> None:
    owner = _gone_process()
    _owned_by(owner, store)

    listed = store.list()

    assert [r.status for r in listed] == ["killed"]
    assert listed[0].failure is not None and f"pid {owner.pid}" in listed[0].failure.evalue
    again = RunStore(store.directory)  # stored, not only shown
    assert again.load("latest").status == "killed"


def test_a_later_process_with_the_same_pid_does_not_keep_a_dead_run_running(
    store: RunStore,
) -> None:
    # this process's pid, as if reused: its start time differs from the owner's
    reused = this_process().model_copy(update={"process_started": time.time() - 3600})
    _owned_by(reused, store)

    assert store.load("latest").status == "killed"


def test_a_run_of_another_host_is_abandoned_once_its_heartbeat_is_stale(store: RunStore) -> None:
    elsewhere = RunOwner(pid=4242, host="worker-7.elsewhere", process_started=1.0, heartbeat_s=10)
    _owned_by(elsewhere, store, "20260101-000000-aaaaaa")
    _owned_by(elsewhere, store, "20260101-000001-bbbbbb")
    old, fresh = (
        store.run_dir(r) / HEARTBEAT_FILE
        for r in ("20260101-000000-aaaaaa", "20260101-000001-bbbbbb")
    )
    old.touch()
    fresh.touch()
    long_ago = time.time() - STALE_S - 60
    os.utime(old, (long_ago, long_ago))

    statuses = {r.run_id: r.status for r in store.list()}

    assert statuses == {"20260101-000000-aaaaaa": "abandoned", "20260101-000001-bbbbbb": "running"}


def test_a_heartbeat_is_touched_while_the_block_runs(tmp_path: Path) -> None:
    beat = tmp_path / HEARTBEAT_FILE
    with heartbeat(tmp_path, every_s=0.05):
        first = beat.stat().st_mtime_ns
        deadline = time.monotonic() + 30
        while beat.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat.stat().st_mtime_ns > first


def test_the_partial_output_of_a_killed_run_is_redacted_when_it_is_found(store: RunStore) -> None:
    run_id = "20260101-000000-aaaaaa"
    record = make_record(
        run_id,
        status="running",
        owner=_gone_process(),
        parameters={"rows": 1, "api_token": "***"},
        parameter_schema=[
            ParameterSchema(name="api_token", type="str", default="***", secret=True)
        ],
        output_notebook="output.ipynb",
    )
    store.save(record)
    injected = new_code_cell("rows = 1\napi_token = 'the-real-token'")
    injected.metadata["tags"] = ["injected-parameters"]
    partial = new_notebook(cells=[injected])
    partial.metadata["papermill"] = {"parameters": {"api_token": "the-real-token"}}
    folder = store.run_dir(run_id)
    nbformat.write(partial, folder / "output.ipynb")
    (folder / "output.nbops-tmp-1a2b3c.ipynb").write_text('{"cells": [{"source": "api_token = ')

    assert store.load(run_id).status == "killed"

    assert [p.name for p in folder.iterdir() if b"the-real-token" in p.read_bytes()] == []
    assert not (folder / "output.nbops-tmp-1a2b3c.ipynb").exists()
    redacted = nbformat.read(folder / "output.ipynb", as_version=4)
    assert redacted.cells[0].source == 'rows = 1\napi_token = "***"'


def test_a_dead_run_that_could_not_record_its_end_on_a_full_disk_is_failed(
    store: RunStore,
) -> None:
    _owned_by(_gone_process(), store)
    folder = store.run_dir("20260101-000000-aaaaaa")
    (folder / DISK_FULL_MARK).touch()  # left by the process when its final save failed

    found = store.load("latest")

    assert found.status == "failed"
    assert found.failure is not None and found.failure.ename == "DiskFullError"
    assert not (folder / DISK_FULL_MARK).exists()
    assert RunStore(store.directory).load("latest").status == "failed"
