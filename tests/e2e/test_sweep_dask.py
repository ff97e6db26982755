"""Sweeps on Dask: a LocalCluster by default, or an existing scheduler; the client writes
the records, so workers need no access to the store."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbops import errors
from nbops.runs.store import RunStore
from nbops.runs.sweep import worker_error
from tests.helpers import run_nbops

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

CELLS = [
    ("rows = 1", ["parameters"]),
    (
        "import nbops\n"
        "if rows == 3:\n"
        "    raise ValueError('rows=3 is broken')\n"
        "nbops.log_metric('double', rows * 2)",
        ["train"],
    ),
]


def test_a_dask_sweep_records_every_run_through_the_client(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(CELLS, name="grid.ipynb")

    # Another cluster on this machine holds distributed's default HTTP port: nbops's own
    # cluster does not use it (it took 0.0.0.0:8787 even without a dashboard; a second
    # sweep warned and moved, and a test's cluster failed to start).
    with socket.socket() as other:
        with contextlib.suppress(OSError):  # held already: the same situation
            other.bind(("0.0.0.0", 8787))
            other.listen()
        result = run_nbops(
            "sweep",
            "grid.ipynb",
            "--grid",
            "rows=1,2,3,4",
            "--executor",
            "dask",
            "--jobs",
            "2",
            cwd=tmp_path,
        )

    assert result.returncode == errors.RunFailedError.exit_code, result.stderr
    assert "8787" not in result.stderr and "already in use" not in result.stderr, result.stderr
    assert "1 of 4 runs did not complete" in result.stderr
    store = RunStore(tmp_path / ".nbops")
    records = {r.parameters["rows"]: r for r in store.list()}
    assert sorted(records) == [1, 2, 3, 4]
    assert records[3].status == "failed" and records[3].failure is not None
    assert records[4].latest_metrics() == {"double": 8.0}
    for record in records.values():
        assert (store.run_dir(record.run_id) / "output.ipynb").exists()
        assert record.sweep_id == records[1].sweep_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and one worker as their own processes, on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 - closed when the cluster stops
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log, stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # generous: a loaded machine starts it slowly
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "dask"), "worker", address, "--nthreads", "2", "--no-dashboard",
                 "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)  # the worker has joined before the sweep
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        log.close()


def test_a_sweep_runs_on_an_existing_scheduler(
    tmp_path: Path, make_notebook: Callable[..., Path], scheduler: str
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(CELLS, name="grid.ipynb")
    result = run_nbops(
        "sweep", "grid.ipynb", "--grid", "rows=5,6", "--executor", "dask", "--scheduler", scheduler,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(r.parameters["rows"] for r in RunStore(tmp_path / ".nbops").list()) == [5, 6]


def test_a_worker_without_nbops_gets_a_clear_error() -> None:
    message = worker_error(ModuleNotFoundError("No module named 'nbops'"))
    assert (
        "install nbops, a Jupyter kernel and the notebook's own packages on every worker" in message
    )


def test_an_unreachable_scheduler_is_one_clear_error(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(CELLS, name="grid.ipynb")
    result = run_nbops(
        "sweep", "grid.ipynb", "--grid", "rows=5", "--executor", "dask",
        "--scheduler", "tcp://127.0.0.1:9", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == errors.ConfigError.exit_code
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


SCRIPT = """
from pathlib import Path
from nbops.config import load_project
from nbops.runs.execute import run_notebook
from nbops.runs.sweep import plan_sweep, run_sweep

if __name__ == "__main__":
    project = load_project(Path("."))
    run_notebook("grid.ipynb", {"rows": 2}, project=project)  # papermill in the main thread first
    tasks = plan_sweep("grid.ipynb", {"rows": [1, 2, 4]}, project=project)
    result = run_sweep(tasks, executor="dask", jobs=2)
    print(sorted(r.status for r in result.results))
"""


def test_dask_runs_after_an_in_process_run_each_get_their_own_event_loop(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(CELLS, name="grid.ipynb")
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['completed', 'completed', 'completed']"


def test_ctrl_c_interrupts_the_running_runs_and_cancels_the_rest(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    import signal

    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    make_notebook(
        [
            ("rows = 1", ["parameters"]),
            (
                "import time\nimport nbops\nnbops.log_metric('sleeping', 1)\ntime.sleep(600)",
                ["train"],
            ),
        ],
        name="slow.ipynb",
    )
    scratch = tmp_path / "scratch"  # where the Dask tasks keep their runs until they end
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "sweep", "slow.ipynb", "--grid", "rows=1,2,3,4",
         "--executor", "dask", "--jobs", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    deadline = time.monotonic() + 300  # generous: a loaded machine starts kernels slowly
    sleeping: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None and len(sleeping) < 2:
        events = scratch.glob("nbops-task-*/runs/*/events.jsonl")
        sleeping = [e for e in events if "sleeping" in e.read_text()]
        time.sleep(0.3)
    assert len(sleeping) == 2, "two runs never reached their sleeping cell"
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    took = time.monotonic() - stopped_at

    assert proc.returncode == 130, stderr
    # far below the 600 s the cells sleep, with room for a loaded machine
    assert took < 120, f"Ctrl-C took {took:.0f} s to stop the sweep"
    assert "Traceback" not in stderr and "distributed" not in stderr
    records = RunStore(tmp_path / ".nbops").list()
    # the two runs in progress are interrupted and recorded; the two not begun are cancelled
    assert sorted(r.status for r in records) == ["interrupted", "interrupted"]
    assert stdout.count("cancelled") == 2
    assert "2 stopped" in stdout + stderr or "4 stopped" in stdout + stderr
