"""Writing exports: a folder appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.export import versions
from nbops.export.versions import VersionIndex, assign_version, write_tree


def test_a_failed_write_leaves_the_previous_folder_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pkg"
    write_tree({"a.py": "old = 1\n", "b.py": "old = 2\n"}, target)
    calls = {"n": 0}
    real_write = Path.write_text

    def failing_write(self: Path, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", failing_write)
    with pytest.raises(OSError):
        write_tree({"a.py": "new = 1\n", "b.py": "new = 2\n"}, target)
    monkeypatch.undo()

    assert (target / "a.py").read_text() == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"], "no scratch folder left behind"


def test_a_new_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    write_tree({"a.py": "x = 1\n", "gone.py": "y = 2\n"}, target)
    write_tree({"a.py": "x = 3\n"}, target)
    assert sorted(p.name for p in target.iterdir()) == ["a.py"]
    assert (target / "a.py").read_text() == "x = 3\n"


def test_versions_are_content_addressed() -> None:
    index = VersionIndex(name="p")
    assert assign_version(index, "aaa") == (1, True)
    index.versions.append(
        versions.VersionEntry(
            version=1,
            content_hash="aaa",
            source_path="n",
            source_sha256="s",
            created_at="t",
            steps=1,
        )
    )
    assert assign_version(index, "aaa") == (1, False)
    assert assign_version(index, "bbb") == (2, True)
