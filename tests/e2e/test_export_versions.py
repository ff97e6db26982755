"""Versions: content-addressed, kept, listed, diffed and checked (`export --check`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from nbops import errors
from nbops.export.exporter import export_notebook
from tests.helpers import SMALL, run_nbops


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _edit(notebook: Path, index: int, source: str) -> None:
    """Change one cell's code in place, as a person in Jupyter would (its id stays)."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, notebook)


@pytest.fixture
def small(make_notebook: Callable[..., Path]) -> Path:
    return make_notebook(SMALL, name="small.ipynb")


def test_re_export_of_an_unchanged_notebook_is_byte_identical(small: Path, tmp_path: Path) -> None:
    first = export_notebook(small, tmp_path / "out")
    before = _tree(first.folder)
    second = export_notebook(small, tmp_path / "out")
    assert second.version == first.version == 1
    assert not second.new_version
    assert _tree(second.folder) == before


def test_a_change_in_tagged_code_makes_the_next_version(small: Path, tmp_path: Path) -> None:
    export_notebook(small, tmp_path / "out")
    _edit(small, 4, "scaled = [v * factor * 2 for v in values]")
    second = export_notebook(small, tmp_path / "out")
    assert (second.version, second.new_version) == (2, True)
    assert '__version__ = "2"' in (second.package_dir / "__init__.py").read_text()


def test_a_change_in_a_parameter_default_makes_the_next_version(
    small: Path, tmp_path: Path
) -> None:
    export_notebook(small, tmp_path / "out")
    _edit(small, 1, "factor = 4\nsize = 5")
    assert export_notebook(small, tmp_path / "out").version == 2


def test_a_change_in_an_untagged_cell_keeps_the_version(small: Path, tmp_path: Path) -> None:
    first = export_notebook(small, tmp_path / "out")
    _edit(small, 3, "print(values)")
    second = export_notebook(small, tmp_path / "out")
    assert second.version == first.version
    assert second.manifest.source.sha256 != first.manifest.source.sha256


def test_earlier_versions_stay_available_and_reverting_reuses_a_version(
    small: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_notebook(small, out)
    v1_files = _tree(out / "small")
    _edit(small, 5, "total = sum(scaled) + 1")
    export_notebook(small, out)
    assert _tree(out / ".versions" / "small" / "v1") == v1_files
    _edit(small, 5, SMALL[5][0])
    again = export_notebook(small, out)
    assert again.version == 1 and not again.new_version


def test_versions_lists_every_version(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    _edit(small, 5, "total = sum(scaled) * 2")
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)

    result = run_nbops("versions", "small", "-o", "out", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "v1" in result.stdout and "v2" in result.stdout


def test_diff_shows_the_code_change_between_versions(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    _edit(small, 5, "total = sum(scaled) * 2")
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)

    result = run_nbops("diff", "small", "1", "2", "-o", "out", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "-    total = sum(scaled)\n" in result.stdout
    assert "+    total = sum(scaled) * 2\n" in result.stdout
    assert "v2/small/train.py" in result.stdout


def test_diff_of_an_unknown_version_names_the_known_ones(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    result = run_nbops("diff", "small", "1", "7", "-o", "out", cwd=tmp_path)
    assert result.returncode == errors.VersionNotFoundError.exit_code
    assert result.stderr.strip() == "nbops: error: small has no version '7'; known versions: v1"


def test_check_passes_on_a_fresh_export(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    result = run_nbops("export", str(small), "-o", "out", "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date (version 1)" in result.stdout


def test_check_fails_when_the_notebook_changed(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    _edit(small, 5, "total = sum(scaled) - 1")
    before = _tree(tmp_path / "out")

    result = run_nbops("export", str(small), "-o", "out", "--check", cwd=tmp_path)

    assert result.returncode == errors.StaleExportError.exit_code
    assert "stale" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _tree(tmp_path / "out") == before, "--check must not write"


def test_check_fails_when_a_generated_file_was_edited(small: Path, tmp_path: Path) -> None:
    run_nbops("export", str(small), "-o", "out", cwd=tmp_path)
    train = tmp_path / "out" / "small" / "small" / "train.py"
    train.write_text(train.read_text() + "\n# tweaked by hand\n")
    result = run_nbops("export", str(small), "-o", "out", "--check", cwd=tmp_path)
    assert result.returncode == errors.StaleExportError.exit_code
    assert "small/train.py was changed" in result.stderr


def test_check_fails_when_nothing_was_exported(small: Path, tmp_path: Path) -> None:
    result = run_nbops("export", str(small), "-o", "out", "--check", cwd=tmp_path)
    assert result.returncode == errors.StaleExportError.exit_code
    assert not (tmp_path / "out").exists()


def test_the_version_index_records_hash_and_source(small: Path, tmp_path: Path) -> None:
    result = export_notebook(small, tmp_path / "out")
    index = json.loads((tmp_path / "out" / ".versions" / "small" / "index.json").read_text())
    (entry,) = index["versions"]
    assert entry["content_hash"] == result.content_hash
    assert entry["source_sha256"] == result.manifest.source.sha256


def test_versions_of_an_unknown_export_is_one_clear_error(tmp_path: Path) -> None:
    result = run_nbops("versions", "nothing", "-o", "out", cwd=tmp_path)
    assert result.returncode == errors.VersionNotFoundError.exit_code
    assert result.stderr.strip() == (
        "nbops: error: no export named 'nothing' in out; "
        "export a notebook first (nbops export NOTEBOOK), or pass the folder with -o"
    )
