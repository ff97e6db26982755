"""What a user sees of the extension, in the light and the dark theme, in a real JupyterLab
and browser: the inspector's tables and the cells' role bars and badges read in both themes
(measured from the computed styles: WCAG contrast ratios), a click on a badge opens the role
menu, the palette shows the nbops commands' shortcuts and lists them first for "nbops", and
the keyboard works in the notebook again after the named-step dialog.

Screenshots for the docs go to docs/screenshots/ (inspector-light.png, inspector-dark.png,
badge-menu-dark.png).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, REPO, Lab, write_notebook
from tests.browser.test_lab import (
    CELLS,
    VISIBLE,
    cell,
    dialog_open,
    notebook_tags,
    open_notebook,
    role_of,
    run_from_palette,
    save_and_wait,
    select_cell,
    theme_is,
    wait_for,
    wait_role,
)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "docs" / "screenshots"
ROLE_MENU = ".lm-Menu.nbops-role-menu"

# Every role once, for the bars and badges.
ALL_ROLES = [("markdown", "# Roles", [])] + [
    ("code", f"value_{i} = {i}", [tag])
    for i, tag in enumerate(
        ["setup", "parameters", "transform", "train", "evaluate", "skip", "transform:features"]
    )
]

# A small inspection: a planted drift fails a data check and a gate; another gate passes.
INSPECTED = [
    ("markdown", "# Inspection", []),
    (
        "code",
        "import numpy as np\nimport pandas as pd\nimport nbops\n\n"
        "rng = np.random.default_rng(0)\n"
        "reference = pd.DataFrame({'x': rng.normal(size=300), 'size': rng.normal(10, 1, size=300)})\n"
        "current = reference.copy()\ncurrent['size'] = current['size'] + 3\n"
        "nbops.inspect(current, reference, plots=False,\n"
        "              gates=['data.drifted_columns == 0', 'data.failed_checks <= 99'])",
        [],
    ),
]

# The colour maths, in the page: any CSS colour (rgb(), color(srgb ...), color-mix results)
# is painted on a 1x1 canvas and read back; translucent layers are composed over the
# ancestors' backgrounds down to the first opaque one.
CONTRAST_JS = """
() => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const rgba = css => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = '#000';
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, below) => top.slice(0, 3).map((v, i) => v * top[3] + below[i] * (1 - top[3]));
  const background = el => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) {
        layers.push(c);
        if (c[3] >= 1) break;
      }
    }
    let colour = [255, 255, 255];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const luminance = c => {
    const [r, g, b] = c.map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  window.nbopsColour = {
    rgba, background, ratio,
    // Text colour against the background it is painted on.
    text: el => {
      const bg = background(el);
      return ratio(over(rgba(getComputedStyle(el).color), bg), bg);
    },
    // A colour (e.g. a border) against the background of `el`.
    against: (css, el) => {
      const bg = background(el);
      return ratio(over(rgba(css), bg), bg);
    },
    css: el => background(el).map(Math.round).join(',')
  };
}
"""


def install_colour_maths(page: Any) -> None:
    page.evaluate(CONTRAST_JS)


def use_theme(page: Any, dark: bool) -> None:
    name = "Dark" if dark else "Light"
    run_from_palette(page, f"Use Theme: JupyterLab {name}", done=theme_is(page, dark=dark))
    page.wait_for_selector(f"body[data-jp-theme-light='{'false' if dark else 'true'}']",
                           state="attached")  # fmt: skip
    # The theme's stylesheet is applied once the layout colour is the theme's.
    want = "#111" if dark else "white"
    page.wait_for_function(
        "want => getComputedStyle(document.body).getPropertyValue('--jp-layout-color0')"
        ".trim().toLowerCase() === want",
        arg=want,
    )
    install_colour_maths(page)


def focus_in_notebook(page: Any) -> bool:
    return bool(
        page.evaluate(
            """sel => {
              const active = document.activeElement;
              const notebook = document.querySelector(sel);
              return !!active && !!notebook && notebook.contains(active) &&
                notebook.classList.contains('jp-mod-commandMode');
            }""",
            f"{VISIBLE} .jp-Notebook",
        )
    )


def active_index(page: Any) -> int:
    return int(
        page.evaluate(
            "sel => [...document.querySelectorAll(sel)].findIndex("
            "c => c.classList.contains('jp-mod-active'))",
            CELLS,
        )
    )


def save(page: Any, path: Path) -> None:
    save_and_wait(page, path)


# -- the inspector ------------------------------------------------------------------------


def table_rows(output: Any, header: str) -> Any:
    return output.locator(f"table:has(th:text-is('{header}')) tr:has(td)")


def check_rows_read(page: Any, rows: Any, what: str) -> set[str]:
    """Every row's cells reach 4.5:1 (WCAG AA text) against the row; returns the rows'
    backgrounds (so pass and fail rows can be told apart)."""
    assert rows.count() >= 2, f"{what}: too few rows"
    backgrounds = set()
    for i in range(rows.count()):
        row = rows.nth(i)
        for j in range(row.locator("td").count()):
            td = row.locator("td").nth(j)
            ratio = td.evaluate("el => nbopsColour.text(el)")
            assert ratio >= 4.5, f"{what} row {i} cell {j}: contrast {ratio:.2f}"
            border = td.evaluate(
                "el => nbopsColour.against(getComputedStyle(el).borderBottomColor, el)"
            )
            assert border > 1.2, f"{what} row {i}: the cell border does not show ({border:.2f})"
        backgrounds.add(row.evaluate("el => nbopsColour.css(el)"))
    return backgrounds


def run_cell(page: Any, index: int) -> None:
    """Run a cell in place (Ctrl+Enter). A run asked for before the notebook's session has
    its kernel starts one, or asks which (then: the preferred one), and runs nothing: so
    try again until the prompt shows the cell running or run."""
    prompt = cell(page, index).locator(".jp-InputPrompt")
    dialog = page.locator(".jp-Dialog")
    for _attempt in range(6):
        select_cell(page, index)
        page.keyboard.press("Control+Enter")
        try:
            wait_for(lambda: re.search(r"\[(\*|\d+)\]", prompt.inner_text()), timeout=10,
                     what=f"cell {index} to run")  # fmt: skip
            return
        except AssertionError:
            if dialog.count():
                dialog.locator(".jp-mod-accept").click()
                dialog.wait_for(state="detached")
    raise AssertionError(f"cell {index} did not run")


def test_inspector_tables_read_in_the_dark_and_light_theme(page: Any, lab: Lab) -> None:
    page.set_viewport_size({"width": 1400, "height": 1300})  # the whole inspector in view
    write_notebook(lab.root / "inspected.ipynb", INSPECTED)
    open_notebook(page, lab, "inspected.ipynb", cells=2)
    run_cell(page, 1)
    output = cell(page, 1).locator(".jp-OutputArea-output")
    data_rows = table_rows(output, "check")
    data_rows.first.wait_for(timeout=120_000)
    gates_tab = output.locator(".lm-TabBar-tab", has_text="Gates")
    data_tab = output.locator(".lm-TabBar-tab", has_text="Data")
    gate_rows = table_rows(output, "gate")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    for dark in (True, False):
        theme = "dark" if dark else "light"
        use_theme(page, dark)
        data_tab.click()
        data_rows.first.wait_for()
        shades = check_rows_read(page, data_rows, f"{theme} Data table")
        assert len(shades) >= 2, f"{theme}: failed and passed checks look the same"
        page.mouse.move(5, 5)
        output.first.screenshot(path=str(SCREENSHOTS / f"inspector-{theme}.png"))
        gates_tab.click()
        gate_rows.first.wait_for()
        shades = check_rows_read(page, gate_rows, f"{theme} Gates table")
        assert len(shades) == 2, f"{theme}: the failing and the passing gate look the same"
        verdict = output.locator("h3", has_text="Verdict")
        ratio = verdict.evaluate("el => nbopsColour.text(el)")
        assert ratio >= 3, f"{theme}: the verdict's contrast is {ratio:.2f}"
        output.first.screenshot(path=str(SCREENSHOTS / f"inspector-gates-{theme}.png"))


# -- role bars and badges -----------------------------------------------------------------


def test_role_bars_and_badges_read_in_both_themes(page: Any, lab: Lab) -> None:
    write_notebook(lab.root / "roles.ipynb", ALL_ROLES)
    open_notebook(page, lab, "roles.ipynb", cells=8)
    select_cell(page, 0)  # no tagged cell active or selected: their own colours show
    for dark in (True, False):
        theme = "dark" if dark else "light"
        use_theme(page, dark)
        for index in range(1, 8):
            tagged = cell(page, index)
            role = role_of(page, index)
            # The role's bar: the cell's inset box-shadow, against the notebook's background.
            bar = tagged.evaluate(
                "el => nbopsColour.against(getComputedStyle(el).boxShadow"
                ".match(/^[a-z-]+\\([^)]*\\)/)[0], el)"
            )
            assert bar >= 4.5, f"{theme}: the {role} bar's contrast is {bar:.2f}"
            badge = tagged.locator(":scope > .nbops-role-badge")
            size = float(badge.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))
            assert size >= 11, f"{theme}: the {role} badge's font is {size}px"
            ink = badge.evaluate("el => nbopsColour.text(el)")
            assert ink >= 4.5, f"{theme}: the {role} badge's text contrast is {ink:.2f}"
            if ":" not in role:  # a role's name is never cut (a step's name may be)
                whole = badge.evaluate("el => el.scrollWidth <= el.clientWidth")
                assert whole, f"{theme}: the {role} badge's text is cut"
            # The badge stays inside its cell (a named step's two lines too).
            inside = tagged.evaluate(
                "el => el.querySelector(':scope > .nbops-role-badge').getBoundingClientRect()"
                ".bottom <= el.getBoundingClientRect().bottom"
            )
            assert inside, f"{theme}: the {role} badge overflows its cell"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lab-role-bars-{theme}.png"))


# -- the badge opens the role menu ----------------------------------------------------------


CHOOSING = [
    ("markdown", "# Choosing", []),
    ("code", "import math", ["setup"]),
    ("code", "rows = 10", ["parameters"]),
    ("code", "data = list(range(rows))", ["transform", "keep-me"]),
    ("code", "model = sum(data)", ["skip"]),
]


def open_badge_menu(page: Any, index: int) -> Any:
    badge = cell(page, index).locator(":scope > .nbops-role-badge")
    badge.click()
    menu = page.locator(ROLE_MENU)
    menu.wait_for(state="visible")
    return badge, menu


def test_clicking_a_badge_opens_the_role_menu(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "choosing.ipynb", CHOOSING)
    open_notebook(page, lab, "choosing.ipynb", cells=5)
    select_cell(page, 1)

    # One click on cell 4's badge: the menu opens under the badge, for that cell.
    badge, menu = open_badge_menu(page, 4)
    box, at = badge.bounding_box(), menu.bounding_box()
    assert abs(at["x"] - box["x"]) < 20 and 0 <= at["y"] - (box["y"] + box["height"]) < 20
    assert "jp-mod-active" in (cell(page, 4).get_attribute("class") or "")
    labels = menu.locator(".lm-Menu-itemLabel").all_inner_texts()
    for label in ("Setup", "Parameters", "Transform", "Train", "Evaluate", "Skip",
                  "Named step…", "Clear role"):  # fmt: skip
        assert label in labels, labels
    menu.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Train'))").click()
    wait_role(page, 4, "train")
    assert page.locator(ROLE_MENU).count() == 0
    save(page, path)
    assert notebook_tags(path)[4] == ["train"]

    # The badge menu goes through the same command: a second parameters cell is refused.
    _, menu = open_badge_menu(page, 3)
    menu.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Parameters'))").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert "Cell 3 is already tagged parameters" in dialog.inner_text()
    dialog.locator(".jp-mod-reject").click()
    dialog.wait_for(state="detached")
    assert role_of(page, 3) == "transform"

    # Clear role from the badge: the badge goes, the other tag stays.
    _, menu = open_badge_menu(page, 3)
    menu.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Clear role'))").click()
    wait_role(page, 3, None)
    save(page, path)
    assert notebook_tags(path)[3] == ["keep-me"]

    # The menu open on a badge, in the dark theme, for the docs.
    use_theme(page, dark=True)
    open_badge_menu(page, 1)
    page.locator(ROLE_MENU).locator(".lm-Menu-item", has_text="Transform").hover()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "badge-menu-dark.png"),
                    clip={"x": 280, "y": 80, "width": 700, "height": 380})  # fmt: skip
    page.keyboard.press("Escape")
    page.locator(ROLE_MENU).wait_for(state="detached")
    use_theme(page, dark=False)


# -- the command palette ------------------------------------------------------------------


SHORTCUTS = {
    "nbops:set-role-setup": "Ctrl+Shift+1",
    "nbops:set-role-parameters": "Ctrl+Shift+2",
    "nbops:set-role-transform": "Ctrl+Shift+3",
    "nbops:set-role-train": "Ctrl+Shift+4",
    "nbops:set-role-evaluate": "Ctrl+Shift+5",
    "nbops:set-role-skip": "Ctrl+Shift+6",
    "nbops:set-step": "Ctrl+Shift+7",
    "nbops:clear-role": "Ctrl+Shift+0",
}


def test_palette_lists_nbops_commands_first_with_their_shortcuts(page: Any, lab: Lab) -> None:
    from playwright.sync_api import Error as PlaywrightError

    write_notebook(lab.root / "palette.ipynb", CHOOSING)
    open_notebook(page, lab, "palette.ipynb", cells=5)
    select_cell(page, 2)
    field = page.locator(".lm-CommandPalette-input")
    items = page.locator(".lm-CommandPalette-item")

    def listed() -> list[tuple[str, str, str]]:
        return [
            (
                items.nth(i).get_attribute("data-command") or "",
                items.nth(i).locator(".lm-CommandPalette-itemLabel").inner_text(),
                items.nth(i).locator(".lm-CommandPalette-itemShortcut").inner_text(),
            )
            for i in range(items.count())
        ]

    found: list[tuple[str, str, str]] = []
    for _attempt in range(5):  # the palette closes if focus moves right after it opens
        if not field.is_visible():
            page.keyboard.press("Control+Shift+C")
        try:
            field.fill("nbops", timeout=3_000)
            wait_for(lambda: items.count() > 0, timeout=3, what="palette results")
            found = listed()
            break
        except (PlaywrightError, AssertionError):  # retried, reported below
            page.wait_for_timeout(300)
    assert found, "the palette did not list anything for 'nbops'"
    commands = [c for c, _, _ in found]
    ours = [c for c in commands if c.startswith("nbops:")]
    assert len(ours) >= 10, commands
    assert commands[: len(ours)] == ours, f"other commands before nbops's: {found[:14]}"
    shortcuts = {c: s for c, _, s in found}
    for command, keys in SHORTCUTS.items():
        assert shortcuts.get(command) == keys, (command, shortcuts.get(command))
    labels = {c: label for c, label, _ in found}
    assert labels["nbops:set-role-train"] == "nbops: Set cell role: Train"
    page.keyboard.press("Escape")

    # The shortcut the palette shows still does what it says, once.
    select_cell(page, 4)
    page.keyboard.press("Control+Shift+Digit4")
    wait_role(page, 4, "train")


# -- focus after the named-step dialog ----------------------------------------------------


def test_focus_returns_to_the_notebook_after_the_step_dialog(page: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "focus.ipynb", CHOOSING)
    open_notebook(page, lab, "focus.ipynb", cells=5)

    # Accepted, from the palette: the palette had the focus before the dialog.
    select_cell(page, 3)
    run_from_palette(page, "nbops: Set cell step (role:name)…", done=dialog_open(page))
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("transform:features")
    dialog.locator("input").press("Enter")
    dialog.wait_for(state="detached")
    wait_role(page, 3, "transform:features")
    wait_for(lambda: focus_in_notebook(page), what="the focus back in the notebook")
    page.keyboard.press("ArrowDown")  # command mode: the next cell becomes active
    wait_for(lambda: active_index(page) == 4, what="ArrowDown to reach cell 4")

    # Cancelled, from the badge menu's Named step…: the keys work in the notebook again.
    _, menu = open_badge_menu(page, 4)
    menu.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Named step…'))").click()
    dialog.wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert role_of(page, 4) == "skip"
    wait_for(lambda: focus_in_notebook(page), what="the focus back in the notebook")
    page.keyboard.press("Control+Shift+Digit5")
    wait_role(page, 4, "evaluate")

    # A refused step name: the error dialog closes, the focus is the notebook's again.
    select_cell(page, 2)
    page.keyboard.press("Control+Shift+Digit7")
    dialog.wait_for()
    dialog.locator("input").fill("transform:Bad Name")
    dialog.locator("input").press("Enter")
    error = page.locator(".jp-Dialog", has_text="cannot set the step")
    error.wait_for()
    error.locator(".jp-mod-reject").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    wait_for(lambda: focus_in_notebook(page), what="the focus back in the notebook")
    assert role_of(page, 2) == "parameters"
    save(page, path)
    assert json.loads(path.read_text())["cells"][3]["metadata"]["tags"] == [
        "keep-me",
        "transform:features",
    ]
