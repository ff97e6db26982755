"""The panel's one-click fixes in a real JupyterLab and browser: each fix button changes the
open notebook (undoably; the user saves), the suggested roles are accepted one by one or
all at once, a second parameters tag is refused when it is set, and the export and run boxes
say when the notebook changed after them.

The times a user waits (fix click to changed cell, suggestion, export) are printed
(`pytest -s`) for the issue's closing note.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, PIPELINE, Lab, write_notebook
from tests.browser.test_lab import (
    CELLS,
    PANEL,
    VISIBLE,
    cell,
    needs_server,
    notebook_tags,
    open_notebook,
    open_panel,
    role_of,
    run_from_palette,
    save_and_wait,
    select_cell,
    theme_is,
    wait_for,
    wait_role,
)

pytestmark = [pytest.mark.slow, needs_server]

# Three problems with mechanical fixes, met one after the other: two parameters cells, a
# name only an untagged cell defines, a hyper-parameter constant set in a step.
FIXABLE = [
    ("markdown", "# Fixable", []),
    (
        "code",
        "import math\n\ndef fit(values, n_estimators):\n    return sum(values) * n_estimators",
        ["setup"],
    ),
    ("code", "size = 3", ["parameters"]),
    ("code", "rows = [float(i) for i in range(size)]", []),
    ("code", "scale = 2.0", ["parameters"]),
    (
        "code",
        "n_estimators = 10\nmodel = fit([r * scale for r in rows], n_estimators=n_estimators)",
        ["train"],
    ),
    ("code", "score = math.sqrt(model)", ["evaluate"]),
]


# An untagged notebook whose roles nbops can suggest: load, fit, score.
SUGGESTABLE = [
    ("markdown", "# Suggest", []),
    (
        "code",
        "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import accuracy_score",
        [],
    ),
    ("code", 'DATA = "iris.csv"\nC = 1.0', ["keep-me"]),
    ("code", 'df = pd.read_csv(DATA)\nX, y = df.drop(columns="label"), df["label"]', []),
    ("code", "model = LogisticRegression(C=C).fit(X, y)", []),
    ("code", "accuracy = accuracy_score(y, model.predict(X))", []),
    ("code", "df.head()", []),
]


def sources(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]
    ]


def timed(label: str, start: float) -> None:
    print(f"[timing] {label}: {time.monotonic() - start:.2f} s")


def test_each_fix_button_changes_the_notebook(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "fixable.ipynb", FIXABLE)
    open_notebook(page, lab, "fixable.ipynb", cells=7)
    panel = open_panel(page)
    problem = panel.locator(".nbops-problem")

    # 1. Two parameters cells: merge the second into the first, as one undoable change.
    wait_for(lambda: "two cells are tagged parameters" in problem.first.inner_text(),
             what="the two-parameters problem")  # fmt: skip
    button = problem.first.locator("button.nbops-fix-button[data-fix-kind='merge-parameters']")
    assert button.inner_text() == "Merge cell 5 into the parameters cell 3"
    start = time.monotonic()
    button.click()
    wait_for(lambda: page.locator(CELLS).count() == 6, what="the merged cell gone")
    timed("merge fix click to merged cells", start)
    panel.locator(".nbops-applied").wait_for()
    panel.locator(".nbops-dirty:not([hidden])").wait_for()
    # Undo (Z in command mode) takes the whole fix back; redo (Shift+Z) applies it again.
    select_cell(page, 1)
    page.keyboard.press("z")
    wait_for(lambda: page.locator(CELLS).count() == 7, what="undo to restore the cell")
    assert role_of(page, 4) == "parameters"
    page.keyboard.press("Shift+Z")
    wait_for(lambda: page.locator(CELLS).count() == 6, what="redo to merge again")
    before = path.read_text()
    save_and_wait(page, path, before)
    assert sources(path)[2] == "size = 3\nscale = 2.0"
    assert notebook_tags(path)[2] == ["parameters"]

    # 2. The train step reads `rows`, which only an untagged cell defines: tag that cell.
    wait_for(lambda: "'rows'" in problem.first.inner_text(), what="the untagged-name problem")
    button = problem.first.locator("button.nbops-fix-button[data-fix-kind='tag-cell']")
    assert button.inner_text() == "Tag cell 4 transform:rows"
    start = time.monotonic()
    button.click()
    wait_role(page, 3, "transform:rows")
    timed("tag fix click to badge", start)
    before = path.read_text()
    save_and_wait(page, path, before)
    assert notebook_tags(path)[3] == ["transform:rows"]

    # 3. No problem left; a constant the train step passes as n_estimators= is moved into
    # the parameters cell.
    steps = panel.locator(".nbops-step")
    wait_for(lambda: steps.count() == 3, what="the steps after the fixes")
    assert problem.count() == 0
    move = panel.locator(".nbops-fix-item[data-fix-kind='move-to-parameters']")
    assert "n_estimators = 10" in move.inner_text()
    page.mouse.move(5, 5)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "lab-fixes-move.png"))
    move.locator("button.nbops-fix-button").click()
    panel.locator(".nbops-fix-item .nbops-applied").wait_for()
    before = path.read_text()
    save_and_wait(page, path, before)
    assert sources(path)[2] == "size = 3\nscale = 2.0\nn_estimators = 10"
    assert sources(path)[4].startswith("model = fit(")

    params = panel.locator(".nbops-parameter")
    wait_for(lambda: params.count() == 3, what="three parameters in the panel")
    assert panel.locator(".nbops-fix-item").count() == 0

    from nbops.notebook.analysis import analyse
    from nbops.notebook.read import read_notebook

    graph = analyse(read_notebook(path))
    assert [p.name for p in graph.parameters] == ["size", "scale", "n_estimators"]
    assert [s.key for s in graph.steps] == ["transform:rows", "train", "evaluate"]


def test_suggested_roles_are_accepted_one_by_one_or_all(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "suggested.ipynb", SUGGESTABLE)
    open_notebook(page, lab, "suggested.ipynb", cells=7)
    panel = open_panel(page)
    panel.locator(".nbops-start").wait_for()
    start = time.monotonic()
    panel.locator("button.nbops-suggest").click()
    rows = panel.locator(".nbops-suggested")
    rows.first.wait_for()
    timed("suggest click to the suggested roles", start)
    proposed = {
        int(rows.nth(i).get_attribute("data-cell-index")): rows.nth(i)
        .locator(".nbops-badge")
        .inner_text()
        for i in range(rows.count())
    }
    assert proposed == {
        1: "setup",
        2: "parameters",
        3: "transform:load",
        4: "train:logistic_regression",
        5: "evaluate:logistic_regression",
    }

    # One by one: the first row's cell gets its tag; the others are untouched.
    first = min(proposed)
    rows.first.locator("button.nbops-suggest-accept").click()
    wait_role(page, first, proposed[first])
    assert rows.first.get_attribute("class") is not None
    assert "nbops-accepted" in (rows.first.get_attribute("class") or "")
    others = [i for i in proposed if i != first]
    assert all(role_of(page, i) is None for i in others)

    # Accept all: the rest, in one change.
    accept_all = panel.locator("button.nbops-suggest-accept-all")
    assert accept_all.inner_text() == f"Accept all ({len(others)})"
    accept_all.click()
    for index in others:
        wait_role(page, index, proposed[index])
    page.mouse.move(5, 5)
    panel.screenshot(path=str(ARTIFACTS / "lab-suggested-roles.png"))
    run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    panel.screenshot(path=str(ARTIFACTS / "lab-suggested-roles-dark.png"))
    run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")

    before = path.read_text()
    select_cell(page, first)
    save_and_wait(page, path, before)
    tags = notebook_tags(path)
    for index, tag in proposed.items():
        assert tag in tags[index], (index, tags)
    assert "keep-me" in tags[2]  # other tags are kept
    panel.locator(".nbops-step").first.wait_for()


def test_a_second_parameters_tag_is_refused_when_set(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "oneparams.ipynb", PIPELINE)
    open_notebook(page, lab, "oneparams.ipynb", cells=7)
    select_cell(page, 3)
    page.keyboard.press("Control+Shift+Digit2")  # parameters
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "Cell 3 is already tagged parameters" in text, text
    assert "papermill reads only the first" in text
    page.screenshot(path=str(ARTIFACTS / "lab-second-parameters-refused.png"))
    dialog.locator("button.jp-mod-accept, button.jp-mod-reject").first.click()
    dialog.wait_for(state="detached")
    assert role_of(page, 3) == "transform:make_data"
    # Two cells selected at once cannot both become the parameters cell either.
    select_cell(page, 4)
    select_cell(page, 5, shift=True)
    page.keyboard.press("Control+Shift+Digit2")
    page.locator(".jp-Dialog", has_text="only one cell may be tagged parameters").wait_for()
    page.locator(".jp-Dialog button").first.click()
    assert role_of(page, 5) == "train"
    # Re-tagging the parameters cell itself is fine.
    select_cell(page, 2)
    page.keyboard.press("Control+Shift+Digit2")
    page.wait_for_timeout(300)
    assert page.locator(".jp-Dialog").count() == 0
    assert notebook_tags(path)[2] == ["parameters"]


def test_results_say_when_the_notebook_changed_after_them(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "outdated.ipynb", PIPELINE)
    open_notebook(page, lab, "outdated.ipynb", cells=7)
    panel = open_panel(page)
    panel.locator(".nbops-step").first.wait_for()

    start = time.monotonic()
    panel.locator("button.nbops-export").click()
    export = panel.locator(".nbops-export-result")
    export.wait_for(timeout=60_000)
    timed("export click to result", start)
    assert "nbops-outdated" not in (export.get_attribute("class") or "")

    panel.locator("button.nbops-run-open").click()
    panel.locator(".nbops-run-form input[name='n_rows']").wait_for()
    start = time.monotonic()
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=120, what="the run to finish")  # fmt: skip
    timed("run start to result", start)
    assert status.inner_text() == "completed", panel.inner_text()
    run = panel.locator(".nbops-run-result")
    assert "nbops-outdated" not in (run.get_attribute("class") or "")

    # Edit a cell: both boxes are marked outdated, without a save.
    select_cell(page, 5)
    page.keyboard.press("Enter")
    original = cell(page, 5).locator(".cm-content").inner_text()
    page.keyboard.press("Control+End")
    page.keyboard.type("  # changed")
    page.keyboard.press("Escape")
    panel.locator(".nbops-export-result.nbops-outdated").wait_for()
    panel.locator(".nbops-run-result.nbops-outdated").wait_for()
    assert "made from an older version of the notebook" in export.inner_text()
    page.mouse.move(5, 5)
    panel.screenshot(path=str(ARTIFACTS / "lab-outdated-results.png"))

    # Undo the edit: the results are current again.
    select_cell(page, 5)
    page.keyboard.press("Enter")
    editor = cell(page, 5).locator(".cm-content")
    # The editor may keep the typing as several undo steps (more of them on a loaded machine:
    # the two spaces can be a step of their own); undo until the cell reads as before the edit.
    # An undo with nothing left to undo does nothing.
    for _attempt in range(40):
        if editor.inner_text() == original:
            break
        page.keyboard.press("Control+z")
    assert editor.inner_text() == original, editor.inner_text()
    page.keyboard.press("Escape")
    try:
        wait_for(lambda: panel.locator(".nbops-outdated").count() == 0,
                 what="the results current again after undo")  # fmt: skip
    except AssertionError as e:
        classes = panel.locator(".nbops-outdated").evaluate_all("els => els.map(e => e.className)")
        raise AssertionError(f"{e}: still outdated: {classes}") from None

    # Edit again and save: the export stays marked (its notebook is not the saved one).
    select_cell(page, 5)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+End")
    page.keyboard.type("  # saved")
    page.keyboard.press("Escape")
    save_and_wait(page, path)
    # The panel read the saved file (its sha256 differs from the export's source).
    wait_for(lambda: panel.locator(".nbops-refresh").inner_text() == "Refresh",
             what="the refresh after the save")  # fmt: skip
    assert "nbops-outdated" in (export.get_attribute("class") or "")
    assert cell(page, 5).count() == 1
    assert panel.locator(f"{PANEL} .nbops-dirty:not([hidden])").count() == 0
    assert page.locator(VISIBLE).count() == 1

    # After a reload the panel has forgotten its export, but finds it on disk and says it
    # was made from an older notebook.
    open_notebook(page, lab, "outdated.ipynb", cells=7)
    panel = open_panel(page)
    last = panel.locator(".nbops-last-export")
    last.wait_for()
    assert "nbops-outdated" in (last.get_attribute("class") or "")
    assert "Last export: outdated v1" in last.inner_text()
    assert "made from an older version of the notebook" in last.inner_text()
