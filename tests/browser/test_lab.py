"""The nbops JupyterLab extension in a real JupyterLab and a real browser.

Tagging (cell toolbar, context menu, palette, keyboard) needs only the frontend; the panel
tests also need the server extension (nbops.labserver) and are skipped without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Lab, has_labserver

pytestmark = pytest.mark.slow

VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{VISIBLE} .jp-Notebook .jp-Cell"
PANEL = "#nbops-pipeline-panel"

needs_server = pytest.mark.skipif(
    not has_labserver(),
    reason="the nbops server extension (src/nbops/labserver) is not in this nbops: "
    "the panel's API is missing",
)


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def save_and_wait(page: Any, path: Path, before: str | None = None) -> None:
    """Ctrl+S, and wait until the file holds a whole new notebook: jupyter_server writes it in
    place (truncate, then write), so one read while it writes can see it empty or cut."""
    before = path.read_text() if before is None else before
    page.keyboard.press("Control+S")

    def saved() -> bool:
        text = path.read_text()
        if text == before:
            return False
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    wait_for(saved, what=f"{path.name} saved")


def open_notebook(page: Any, lab: Lab, name: str, cells: int) -> None:
    page.goto(lab.lab_url(name))
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[CELLS, cells],
        timeout=60_000,
    )
    # The kernel is up (the toolbar's status says idle), so nothing shifts afterwards.
    page.wait_for_selector(f"{VISIBLE} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000, state="attached")  # fmt: skip


def cell(page: Any, index: int) -> Any:
    return page.locator(CELLS).nth(index)


def scroll_into_view(locator: Any, timeout: float = 30.0) -> None:
    """Scroll an element into view, again if the panel re-rendered it in between (a running
    run's box is redrawn as its progress arrives: "Element is not attached to the DOM")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            locator.scroll_into_view_if_needed(timeout=5_000)
            return
        except Exception as exc:  # playwright's Error: the element was replaced meanwhile
            if "not attached" not in str(exc) or time.monotonic() > deadline:
                raise


def select_cell(page: Any, index: int, *, shift: bool = False) -> None:
    """Click a cell's prompt: selects it in command mode (with shift: extends the selection)."""
    prompt = cell(page, index).locator(".jp-InputPrompt").first
    prompt.click(modifiers=["Shift"] if shift else None, position={"x": 10, "y": 8})
    wait_for(
        lambda: "jp-mod-active" in (cell(page, index).get_attribute("class") or ""),
        what=f"cell {index} to be active",
    )


def role_of(page: Any, index: int) -> str | None:
    badge = cell(page, index).locator(":scope > .nbops-role-badge")
    if badge.count() == 0:
        return None
    return str(badge.inner_text()).replace("\n", ":")


def wait_role(page: Any, index: int, expected: str | None) -> None:
    wait_for(lambda: role_of(page, index) == expected, what=f"cell {index} role {expected}")
    classes = cell(page, index).get_attribute("class") or ""
    if expected is None:
        assert "nbops-tagged" not in classes
    else:
        assert f"nbops-role-{expected.split(':')[0]}" in classes.split()


def theme_is(page: Any, *, dark: bool) -> Callable[[], bool]:
    """A check that the lab shows the dark (or light) theme."""
    selector = f"body[data-jp-theme-light='{'false' if dark else 'true'}']"
    return lambda: page.locator(selector).count() > 0


def dialog_open(page: Any) -> Callable[[], bool]:
    """A check that a dialog with a text input is open."""
    return lambda: page.locator(".jp-Dialog input").count() > 0


def run_from_palette(page: Any, label: str, done: Callable[[], Any]) -> None:
    """Run a command through the palette, and wait until `done()` says it ran.

    The palette closes when the focus moves away right after it opens (under load the
    notebook can take the focus seconds after a click). An Enter that reaches the palette
    after that runs nothing, silently: so the command counts as run only when its effect is
    seen, and the whole sequence is tried again otherwise. A command that ran late is not
    run twice: `done()` is checked again before each new try."""
    from playwright.sync_api import Error as PlaywrightError

    palette = page.locator(".lm-CommandPalette-input")
    active = page.locator(".lm-CommandPalette-item.lm-mod-active .lm-CommandPalette-itemLabel")

    def highlighted() -> bool:
        return bool(active.count()) and active.first.inner_text() == label

    for _attempt in range(5):
        if done():
            return
        try:
            if not palette.is_visible():
                page.keyboard.press("Control+Shift+C")
            palette.fill(label, timeout=3_000)
            wait_for(highlighted, timeout=3, what=f"{label!r} highlighted in the palette")
            palette.press("Enter", timeout=3_000)
        except (PlaywrightError, AssertionError):
            page.wait_for_timeout(300)
            continue
        try:
            wait_for(done, timeout=10, what=f"{label!r} to take effect")
            return
        except AssertionError:
            pass
    raise AssertionError(f"could not run {label!r} from the command palette")


def notebook_tags(path: Path) -> list[list[str]]:
    """The cells' tags as saved; a read while the lab is writing the file (empty or cut
    short, seen under load) is tried again until the file holds a whole notebook."""

    def whole() -> Any:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    nb = wait_for(whole, timeout=30, what=f"{path.name} saved whole")
    return [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]


def test_tag_cells_through_toolbar_context_menu_palette_and_keys(page: Any, lab: Lab) -> None:
    path = lab.root / "untagged.ipynb"
    open_notebook(page, lab, "untagged.ipynb", cells=7)
    assert page.locator(f"{CELLS}.nbops-tagged").count() == 0

    # Cell toolbar: the role button opens the role menu.
    select_cell(page, 1)
    button = cell(page, 1).locator(".jp-cell-toolbar [data-command='nbops:role-menu']")
    button.click()
    menu = page.locator(".lm-Menu.nbops-role-menu")
    menu.locator(".lm-Menu-item", has_text="Setup").click()
    wait_role(page, 1, "setup")
    # The button shows the active cell's role: a tag in the role's colour, and its tooltip.
    wait_for(lambda: button.locator("svg[data-icon='nbops:tag-setup']").count(),
             what="the toolbar button's setup icon")  # fmt: skip
    assert "nbops role: setup" in (button.get_attribute("title") or "")

    # Context menu: nbops role > Parameters (the cell's own tag is kept).
    cell(page, 2).locator(".jp-InputPrompt").first.click(button="right", position={"x": 10, "y": 8})
    page.locator(".lm-Menu .lm-Menu-item", has_text="nbops role").hover()
    page.locator(".lm-Menu .lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Parameters'))").click()
    wait_role(page, 2, "parameters")

    # Palette, on two selected cells at once.
    select_cell(page, 3)
    select_cell(page, 4, shift=True)
    run_from_palette(
        page, "nbops: Set cell role: Transform", done=lambda: role_of(page, 3) == "transform"
    )
    wait_role(page, 3, "transform")
    wait_role(page, 4, "transform")

    # Keyboard (command mode): Accel Shift 4 is train; it replaces the transform tag.
    select_cell(page, 4)
    page.keyboard.press("Control+Shift+Digit4")
    wait_role(page, 4, "train")
    assert role_of(page, 3) == "transform"

    # A named step, through the palette's prompt.
    select_cell(page, 5)
    run_from_palette(page, "nbops: Set cell step (role:name)…", done=dialog_open(page))
    dialog_input = page.locator(".jp-Dialog input")
    dialog_input.fill("evaluate:score")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    wait_role(page, 5, "evaluate:score")

    # Clear a role (Accel Shift 0) and set it again from the keyboard (Accel Shift 6: skip).
    select_cell(page, 6)
    page.keyboard.press("Control+Shift+Digit6")
    wait_role(page, 6, "skip")
    page.keyboard.press("Control+Shift+Digit0")
    wait_role(page, 6, None)

    ARTIFACTS.mkdir(exist_ok=True)
    select_cell(page, 5)
    page.mouse.move(5, 5)
    page.screenshot(path=str(ARTIFACTS / "lab-tagged-notebook.png"))

    # Save, and read the tags back from disk: standard metadata.tags, other tags kept.
    page.keyboard.press("Control+S")
    expected = [[], ["setup"], ["keep-me", "parameters"], ["transform"], ["train"],
                ["evaluate:score"], []]  # fmt: skip
    wait_for(lambda: notebook_tags(path) == expected, what="the saved tags")

    # The same roles read by the library itself.
    from nbops.notebook.read import read_notebook

    nb = read_notebook(path)
    assert [str(c.tag.step_tag) if c.tag else None for c in nb.cells] == [
        None, "setup", "parameters", "transform", "train", "evaluate:score", None,
    ]  # fmt: skip

    # Dark theme: the badges and bars stay readable.
    run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "lab-tagged-notebook-dark.png"))
    run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")


def open_panel(page: Any) -> Any:
    page.locator(f"{VISIBLE} .jp-NotebookPanel-toolbar [data-command='nbops:open-panel']").click()
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    return panel


# The race seen in CI: the palette loses the focus (and closes) after its item was
# highlighted, so the Enter runs nothing. Simulated by swallowing the first Enter and closing
# the palette, as its blur handler does.
SWALLOW_FIRST_ENTER_JS = """
() => {
  window.__nbopsSwallowed = 0;
  document.addEventListener('keydown', event => {
    const input = event.target;
    if (event.key !== 'Enter' || window.__nbopsSwallowed > 0) return;
    if (!(input instanceof HTMLElement) || !input.matches('.lm-CommandPalette-input')) return;
    window.__nbopsSwallowed += 1;
    event.stopImmediatePropagation();
    event.preventDefault();
    input.blur();
  }, true);
}
"""


def test_palette_commands_are_retried_when_the_enter_ran_nothing(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "untagged.ipynb", cells=7)
    page.evaluate(SWALLOW_FIRST_ENTER_JS)
    select_cell(page, 2)
    run_from_palette(page, "nbops: Set cell role: Train", done=lambda: role_of(page, 2) == "train")
    assert page.evaluate("window.__nbopsSwallowed") == 1
    assert page.locator(".lm-CommandPalette-input").is_hidden()
    # A command that ran is not run again: one dialog, not two.
    run_from_palette(page, "nbops: Set cell step (role:name)…", done=dialog_open(page))
    page.wait_for_timeout(300)
    assert page.locator(".jp-Dialog").count() == 1
    page.keyboard.press("Escape")
    page.locator(".jp-Dialog").wait_for(state="detached")
    assert role_of(page, 2) == "train"


@needs_server
def test_panel_shows_steps_exports_runs_and_bundles(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    open_notebook(page, lab, "pipeline.ipynb", cells=7)
    panel = open_panel(page)

    steps = panel.locator(".nbops-step")
    steps.first.wait_for()
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == [
        "transform:make_data", "train", "evaluate",
    ]  # fmt: skip
    # Inputs name where they come from; outputs are the names later steps read.
    inputs = [t.replace("\n", " ") for t in steps.nth(1).locator(".nbops-in").all_inner_texts()]
    assert inputs == ["data ← transform:make_data"]
    assert steps.nth(0).locator(".nbops-out").all_inner_texts() == ["data"]
    first_inputs = steps.nth(0).locator(".nbops-in").all_inner_texts()
    assert sorted(t.split(" ")[0] for t in first_inputs) == ["n_rows", "scale", "seed"]
    assert all("← parameter" in t for t in first_inputs)
    rows = panel.locator(".nbops-parameter")
    params = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    assert params == [["n_rows", "int", "40"], ["scale", "float", "2.0"], ["seed", "int", "0"]]

    # A step's cell link activates that cell.
    steps.nth(1).locator(".nbops-cell-link").first.click()
    wait_for(lambda: "jp-mod-active" in (cell(page, 5).get_attribute("class") or ""),
             what="the train cell to be active")  # fmt: skip

    # Export: the generated package is on disk.
    panel.locator("button.nbops-export").click()
    result = panel.locator(".nbops-export-result")
    result.wait_for(timeout=60_000)
    assert "pipeline v1" in result.inner_text()
    folder = lab.root / panel.locator(".nbops-export-result .nbops-folder").inner_text().strip()
    assert folder.is_dir()
    assert (folder / "pipeline" / "manifest.json").is_file()
    assert (folder / "pipeline" / "pipeline.py").is_file()

    # Run with a parameter; the run lands in the project's store.
    panel.locator("button.nbops-run-open").click()
    field = panel.locator(".nbops-run-form input[name='n_rows']")
    field.wait_for()
    assert field.input_value() == "40"
    field.fill("25")
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=120, what="the run to finish")  # fmt: skip
    assert status.inner_text() == "completed", panel.inner_text()
    metrics = panel.locator(".nbops-metrics").inner_text()
    assert "score" in metrics and "rows" in metrics

    from nbops.runs.store import RunStore

    # The lab's root is shared by the session's browser tests (test_fixes_panel runs its own
    # notebook there): this notebook's runs only.
    runs = RunStore(lab.root / ".nbops").list(notebook=str(lab.root / "pipeline.ipynb"))
    assert len(runs) == 1, [(r.run_id, r.notebook, r.status) for r in runs]
    assert runs[0].status == "completed"
    assert runs[0].parameters["n_rows"] == 25
    assert runs[0].latest_metrics()["rows"] == 25

    page.mouse.move(5, 5)
    page.screenshot(path=str(ARTIFACTS / "lab-panel.png"))
    panel.screenshot(path=str(ARTIFACTS / "lab-panel-only.png"))

    # This run recorded no model (nothing it trains is an estimator), so Build bundle stays
    # disabled and says why, with the fix (test_run_form.py: enabled for a run with one).
    bundle = panel.locator("button.nbops-bundle")
    assert bundle.is_disabled()
    assert "no model" in (bundle.get_attribute("title") or "")
    assert "log_model" in panel.locator(".nbops-bundle-blocked").inner_text()

    # The output notebook opens from the link, in a tab of its own, although the lab hides
    # hidden files (the store's .nbops/): the link names the visible copy next to the
    # notebook, nbops-runs/pipeline-<short run id>.ipynb.
    copy_name = f"pipeline-{runs[0].run_id.rsplit('-', 1)[-1]}.ipynb"
    assert (lab.root / "nbops-runs" / copy_name).is_file()
    panel.locator(".nbops-output-link").click()
    tab = page.locator(".lm-TabBar-tab.lm-mod-current", has_text=copy_name)
    tab.wait_for(timeout=20_000)
    output_panel = page.locator(VISIBLE)
    output_panel.locator(".jp-Cell").first.wait_for()
    wait_for(lambda: "n_rows = 25" in output_panel.inner_text(),
             what="the output notebook's injected parameters")  # fmt: skip
    # The run's outputs: the `data[:3]` cell shows a list.
    wait_for(lambda: any(t.strip().startswith("[") for t in
                         output_panel.locator(".jp-OutputArea-output").all_inner_texts()),
             what="the output notebook's outputs")  # fmt: skip
    page.wait_for_timeout(1_000)  # a late error dialog would show by now
    assert page.locator(".jp-Dialog").count() == 0
    assert panel.locator(".nbops-run-result .nbops-error").count() == 0

    # The panel now shows the output notebook: a banner names the run and links the source;
    # Export and Run are disabled (they would work on the copy); the steps and parameters
    # are the source's, papermill's injected cell ignored (no warning about it).
    wait_for(lambda: copy_name in panel.locator(".nbops-panel-path").inner_text(),
             what="the panel to follow the output notebook")  # fmt: skip
    banner = panel.locator(".nbops-run-output-banner")
    banner.wait_for(timeout=20_000)
    text = banner.inner_text()
    assert f"Output of run {runs[0].run_id}." in text, text
    assert "Export and runs work on the source notebook: pipeline.ipynb" in text, text
    assert panel.locator("button.nbops-export").is_disabled()
    assert panel.locator("button.nbops-run-open").is_disabled()
    assert "source notebook" in (panel.locator("button.nbops-export").get_attribute("title") or "")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == [
        "transform:make_data", "train", "evaluate",
    ]  # fmt: skip
    params = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    assert params == [["n_rows", "int", "40"], ["scale", "float", "2.0"], ["seed", "int", "0"]]
    assert panel.locator(".nbops-warning").count() == 0, panel.inner_text()
    assert panel.locator(".nbops-problem").count() == 0, panel.inner_text()
    page.mouse.move(5, 5)
    page.screenshot(path=str(ARTIFACTS / "lab-run-output.png"))
    panel.screenshot(path=str(ARTIFACTS / "lab-run-output-panel.png"))

    # The source link opens the source notebook, where Export and Run are enabled again.
    banner.locator("a.nbops-source-link").click()
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text="pipeline.ipynb").wait_for()
    wait_for(lambda: panel.locator(".nbops-panel-path").inner_text() == "pipeline.ipynb",
             what="the panel to follow the source notebook")  # fmt: skip
    wait_for(lambda: panel.locator("button.nbops-export").is_enabled(),
             what="Export enabled on the source")  # fmt: skip
    assert panel.locator(".nbops-run-output-banner").count() == 0
    assert panel.locator("button.nbops-run-open").is_enabled()


@needs_server
def test_panel_links_problems_to_cells_and_explains_untagged(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    open_notebook(page, lab, "broken.ipynb", cells=4)
    run_from_palette(
        page, "nbops: Open the pipeline panel", done=lambda: page.locator(PANEL).is_visible()
    )
    panel = page.locator(PANEL)
    problem = panel.locator(".nbops-problem")
    problem.first.wait_for()
    assert "Bad Name" in problem.first.inner_text()
    assert "Fix:" in problem.first.inner_text()
    select_cell(page, 1)
    problem.first.locator(".nbops-cell-link").click()
    wait_for(lambda: "jp-mod-active" in (cell(page, 3).get_attribute("class") or ""),
             what="the problem's cell to be active")  # fmt: skip
    assert page.locator(f"{VISIBLE} .jp-Notebook.jp-mod-commandMode").count() == 1
    page.screenshot(path=str(ARTIFACTS / "lab-panel-problem.png"))

    # An untagged notebook: the panel tells how to start.
    page.locator(".jp-DirListing-item[data-file-type='notebook']", has_text="fresh").dblclick()
    wait_for(lambda: page.locator(".lm-TabBar-tab.lm-mod-current", has_text="fresh").count(),
             what="the untagged notebook's tab")  # fmt: skip
    start = panel.locator(".nbops-start")
    start.wait_for()
    assert "no nbops tags" in start.inner_text()

    # Tag it from the keyboard: the panel says the pipeline is stale until the notebook is
    # saved, then reads it again.
    for index, key in ((1, "1"), (2, "2"), (3, "3")):
        select_cell(page, index)
        page.keyboard.press(f"Control+Shift+Digit{key}")
    wait_role(page, 3, "transform")
    panel.locator(".nbops-dirty:not([hidden])").wait_for()
    page.keyboard.press("Control+S")
    panel.locator(".nbops-step[data-step='transform']").wait_for()
    assert panel.locator(".nbops-start").count() == 0
    assert panel.locator(".nbops-dirty:not([hidden])").count() == 0
