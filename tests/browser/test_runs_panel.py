"""The pipeline panel's Runs section in a real JupyterLab and chromium: the notebook's runs come
from the run store, so they survive a page reload and include runs made on the command line;
a run is opened, re-run and bundled from the list (a second Build shows the same bundle),
and two runs are compared as `nbops runs compare` prints them.

The notebook lives in a project of its own (`runsdemo/`, its own store), so the runs of the
other browser tests do not mix with these. The timings a user sees are written to
test-artifacts/runs-panel-timings.json.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Lab, write_notebook
from tests.browser.test_lab import (
    VISIBLE,
    cell,
    needs_server,
    open_notebook,
    open_panel,
    run_from_palette,
    theme_is,
    wait_for,
)
from tests.helpers import run_nbops

pytestmark = pytest.mark.slow

FOLDER = "runsdemo"

# A small classifier with parameters: the train step fits a model nbops captures.
IRIS = [
    ("markdown", "# Iris runs", []),
    (
        "code",
        "import nbops\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.neighbors import KNeighborsClassifier",
        ["setup"],
    ),
    ("code", "n_neighbors = 3\ntest_size = 0.3", ["parameters"]),
    (
        "code",
        "iris = load_iris(as_frame=True)\nX, y = iris.data, iris.target\n"
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=test_size, random_state=0\n)",
        ["transform"],
    ),
    (
        "code",
        "knn = KNeighborsClassifier(n_neighbors=n_neighbors)\nknn.fit(X_train, y_train)",
        ["train"],
    ),
    (
        "code",
        "accuracy = knn.score(X_test, y_test)\nnbops.log_metric('accuracy', accuracy)",
        ["evaluate"],
    ),
]
TRAIN_CELL = 4


def nbops_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in the notebook's project, as a user at a terminal."""
    return run_nbops(*args, cwd=lab.root / FOLDER, timeout=180)


def rows(panel: Any) -> Any:
    return panel.locator(".nbops-runs-item")


def row_ids(panel: Any) -> list[str]:
    items = rows(panel)
    return [str(items.nth(i).get_attribute("data-run-id")) for i in range(items.count())]


def select_only(panel: Any, run_ids: list[str]) -> None:
    """Tick exactly these runs' boxes (unticking the others), in this order."""
    for run_id in row_ids(panel):
        row = panel.locator(f".nbops-runs-item[data-run-id='{run_id}']")
        if row.get_attribute("aria-selected") == "true" and run_id not in run_ids:
            row.locator(".nbops-run-select").click()
    for run_id in run_ids:
        row = panel.locator(f".nbops-runs-item[data-run-id='{run_id}']")
        if row.get_attribute("aria-selected") != "true":
            row.click(position={"x": 60, "y": 8})
        wait_for(lambda r=row: r.get_attribute("aria-selected") == "true",
                 what=f"run {run_id} selected")  # fmt: skip


def runs_in_store(lab: Lab) -> list[Any]:
    from nbops.runs.store import RunStore

    return RunStore(lab.root / FOLDER / ".nbops").list()


@needs_server
def test_runs_persist_and_are_opened_compared_rerun_and_bundled(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    timings: dict[str, float] = {}
    folder = lab.root / FOLDER
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    write_notebook(folder / "iris.ipynb", IRIS)
    notebook = f"{FOLDER}/iris.ipynb"

    # A run made on the command line before the notebook is opened.
    ran = nbops_cli(lab, "run", "iris.ipynb", "-p", "n_neighbors", "5")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [cli_run] = runs_in_store(lab)

    start = time.monotonic()
    open_notebook(page, lab, notebook, cells=len(IRIS))
    panel = open_panel(page)
    wait_for(lambda: rows(panel).count() == 1, timeout=30, what="the command line's run listed")
    timings["panel open to runs listed (s)"] = time.monotonic() - start
    first = rows(panel).first
    assert first.get_attribute("data-run-id") == cli_run.run_id
    text = first.inner_text()
    assert "completed" in text
    assert "n_neighbors=5" in text  # differs from the default 3
    assert "test_size" not in text  # the default is not repeated
    assert "accuracy" in text
    assert panel.locator(".nbops-runs .nbops-section-title").inner_text() == "Runs (1)"

    # A run from the panel (the defaults) joins the list when it ends.
    start = time.monotonic()
    panel.locator("button.nbops-run-open").click()
    panel.locator(".nbops-run-form input[name='n_neighbors']").wait_for()
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=180, what="the panel's run to finish")  # fmt: skip
    assert status.inner_text() == "completed", panel.inner_text()
    wait_for(lambda: rows(panel).count() == 2, timeout=30, what="the panel's run listed")
    timings["panel run: start to listed (s)"] = time.monotonic() - start
    panel_run = row_ids(panel)[0]
    assert "default parameters" in rows(panel).first.inner_text()

    # A reload forgets the browser's state, not the runs: they come from the store.
    start = time.monotonic()
    page.reload()
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[f"{VISIBLE} .jp-Notebook .jp-Cell", len(IRIS)],
        timeout=60_000,
    )
    panel = open_panel(page)
    wait_for(lambda: row_ids(panel) == [panel_run, cli_run.run_id], timeout=30,
             what="both runs listed after the reload")  # fmt: skip
    timings["reload to runs listed (s)"] = time.monotonic() - start

    # A failing run on the command line while the page is open: Reload shows it, with the
    # cell that failed, linked to the notebook.
    failed = nbops_cli(lab, "run", "iris.ipynb", "-p", "n_neighbors", "0")
    assert failed.returncode != 0, failed.stdout
    start = time.monotonic()
    panel.locator("button.nbops-runs-refresh").click()
    wait_for(lambda: rows(panel).count() == 3, timeout=30, what="the failed run listed")
    timings["CLI run to listed after Reload (s)"] = time.monotonic() - start
    failed_row = rows(panel).first
    failed_id = str(failed_row.get_attribute("data-run-id"))
    assert "failed" in failed_row.inner_text()
    link = failed_row.locator(".nbops-run-failure .nbops-cell-link")
    assert link.inner_text() == f"cell {TRAIN_CELL + 1}"
    assert "n_neighbors" in failed_row.locator(".nbops-run-failure").inner_text()  # the error
    link.click()
    wait_for(lambda: "jp-mod-active" in (cell(page, TRAIN_CELL).get_attribute("class") or ""),
             what="the failing cell to be active")  # fmt: skip

    # A failed run cannot be bundled, and says why.
    select_only(panel, [failed_id])
    bundle = panel.locator("button.nbops-runs-bundle")
    assert bundle.is_disabled()
    assert "completed run" in panel.locator(".nbops-runs-blocked").inner_text()

    # Two runs side by side: the parameter that differs is marked, as the CLI prints it.
    start = time.monotonic()
    select_only(panel, [cli_run.run_id, panel_run])
    table = panel.locator(".nbops-compare-table")
    table.wait_for(timeout=20_000)
    timings["select two to comparison (s)"] = time.monotonic() - start
    n_neighbors = table.locator("tr[data-kind='param'][data-name='n_neighbors']")
    assert "nbops-differs" in (n_neighbors.get_attribute("class") or "")
    assert n_neighbors.locator("td").all_inner_texts() == ["*", "param n_neighbors", "5", "3"]
    size = table.locator("tr[data-kind='param'][data-name='test_size']")
    assert "nbops-differs" not in (size.get_attribute("class") or "")
    assert table.locator("tr[data-kind='metric'][data-name='accuracy']").count() == 1
    page.mouse.move(5, 5)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "lab-runs-compare.png"))

    # One run: build its bundle (the model nbops captured from the train step); a second
    # click shows the same bundle, and no second version is made.
    select_only(panel, [cli_run.run_id])
    assert bundle.is_enabled(), panel.inner_text()
    start = time.monotonic()
    bundle.click()
    message = panel.locator(".nbops-runs-message")
    wait_for(lambda: message.count() and "Bundle built in" in message.inner_text(),
             timeout=180, what="the bundle to be built")  # fmt: skip
    timings["build bundle (s)"] = time.monotonic() - start
    built = message.locator(".nbops-folder").inner_text().strip()
    assert (lab.root / built / "manifest.json").is_file(), built
    wait_for(lambda: bundle.inner_text() == "Show bundle", what="the button to show the bundle")
    bundle.click()
    wait_for(lambda: "built from this run" in message.inner_text(), what="the existing bundle")
    assert message.locator(".nbops-folder").inner_text().strip() == built
    assert [p.name for p in (folder / "bundles").iterdir() if p.is_dir()] == [built.split("/")[-1]]

    # Open its output notebook: a visible copy in nbops-runs/, in a tab of its own.
    start = time.monotonic()
    panel.locator("button.nbops-runs-open").click()
    copy_name = f"iris-{cli_run.run_id.rsplit('-', 1)[-1]}.ipynb"
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=copy_name).wait_for(timeout=30_000)
    wait_for(lambda: "n_neighbors = 5" in page.locator(VISIBLE).inner_text(),
             what="the output notebook's injected parameters")  # fmt: skip
    timings["open output notebook (s)"] = time.monotonic() - start
    assert (folder / "nbops-runs" / copy_name).is_file()
    # Shown there, the panel lists the source notebook's runs.
    wait_for(lambda: rows(panel).count() == 3, what="the source's runs beside its output")

    # Back on the notebook: re-run the command line's run (same parameters) from the list.
    page.locator(".lm-TabBar-tab", has_text="iris.ipynb").first.click()
    wait_for(lambda: panel.locator(".nbops-panel-path").inner_text() == notebook,
             what="the panel back on the notebook")  # fmt: skip
    wait_for(lambda: rows(panel).count() == 3, what="the runs listed")
    select_only(panel, [cli_run.run_id])
    start = time.monotonic()
    panel.locator("button.nbops-runs-rerun").click()
    job = panel.locator(".nbops-runs-job-status")
    wait_for(lambda: job.count() and job.inner_text() in {"completed", "failed"},
             timeout=180, what="the re-run to finish")  # fmt: skip
    assert job.inner_text() == "completed", panel.inner_text()
    wait_for(lambda: rows(panel).count() == 4, timeout=30, what="the re-run listed")
    timings["re-run: click to result (s)"] = time.monotonic() - start
    newest = rows(panel).first
    assert "re-run" in newest.inner_text()
    assert "n_neighbors=5" in newest.inner_text()
    # What the section says names files as the lab does, never by the server's paths.
    assert str(lab.root) not in panel.locator(".nbops-runs").inner_text()
    rerun = runs_in_store(lab)[0]
    assert rerun.rerun_of == cli_run.run_id
    assert rerun.parameters["n_neighbors"] == 5

    # Screenshots of the section with a comparison, light and dark.
    select_only(panel, [cli_run.run_id, panel_run])
    section = panel.locator(".nbops-runs")
    section.locator(".nbops-compare-table").wait_for()
    page.mouse.move(5, 5)
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "lab-runs.png"))
    section.screenshot(path=str(ARTIFACTS / "lab-runs-section.png"))
    run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)  # the theme's stylesheet applied
    section.scroll_into_view_if_needed()
    section.screenshot(path=str(ARTIFACTS / "lab-runs-section-dark.png"))
    run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")

    (ARTIFACTS / "runs-panel-timings.json").write_text(
        json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2) + "\n"
    )
    print(json.dumps(timings, indent=2))
