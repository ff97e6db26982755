"""A run's files are written atomically: a full disk leaves the previous complete version."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nbops.notebook.read import read_notebook
from nbops.runs import files
from nbops.runs.capture_plan import CAPTURED_INPUT, add_capture_cells
from nbops.runs.store import RunStore
from nbops.runs.sweep import SweepTask, store_detached

from .conftest import make_record, write_notebook


def _full_disk_after(half: bool) -> object:
    real = files._write_chunk

    def write(handle: int, data: memoryview) -> int:
        if half:
            real(handle, data[: len(data) // 2])  # a real full disk takes part of the data
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write


def test_a_full_disk_leaves_the_previous_version_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "output.ipynb"
    files.write_text(target, '{"complete": 1}')
    monkeypatch.setattr(files, "_write_chunk", _full_disk_after(half=True))

    with pytest.raises(OSError) as raised:
        files.write_text(target, '{"complete": 2}')

    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert files.disk_full(raised.value)
    assert target.read_text() == '{"complete": 1}'
    assert files.leftover_temporaries(tmp_path) == []


def test_a_full_disk_on_a_first_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_write_chunk", _full_disk_after(half=False))

    with pytest.raises(OSError):
        files.write_bytes(tmp_path / "model.skops", b"PK\x03\x04" * 1000)

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text",
    [
        "[Errno 28] No space left on device: '/data/x.csv'",
        "database or disk is full",
        f"[Errno {errno.EDQUOT}] Disk quota exceeded",
    ],
)
def test_a_full_disk_is_recognised_in_error_texts(text: str) -> None:
    assert files.disk_full(text)


def test_other_errors_are_not_a_full_disk() -> None:
    assert not files.disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not files.disk_full("ValueError: [Errno 2] No such file")


# The files a run writes besides its record and output notebook go through the same layer.

CAPTURED = [
    ("import math", ["setup"]),
    ("x = 4", ["parameters"]),
    ("score = math.sqrt(x)", ["evaluate"]),
]


def test_a_full_disk_while_adding_capture_cells_leaves_the_prepared_input_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prepared = write_notebook(run_dir / CAPTURED_INPUT, CAPTURED)  # as _prepare_cells leaves it
    before = prepared.read_bytes()
    monkeypatch.setattr(files, "_write_chunk", _full_disk_after(half=True))

    with pytest.raises(OSError) as raised:
        add_capture_cells(prepared, read_notebook(prepared), run_dir)

    assert files.disk_full(raised.value)
    assert prepared.read_bytes() == before
    assert files.leftover_temporaries(run_dir) == []


def test_a_full_disk_while_storing_a_sweep_workers_files_leaves_no_truncated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / "store")
    record = make_record()
    task = SweepTask(
        index=0,
        notebook="train.ipynb",
        parameters={},
        project_root=str(tmp_path),
        sweep_id="s",
        timeout=None,
    )
    payload = {"record": record.model_dump_json(), "files": {"output.ipynb": b"{}" * 1000}}
    monkeypatch.setattr(files, "_write_chunk", _full_disk_after(half=True))

    with pytest.raises(OSError) as raised:
        store_detached(payload, task, store)

    assert files.disk_full(raised.value)
    folder = store.run_dir(record.run_id)
    assert not (folder / "output.ipynb").exists()
    assert files.leftover_temporaries(folder) == []
