"""Writing nbops tags into notebook files: only the nbops tag changes, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nbformat.v4 import new_markdown_cell

from nbops.errors import NotebookReadError, NotebookWriteError
from nbops.notebook.read import read_notebook
from nbops.notebook.suggest import suggest_roles
from nbops.notebook.tags import CellTag, Role
from nbops.notebook.tagwrite import write_suggestion, write_tags

from .conftest import MakeNotebook, build_notebook, without_ids


def test_only_the_nbops_tag_changes_in_an_old_notebook(tmp_path: Path) -> None:
    nb = build_notebook(
        [new_markdown_cell("# Title"), ("x = 1", ["hide-input", "train"]), ("y = x", [])],
        kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
    )
    data = without_ids(nb)
    data["metadata"]["custom"] = {"kept": True}
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(data), "utf-8")

    changed = write_tags(path, {1: CellTag(Role.TRANSFORM, "load"), 2: CellTag(Role.EVALUATE)})

    written = json.loads(path.read_text("utf-8"))
    assert changed == 2
    assert written["cells"][1]["metadata"]["tags"] == ["hide-input", "transform:load"]
    assert written["cells"][2]["metadata"]["tags"] == ["evaluate"]
    assert (written["nbformat"], written["nbformat_minor"]) == (4, 4)
    assert all("id" not in c for c in written["cells"])
    assert written["metadata"]["custom"] == {"kept": True}
    assert written["cells"][0] == data["cells"][0]


def test_none_removes_the_nbops_tag_and_keeps_the_others(make_notebook: MakeNotebook) -> None:
    path = make_notebook([("x = 1", ["setup", "hide-input"]), ("y = 2", ["skip"])])
    write_tags(path, {0: None, 1: None})
    cells = json.loads(path.read_text("utf-8"))["cells"]
    assert cells[0]["metadata"]["tags"] == ["hide-input"]
    assert "tags" not in cells[1]["metadata"]


def test_nothing_is_written_when_no_tag_changes(make_notebook: MakeNotebook) -> None:
    path = make_notebook([("x = 1", ["setup"])])
    before = path.read_bytes()
    os.utime(path, (0, 0))
    assert write_tags(path, {0: CellTag(Role.SETUP)}) == 0
    assert path.read_bytes() == before
    assert path.stat().st_mtime == 0


def test_a_percent_script_gets_the_tags_in_its_cell_markers(tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text(
        '# %% [markdown]\n# Notes\n\n# %% tags=["hide-input"]\nimport math\n\n# %%\nx = math.pi\n',
        "utf-8",
    )
    write_tags(path, {1: CellTag(Role.SETUP), 2: CellTag(Role.TRANSFORM, "load")})
    text = path.read_text("utf-8")
    assert '# %% tags=["hide-input", "setup"]\nimport math' in text
    assert '# %% tags=["transform:load"]\nx = math.pi' in text
    assert text.startswith("# %% [markdown]\n# Notes\n")
    assert read_notebook(path).cells[2].tag == CellTag(Role.TRANSFORM, "load")


def test_a_markdown_cell_is_refused_and_the_file_left_alone(make_notebook: MakeNotebook) -> None:
    path = make_notebook([new_markdown_cell("# Title"), ("x = 1", [])])
    before = path.read_bytes()
    with pytest.raises(NotebookReadError, match="cell 1 is a markdown cell"):
        write_tags(path, {1: CellTag(Role.SETUP), 0: CellTag(Role.SETUP)})
    assert path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_an_error_and_the_notebook_stays(
    make_notebook: MakeNotebook,
) -> None:
    path = make_notebook([("x = 1", [])])
    before = path.read_bytes()
    path.parent.chmod(0o500)
    try:
        with pytest.raises(NotebookWriteError, match="cannot write the tags"):
            write_tags(path, {0: CellTag(Role.SETUP)})
    finally:
        path.parent.chmod(0o700)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_suggestion_is_not_written_over_a_notebook_changed_since(
    make_notebook: MakeNotebook,
) -> None:
    path = make_notebook([("import math", [])])
    suggestion = suggest_roles(read_notebook(path))
    make_notebook([("import math\nx = 1", [])])
    with pytest.raises(NotebookWriteError, match="changed since the tags were suggested"):
        write_suggestion(suggestion)


def test_a_suggestion_writes_only_the_cells_asked_for(make_notebook: MakeNotebook) -> None:
    path = make_notebook([("import math", []), ("x = math.sqrt(2)", []), ("y = x * 2", [])])
    suggestion = suggest_roles(read_notebook(path))
    assert write_suggestion(suggestion, cells=[0]) == 1
    cells = json.loads(path.read_text("utf-8"))["cells"]
    assert [c["metadata"].get("tags") for c in cells] == [["setup"], None, None]


def test_a_full_disk_leaves_the_notebook_and_no_temporary_file(
    make_notebook: MakeNotebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    path = make_notebook([("x = 1", [])])
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # the only way to fill a disk in a test
    with pytest.raises(NotebookWriteError, match="No space left"):
        write_tags(path, {0: CellTag(Role.SETUP)})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
