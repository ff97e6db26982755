"""Every file nbops writes outside `nbops._atomic` itself goes through a temporary file and a
rename: the new file replaces the old one whole, and a write that fails leaves the old file
and no temporary file beside it. Real files; the failure is a real one (the target is a
folder with files in it, so the final rename is refused by the operating system)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbops.errors import QualityInputError
from nbops.export import artifact_io
from nbops.export.versions import VersionEntry, VersionIndex, history_dir, record_version
from nbops.quality.schema import Schema, infer_schema
from nbops.redact import write_redacted_copy
from nbops.runs import ci, files

Writer = Callable[[Path, str], None]


def _ci_report(path: Path, text: str) -> None:
    ci._write(path, text)


def _run_file(path: Path, text: str) -> None:
    files.write_text(path, text)


def _exported_value(path: Path, text: str) -> None:
    artifact_io.save({"text": text}, str(path), "json")


def _schema(path: Path, text: str) -> None:
    import pandas as pd

    schema: Schema = infer_schema(pd.DataFrame({text: [1, 2, 3]}), name="s")
    schema.save(path)


def _redacted_copy(path: Path, text: str) -> None:
    source = path.parent / "source-notebook"
    source.mkdir(exist_ok=True)
    notebook = source / "n.ipynb"
    nb = new_notebook(cells=[new_code_cell(f"token = {text!r}")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, notebook)
    write_redacted_copy(notebook, path, {"token"})


WRITERS: dict[str, Writer] = {
    "ci report": _ci_report,
    "run file": _run_file,
    "exported step value": _exported_value,
    "schema": _schema,
    "redacted notebook copy": _redacted_copy,
}


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != "source-notebook")


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS.keys())
def test_a_new_file_replaces_the_old_one_whole(write: Writer, tmp_path: Path) -> None:
    target = tmp_path / "out"
    write(target, "first")
    first = target.read_bytes()
    write(target, "second")
    assert target.read_bytes() != first
    assert b"second" in target.read_bytes() or b"***" in target.read_bytes()
    assert _beside(target) == ["out"]


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS.keys())
def test_a_failed_write_leaves_no_temporary_file(write: Writer, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "kept").write_text("x")  # a folder with files in it: the rename is refused
    with pytest.raises((OSError, QualityInputError)):  # the schema says which file
        write(target, "value")
    assert (target / "kept").read_text() == "x"
    assert _beside(target) == ["out"]


def test_a_failed_version_index_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    hdir = history_dir(tmp_path, "pkg")
    (hdir / "index.json").mkdir(parents=True)
    (hdir / "index.json" / "kept").write_text("x")
    entry = VersionEntry(
        version=1, content_hash="h", source_path="n", source_sha256="s", created_at="t", steps=1
    )
    with pytest.raises(OSError):
        record_version(tmp_path, VersionIndex(name="pkg"), entry, package)
    assert sorted(p.name for p in hdir.iterdir()) == ["index.json", "v1"]
