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
import sys
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
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not has_labserver(),
        reason="the nbops server extension (src/nbops/labserver) is not in this nbops",
    ),
]

FOLDER = "exports"
SCREENSHOTS = REPO / "docs" / "screenshots"
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
