"""The panel's run form in a real JupyterLab and chromium: it opens in view (a small window),
has a field of the right kind per parameter, refuses a bad number before any run starts,
shows the run's progress cell by cell while it goes, the gate verdicts at the end, a hint when
the run recorded no metrics, and offers Build bundle only for a run with a model.

The notebooks live in projects of their own (`formgates/`, with gates; `formplain/`, without),
so the runs of the other browser tests do not mix with these. The waiting cells wait on files
the test creates: the test sees the run inside each of them without timing guesses.
Screenshots go to docs/screenshots/ (run-form-light.png, run-progress-dark.png,
run-result-light.png).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import REPO, Lab, write_notebook
from tests.browser.test_lab import (
    PANEL,
    needs_server,
    open_notebook,
    open_panel,
    run_from_palette,
    scroll_into_view,
    theme_is,
    wait_for,
)
from tests.browser.test_runs_panel import IRIS

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "docs" / "screenshots"
GATES = ["score >= 1", "score >= 100"]

# Two steps that each wait for a file, so the run is seen in one, then in the next.
WAITING = [
    ("markdown", "# Run form demo", []),
    ("code", "import os\nimport time\n\nimport nbops", ["setup"]),
    (
        "code",
        "n_rows = 30  # rows to make\nscale = 1.5\nverbose = False\nlabel = 'demo'\n"
        "first_flag = 'first.flag'\nsecond_flag = 'second.flag'",
        ["parameters"],
    ),
    (
        "code",
        "def wait(flag):\n    deadline = time.time() + 600\n"
        "    while not os.path.exists(flag) and time.time() < deadline:\n        time.sleep(0.05)",
        ["setup"],
    ),
    ("code", "wait(first_flag)\nrows = [i * scale for i in range(n_rows)]", ["transform:first"]),
    ("code", "wait(second_flag)\nhalf = rows[: len(rows) // 2]", ["transform:second"]),
    ("code", "total = sum(half)", ["train"]),
    (
        "code",
        "score = total / max(len(half), 1)\nif verbose:\n    print(label, score)\n"
        "nbops.log_metric('score', score)",
        ["evaluate"],
    ),
]

# Logs nothing, and no step computes a value nbops takes for a metric.
SILENT = [
    ("markdown", "# Silent", []),
    ("code", "items = [3, 1, 2]", ["transform"]),
    ("code", "ordered = sorted(items)", ["train"]),
]


def project(lab: Lab, name: str, gates: list[str] | None = None) -> Path:
    folder = lab.root / name
    folder.mkdir(exist_ok=True)
    lines = ["[tool.nbops]"] + ([f"gates = {gates!r}".replace("'", '"')] if gates else [])
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def runs_in_store(folder: Path) -> list[Any]:
    from nbops.runs.store import RunStore

    if not (folder / ".nbops" / "runs.db").exists():
        return []
    return RunStore(folder / ".nbops").list()


def jobs(lab: Lab) -> int:
    status, body = lab.get("nbops/api/runs")
    assert status == 200, body
    return len(body["jobs"])


def open_form(page: Any, lab: Lab, notebook: str, cells: int) -> Any:
    open_notebook(page, lab, notebook, cells=cells)
    panel = open_panel(page)
    panel.locator(".nbops-step").first.wait_for(timeout=30_000)
    panel.locator("button.nbops-run-open").click()
    panel.locator(".nbops-run-form .nbops-run-start").wait_for()
    return panel


def run_to_end(panel: Any) -> str:
    panel.locator("button.nbops-run-start").click()
    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.count() and status.inner_text() in {"completed", "failed"},
             timeout=180, what="the run to end")  # fmt: skip
    return str(status.inner_text())


def inside(outer: dict[str, float], inner: dict[str, float]) -> bool:
    return (
        inner["y"] >= outer["y"] - 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
        and inner["x"] >= outer["x"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
    )


@needs_server
def test_the_form_opens_in_view_with_a_field_per_type_and_refuses_a_bad_number(
    page: Any, lab: Lab
) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    folder = project(lab, "formgates", GATES)
    write_notebook(folder / "waiting.ipynb", WAITING)
    page.set_viewport_size({"width": 1100, "height": 540})
    panel = open_form(page, lab, "formgates/waiting.ipynb", cells=len(WAITING))

    # In view: the whole form, within the window and within the panel's visible part.
    form = panel.locator(".nbops-run-form")
    viewport = {"x": 0, "y": 0, "width": 1100, "height": 540}
    wait_for(lambda: inside(viewport, form.bounding_box()) and
             inside(panel.bounding_box(), form.bounding_box()),
             what=f"the form in view: {form.bounding_box()} in {panel.bounding_box()}")  # fmt: skip
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(5, 5)
    panel.screenshot(path=str(SCREENSHOTS / "run-form-light.png"))

    def field(name: str) -> Any:
        return form.locator(f"input[name='{name}']")

    kinds = {
        name: (field(name).get_attribute("type"), field(name).get_attribute("step"))
        for name in ("n_rows", "scale", "verbose", "label", "first_flag")
    }
    assert kinds == {
        "n_rows": ("number", "1"),
        "scale": ("number", "any"),
        "verbose": ("checkbox", None),
        "label": ("text", None),
        "first_flag": ("text", None),
    }
    assert field("n_rows").input_value() == "30"
    assert field("scale").input_value() == "1.5"
    assert not field("verbose").is_checked()

    # Not a number (chromium keeps "1e" as bad input): refused in one line, nothing runs.
    before = jobs(lab)
    field("n_rows").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("1e")
    panel.locator("button.nbops-run-start").click()
    invalid = panel.locator(".nbops-run-invalid")
    invalid.wait_for()
    assert invalid.inner_text().startswith("Not started: n_rows expects a whole number (int)")
    assert "\n" not in invalid.inner_text().strip()
    assert field("n_rows").get_attribute("aria-invalid") == "true"
    # A fraction for an int is refused as well.
    field("n_rows").fill("2.5")
    panel.locator("button.nbops-run-start").click()
    wait_for(lambda: "not 2.5" in invalid.inner_text(), what="the fraction refused")
    assert jobs(lab) == before
    assert runs_in_store(folder) == []
    assert panel.locator(".nbops-run-result").count() == 0


@needs_server
def test_a_run_shows_its_progress_cell_by_cell_then_the_gates(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    folder = project(lab, "formgates", GATES)
    write_notebook(folder / "waiting.ipynb", WAITING)
    for flag in ("first.flag", "second.flag"):
        (folder / flag).unlink(missing_ok=True)
    panel = open_form(page, lab, "formgates/waiting.ipynb", cells=len(WAITING))
    panel.locator(".nbops-run-form input[name='n_rows']").fill("20")
    before = jobs(lab)
    panel.locator("button.nbops-run-start").click()
    wait_for(lambda: jobs(lab) > before, timeout=60, what="the click to start a run job")

    text = panel.locator(".nbops-run-progress-text")
    step = panel.locator(".nbops-run-step")

    def status_of(name: str) -> str | None:
        found = panel.locator(f".nbops-run-step[data-step='{name}']")
        return found.get_attribute("data-status") if found.count() else None

    # Code cells 1-3 (setup, parameters, setup) ran; the 4th (notebook cell 5) waits.
    # Under load (CI: four workers on two cores) the job's process and kernel start slowly;
    # the waiting cell waits for its flag for up to 10 minutes.
    try:
        wait_for(lambda: text.count() and "transform:first" in text.inner_text(), timeout=300,
                 what="the run inside the first waiting cell")  # fmt: skip
    except AssertionError as error:
        status, body = lab.get("nbops/api/runs")
        raise AssertionError(
            f"{error}\npanel: {panel.inner_text()!r}\njobs ({status}): {json.dumps(body)[:4000]}"
        ) from None
    first = text.inner_text()
    assert first.startswith("Cell 4 of 7 running (cell 5 · transform:first)"), first
    assert status_of("setup") == "done" and status_of("transform:first") == "running"
    assert status_of("train") == "pending"
    assert step.count() == 6  # setup (two cells), parameters, two transforms, train, evaluate

    # The dark theme, with the run still inside its first waiting cell.
    try:
        run_from_palette(page, "Use Theme: JupyterLab Dark", done=theme_is(page, dark=True))
        page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
        page.mouse.move(5, 5)
        page.wait_for_timeout(500)  # the theme's stylesheet applied
        assert "transform:first" in text.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        scroll_into_view(panel.locator(".nbops-run-result"))
        page.locator(PANEL).screenshot(path=str(SCREENSHOTS / "run-progress-dark.png"))
    finally:
        run_from_palette(page, "Use Theme: JupyterLab Light", done=theme_is(page, dark=False))
        page.wait_for_selector("body[data-jp-theme-light='true']", state="attached")

    (folder / "first.flag").touch()
    wait_for(lambda: "transform:second" in text.inner_text(), timeout=60,
             what="the run to move on to the second waiting cell")  # fmt: skip
    assert text.inner_text().startswith("Cell 5 of 7 running (cell 6 · transform:second)")
    assert status_of("transform:first") == "done"
    (folder / "second.flag").touch()

    status = panel.locator(".nbops-run-status")
    wait_for(lambda: status.inner_text() in {"completed", "failed"}, timeout=120,
             what="the run to end")  # fmt: skip
    assert status.inner_text() == "completed", panel.inner_text()
    assert text.inner_text() == "7 of 7 code cells ran"
    assert {status_of(s) for s in ("setup", "transform:first", "evaluate")} == {"done"}

    # The project's gates, checked against the run's metrics: one passes, one fails.
    gates = panel.locator(".nbops-run-gates-result .nbops-gate")
    wait_for(lambda: gates.count() == 2, what="the gate verdicts")
    verdicts = {g.get_attribute("data-gate"): g.get_attribute("data-passed") for g in gates.all()}
    assert verdicts == {"score >= 1": "true", "score >= 100": "false"}
    assert "1 of 2 failed" in panel.locator(".nbops-gates-summary").inner_text()
    assert "needs >= 100" in gates.nth(1).inner_text()
    assert panel.locator(".nbops-no-metrics").count() == 0  # it logged its score
    page.mouse.move(5, 5)
    panel.locator(".nbops-actions").screenshot(path=str(SCREENSHOTS / "run-result-light.png"))

    # No model in this run: Build bundle is disabled, and says why.
    bundle = panel.locator("button.nbops-bundle")
    assert bundle.is_disabled()
    assert "no model" in (bundle.get_attribute("title") or "")
    assert "log_model" in panel.locator(".nbops-bundle-blocked").inner_text()
    [run] = runs_in_store(folder)
    assert run.parameters["n_rows"] == 20


@needs_server
def test_a_run_with_no_metrics_says_how_to_get_them(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    folder = project(lab, "formplain")
    write_notebook(folder / "silent.ipynb", SILENT)
    panel = open_form(page, lab, "formplain/silent.ipynb", cells=len(SILENT))
    assert panel.locator(".nbops-run-form").inner_text().count("no parameters") == 1
    assert run_to_end(panel) == "completed", panel.inner_text()
    hint = panel.locator(".nbops-no-metrics")
    hint.wait_for()
    assert "This run recorded no metrics." in hint.inner_text()
    assert 'nbops.log_metric("name", value)' in hint.inner_text()
    assert "evaluate" in hint.inner_text()
    assert "No gates to check" in panel.locator(".nbops-no-gates").inner_text()


@needs_server
def test_build_bundle_is_offered_for_a_run_with_a_model(page: Any, lab: Lab) -> None:
    assert lab.server_api, f"the nbops API does not answer; server log:\n{lab.log.read_text()}"
    folder = project(lab, "formplain")
    write_notebook(folder / "iris.ipynb", IRIS)
    panel = open_form(page, lab, "formplain/iris.ipynb", cells=len(IRIS))
    bundle = panel.locator("button.nbops-bundle")
    assert bundle.is_disabled()  # no run yet
    assert run_to_end(panel) == "completed", panel.inner_text()
    wait_for(lambda: bundle.is_enabled(), what="Build bundle enabled by the run's model")
    assert panel.locator(".nbops-bundle-blocked").count() == 0
    assert "Build a deployable bundle" in (bundle.get_attribute("title") or "")
