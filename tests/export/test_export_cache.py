"""What an export keeps between exports (nbops.export.cache): ruff's formatting and the line
layout of formatted modules. A kept result is used only for exactly the input it was made
from; anything else, a damaged entry included, is made again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbops.errors import ExportError
from nbops.export import cache, exporter, formatting, layout
from nbops.export.exporter import export_notebook

FILES = {
    "pkg/__init__.py": "from .mod import x\n",
    "pkg/mod.py": "import sys\nimport os\nx = {'a':1}\n",
    "test_pkg.py": "from pkg import x\nimport json\n\ndef test(): assert x\n",
}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def _no_ruff(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("ruff ran although the result was kept")

    monkeypatch.setattr(formatting.subprocess, "Popen", refuse)


def test_formatting_is_kept_and_reused_without_running_ruff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = formatting.format_files(FILES)
    assert first["pkg/mod.py"] == 'import os\nimport sys\n\nx = {"a": 1}\n'
    _no_ruff(monkeypatch)
    assert formatting.format_files(dict(FILES)) == first


def test_a_changed_file_is_formatted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    formatting.format_files(FILES)
    changed = {**FILES, "pkg/mod.py": "import sys\nx = {'b':2}\n"}
    calls: list[object] = []
    real_popen = subprocess.Popen

    def counting_popen(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_popen(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(formatting.subprocess, "Popen", counting_popen)
    out = formatting.format_files(changed)
    assert calls, "a changed file must not be served from the cache"
    assert out["pkg/mod.py"] == 'import sys\n\nx = {"b": 2}\n'


def test_another_file_set_or_ruff_binary_is_another_key(tmp_path: Path) -> None:
    ruff = formatting._ruff()
    key = formatting._cache_key(ruff, FILES)
    assert key is not None
    renamed = {("other/" + k if k.startswith("pkg/") else k): v for k, v in FILES.items()}
    assert formatting._cache_key(ruff, renamed) != key
    fake = tmp_path / "ruff"
    fake.write_bytes(b"not ruff")
    assert formatting._cache_key(str(fake), FILES) != key
    assert formatting._cache_key(str(tmp_path / "missing"), FILES) is None


@pytest.mark.parametrize(
    "damage",
    [
        "not json",
        json.dumps({"key": "someone else's", "data": {}}),
        json.dumps({"key": "KEY", "data": {"pkg/mod.py": "x = 1\n"}}),  # files missing
        json.dumps({"key": "KEY", "data": {k: 1 for k in FILES}}),  # not text
    ],
)
def test_a_damaged_entry_is_formatted_again(damage: str) -> None:
    expected = formatting.format_files(FILES)
    key = formatting._cache_key(formatting._ruff(), FILES)
    assert key is not None
    path = cache.cache_dir(formatting.CACHE_KIND) / f"{key}.json"
    path.write_text(damage.replace("KEY", key))
    assert formatting.format_files(FILES) == expected
    assert json.loads(path.read_text())["data"] == expected  # and the entry is repaired


def test_an_unwritable_cache_is_skipped(own_cache: Path) -> None:
    own_cache.mkdir()
    (own_cache / "nbops").write_text("a file where the cache folder would go")
    out = formatting.format_files(FILES)
    assert out["pkg/mod.py"].startswith("import os\nimport sys\n")


def test_the_oldest_entries_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        cache.write_entry("kind", f"k{i}", i, limit=3)
    kept = sorted(p.stem for p in cache.cache_dir("kind").glob("*.json"))
    assert len(kept) == 3
    assert "k4" in kept
    assert cache.read_entry("kind", "k4") == 4
    assert cache.read_entry("kind", "k0") is None


def _notebook(path: Path, body: str) -> Path:
    sources = {
        "setup": "import math",
        "parameters": "scale = 2.0",
        "transform": body,
        "evaluate": "score = math.sqrt(value)",
    }
    cells = [  # fixed ids: nbformat makes up random ones
        new_code_cell(source, metadata={"tags": [tag]}, id=f"c{i}")
        for i, (tag, source) in enumerate(sources.items())
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "index.json"  # the index holds creation times
    }


def test_a_changed_cell_is_exported_as_without_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "value = scale * 3")
    export_notebook(nb, tmp_path / "warm", name="p")  # fills the cache
    _notebook(nb, "value = scale * 4  # changed")
    warm = export_notebook(nb, tmp_path / "warm", name="p")
    assert warm.version == 2
    code = (warm.package_dir / "transform.py").read_text()
    assert "value = scale * 4  # changed" in code

    # The same two exports with nothing kept: the changed notebook is formatted by ruff.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    _notebook(nb, "value = scale * 3")
    export_notebook(nb, tmp_path / "cold", name="p")
    _notebook(nb, "value = scale * 4  # changed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-empty-cache"))
    cold = export_notebook(nb, tmp_path / "cold", name="p")
    assert _tree(warm.folder) == _tree(cold.folder)
    assert warm.manifest.steps == cold.manifest.steps  # cell lines included


def test_a_kept_layout_equals_the_scanned_one_and_a_damaged_one_is_ignored() -> None:
    text = (
        "import os\n\n\ndef step() -> int:\n    # cell a\n    x = 1\n    y = (\n        2\n"
        "    )\n    return x + y\n\n\n@dec\ndef other() -> None:\n    pass\n"
    )
    marked = {"p/transform.py": text}
    fresh = exporter._layouts(marked)  # a miss: scanned, then kept
    assert fresh == {"p/transform.py": layout.statement_blocks(text)}
    assert exporter._layouts(marked) == fresh  # a hit
    (entry,) = cache.cache_dir(exporter.LINES_CACHE_KIND).glob("*.json")
    for damage in (
        [],
        {"p/other.py": [[1, 2, [], []]]},
        {"p/transform.py": []},
        {"p/transform.py": [[1, 2, [3], []]]},
        {"p/transform.py": [["1", 2, [], []]]},
    ):
        entry.write_text(json.dumps({"key": entry.stem, "data": damage}))
        assert exporter._layouts(marked) == fresh


def test_a_re_export_reads_the_kept_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "value = scale * 3")
    first = export_notebook(nb, tmp_path / "out", name="p")

    def refuse(text: str) -> object:
        raise AssertionError("the layout was read again although it was kept")

    monkeypatch.setattr(exporter, "statement_blocks", refuse)
    again = export_notebook(nb, tmp_path / "again", name="p")
    assert again.manifest.steps == first.manifest.steps


def test_the_history_copy_is_the_package_and_airflow_ignores_it(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "value = scale * 3")
    result = export_notebook(nb, tmp_path / "out", name="p")
    history = tmp_path / "out" / ".versions"
    assert _tree(history / "p" / "v1") == _tree(result.folder)
    assert (history / ".airflowignore").read_text().endswith("\n*\n")


def test_a_failed_airflowignore_write_fails_the_export_and_frees_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "value = scale * 3")

    def full_disk(folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exporter, "ignore_history_in_airflow", full_disk)
    with pytest.raises(ExportError, match="No space left"):
        export_notebook(nb, tmp_path / "out", name="p")
    assert not (tmp_path / "out" / ".versions" / "p" / "v1").exists(), "no version recorded"
    monkeypatch.undo()
    assert export_notebook(nb, tmp_path / "out", name="p").version == 1  # the lock was freed


def test_a_failed_package_write_leaves_no_copy_of_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package and its history copy are written side by side: when the package cannot
    be written, the copy of the new version goes too, and nothing is recorded."""
    nb = _notebook(tmp_path / "nb.ipynb", "value = scale * 3")
    real_write_tree = exporter.write_tree
    out = tmp_path / "out"

    def failing(files: dict[str, str], target: Path) -> None:
        if target == out / "p":
            raise OSError(28, "No space left on device")
        real_write_tree(files, target)

    monkeypatch.setattr(exporter, "write_tree", failing)
    with pytest.raises(ExportError, match="No space left"):
        export_notebook(nb, out, name="p")
    history = out / ".versions" / "p"
    assert not (history / "v1").exists()
    assert not (history / "index.json").exists()
    monkeypatch.undo()
    assert export_notebook(nb, out, name="p").version == 1  # the lock was freed
