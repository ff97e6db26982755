"""The pipeline panel in a real JupyterLab and chromium: export for Kubeflow Pipelines and
Airflow (the target chosen beside Export, the files it wrote linked and opened in the lab),
the untagged notebook's "start a pipeline" legend laid out at a narrow panel's width, and the
DAG showing the durations and statuses of the run selected in the Runs section.

The notebooks live in a project of their own (`exports/`, with its own run store), so these
runs and exports do not mix with the other browser tests'. The README's screenshots of the
panel (docs/screenshots/panel-light.png and panel-dark.png) are saved here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, REPO, UNTAGGED, Lab, has_labserver, write_notebook
from tests.browser.test_lab import (
    PANEL,
    VISIBLE,
    open_notebook,
    open_panel,
    run_from_palette,
    theme_is,
    wait_for,
)
from tests.helpers import run_nbops

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not has_labserver(),
        reason="the nbops server extension (src/nbops/labserver) is not in this nbops",
    ),
]

FOLDER = "exports"
SCREENSHOTS = REPO / "docs" / "screenshots"
WIDE = 1200  # px: the README screenshots' window, the notebook beside a 380 px panel
NARROW = 300  # px: a right side panel as users leave it, about a fifth of a laptop screen


def project(lab: Lab) -> Path:
    folder = lab.root / FOLDER
    if not folder.is_dir():
        (folder / ".nbops").mkdir(parents=True)  # a project with its own store
        (folder / "pyproject.toml").write_text("[tool.nbops]\n", encoding="utf-8")
    return folder


def set_panel_width(page: Any, width: int) -> None:
    """Drag the handle between the main area and the right side panel until the panel is
    `width` pixels wide, as a user would."""
    panel = page.locator(PANEL)
    for _attempt in range(4):
        box = panel.bounding_box()
        if abs(box["width"] - width) <= 2:
            return
        handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)")
        handles = [handle.nth(i).bounding_box() for i in range(handle.count())]
        near = min(
            (h for h in handles if h and h["width"] > 0),
            key=lambda h: abs(h["x"] + h["width"] - box["x"]),
        )
        x, y = near["x"] + near["width"] / 2, near["y"] + near["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (box["width"] - width), y, steps=5)
        page.mouse.up()
        page.wait_for_timeout(200)
    raise AssertionError(f"the panel is {panel.bounding_box()['width']} px wide, not {width}")


def overflowing(page: Any, selector: str) -> list[str]:
    """The elements under `selector` whose content is wider than they are, or that stick out
    of the panel's body on the right: text clipped or hidden under the scroll bar."""
    return list(
        page.evaluate(
            """(sel) => {
              const body = document.querySelector('#nbops-pipeline-panel .nbops-panel-body');
              const right = body.getBoundingClientRect().right;
              const bad = [];
              for (const el of document.querySelectorAll(sel)) {
                const r = el.getBoundingClientRect();
                if (el.scrollWidth > el.clientWidth + 1 || r.right > right + 0.5) {
                  bad.push(`${el.className || el.tagName}: ${el.textContent.slice(0, 40)}`);
                }
              }
              return bad;
            }""",
            selector,
        )
    )


def test_the_start_legend_is_readable_at_a_narrow_panel(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    write_notebook(project(lab) / "start.ipynb", UNTAGGED)
    open_notebook(page, lab, f"{FOLDER}/start.ipynb", cells=len(UNTAGGED))
    panel = open_panel(page)
    legend = panel.locator(".nbops-start")
    legend.wait_for()
    set_panel_width(page, NARROW)
    page.mouse.move(5, 5)
    ARTIFACTS.mkdir(exist_ok=True)
    legend.screenshot(path=str(ARTIFACTS / "lab-start-legend-narrow.png"))

    items = legend.locator(".nbops-role-list li")
    assert items.count() == 6
    body = panel.locator(".nbops-panel-body").bounding_box()
    for i in range(items.count()):
        item = items.nth(i)
        badge = item.locator(".nbops-badge").bounding_box()
        desc = item.locator(".nbops-role-desc").bounding_box()
        key = item.locator("kbd").bounding_box()
        # Everything inside the panel's body, nothing on top of anything else.
        for part in (badge, desc, key):
            assert part["x"] >= body["x"] - 0.5
            assert part["x"] + part["width"] <= body["x"] + body["width"] + 0.5
        assert badge["x"] + badge["width"] <= desc["x"] or badge["y"] + badge["height"] <= desc["y"]
        assert not (
            key["x"] < desc["x"] + desc["width"]
            and desc["x"] < key["x"] + key["width"]
            and key["y"] < desc["y"] + desc["height"]
            and desc["y"] < key["y"] + key["height"]
        ), f"role {i}: the shortcut overlaps the description"
        # The description keeps a readable measure: not squeezed into a narrow column.
        assert desc["width"] >= 0.55 * body["width"], (i, desc, body)
    assert overflowing(page, f"{PANEL} .nbops-start, {PANEL} .nbops-start *") == []


# Four steps, two transforms told apart by name; a run with n_rows=0 fails in the train step
# (an empty mean), so the evaluate step does not run.
FLOW = [
    ("markdown", "# Export demo", []),
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
    ("code", "model = sum(train_rows) / len(train_rows)", ["train"]),
    (
        "code",
        "error = sum(abs(v - model) for v in test_rows) / max(len(test_rows), 1)\n"
        "nbops.log_metric('error', error)",
        ["evaluate"],
    ),
]
NODES = ".nbops-dag-node"


def nbops_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in the notebook's project, as a user at a terminal."""
    return run_nbops(*args, cwd=project(lab), timeout=180)


def export_for(page: Any, panel: Any, label: str) -> Any:
    """Choose the target beside Export, export, and wait for the result box."""
    panel.locator("select.nbops-export-target").select_option(label=label)
    panel.locator("button.nbops-export").click()
    result = panel.locator(".nbops-export-result")
    title = result.locator(".nbops-export-files-title")

    def done() -> bool:
        exported = bool(title.count()) and title.inner_text() == f"{label}:"
        return exported or bool(panel.locator(".nbops-error").count())

    wait_for(done, timeout=180, what=f"the export for {label}")
    assert panel.locator(".nbops-error").count() == 0, panel.locator(".nbops-error").inner_text()
    return result


def links(result: Any) -> list[str]:
    """The files the result links, by their paths relative to the server root."""
    found = result.locator("a.nbops-export-file")
    return [str(found.nth(i).get_attribute("data-path")) for i in range(found.count())]


def open_tab(page: Any, name: str) -> None:
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=name).wait_for(timeout=30_000)


def back_to(page: Any, panel: Any, notebook: str) -> None:
    page.locator(".lm-TabBar-tab", has_text=notebook.rsplit("/", 1)[-1]).first.click()
    wait_for(lambda: panel.locator(".nbops-panel-path").inner_text() == notebook,
             what="the panel back on the notebook")  # fmt: skip


def test_export_for_kubeflow_and_airflow_links_the_files_it_wrote(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    write_notebook(project(lab) / "flow.ipynb", FLOW)
    notebook = f"{FOLDER}/flow.ipynb"
    open_notebook(page, lab, notebook, cells=len(FLOW))
    panel = open_panel(page)
    panel.locator(NODES).first.wait_for()
    set_panel_width(page, NARROW)

    # The choice sits beside Export: a package alone unless another target is picked.
    picker = panel.locator("select.nbops-export-target")
    assert picker.locator("option").all_inner_texts() == [
        "Package", "Kubeflow Pipelines", "Airflow",
    ]  # fmt: skip
    assert picker.input_value() == "package"

    # Kubeflow Pipelines: the compiled YAML first (the file to upload), then its source.
    result = export_for(page, panel, "Kubeflow Pipelines")
    folder = f"{FOLDER}/pipelines/flow"
    assert links(result) == [f"{folder}/kfp_pipeline.yaml", f"{folder}/kfp_pipeline.py"]
    main = result.locator(".nbops-export-main a.nbops-export-file")
    assert main.get_attribute("data-path") == f"{folder}/kfp_pipeline.yaml"
    # Named from the export folder, which the box names from the server root.
    assert main.inner_text().strip() == "kfp_pipeline.yaml"
    assert result.locator(".nbops-folder").inner_text().strip() == folder
    for path in links(result):
        assert (lab.root / path).is_file(), path
    assert f"Upload {folder}/kfp_pipeline.yaml to Kubeflow Pipelines" in result.inner_text()
    assert str(lab.root) not in result.inner_text()  # paths as the lab names them
    assert overflowing(page, f"{PANEL} .nbops-actions, {PANEL} .nbops-actions *") == []
    page.mouse.move(5, 5)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.locator(".nbops-actions").screenshot(path=str(ARTIFACTS / "lab-export-kfp.png"))
    # A link opens the file in the lab.
    main.click()
    open_tab(page, "kfp_pipeline.yaml")
    back_to(page, panel, notebook)

    # Airflow: the DAG file, and where to put the folder.
    result = export_for(page, panel, "Airflow")
    assert links(result) == [f"{folder}/airflow_dag.py"]
    assert (lab.root / folder / "airflow_dag.py").is_file()
    assert f"Put {folder} in Airflow's DAG folder" in result.inner_text()
    assert overflowing(page, f"{PANEL} .nbops-actions, {PANEL} .nbops-actions *") == []
    page.mouse.move(5, 5)
    panel.locator(".nbops-actions").screenshot(path=str(ARTIFACTS / "lab-export-airflow.png"))
    result.locator("a.nbops-export-file").first.click()
    open_tab(page, "airflow_dag.py")
    back_to(page, panel, notebook)
    # The choice is kept for the notebook.
    assert panel.locator("select.nbops-export-target").input_value() == "airflow"


def step_seconds(record: Any) -> dict[str, float]:
    """Each step's duration in a stored run: its cells' durations summed."""
    sums: dict[str, float] = {}
    for c in record.cells:
        if c.role and c.duration_s is not None:
            sums[c.role] = sums.get(c.role, 0.0) + c.duration_s
    return sums


def shown_seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def test_the_dag_shows_the_durations_and_statuses_of_the_run_selected(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    from nbops.runs.store import RunStore

    write_notebook(project(lab) / "runs.ipynb", FLOW)
    notebook = f"{FOLDER}/runs.ipynb"
    ok = nbops_cli(lab, "run", "runs.ipynb")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    failed = nbops_cli(lab, "run", "runs.ipynb", "-p", "n_rows", "0")
    assert failed.returncode != 0, failed.stdout
    records = {
        r.status: r
        for r in RunStore(project(lab) / ".nbops").list()
        if r.notebook.endswith("runs.ipynb")
    }
    good, bad = records["completed"], records["failed"]

    open_notebook(page, lab, notebook, cells=len(FLOW))
    panel = open_panel(page)
    panel.locator(NODES).first.wait_for()
    items = panel.locator(".nbops-runs-item")
    wait_for(lambda: items.count() == 2, timeout=30, what="the two runs listed")
    # No run selected, none made here: the DAG shows no outcome.
    assert panel.locator(f"{NODES} .nbops-dag-run").count() == 0
    assert panel.locator(".nbops-dag-caption").count() == 0

    def node(key: str) -> Any:
        return panel.locator(f"{NODES}[data-step='{key}']")

    def status_of(key: str) -> str:
        found = [c for c in (node(key).get_attribute("class") or "").split() if "status" in c]
        return found[0] if found else ""

    # The failed run: the steps before the failure ok with their durations, train failed,
    # evaluate not run.
    panel.locator(f".nbops-runs-item[data-run-id='{bad.run_id}']").click(position={"x": 60, "y": 8})
    wait_for(lambda: status_of("train") == "nbops-dag-status-error",
             what="the selected run's statuses in the DAG")  # fmt: skip
    assert status_of("transform:features") == "nbops-dag-status-ok"
    assert status_of("evaluate") == "nbops-dag-status-not-run"
    seconds = step_seconds(bad)
    text = node("transform:features").locator(".nbops-dag-run").text_content()
    assert text == f"✓ ok · {shown_seconds(seconds['transform:features'])}"
    assert node("evaluate").locator(".nbops-dag-run").text_content() == "– not run"
    caption = panel.locator(".nbops-dag-caption")
    assert caption.inner_text() == (
        f"Durations and status from run {bad.run_id.rsplit('-', 1)[-1]} (selected in Runs)"
    )

    # The completed run instead: every step ok, with that run's own durations.
    panel.locator(f".nbops-runs-item[data-run-id='{bad.run_id}']").click(position={"x": 60, "y": 8})
    panel.locator(f".nbops-runs-item[data-run-id='{good.run_id}']").click(
        position={"x": 60, "y": 8}
    )
    wait_for(lambda: status_of("evaluate") == "nbops-dag-status-ok", what="the other run's DAG")
    seconds = step_seconds(good)
    for key in ("transform:features", "transform:split", "train", "evaluate"):
        assert status_of(key) == "nbops-dag-status-ok", key
        expected = f"✓ ok · {shown_seconds(seconds[key])}"
        assert node(key).locator(".nbops-dag-run").text_content() == expected, key
    assert good.run_id.rsplit("-", 1)[-1] in caption.inner_text()

    # Two selected (a comparison): no single run to show.
    panel.locator(f".nbops-runs-item[data-run-id='{bad.run_id}']").click(position={"x": 60, "y": 8})
    wait_for(lambda: panel.locator(f"{NODES} .nbops-dag-run").count() == 0,
             what="the DAG without a run's outcome")  # fmt: skip


def test_readme_screenshots_show_the_whole_panel_after_a_run(page: Any, lab: Lab) -> None:
    """docs/screenshots/panel-light.png and panel-dark.png: the penguins example in the lab,
    its panel whole (the DAG with each step's outcome, the run's metrics, the export's files,
    the Runs list), light and dark."""
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    source = REPO / "example_notebooks" / "penguins.ipynb"
    (project(lab) / "penguins.ipynb").write_bytes(source.read_bytes())
    notebook = f"{FOLDER}/penguins.ipynb"
    page.set_viewport_size({"width": WIDE, "height": 1000})
    open_notebook(page, lab, notebook, cells=10)
    # The file browser folded away: the notebook beside the panel is the picture.
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    panel = open_panel(page)
    panel.locator(NODES).first.wait_for()
    set_panel_width(page, 380)

    panel.locator("button.nbops-run-open").click()
    panel.locator(".nbops-run-form input[name='n_estimators']").wait_for()
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=300, what="the penguins run to finish")  # fmt: skip
    assert status.inner_text() == "completed", panel.inner_text()
    nodes = panel.locator(NODES)
    wait_for(lambda: panel.locator(f"{NODES}.nbops-dag-status-ok").count() == nodes.count(),
             what="every step's outcome in the DAG")  # fmt: skip
    wait_for(lambda: panel.locator(".nbops-runs-item").count() == 1, what="the run listed")
    export_for(page, panel, "Kubeflow Pipelines")

    # Tall enough that the whole panel shows, nothing scrolled out of sight.
    # (the panel sits between the menu bar and the status bar).
    height = panel.evaluate("(el) => el.scrollHeight + (innerHeight - el.clientHeight)")
    page.set_viewport_size({"width": WIDE, "height": min(int(height) + 8, 2600)})
    wait_for(lambda: panel.evaluate("(el) => el.scrollHeight <= el.clientHeight + 1"),
             what="the whole panel in view")  # fmt: skip
    page.locator(f"{VISIBLE} .jp-Notebook").evaluate("(el) => el.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(f"{VISIBLE} .jp-Cell").nth(2).locator(".jp-InputPrompt").first.click()
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "panel-light.png"))
    run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.mouse.move(5, 5)
    page.wait_for_timeout(700)  # the theme's stylesheet applied
    page.screenshot(path=str(SCREENSHOTS / "panel-dark.png"))
    run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")
    for name in ("panel-light.png", "panel-dark.png"):
        assert (SCREENSHOTS / name).stat().st_size > 50_000, name
