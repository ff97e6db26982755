"""Helpers many test packages import: real notebook files, the real `nbops` command, and the
small notebooks the export and end-to-end tests share.

Fixtures live in the conftest files; this module holds only plain functions and constants, so
a test imports it as `from tests.helpers import run_nbops` (never from a conftest)."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests import _clifork

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "example_notebooks"

Cells = Sequence[tuple[str, Sequence[str]] | str]


def build_notebook(path: Path, cells: Cells) -> Path:
    """Write a notebook; each cell is (source, tags) for code, or a plain string for markdown."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(new_markdown_cell(cell))
        else:
            source, tags = cell
            code = new_code_cell(source)
            if tags:
                code.metadata["tags"] = list(tags)
            nb.cells.append(code)
    nbformat.write(nb, path)
    return path


def run_nbops(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would: `python -m nbops ARGS` in `cwd`, with `env`
    (default: this process's), its output captured as text. The timeout only stops a hung
    command: a command that runs a kernel can take minutes on a loaded 2-core machine.

    The command runs in a child forked from this test process's zygote (tests/_clifork.py),
    which has the libraries imported already, with the same result as a new process; where it
    cannot promise that, and for `fresh=True` (tests of start-up, imports or signals), or with
    NBOPS_TEST_NO_FORK=1, it runs in a new process."""
    command = [sys.executable, "-m", "nbops", *args]
    if not fresh:
        done = _clifork.run(command, cwd=cwd, env=env, timeout=timeout)
        if done is not None:
            return done
    return subprocess.run(
        command,
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


SMALL = [
    ("import math\n\nOFFSET = 1", ["setup"]),
    ("factor = 3  # multiplies the data\nsize = 5", ["parameters"]),
    ("values = [i + OFFSET for i in range(size)]", ["transform:load"]),
    ("values", []),
    ("scaled = [v * factor for v in values]", ["transform:scale"]),
    ("total = sum(scaled)", ["train"]),
    ("score = math.sqrt(total)\nscore", ["evaluate"]),
]


# A tutorial's shape: two models scored under the same name, and a score left as the last
# expression of a cell (the package reports `knn.accuracy`, `tree.accuracy`, `accuracy_score`).
TWO_MODELS = [
    (
        "from sklearn.datasets import load_iris\n"
        "from sklearn.metrics import accuracy_score\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.neighbors import KNeighborsClassifier\n"
        "from sklearn.tree import DecisionTreeClassifier",
        ["setup"],
    ),
    (
        "X, y = load_iris(return_X_y=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["transform:split"],
    ),
    ("knn = KNeighborsClassifier(n_neighbors=15).fit(X_train, y_train)", ["train:knn"]),
    ("accuracy = knn.score(X_test, y_test)\nprint(accuracy)", ["evaluate:knn"]),
    ("tree = DecisionTreeClassifier(max_depth=1).fit(X_train, y_train)", ["train:tree"]),
    (
        "accuracy = tree.score(X_test, y_test)\naccuracy_score(y_test, tree.predict(X_test))",
        ["evaluate:tree"],
    ),
]


def package_metric_names(folder: Path, name: str) -> set[str]:
    """The metric names the exported package itself reports (`python -m NAME`)."""
    proc = subprocess.run(
        [sys.executable, "-m", name], cwd=folder, capture_output=True, text=True, check=True
    )
    return set(json.loads(proc.stdout))


def reported_metric_names(source: str) -> set[str]:
    """The metric names generated orchestrator code reports: the keys of its
    `io.metric_values({...})` calls."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "io.metric_values":
            mapping = node.args[0]
            assert isinstance(mapping, ast.Dict)
            names |= {ast.literal_eval(k) for k in mapping.keys if k is not None}
    return names


def notebook_metrics(
    notebook: Path, folder: Path, name: str, params: dict[str, object], tmp: Path
) -> dict[str, float]:
    """Run the notebook with papermill and collect the evaluate-step values as metrics,
    flattened by the exported package's own rule."""
    import papermill  # deferred: only the fidelity tests need a kernel

    manifest = json.loads((folder / name / "manifest.json").read_text())
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(
        new_code_cell(
            "import json, sys\n"
            f"sys.path.insert(0, {str(folder)!r})\n"
            f"from {name}.pipeline import _numbers\n"
            f"_values = {{n: globals()[n] for n in {manifest['metrics_from']!r}}}\n"
            "print('NBOPS-METRICS ' + json.dumps(_numbers(_values)))"
        )
    )
    source = tmp / f"{name}-with-probe.ipynb"
    nbformat.write(nb, source)
    executed = papermill.execute_notebook(
        str(source),
        str(tmp / f"{name}-executed.ipynb"),
        parameters=params,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(notebook.parent),
    )
    text = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    return json.loads(text.split("NBOPS-METRICS ", 1)[1])


@contextmanager
def running(app: Any, http: Any = "auto") -> Iterator[str]:
    """A real uvicorn server for `app` on a free loopback port, in a background thread
    (`http`: uvicorn's protocol option)."""
    import uvicorn  # deferred: only the serving tests need it

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", http=http)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a loaded machine starts slowly
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive()
