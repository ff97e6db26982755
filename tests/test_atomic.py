"""Atomic writes (`nbops._atomic`): a file or folder appears whole or not at all, with the
mode it should have, and no temporary file left behind. Real files throughout."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nbops._atomic import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_written_file_replaces_the_old_one_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    atomic_write_text(target, "new\r\nline")
    assert target.read_bytes() == b"new\r\nline"  # no newline translation
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "notebook.ipynb"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_text(target, "{ }")
    assert _mode(target) == 0o640


def test_a_new_file_has_the_usual_mode_and_an_explicit_mode_wins(tmp_path: Path) -> None:
    usual = tmp_path / "usual"
    atomic_write_bytes(usual, b"x")
    assert _mode(usual) == 0o666 & ~_umask()
    private = tmp_path / "key"
    private.write_bytes(b"old")
    private.chmod(0o644)
    atomic_write_bytes(private, b"secret", mode=0o600)
    assert _mode(private) == 0o600


def test_an_unwritable_folder_is_an_oserror_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "missing" / "out.json", "x")
    assert list(tmp_path.iterdir()) == []


def test_a_published_folder_appears_whole(tmp_path: Path) -> None:
    final = tmp_path / "bundle-v1"
    with atomic_directory(final) as scratch:
        (scratch / "a.txt").write_text("a")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle-v1"]


def test_a_failed_folder_is_not_published_and_its_scratch_is_removed(tmp_path: Path) -> None:
    final = tmp_path / "bundle-v1"
    with pytest.raises(RuntimeError), atomic_directory(final) as scratch:
        (scratch / "a.txt").write_text("a")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
