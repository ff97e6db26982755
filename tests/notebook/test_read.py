"""Reading notebook files (`read_notebook`): formats, ids, tags and unreadable files."""

from __future__ import annotations

import hashlib
import json

import nbformat
import nbformat.v3
import pytest
from nbformat.v4 import new_markdown_cell, new_raw_cell

from nbops.errors import NotebookReadError, TagError
from nbops.notebook.read import read_notebook
from nbops.notebook.tags import CellTag, Role

# -- .ipynb v4.5 -----------------------------------------------------------------------------


def test_cells_are_read_in_order_with_their_sources(make_notebook):
    model = read_notebook(make_notebook([("a = 1", []), ("b = 2", ["transform"])]))
    assert [c.source for c in model.cells] == ["a = 1", "b = 2"]
    assert [c.index for c in model.cells] == [0, 1]


def test_cell_number_counts_from_one_and_includes_markdown_cells(make_notebook):
    model = read_notebook(make_notebook([new_markdown_cell("# Title"), ("x = 1", ["transform"])]))
    assert [c.number for c in model.cells] == [1, 2]


def test_tagged_code_cell_gets_its_role_and_step_name(make_notebook):
    model = read_notebook(make_notebook([("x = 1", ["hide-input", "transform:clean"])]))
    (cell,) = model.cells
    assert cell.tag == CellTag(Role.TRANSFORM, "clean")
    assert cell.role is Role.TRANSFORM
    assert cell.tags == ("hide-input", "transform:clean")


def test_cell_with_only_other_tags_is_untagged(make_notebook):
    (cell,) = read_notebook(make_notebook([("x = 1", ["hide-input"])])).cells
    assert cell.tag is None
    assert cell.role is None


def test_markdown_and_raw_cells_never_get_a_role(make_notebook):
    md = new_markdown_cell("text", metadata={"tags": ["transform"]})
    raw = new_raw_cell("raw", metadata={"tags": ["train"]})
    model = read_notebook(make_notebook([md, raw]))
    assert [c.tag for c in model.cells] == [None, None]


def test_code_cells_and_tagged_cells_are_listed_separately(make_notebook):
    path = make_notebook(
        [new_markdown_cell("# T"), ("a = 1", []), ("b = 2", ["transform"]), ("c = 3", ["skip"])]
    )
    model = read_notebook(path)
    assert [c.number for c in model.code_cells] == [2, 3, 4]
    assert [c.number for c in model.tagged_cells] == [3, 4]


def test_v45_cell_ids_are_kept(make_notebook):
    path = make_notebook([("x = 1", ["transform"])])
    expected = nbformat.read(path, as_version=4).cells[0].id
    assert read_notebook(path).cells[0].cell_id == expected


def test_cell_location_names_file_number_and_id(make_notebook):
    path = make_notebook([new_markdown_cell("t"), ("x = 1", ["transform"])])
    cell = read_notebook(path).cells[1]
    assert str(cell.location) == f"{path}, cell 2 (id {cell.cell_id})"


def test_format_is_ipynb(make_notebook):
    assert read_notebook(make_notebook([("x = 1", [])])).format == "ipynb"


def test_sha256_is_the_hash_of_the_file_bytes(make_notebook):
    path = make_notebook([("x = 1", [])])
    assert read_notebook(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_kernel_name_comes_from_the_kernelspec(make_notebook):
    spec = {"name": "ml-env", "display_name": "ML", "language": "python"}
    path = make_notebook([("x = 1", [])], kernelspec=spec)
    assert read_notebook(path).kernel_name == "ml-env"


def test_kernel_name_defaults_to_python3(make_notebook):
    assert read_notebook(make_notebook([("x = 1", [])])).kernel_name == "python3"


def test_path_may_be_given_as_a_string(make_notebook):
    path = make_notebook([("x = 1", [])])
    assert read_notebook(str(path)).path == path


# -- .ipynb v4.4 and older: no cell ids ------------------------------------------------------


def test_v44_notebook_without_ids_is_read(write_v44):
    path = write_v44([("x = 1", ["transform"]), new_markdown_cell("m")])
    model = read_notebook(path)
    assert [(c.cell_type, c.source, c.role) for c in model.cells] == [
        ("code", "x = 1", Role.TRANSFORM),
        ("markdown", "m", None),
    ]


def test_v44_cells_get_ids(write_v44):
    model = read_notebook(write_v44([("x = 1", []), ("y = 2", [])]))
    assert all(c.cell_id for c in model.cells)


def test_v44_ids_are_the_same_on_every_read(write_v44):
    path = write_v44([("x = 1", []), ("y = 2", [])])
    first = [c.cell_id for c in read_notebook(path).cells]
    assert [c.cell_id for c in read_notebook(path).cells] == first


def test_v44_ids_depend_only_on_cell_content(write_v44):
    a = write_v44([("x = 1", []), ("y = 2", [])], name="a.ipynb")
    b = write_v44([("x = 1", ["transform"]), ("z = 3", [])], name="b.ipynb")
    ids_a = [c.cell_id for c in read_notebook(a).cells]
    ids_b = [c.cell_id for c in read_notebook(b).cells]
    assert ids_a[0] == ids_b[0]
    assert ids_a[1] != ids_b[1]


def test_v44_cells_with_the_same_source_get_distinct_ids(write_v44):
    model = read_notebook(write_v44([("x = 1", []), ("x = 1", []), ("x = 1", [])]))
    ids = [c.cell_id for c in model.cells]
    assert len(set(ids)) == 3


def test_v44_ids_are_valid_nbformat_ids(write_v44):
    model = read_notebook(write_v44([("x = 1", []), ("x = 1", []), ("", [])]))
    for cell in model.cells:
        assert 1 <= len(cell.cell_id) <= 64
        assert all(ch.isalnum() or ch in "-_" for ch in cell.cell_id)


def test_v44_cell_that_has_an_id_keeps_it(write_v44):
    path = write_v44([("x = 1", [])])
    data = json.loads(path.read_text("utf-8"))
    data["cells"][0]["id"] = "my-own-id"
    path.write_text(json.dumps(data), "utf-8")
    assert read_notebook(path).cells[0].cell_id == "my-own-id"


# -- .ipynb v3 -------------------------------------------------------------------------------


def _write_v3(tmp_path, name="v3.ipynb"):
    v3 = nbformat.v3
    nb = v3.new_notebook(
        worksheets=[
            v3.new_worksheet(
                cells=[
                    v3.new_text_cell("markdown", source="# Old notebook"),
                    v3.new_code_cell(input="x = 1", metadata={"tags": ["transform"]}),
                    v3.new_code_cell(input="y = x + 1"),
                ]
            )
        ]
    )
    path = tmp_path / name
    path.write_text(nbformat.writes(nb, version=3), "utf-8")
    return path


def test_v3_notebook_is_upgraded_and_read(tmp_path):
    model = read_notebook(_write_v3(tmp_path))
    assert [(c.cell_type, c.source, c.role) for c in model.cells] == [
        ("markdown", "# Old notebook", None),
        ("code", "x = 1", Role.TRANSFORM),
        ("code", "y = x + 1", None),
    ]


def test_v3_ids_are_the_same_on_every_read(tmp_path):
    path = _write_v3(tmp_path)
    first = [c.cell_id for c in read_notebook(path).cells]
    assert all(first)
    assert [c.cell_id for c in read_notebook(path).cells] == first


def test_v3_ids_do_not_depend_on_the_file(tmp_path):
    a = [c.cell_id for c in read_notebook(_write_v3(tmp_path, "a.ipynb")).cells]
    b = [c.cell_id for c in read_notebook(_write_v3(tmp_path, "b.ipynb")).cells]
    assert a == b


# -- .ipynb v2 and v1: upgraded, as nbformat can ------------------------------------------------

# Written as raw JSON: nbformat no longer writes these versions.
V2_NOTEBOOK = {
    "nbformat": 2,
    "metadata": {"name": "old"},
    "worksheets": [
        {
            "cells": [
                {"cell_type": "markdown", "source": "# A 2012 tutorial"},
                {
                    "cell_type": "code",
                    "input": "import math\nradius = 2.0",
                    "language": "python",
                    "outputs": [],
                    "metadata": {"tags": ["transform"]},
                },
                {"cell_type": "code", "input": "math.pi * radius", "language": "python",
                 "outputs": []},
            ]
        }
    ],
}  # fmt: skip

V1_NOTEBOOK = {
    "nbformat": 1,
    "name": "older",
    "cells": [
        {"cell_type": "text", "text": "# Notes"},
        {"cell_type": "code", "code": "x = 1", "prompt_number": 1},
    ],
}


def test_v2_notebook_is_upgraded_and_read(tmp_path):
    model = read_notebook(_write(tmp_path, V2_NOTEBOOK, "v2.ipynb"))
    assert [(c.cell_type, c.source, c.role) for c in model.cells] == [
        ("markdown", "# A 2012 tutorial", None),
        ("code", "import math\nradius = 2.0", Role.TRANSFORM),
        ("code", "math.pi * radius", None),
    ]


def test_v1_notebook_is_upgraded_and_read(tmp_path):
    model = read_notebook(_write(tmp_path, V1_NOTEBOOK, "v1.ipynb"))
    assert [(c.cell_type, c.source) for c in model.cells] == [
        ("markdown", "# Notes"),
        ("code", "x = 1"),
    ]


@pytest.mark.parametrize("content", [V2_NOTEBOOK, V1_NOTEBOOK], ids=["v2", "v1"])
def test_upgraded_notebook_ids_come_from_the_content(tmp_path, content):
    a = [c.cell_id for c in read_notebook(_write(tmp_path, content, "a.ipynb")).cells]
    b = [c.cell_id for c in read_notebook(_write(tmp_path, content, "b.ipynb")).cells]
    assert all(a)
    assert a == b


# -- cells of a type from a later nbformat: kept in place, ignored ---------------------------


def _future(cells, minor=99):
    return {"nbformat": 4, "nbformat_minor": minor, "metadata": {}, "cells": cells}


def _code(source, tags=()):
    cell = {"cell_type": "code", "source": source, "outputs": [], "execution_count": None}
    return {**cell, "metadata": {"tags": list(tags)} if tags else {}}


FUTURE_CELL = {"cell_type": "future", "metadata": {"tags": ["train"]}, "payload": {"a": [1]}}


def test_future_cell_keeps_its_place_so_later_cells_keep_their_numbers(tmp_path):
    path = _write(tmp_path, _future([_code("a = 1"), FUTURE_CELL, _code("b = a", ["transform"])]))
    model = read_notebook(path)
    assert [(c.number, c.cell_type) for c in model.cells] == [
        (1, "code"),
        (2, "future"),
        (3, "code"),
    ]


def test_future_cell_has_no_role_even_with_role_tags(tmp_path):
    path = _write(tmp_path, _future([FUTURE_CELL, _code("b = 1", ["transform"])]))
    model = read_notebook(path)
    assert model.cells[0].tag is None
    assert [c.number for c in model.tagged_cells] == [2]


def test_future_cell_without_source_reads_as_empty_text(tmp_path):
    (cell,) = read_notebook(_write(tmp_path, _future([FUTURE_CELL]))).cells
    assert cell.source == ""


def test_notebook_from_a_later_minor_without_ids_gets_content_ids(tmp_path):
    path = _write(tmp_path, _future([_code("a = 1"), FUTURE_CELL]))
    first = [c.cell_id for c in read_notebook(path).cells]
    assert all(first)
    assert [c.cell_id for c in read_notebook(path).cells] == first


def test_reading_a_later_minor_prints_no_nbformat_warnings(tmp_path, recwarn):
    read_notebook(_write(tmp_path, _future([_code("a = 1"), FUTURE_CELL])))
    assert [str(w.message) for w in recwarn] == []


# -- ids nbops derived are not shown as the notebook's own ------------------------------------


def test_location_of_a_cell_with_a_derived_id_names_only_its_number(write_v44):
    path = write_v44([new_markdown_cell("t"), ("x = 1", ["transform"])])
    cell = read_notebook(path).cells[1]
    assert cell.id_from_content
    assert str(cell.location) == f"{path}, cell 2"
    assert cell.label == "cell 2"


def test_cell_with_its_own_id_is_named_with_it(make_notebook):
    cell = read_notebook(make_notebook([("x = 1", ["transform"])])).cells[0]
    assert not cell.id_from_content
    assert cell.label == f"cell 1 (id {cell.cell_id})"


def test_v44_cell_with_its_own_id_keeps_it_in_messages(write_v44):
    path = write_v44([("x = 1", []), ("y = 2", [])])
    data = json.loads(path.read_text("utf-8"))
    data["cells"][1]["id"] = "mine"
    path.write_text(json.dumps(data), "utf-8")
    first, second = read_notebook(path).cells
    assert (first.label, second.label) == ("cell 1", "cell 2 (id mine)")


def test_percent_script_cells_are_named_by_number(tmp_path):
    model = read_notebook(_write_percent(tmp_path))
    assert all(c.label == f"cell {c.number}" for c in model.cells)


# -- jupytext percent scripts ----------------------------------------------------------------

PERCENT_SCRIPT = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: ML
#     language: python
#     name: ml-env
# ---

# %% tags=["parameters"]
n_rows = 100

# %% [markdown]
# # Features

# %% tags=["transform"]
x = n_rows + 1

# %%
y = 2
"""


def _write_percent(tmp_path, text=PERCENT_SCRIPT, name="analysis.py"):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_percent_script_cells_and_tags_are_read(tmp_path):
    model = read_notebook(_write_percent(tmp_path))
    assert [(c.cell_type, c.source, c.role) for c in model.cells] == [
        ("code", "n_rows = 100", Role.PARAMETERS),
        ("markdown", "# Features", None),
        ("code", "x = n_rows + 1", Role.TRANSFORM),
        ("code", "y = 2", None),
    ]


def test_percent_script_format_is_py_percent(tmp_path):
    assert read_notebook(_write_percent(tmp_path)).format == "py:percent"


def test_percent_script_kernel_name_comes_from_its_header(tmp_path):
    assert read_notebook(_write_percent(tmp_path)).kernel_name == "ml-env"


def test_percent_script_ids_are_the_same_on_every_read(tmp_path):
    path = _write_percent(tmp_path)
    first = [c.cell_id for c in read_notebook(path).cells]
    assert [c.cell_id for c in read_notebook(path).cells] == first


def test_percent_script_named_step_tag_is_read(tmp_path):
    path = _write_percent(tmp_path, '# %% tags=["train:forest"]\nmodel = 1\n')
    (cell,) = read_notebook(path).cells
    assert cell.tag == CellTag(Role.TRAIN, "forest")


def test_python_file_without_cell_markers_raises_notebook_read_error(tmp_path):
    with pytest.raises(NotebookReadError, match="no '# %%' cell markers"):
        read_notebook(_write_percent(tmp_path, "x = 1\n"))


def test_python_file_that_is_not_utf8_raises_notebook_read_error(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes("# %%\nname = 'café'\n".encode("latin-1"))
    with pytest.raises(NotebookReadError, match="not UTF-8"):
        read_notebook(path)


# -- unreadable files ------------------------------------------------------------------------


def _write(tmp_path, content, name="broken.ipynb"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_missing_file_raises_notebook_read_error(tmp_path):
    with pytest.raises(NotebookReadError, match="cannot read the file"):
        read_notebook(tmp_path / "missing.ipynb")


@pytest.mark.parametrize("content", ["{not json", "", b"\xff\xfe\x00\x01garbage"])
def test_file_that_is_not_json_raises_notebook_read_error(tmp_path, content):
    with pytest.raises(NotebookReadError, match="not valid JSON"):
        read_notebook(_write(tmp_path, content))


def test_json_error_reports_line_and_column(tmp_path):
    with pytest.raises(NotebookReadError, match=r"line 2, column 1"):
        read_notebook(_write(tmp_path, '{"cells": [],\n}'))


@pytest.mark.parametrize("content", [[1, 2], "3", {"nbformat": 4, "metadata": {}}])
def test_json_that_is_not_a_notebook_raises_notebook_read_error(tmp_path, content):
    with pytest.raises(NotebookReadError, match="no 'cells'"):
        read_notebook(_write(tmp_path, content))


@pytest.mark.parametrize("version", [5, 0, None, "4", True])
def test_unsupported_format_version_raises_notebook_read_error(tmp_path, version):
    content = {"nbformat": version, "nbformat_minor": 0, "metadata": {}, "cells": []}
    with pytest.raises(NotebookReadError, match="unsupported notebook format"):
        read_notebook(_write(tmp_path, content))


def _v45(cells):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


@pytest.mark.parametrize(
    "cell",
    [
        {"cell_type": "code", "id": "a", "source": "x", "metadata": {}},  # no outputs
        {"cell_type": "bogus", "id": "a", "source": "x", "metadata": {}},
        {"cell_type": "markdown", "id": "not valid!", "source": "x", "metadata": {}},
        1,
    ],
    ids=["code-without-outputs", "unknown-cell-type", "invalid-id", "cell-not-an-object"],
)
def test_schema_invalid_notebook_raises_notebook_read_error(tmp_path, cell):
    with pytest.raises(NotebookReadError):
        read_notebook(_write(tmp_path, _v45([cell])))


def test_schema_error_names_the_invalid_field(tmp_path):
    cell = {"cell_type": "code", "id": "a", "source": "x", "metadata": {}}
    with pytest.raises(NotebookReadError, match=r"invalid notebook at cells/0: 'outputs'"):
        read_notebook(_write(tmp_path, _v45([cell])))


@pytest.mark.parametrize(
    "cells",
    [
        [1],
        [{"cell_type": "code", "source": 5, "metadata": {}, "outputs": []}],
        "not a list",
    ],
    ids=["cell-not-an-object", "source-not-text", "cells-not-a-list"],
)
def test_schema_invalid_v44_notebook_raises_notebook_read_error(tmp_path, cells):
    content = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": cells}
    with pytest.raises(NotebookReadError):
        read_notebook(_write(tmp_path, content))


# -- tags that cannot be understood ----------------------------------------------------------


def test_two_role_tags_on_a_cell_raise_tag_error_naming_the_cell(make_notebook):
    path = make_notebook([("a = 1", []), ("x = 1", ["setup", "transform"])])
    with pytest.raises(TagError) as info:
        read_notebook(path)
    assert info.value.location.number == 2


def test_invalid_step_name_raises_tag_error_on_read(make_notebook):
    with pytest.raises(TagError, match="invalid step name"):
        read_notebook(make_notebook([("x = 1", ["transform:Clean Data"])]))


def test_role_tags_on_a_markdown_cell_are_not_checked(make_notebook):
    md = new_markdown_cell("notes", metadata={"tags": ["setup", "transform:Bad Name"]})
    (cell,) = read_notebook(make_notebook([md])).cells
    assert cell.tag is None


# -- errors are one line naming the file -----------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1]", json.dumps(_v45([{"cell_type": "bogus", "id": "a", "source": "x"}]))],
)
def test_read_error_is_one_line_naming_the_file(tmp_path, content):
    path = _write(tmp_path, content)
    with pytest.raises(NotebookReadError) as info:
        read_notebook(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")


def test_tag_error_on_read_is_one_line_naming_file_and_cell(make_notebook):
    path = make_notebook([new_markdown_cell("t"), ("x = 1", ["train:Forest"])])
    with pytest.raises(TagError) as info:
        read_notebook(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, cell 2 ")
