"""The pipeline panel's picture of the steps (a hand-made SVG DAG) and its problems, in a real
JupyterLab and a real browser: the nodes and edges of a real multi-step notebook, a click on a
node activating the step's cell, each step's duration and status after a run, named steps of
the same role told apart, a broken step leaving the others drawn, and the problem cells
marked in the notebook itself, linked from the panel by number (the cell using a name and the
cell defining it).

The notebooks live in a project of their own (`dag/`, with its own run store), so the runs
made here do not show in the other tests' store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Lab, has_labserver, write_notebook
from tests.browser.test_lab import (
    PANEL,
    VISIBLE,
    cell,
    open_notebook,
    open_panel,
    run_from_palette,
    theme_is,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not has_labserver(),
        reason="the nbops server extension (src/nbops/labserver) is not in this nbops",
    ),
]

NODES = f"{PANEL} .nbops-dag-node"
EDGES = f"{PANEL} .nbops-dag-edge"

# Four steps, two of them transforms told apart by name; cell 4 (index 5) is exploration.
DAG = [
    ("markdown", "# DAG demo", []),
    ("code", "import math\nimport random\n\nimport nbops", ["setup"]),
    ("code", "n_rows = 30\nseed = 0\ntest_share = 0.25", ["parameters"]),
    (
        "code",
        "random.seed(seed)\ndata = [random.random() for _ in range(n_rows)]",
        ["transform:features"],
    ),
    (
        "code",
        "cut = int(len(data) * (1 - test_share))\ntrain_rows = data[:cut]\ntest_rows = data[cut:]",
        ["transform:split"],
    ),
    ("code", "len(train_rows)", []),
    ("code", "model = sum(train_rows) / len(train_rows)", ["train"]),
    (
        "code",
        "error = sum(abs(v - model) for v in test_rows) / len(test_rows)\n"
        "nbops.log_metric('error', error)",
        ["evaluate"],
    ),
]

# The same shape with a syntax error in the transform:split cell (index 4).
BROKEN_STEP = [
    ("markdown", "# One broken step", []),
    ("code", "import math", ["setup"]),
    ("code", "n_rows = 30\ntest_share = 0.25", ["parameters"]),
    ("code", "data = list(range(n_rows))", ["transform:features"]),
    (
        "code",
        "cut = int(len(data) * (1 - test_share)\ntrain_rows = data[:cut]",
        ["transform:split"],
    ),
    ("code", "model = sum(data) / len(data)", ["train"]),
    ("code", "score = math.sqrt(model)", ["evaluate"]),
]

# The train cell (index 4) uses `offset`, which only the untagged cell 4 (index 3) defines.
UNTAGGED_NAME = [
    ("markdown", "# A name from an untagged cell", []),
    ("code", "n_rows = 30", ["parameters"]),
    ("code", "data = list(range(n_rows))", ["transform"]),
    ("code", "offset = 10", []),
    ("code", "model = sum(data) + offset", ["train"]),
    ("code", "score = model / 2", ["evaluate"]),
]


def project(lab: Lab) -> Path:
    folder = lab.root / "dag"
    (folder / ".nbops").mkdir(parents=True, exist_ok=True)  # a project with its own store
    return folder


def node_keys(page: Any) -> list[str]:
    nodes = page.locator(NODES)
    return [nodes.nth(i).get_attribute("data-step") for i in range(nodes.count())]


def node(page: Any, key: str) -> Any:
    return page.locator(f"{NODES}[data-step='{key}']")


def is_active(page: Any, index: int) -> bool:
    return "jp-mod-active" in (cell(page, index).get_attribute("class") or "")


def classes(locator: Any) -> list[str]:
    return str(locator.get_attribute("class") or "").split()


def box_style(page: Any, key: str, prop: str) -> str:
    return str(
        node(page, key)
        .locator(".nbops-dag-box")
        .evaluate(f"(el) => getComputedStyle(el).getPropertyValue('{prop}')")
    )


def save_timings(name: str, timings: dict[str, float]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"timings-{name}.json").write_text(json.dumps(timings, indent=2))
    print(f"timings {name}: {timings}")


def test_the_dag_draws_the_steps_links_cells_and_shows_the_run(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    write_notebook(project(lab) / "dag.ipynb", DAG)
    timings: dict[str, float] = {}
    open_notebook(page, lab, "dag/dag.ipynb", cells=len(DAG))
    started = time.monotonic()
    panel = open_panel(page)
    page.locator(NODES).first.wait_for()
    timings["panel open to DAG drawn (s)"] = round(time.monotonic() - started, 2)

    # The nodes are the steps, in notebook order; the edges the names passed between them.
    assert node_keys(page) == ["transform:features", "transform:split", "train", "evaluate"]
    edges = page.locator(EDGES)
    drawn = {
        (edges.nth(i).get_attribute("data-from"), edges.nth(i).get_attribute("data-to")):
        edges.nth(i).get_attribute("data-names")
        for i in range(edges.count())
    }  # fmt: skip
    assert drawn == {
        ("transform:features", "transform:split"): "data",
        ("transform:split", "train"): "train_rows",
        ("transform:split", "evaluate"): "test_rows",
        ("train", "evaluate"): "model",
    }
    # Layered: each step below the steps it reads from.
    tops = {key: node(page, key).bounding_box()["y"] for key in node_keys(page)}
    assert tops["transform:features"] < tops["transform:split"] < tops["train"]
    assert tops["train"] < tops["evaluate"]
    # Each node names its cells by number and the parameters feeding it.
    features = node(page, "transform:features")
    assert "cell 4" in features.text_content()
    assert "n_rows" in features.text_content() and "seed" in features.text_content()
    assert "test_share" in node(page, "transform:split").text_content()
    assert "⚙" not in node(page, "train").text_content()  # reads no parameter

    # Named steps of the same role are told apart: a shade and a border pattern.
    assert "nbops-role-transform" in classes(features)
    assert "nbops-role-transform" in classes(node(page, "transform:split"))
    assert box_style(page, "transform:features", "fill") != box_style(
        page, "transform:split", "fill"
    )
    assert box_style(page, "transform:features", "stroke-dasharray") != box_style(
        page, "transform:split", "stroke-dasharray"
    )

    # A click on a node activates the step's (first) cell.
    node(page, "train").click()
    wait_for(lambda: is_active(page, 6), what="the train cell to be active")
    node(page, "transform:split").click()
    wait_for(lambda: is_active(page, 4), what="the transform:split cell to be active")
    page.mouse.move(5, 5)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.locator(".nbops-dag-section").screenshot(path=str(ARTIFACTS / "lab-dag-light.png"))

    # After a run from the panel, each step shows its duration and status.
    panel.locator("button.nbops-run-open").click()
    panel.locator(".nbops-run-form input[name='n_rows']").wait_for()
    started = time.monotonic()
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=120, what="the run to finish")  # fmt: skip
    timings["run start to result (s)"] = round(time.monotonic() - started, 2)
    assert status.inner_text() == "completed", panel.inner_text()
    wait_for(lambda: "nbops-dag-status-ok" in classes(node(page, "evaluate")),
             what="the steps' run status in the DAG")  # fmt: skip
    for key in node_keys(page):
        assert "nbops-dag-status-ok" in classes(node(page, key)), key
        text = node(page, key).locator(".nbops-dag-run").text_content()
        assert text.startswith("✓ ok · ") and text.endswith(" s"), text
        float(text.split("· ")[1].split(" ")[0])  # a number of seconds
    assert "Durations and status from run" in panel.locator(".nbops-dag-caption").inner_text()

    page.mouse.move(5, 5)
    dag = panel.locator(".nbops-dag-section")
    dag.scroll_into_view_if_needed()
    dag.screenshot(path=str(ARTIFACTS / "lab-dag-run-light.png"))
    page.screenshot(path=str(ARTIFACTS / "lab-dag-page-light.png"))
    run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_timeout(500)
    dag.scroll_into_view_if_needed()
    dag.screenshot(path=str(ARTIFACTS / "lab-dag-run-dark.png"))
    page.screenshot(path=str(ARTIFACTS / "lab-dag-page-dark.png"))
    run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")
    save_timings("dag", timings)


def test_a_broken_step_leaves_the_other_steps_drawn_and_its_cell_marked(
    page: Any, lab: Lab
) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    write_notebook(project(lab) / "broken_step.ipynb", BROKEN_STEP)
    open_notebook(page, lab, "dag/broken_step.ipynb", cells=len(BROKEN_STEP))
    panel = open_panel(page)
    page.locator(NODES).first.wait_for()

    # Every step is drawn; the broken one is marked, the others are not.
    assert node_keys(page) == ["transform:features", "transform:split", "train", "evaluate"]
    assert "nbops-dag-problem" in classes(node(page, "transform:split"))
    for key in ("transform:features", "train", "evaluate"):
        assert "nbops-dag-problem" not in classes(node(page, key)), key
    assert "problem" in node(page, "transform:split").text_content()
    edges = page.locator(EDGES)
    pairs = {
        (edges.nth(i).get_attribute("data-from"), edges.nth(i).get_attribute("data-to"))
        for i in range(edges.count())
    }
    assert pairs == {("transform:features", "train"), ("train", "evaluate")}
    # ...and so are the step list and the parameters beside the problem.
    assert panel.locator(".nbops-step").count() == 4
    assert panel.locator(".nbops-parameter").count() == 2
    [problem] = panel.locator(".nbops-problem").all()
    assert "syntax error" in problem.inner_text()

    # The problem cell is marked in the notebook itself; no other cell is.
    broken = cell(page, 4)
    wait_for(lambda: "nbops-problem-cell" in classes(broken), what="the problem cell's mark")
    marker = broken.locator(":scope > .nbops-problem-marker")
    assert marker.is_visible()
    assert "syntax error" in (marker.get_attribute("title") or "")
    assert page.locator(f"{VISIBLE} .jp-Cell.nbops-problem-cell").count() == 1
    page.mouse.move(5, 5)
    page.screenshot(path=str(ARTIFACTS / "lab-dag-broken-step.png"))


def test_a_problem_links_the_cell_using_a_name_and_the_cell_defining_it(
    page: Any, lab: Lab
) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    write_notebook(project(lab) / "untagged_name.ipynb", UNTAGGED_NAME)
    open_notebook(page, lab, "dag/untagged_name.ipynb", cells=len(UNTAGGED_NAME))
    panel = open_panel(page)
    problem = panel.locator(".nbops-problem")
    problem.first.wait_for()
    assert problem.count() == 1
    text = problem.inner_text()
    assert "offset" in text and "cell 4" in text
    assert "(id " not in text  # cells by number, never the raw id
    links = problem.locator(".nbops-cell-link")
    assert links.all_inner_texts() == ["Go to cell 5", "cell 4"]
    assert "defined in" in text

    # Both cells are marked: the one using the name, and (dashed) the one defining it.
    wait_for(lambda: "nbops-problem-cell" in classes(cell(page, 4)), what="the using cell")
    assert "nbops-problem-related" in classes(cell(page, 3))
    # Each link activates its cell.
    links.nth(1).click()
    wait_for(lambda: is_active(page, 3), what="the defining cell to be active")
    links.nth(0).click()
    wait_for(lambda: is_active(page, 4), what="the using cell to be active")

    # The steps stay drawn around the problem.
    assert node_keys(page) == ["transform", "train", "evaluate"]
    assert "nbops-dag-problem" in classes(node(page, "train"))

    # Fixed (the cell tagged) and saved: the marks go.
    cell(page, 3).locator(".jp-InputPrompt").first.click(position={"x": 10, "y": 8})
    wait_for(lambda: is_active(page, 3), what="cell 4 selected")
    page.keyboard.press("Control+Shift+Digit3")  # transform
    page.keyboard.press("Control+S")
    wait_for(lambda: panel.locator(".nbops-problem").count() == 0, what="the problem to go")
    wait_for(lambda: "nbops-problem-cell" not in classes(cell(page, 4)), what="the mark to go")
    assert "nbops-problem-related" not in classes(cell(page, 3))
    assert page.locator(f"{VISIBLE} .nbops-problem-marker").count() == 0
