"""A real JupyterLab with the nbops extension, driven by Debian's chromium through playwright.

The lab runs as a subprocess on a free loopback port, in a temporary root folder with
temporary Jupyter config, runtime, data, settings and workspace folders, so nothing of the
user's own Jupyter setup is read or written. The prebuilt labextension
(`src/nbops/labextension`, built by the package build or `jlpm build` in jupyter_extension/)
is linked into the temporary data folder, so the tests use the freshest build.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "src" / "nbops" / "labextension"
ARTIFACTS = REPO / "test-artifacts"
EXTENSION_NAME = "nbops-jupyterlab"
# Generous: the suite runs on several workers, and a loaded 2-core machine starts a lab in well
# over a minute (the wait ends as soon as the lab answers).
LAB_START_TIMEOUT_S = 180

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def has_labserver() -> bool:
    """Whether the nbops server extension (the REST API the panel calls) is in this nbops."""
    return importlib.util.find_spec("nbops.labserver") is not None


def missing(what: str) -> None:
    """A missing browser or build: a failure in CI (the CI script installs them), a skip on a
    developer's machine that has not installed them."""
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


def write_notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    """Cells as (type, source, tags), type 'code' or 'markdown'."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    for kind, source, tags in cells:
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


# A notebook as it is before tagging: setup-ish, parameters-like, transform and train cells.
UNTAGGED = [
    ("markdown", "# Tagging demo", []),
    ("code", "import math\nimport random", []),
    ("code", "n_rows = 40  # rows to draw\nscale = 2.0", ["keep-me"]),
    ("code", "random.seed(0)\ndata = [random.random() * scale for _ in range(n_rows)]", []),
    ("code", "model = sum(data) / len(data)", []),
    ("code", "score = math.sqrt(model)", []),
    ("code", "data[:3]", []),
]

# The same kind of notebook, tagged, for the panel: export and a tracked run.
PIPELINE = [
    ("markdown", "# Pipeline demo", []),
    ("code", "import math\nimport random\n\nimport nbops", ["setup"]),
    ("code", "n_rows = 40  # rows to draw\nscale = 2.0\nseed = 0", ["parameters"]),
    (
        "code",
        "random.seed(seed)\ndata = [random.random() * scale for _ in range(n_rows)]",
        ["transform:make_data"],
    ),
    ("code", "data[:3]", []),
    ("code", "model = sum(data) / len(data)", ["train"]),
    (
        "code",
        "score = math.sqrt(model)\nnbops.log_metric('score', score)\n"
        "nbops.log_metric('rows', len(data))",
        ["evaluate"],
    ),
]

# A notebook with a tag nbops refuses, on its fourth cell.
BROKEN = [
    ("markdown", "# Broken", []),
    ("code", "import math", ["setup"]),
    ("code", "x = 1", ["transform"]),
    ("code", "y = x + 1", ["transform:Bad Name"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    server_api: bool  # the nbops server extension answers

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def get(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body or b"null")
            except ValueError:
                return exc.code, body.decode(errors="replace")


def _settings(settings_dir: Path) -> None:
    """User settings for a quiet lab: no news, no update checks, no kernel-less dialogs."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, value in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class LabStartError(RuntimeError):
    """The lab exited or did not answer in time; the message holds its log."""


@contextmanager
def start_lab(base: Path) -> Iterator[Lab]:
    """A running lab with the nbops extensions, its root `base/root` (a project: `.nbops/`),
    its Jupyter folders under `base`; stopped on exit. Usable outside pytest (bench/)."""
    root = base / "root"
    root.mkdir()
    (root / ".nbops").mkdir()  # the project root: runs go to root/.nbops
    dirs = {name: base / name for name in ("config", "runtime", "data", "settings", "workspaces")}
    for folder in dirs.values():
        folder.mkdir()
    extensions = dirs["data"] / "labextensions"
    extensions.mkdir()
    (extensions / EXTENSION_NAME).symlink_to(LABEXTENSION, target_is_directory=True)
    _settings(dirs["settings"])
    server_config: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {}}}
    if has_labserver():
        server_config["ServerApp"]["jpserver_extensions"]["nbops"] = True
    (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(server_config))

    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        # In a virtual environment jupyter_core looks in the environment's folders before
        # JUPYTER_DATA_DIR, so a copy that `pip install -e .` put in the venv's
        # share/jupyter/labextensions would hide the fresh build linked above.
        "JUPYTER_PREFER_ENV_PATH": "0",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("JUPYTER_PATH", None)
    port, token = free_port(), secrets.token_hex(16)
    log = base / "jupyter-lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={token}",
                "--LabApp.extension_manager=readonly",
                "--LabApp.news_url=",
                "--ServerApp.terminals_enabled=False",
                # No --ContentsManager.allow_hidden: the run store (.nbops/) stays hidden, as
                # in a user's lab; the panel opens the run's visible copy (nbops-runs/).
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process, log, server_api=False)
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise LabStartError(
                    f"jupyter lab exited ({process.returncode}):\n{log.read_text()}"
                )
            try:
                status, _ = lab.get("api/status")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabStartError(
                    f"jupyter lab did not start in {LAB_START_TIMEOUT_S} s:\n{log.read_text()}"
                )
            time.sleep(0.3)
        status, _ = lab.get("nbops/api/vocabulary")
        lab.server_api = status == 200
        yield lab
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not (LABEXTENSION / "package.json").is_file():
        missing(
            f"the labextension is not built ({LABEXTENSION} is missing): run "
            "`pip install -e .` or `cd jupyter_extension && jlpm install && jlpm build`"
        )
    with start_lab(tmp_path_factory.mktemp("lab")) as lab:
        write_notebook(lab.root / "untagged.ipynb", UNTAGGED)
        write_notebook(lab.root / "pipeline.ipynb", PIPELINE)
        write_notebook(lab.root / "broken.ipynb", BROKEN)
        write_notebook(lab.root / "fresh.ipynb", UNTAGGED)
        yield lab


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the Python package playwright is not installed (pip install playwright)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        missing("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; a screenshot of it is saved when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lab-failed-{request.node.name}.png"))
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
