"""The one-click fixes the panel's analysis offers (nbops.labserver.fixes): each is offered
where it is mechanical, and applying it as the browser does (fixes.ts) gives a notebook
that analyses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nbops.labserver.panel import analyse_for_panel
from nbops.notebook.analysis import analyse
from nbops.notebook.read import read_notebook
from tests.helpers import build_notebook


def parameters_problem(body: dict[str, Any]) -> dict[str, Any]:
    """The problem of two parameters cells, among the partial analysis's problems (the
    second cell's names are not parameters, so a step reading them is a problem too)."""
    [problem] = [p for p in body["problems"] if "tagged parameters" in p["message"]]
    return problem


def analysis(tmp_path: Path, cells: Any) -> dict[str, Any]:
    path = build_notebook(tmp_path / "nb.ipynb", cells)
    return analyse_for_panel(path, tmp_path)


def apply_fix(path: Path, fix: dict[str, Any]) -> None:
    """Apply a fix to the notebook file as fixes.ts applies it to the open notebook."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]

    def source(i: int) -> str:
        text = cells[i]["source"]
        return "".join(text) if isinstance(text, list) else str(text)

    def merged(head: str, tail: str) -> str:
        head = head.rstrip("\n")
        return f"{head}\n{tail}" if head else tail

    if fix["kind"] == "tag-cell":
        tags = [
            t for t in cells[fix["cell_index"]]["metadata"].get("tags", []) if t != fix["current"]
        ]
        cells[fix["cell_index"]]["metadata"]["tags"] = [*tags, fix["tag"]]
    elif fix["kind"] == "merge-parameters":
        cells[fix["cell_index"]]["source"] = merged(
            source(fix["cell_index"]), source(fix["from_index"])
        )
        del cells[fix["from_index"]]
    elif fix["kind"] == "move-to-parameters":
        lines = source(fix["cell_index"]).split("\n")
        assert "\n".join(lines[fix["line"] - 1 : fix["end_line"]]).strip() == fix["source"]
        cells[fix["cell_index"]]["source"] = "\n".join(
            lines[: fix["line"] - 1] + lines[fix["end_line"] :]
        )
        target = fix["parameters_index"]
        cells[target]["source"] = merged(source(target), fix["source"])
    else:
        raise AssertionError(f"not a fix applied to cells: {fix['kind']}")
    path.write_text(json.dumps(nb))


def test_a_name_from_an_untagged_cell_offers_to_tag_that_cell(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("import math", ["setup"]),
            ("rows = [1.0, 4.0, 9.0]\nrows = [r * 2 for r in rows]", []),
            ("total = sum(math.sqrt(r) for r in rows)", ["train"]),
        ],
    )
    [problem] = body["problems"]
    assert problem["kind"] == "UntaggedDefinitionError"
    fix = problem["quick_fix"]
    assert fix["kind"] == "tag-cell"
    assert (fix["cell_index"], fix["current"]) == (1, None)
    assert fix["tag"] == "transform:rows"
    assert fix["label"] == "Tag cell 2 transform:rows"
    path = tmp_path / "nb.ipynb"
    apply_fix(path, fix)
    graph = analyse(read_notebook(path))
    assert [s.key for s in graph.steps] == ["transform:rows", "train"]


def test_each_of_several_problems_gets_its_own_checked_fix(tmp_path: Path) -> None:
    # Partial analysis lists every problem: each is offered its fix, checked while the other
    # problem is still there, and applying both leaves a notebook that analyses.
    body = analysis(
        tmp_path,
        [
            ("rows = [1.0, 4.0]", []),
            ("scale = 3", []),
            ("doubled = [r * 2 for r in rows]", ["transform"]),
            ("total = sum(doubled) * scale", ["train"]),
        ],
    )
    fixes = [p["quick_fix"] for p in body["problems"]]
    assert len(fixes) == 2
    assert {(f["kind"], f["cell_index"]) for f in fixes} == {("tag-cell", 0), ("tag-cell", 1)}
    path = tmp_path / "nb.ipynb"
    for fix in fixes:
        apply_fix(path, fix)
    analyse(read_notebook(path))


def test_a_defining_cell_of_constants_and_functions_is_offered_setup(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("def double(x):\n    return 2 * x", []),
            ("value = double(21)", ["train"]),
        ],
    )
    fix = body["problems"][0]["quick_fix"]
    assert (fix["kind"], fix["cell_index"], fix["tag"]) == ("tag-cell", 0, "setup")


def test_setup_is_not_offered_when_the_cell_reads_a_parameter(tmp_path: Path) -> None:
    # As setup the cell would read a parameter (refused): the checked fix is a transform step.
    body = analysis(
        tmp_path,
        [
            ("size = 3", ["parameters"]),
            ("limit = 10\ndef cap(x):\n    return min(x, limit * size)", []),
            ("value = cap(50)", ["train"]),
        ],
    )
    fix = body["problems"][0]["quick_fix"]
    assert fix["kind"] == "tag-cell"
    assert fix["tag"].startswith("transform")


def test_a_skip_cell_defining_the_name_is_offered_a_step_tag(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [("data = list(range(3))", ["skip"]), ("total = sum(data)", ["train"])],
    )
    fix = body["problems"][0]["quick_fix"]
    assert (fix["kind"], fix["current"], fix["tag"]) == ("tag-cell", "skip", "transform:data")


def test_no_tag_fix_when_the_definition_comes_after_its_use(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [("total = sum(data)", ["train"]), ("data = [1, 2, 3]", [])],
    )
    [problem] = body["problems"]
    assert problem["kind"] == "UntaggedDefinitionError"
    assert "quick_fix" not in problem


def test_two_parameters_cells_offer_a_merge(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("size = 3", ["parameters"]),
            ("values = list(range(size))", ["transform"]),
            ("factor = 2  # multiplies", ["parameters", "keep-me"]),
            ("total = sum(v * factor for v in values)", ["train"]),
        ],
    )
    problem = parameters_problem(body)
    fix = problem["quick_fix"]
    assert fix["kind"] == "merge-parameters"
    assert (fix["cell_index"], fix["from_index"]) == (0, 2)
    assert fix["label"] == "Merge cell 3 into the parameters cell 1"
    path = tmp_path / "nb.ipynb"
    apply_fix(path, fix)
    graph = analyse(read_notebook(path))
    assert [p.name for p in graph.parameters] == ["size", "factor"]


def test_no_merge_when_the_merged_cell_would_set_a_parameter_twice(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("size = 3", ["parameters"]),
            ("size = 4", ["parameters"]),
            ("total = size * 2", ["train"]),
        ],
    )
    [problem] = body["problems"]
    assert "two cells are tagged parameters" in problem["message"]
    assert "quick_fix" not in problem


def test_a_constant_passed_as_a_hyper_parameter_offers_a_move(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("def fit(data, n_estimators):\n    return sum(data) * n_estimators", ["setup"]),
            ("seed = 0", ["parameters"]),
            ("data = [seed, 1, 2]", ["transform"]),
            (
                "n_estimators = 100  # trees\nmodel = fit(data, n_estimators=n_estimators)",
                ["train"],
            ),
        ],
    )
    assert body["problems"] == []
    [fix] = body["fixes"]
    assert fix["kind"] == "move-to-parameters"
    assert (fix["cell_index"], fix["line"], fix["end_line"]) == (3, 1, 1)
    assert fix["source"] == "n_estimators = 100  # trees"
    assert (fix["name"], fix["parameters_index"]) == ("n_estimators", 1)
    path = tmp_path / "nb.ipynb"
    apply_fix(path, fix)
    graph = analyse(read_notebook(path))
    assert [p.name for p in graph.parameters] == ["seed", "n_estimators"]
    assert graph.parameters[1].default == 100
    train = next(s for s in graph.steps if s.key == "train")
    assert any(i.name == "n_estimators" and i.source == "parameter" for i in train.inputs)


def test_no_move_without_a_parameters_cell(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("def fit(data, n_estimators):\n    return sum(data) * n_estimators", ["setup"]),
            ("n_estimators = 100\nmodel = fit([1, 2], n_estimators=n_estimators)", ["train"]),
        ],
    )
    assert body["problems"] == []
    assert body["fixes"] == []


def test_an_untagged_notebook_offers_the_suggested_roles(tmp_path: Path) -> None:
    body = analysis(tmp_path, [("x = 1", []), ("y = x + 1", [])])
    [problem] = body["problems"]
    assert problem["kind"] == "NoTaggedCellsError"
    assert problem["quick_fix"]["kind"] == "suggest-roles"


def test_the_analysis_names_the_saved_file_by_its_sha256(tmp_path: Path) -> None:
    body = analysis(tmp_path, [("x = 1", ["train"])])
    digest = hashlib.sha256((tmp_path / "nb.ipynb").read_bytes()).hexdigest()
    assert body["sha256"] == digest


def test_the_last_export_says_whether_it_is_of_the_saved_notebook(tmp_path: Path) -> None:
    from nbops.export.exporter import export_notebook
    from nbops.labserver.fixes import last_export

    path = build_notebook(tmp_path / "nb.ipynb", [("x = 1", ["train"])])
    out = tmp_path / "pipelines"
    assert last_export(path, out) is None
    export_notebook(path, out, secret_params=[])
    found = last_export(path, out)
    assert found is not None
    assert (found["name"], found["version"], found["current"]) == ("nb", 1, True)
    assert found["folder"] == out / "nb"
    build_notebook(path, [("x = 2", ["train"])])  # edited and saved after the export
    found = last_export(path, out)
    assert found is not None
    assert found["current"] is False
    assert found["source_sha256"] != hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_export_of_another_notebook_of_the_same_name_is_not_its_last(tmp_path: Path) -> None:
    from nbops.export.exporter import export_notebook
    from nbops.labserver.fixes import last_export

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_notebook(tmp_path / "a" / "nb.ipynb", [("x = 1", ["train"])])
    second = build_notebook(tmp_path / "b" / "nb.ipynb", [("x = 1", ["train"])])
    out = tmp_path / "pipelines"
    export_notebook(first, out, secret_params=[])
    assert last_export(second, out) is None


def test_no_merge_when_the_second_parameters_cell_is_not_plain_values(tmp_path: Path) -> None:
    body = analysis(
        tmp_path,
        [
            ("size = 3", ["parameters"]),
            ("factor = len('abc')", ["parameters"]),
            ("total = size * factor", ["train"]),
        ],
    )
    problem = parameters_problem(body)
    assert "two cells are tagged parameters" in problem["message"]
    assert "quick_fix" not in problem
