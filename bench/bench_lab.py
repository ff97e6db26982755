"""Benchmark of the waits a user of the nbops pipeline panel sees in a real JupyterLab.

What it measures
----------------
It starts a real JupyterLab with the nbops extensions (the lab server machinery of
tests/browser/conftest.py: a temporary root, temporary Jupyter folders, the labextension
built in src/nbops/labextension), copies the example notebooks and their data/ helper files
into the lab's root, and drives Debian's chromium through playwright, as the browser tests
do. Each wait is timed from the user's action to what the user waits for, and printed with
a reference measured in the same run, so the ratio does not depend on the machine:

- panel open: the panel's toolbar button clicked -> the pipeline of `penguins.ipynb` shown
  (the DAG's svg and the steps). Reference: opening the notebook itself (double-click in the
  file browser -> its first cell rendered). Each repeat in a fresh browser context.
- export: Export clicked (the Package target) -> the result box shown. Reference: `nbops
  export` of the same notebook as a CLI subprocess.
- run: Start clicked in the run form (with n_estimators set) -> the run shown completed, and
  -> the first progress line. Reference: `nbops run` of the same notebook with the same
  parameter as a CLI subprocess.
- one-click fix: the merge-parameters fix clicked (on the fixable notebook of
  tests/browser/test_fixes_panel.py) -> the merged cell gone. Reference: JupyterLab's own
  Merge Cells (Shift+M) on two selected cells -> the merged cell gone.
- Runs after a reload: page reloaded -> panel opened -> the Runs section listed. Reference:
  the same reload -> the notebook's first cell rendered.

Best and median of REPEATS repeats for panel open and export, RUN_REPEATS for the run, one
for the fix and the reload. No targets: the ratios are for comparing builds. The script is a
report, not a test: it always exits 0 (a step that cannot be measured says why).

Run it from the repository root, with the labextension built (`cd jupyter_extension && jlpm
build`), Debian's chromium and playwright installed::

    .venv/bin/python bench/bench_lab.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.browser: the lab server and browser helpers

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM_ARGS,
    LABEXTENSION,
    Lab,
    has_labserver,
    start_lab,
    write_notebook,
)
from tests.browser.test_fixes_panel import FIXABLE  # noqa: E402
from tests.browser.test_lab import CELLS, PANEL, VISIBLE, select_cell  # noqa: E402

REPEATS = 3  # panel open, export
RUN_REPEATS = 1  # the penguins run: several seconds of real training each
NOTEBOOK = "penguins.ipynb"
RUN_PARAMETER = ("n_estimators", "50")
TIMEOUT_MS = 300_000

Timings = dict[str, list[float]]


def since(start: float) -> float:
    return time.perf_counter() - start


def cli(lab: Lab, *args: str) -> float:
    """Seconds of `nbops ARGS` as a subprocess in the lab's root; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nbops", *args],
        cwd=lab.root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = since(start)
    if done.returncode != 0:
        raise RuntimeError(f"nbops {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return elapsed


def first_cell(page: Any) -> None:
    page.locator(CELLS).first.wait_for(state="visible", timeout=TIMEOUT_MS)


def kernel_idle(page: Any) -> None:
    page.wait_for_selector(f"{VISIBLE} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=TIMEOUT_MS, state="attached")  # fmt: skip


def click_panel_button(page: Any) -> Any:
    page.locator(f"{VISIBLE} .jp-NotebookPanel-toolbar [data-command='nbops:open-panel']").click()
    return page.locator(PANEL)


def pipeline_shown(page: Any) -> None:
    page.wait_for_function(
        """(panel) => {
          const root = document.querySelector(panel);
          return !!root && !!root.querySelector('svg.nbops-dag-svg')
            && root.querySelectorAll('.nbops-step').length > 0;
        }""",
        arg=PANEL,
        timeout=TIMEOUT_MS,
    )


def measure_open(browser: Any, lab: Lab, timings: Timings) -> tuple[Any, Any]:
    """Open the notebook, then the panel, in a fresh context; the last page stays open."""
    context = page = None
    for _ in range(REPEATS):
        if context is not None:
            context.close()
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{lab.url}/lab?reset&token={lab.token}")
        item = page.locator(".jp-DirListing-item", has_text=NOTEBOOK)
        item.wait_for(timeout=TIMEOUT_MS)
        start = time.perf_counter()
        item.dblclick()
        first_cell(page)
        timings["notebook open"].append(since(start))
        kernel_idle(page)  # the kernel's start is not the panel's wait
        start = time.perf_counter()
        click_panel_button(page)
        pipeline_shown(page)
        timings["panel open"].append(since(start))
    return context, page


def measure_export(page: Any, lab: Lab, timings: Timings, out: Path) -> None:
    panel = page.locator(PANEL)
    panel.locator("select.nbops-export-target").select_option(value="package")
    for i in range(REPEATS):
        # The panel re-renders whole: a result box not marked here is the new export's.
        page.evaluate(
            """() => document.querySelectorAll('.nbops-export-result')
                 .forEach(e => { e.dataset.benchSeen = '1'; })"""
        )
        start = time.perf_counter()
        panel.locator("button.nbops-export").click()
        page.wait_for_function(
            """(panel) => {
              const root = document.querySelector(panel);
              if (!root || root.querySelector('.nbops-export-busy')) return false;
              if (root.querySelector('.nbops-error')) return true;
              return [...root.querySelectorAll('.nbops-export-result:not(.nbops-last-export)')]
                .some(e => !e.dataset.benchSeen && e.querySelector('.nbops-export-files-title'));
            }""",
            arg=PANEL,
            timeout=TIMEOUT_MS,
        )
        if panel.locator(".nbops-error").count():
            raise RuntimeError(
                f"the panel's export failed: {panel.locator('.nbops-error').first.inner_text()}"
            )
        timings["export (panel)"].append(since(start))
        timings["export (CLI)"].append(cli(lab, "export", NOTEBOOK, "-o", str(out / f"cli{i}")))


def measure_run(page: Any, lab: Lab, timings: Timings) -> None:
    panel = page.locator(PANEL)
    name, value = RUN_PARAMETER
    for _ in range(RUN_REPEATS):
        if not panel.locator(".nbops-run-form").count():
            panel.locator("button.nbops-run-open").click()
        field = panel.locator(f".nbops-run-form input[name='{name}']")
        field.wait_for(timeout=TIMEOUT_MS)
        field.fill(value)
        page.evaluate(
            """() => document.querySelectorAll('.nbops-run-status, .nbops-run-progress-text')
                 .forEach(e => { e.dataset.benchSeen = '1'; })"""
        )
        start = time.perf_counter()
        panel.locator("button.nbops-run-start").click()
        # A progress line, or the end if the run was over before any showed.
        handle = page.wait_for_function(
            """(panel) => {
              const fresh = sel => [...document.querySelectorAll(panel + ' ' + sel)]
                .filter(e => !e.dataset.benchSeen && e.textContent.trim());
              if (fresh('.nbops-run-progress-text').length) return 'progress';
              const ended = fresh('.nbops-run-status')
                .some(e => ['completed', 'failed'].includes(e.textContent.trim()));
              return ended ? 'ended' : false;
            }""",
            arg=PANEL,
            timeout=TIMEOUT_MS,
            polling=50,
        )
        waited = since(start)
        if handle.json_value() == "progress":
            timings["run: first progress line (panel)"].append(waited)
        page.wait_for_function(
            """(panel) => [...document.querySelectorAll(panel + ' .nbops-run-status')]
                 .some(e => !e.dataset.benchSeen
                            && ['completed', 'failed'].includes(e.textContent.trim()))""",
            arg=PANEL,
            timeout=TIMEOUT_MS,
        )
        elapsed = since(start)
        status = panel.locator(".nbops-run-status").first.inner_text().strip()
        if status != "completed":
            raise RuntimeError(f"the panel's run {status}: {panel.inner_text()[-600:]}")
        timings["run: completed (panel)"].append(elapsed)
        timings["run (CLI)"].append(cli(lab, "run", NOTEBOOK, "-p", name, value))


def measure_reload(page: Any, timings: Timings) -> None:
    start = time.perf_counter()
    page.reload()
    first_cell(page)
    timings["reload: first cell"].append(since(start))
    click_panel_button(page)
    page.locator(f"{PANEL} .nbops-runs-item").first.wait_for(timeout=TIMEOUT_MS)
    timings["reload: runs listed"].append(since(start))


def measure_fix(browser: Any, lab: Lab, timings: Timings) -> None:
    write_notebook(lab.root / "fixable.ipynb", FIXABLE)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(lab.lab_url("fixable.ipynb"))
        first_cell(page)
        kernel_idle(page)
        panel = click_panel_button(page)
        button = panel.locator("button.nbops-fix-button[data-fix-kind='merge-parameters']")
        button.wait_for(timeout=TIMEOUT_MS)
        count = page.locator(CELLS).count()

        def cells_become(n: int) -> None:
            page.wait_for_function(
                "([sel, n]) => document.querySelectorAll(sel).length === n",
                arg=[CELLS, n],
                timeout=TIMEOUT_MS,
                polling=20,
            )

        start = time.perf_counter()
        button.click()
        cells_become(count - 1)
        timings["fix click -> merged (panel)"].append(since(start))
        # The last two cells (in view after the fix), selected from the keyboard: the
        # train cell's prompt is covered by its problem mark.
        select_cell(page, count - 2)
        page.keyboard.press("Shift+K")
        start = time.perf_counter()
        page.keyboard.press("Shift+M")
        cells_become(count - 2)
        timings["lab Merge Cells (Shift+M)"].append(since(start))
    finally:
        context.close()


def fmt(values: list[float]) -> str:
    if not values:
        return f"{'-':>9} {'-':>9}  n=0"
    return f"{min(values):8.2f}s {statistics.median(values):8.2f}s  n={len(values)}"


ROWS = [  # (measure, its reference)
    ("panel open", "notebook open"),
    ("export (panel)", "export (CLI)"),
    ("run: completed (panel)", "run (CLI)"),
    ("run: first progress line (panel)", "run (CLI)"),
    ("fix click -> merged (panel)", "lab Merge Cells (Shift+M)"),
    ("reload: runs listed", "reload: first cell"),
]


def report(timings: Timings) -> None:
    print(f"{'measure':36} {'best':>9} {'median':>9}     {'reference':28} {'best':>9} "
          f"{'median':>9}     ratio (median)")  # fmt: skip
    for measure, reference in ROWS:
        ours, ref = timings[measure], timings[reference]
        ratio = f"{statistics.median(ours) / statistics.median(ref):6.2f}x" if ours and ref else "-"
        print(f"{measure:36} {fmt(ours)}  {reference:28} {fmt(ref)}  {ratio}")


def measure(what: str, timings: Timings, run: Callable[[], object]) -> None:
    """Run one measure; a failure is reported, and the other measures still run."""
    try:
        run()
    except Exception as exc:  # a report: say what could not be measured
        print(f"{what}: not measured: {str(exc).splitlines()[0] if str(exc) else exc!r}")


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    problems = [
        why
        for why, missing in (
            (
                f"the labextension is not built ({LABEXTENSION})",
                not (LABEXTENSION / "package.json").is_file(),
            ),
            ("Debian's chromium is not installed (apt-get install -y chromium)", not chromium),
            ("the nbops server extension (nbops.labserver) is missing", not has_labserver()),
        )
        if missing
    ]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problems.append("playwright is not installed (pip install playwright)")
    if problems:
        print("bench_lab: not run: " + "; ".join(problems))
        return 0

    timings: Timings = {name: [] for row in ROWS for name in row}
    startup = float("nan")
    with tempfile.TemporaryDirectory(prefix="nbops-bench-lab-") as tmp:
        base = Path(tmp)
        (base / "lab").mkdir()
        with start_lab(base / "lab") as lab, sync_playwright() as p:
            shutil.copytree(REPO / "example_notebooks", lab.root, dirs_exist_ok=True)
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                context, page = measure_open(browser, lab, timings)  # the others need it
                measure("export", timings, lambda: measure_export(page, lab, timings, base))
                startup = cli(lab, "--version")
                measure("run", timings, lambda: measure_run(page, lab, timings))
                measure("runs after reload", timings, lambda: measure_reload(page, timings))
                context.close()
                measure("fix", timings, lambda: measure_fix(browser, lab, timings))
            finally:
                browser.close()
    print(
        f"python {sys.version.split()[0]}, {NOTEBOOK}, best/median of {REPEATS} "
        f"(run: {RUN_REPEATS}, fix and reload: 1); ratio = median / reference median"
    )
    report(timings)
    print(
        f"(the CLI references include the CLI's start-up: `nbops --version` took {startup:.2f} s; "
        "a command also pays for the imports its work needs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
