"""A run's files are written atomically: a full disk leaves the previous complete version."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nbops.runs import files


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
