"""What the panel reads of a notebook with problems: the problems never hide the rest.

In-process (analyse_for_panel on real notebook files): every step is listed beside the
problems, the steps that analyse cleanly with their inputs and outputs; a problem names cells
by number and links both cells it concerns (the one using a name, the one defining it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbops.errors import CellSyntaxError, UntaggedDefinitionError
from nbops.labserver.panel import analyse_for_panel
from nbops.notebook.analysis import analyse
from nbops.notebook.read import read_notebook
from tests.helpers import Cells, build_notebook

# A four-step pipeline whose transform:split cell (cell 4) does not parse.
BROKEN_SPLIT: Cells = [
    ("import math", ["setup"]),
    ("size = 5\nfactor = 2", ["parameters"]),
    ("values = [i * factor for i in range(size)]", ["transform:features"]),
    ("half = len(values) //", ["transform:split"]),
    ("total = sum(values)", ["train"]),
    ("score = math.sqrt(total)", ["evaluate"]),
]


def panel(tmp_path: Path, cells: Cells, name: str = "nb.ipynb") -> dict[str, Any]:
    path = build_notebook(tmp_path / name, cells)
    return analyse_for_panel(path, tmp_path)


def steps_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in body["steps"]}


def test_a_broken_step_leaves_the_other_steps_listed(tmp_path: Path) -> None:
    body = panel(tmp_path, BROKEN_SPLIT)
    [problem] = body["problems"]
    assert problem["kind"] == "CellSyntaxError"
    assert problem["cell_index"] == 3
    steps = steps_of(body)
    assert list(steps) == ["transform:features", "transform:split", "train", "evaluate"]
    assert sorted(steps["transform:features"]["inputs"], key=lambda i: i["name"]) == [
        {"name": "factor", "source": "parameter", "step": None},
        {"name": "size", "source": "parameter", "step": None},
    ]
    assert steps["transform:features"]["outputs"] == ["values"]
    assert steps["train"]["inputs"] == [
        {"name": "values", "source": "step", "step": "transform:features"}
    ]
    assert steps["evaluate"]["inputs"] == [{"name": "total", "source": "step", "step": "train"}]
    assert steps["transform:split"]["cells"] == [{"index": 3, "id": body["cells"][3]["id"]}]
    assert [p["name"] for p in body["parameters"]] == ["size", "factor"]


def test_a_name_an_unreadable_cell_may_define_is_not_a_second_problem(tmp_path: Path) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("rows = list(range(n)) +", ["transform:load"]),  # defines rows, but does not parse
        ("model = sum(rows)", ["train"]),
    ]
    body = panel(tmp_path, cells)
    assert [p["kind"] for p in body["problems"]] == ["CellSyntaxError"]
    assert steps_of(body)["train"]["inputs"] == [
        {"name": "rows", "source": "unknown", "step": None}
    ]


def test_a_problem_links_the_cell_using_a_name_and_the_cell_defining_it(tmp_path: Path) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("rows = list(range(n))", ["transform:load"]),
        ("extra = 10", []),  # untagged: the export leaves it out
        ("model = sum(rows) + extra", ["train"]),
        ("score = model / 2", ["evaluate"]),
    ]
    body = panel(tmp_path, cells)
    [problem] = body["problems"]
    assert problem["kind"] == "UntaggedDefinitionError"
    assert (problem["cell_index"], problem["cell_id"]) == (3, body["cells"][3]["id"])
    assert problem["related"] == [{"cell_index": 2, "cell_id": body["cells"][2]["id"]}]
    # Cells by number, never the raw id, in what the panel shows.
    assert "cell 3" in problem["message"]
    assert "(id " not in problem["message"]
    assert body["cells"][2]["id"] not in problem["message"] + (problem["fix"] or "")
    # ...and the steps around the problem are all there.
    steps = steps_of(body)
    assert list(steps) == ["transform:load", "train", "evaluate"]
    assert steps["evaluate"]["inputs"] == [{"name": "model", "source": "step", "step": "train"}]


def test_a_name_first_defined_by_a_later_step_links_that_step_s_cell(tmp_path: Path) -> None:
    cells: Cells = [
        ("a = b + 1", ["transform:first"]),
        ("b = 2", ["transform:second"]),
        ("c = b * 2", ["train"]),
    ]
    body = panel(tmp_path, cells)
    [problem] = body["problems"]
    assert problem["kind"] == "LaterStepError"
    assert problem["cell_index"] == 0
    assert problem["related"] == [{"cell_index": 1, "cell_id": body["cells"][1]["id"]}]
    assert steps_of(body)["train"]["inputs"] == [
        {"name": "b", "source": "step", "step": "transform:second"}
    ]


def test_a_second_parameters_cell_links_the_first_and_keeps_its_parameters(
    tmp_path: Path,
) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("m = 4", ["parameters"]),
        ("rows = list(range(n))", ["transform"]),
    ]
    body = panel(tmp_path, cells)
    [problem] = body["problems"]
    assert problem["kind"] == "TagError"
    assert problem["cell_index"] == 1
    assert problem["related"] == [{"cell_index": 0, "cell_id": body["cells"][0]["id"]}]
    assert [p["name"] for p in body["parameters"]] == ["n"]
    assert steps_of(body)["transform"]["inputs"] == [
        {"name": "n", "source": "parameter", "step": None}
    ]


def test_a_name_only_the_second_parameters_cell_defines_is_not_a_second_problem(
    tmp_path: Path,
) -> None:
    # As when a cell gets the parameters tag outside the lab: the one problem is the second
    # parameters cell (its fix merges it into the first), not "defined nowhere" for its names.
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("m = 4\nscale = 0.5", ["parameters"]),
        ("rows = [i * scale for i in range(n + m)]", ["transform"]),
        ("total = sum(rows) * m", ["train"]),
    ]
    body = panel(tmp_path, cells)
    assert [(p["kind"], p["cell_index"]) for p in body["problems"]] == [("TagError", 1)]
    assert "two cells are tagged parameters" in body["problems"][0]["message"]
    steps = steps_of(body)
    assert sorted(steps["transform"]["inputs"], key=lambda i: i["name"]) == [
        {"name": "m", "source": "parameter", "step": None},
        {"name": "n", "source": "parameter", "step": None},
        {"name": "scale", "source": "parameter", "step": None},
    ]
    assert sorted(steps["train"]["inputs"], key=lambda i: i["name"]) == [
        {"name": "m", "source": "parameter", "step": None},
        {"name": "rows", "source": "step", "step": "transform"},
    ]


def test_a_name_no_parameters_cell_defines_is_still_a_problem_beside_the_second_one(
    tmp_path: Path,
) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("m = 4", ["parameters"]),
        ("rows = list(range(n + m + missing))", ["transform"]),
    ]
    body = panel(tmp_path, cells)
    assert [(p["kind"], p["cell_index"]) for p in body["problems"]] == [
        ("TagError", 1),
        ("UndefinedNameError", 2),
    ]
    assert "'missing'" in body["problems"][1]["message"]


def test_a_malformed_tag_leaves_the_other_steps_listed(tmp_path: Path) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("rows = list(range(n))", ["transform:load"]),
        ("junk = 1", ["transform:Bad Name"]),
        ("model = sum(rows)", ["train"]),
    ]
    body = panel(tmp_path, cells)
    assert body["tagged"] is True
    [problem] = body["problems"]
    assert problem["kind"] == "TagError"
    assert problem["cell_index"] == 2
    assert body["cells"][2]["role"] is None
    assert list(steps_of(body)) == ["transform:load", "train"]


def test_every_broken_step_is_a_problem_of_its_own(tmp_path: Path) -> None:
    cells: Cells = [
        ("n = 3", ["parameters"]),
        ("rows = list(range(n)) + missing_one", ["transform:load"]),
        ("model = sum(rows) + missing_two", ["train"]),
        ("score = model / 2", ["evaluate"]),
    ]
    body = panel(tmp_path, cells)
    assert [(p["kind"], p["cell_index"]) for p in body["problems"]] == [
        ("UndefinedNameError", 1),
        ("UndefinedNameError", 2),
    ]
    assert steps_of(body)["evaluate"]["inputs"] == [
        {"name": "model", "source": "step", "step": "train"}
    ]


@pytest.mark.parametrize(
    ("cells", "error"),
    [
        (BROKEN_SPLIT, CellSyntaxError),
        (
            [("extra = 1", []), ("y = extra", ["transform"])],
            UntaggedDefinitionError,
        ),
    ],
)
def test_the_export_s_analysis_still_stops_at_the_first_problem(
    tmp_path: Path, cells: Cells, error: type[Exception]
) -> None:
    nb = read_notebook(build_notebook(tmp_path / "nb.ipynb", cells))
    with pytest.raises(error):
        analyse(nb)
