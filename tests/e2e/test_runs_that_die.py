"""Runs that die: `nbops run` stopped by SIGTERM, killed by SIGKILL, or finding the disk
full, on real kernels through the real command line. None may stay `running`, leave a
secret in its output notebook, or leave a truncated file that looks complete."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

from nbops import errors
from nbops.runs import files
from nbops.runs.execute import run_notebook
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore
from tests.helpers import run_nbops

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-value-4f9a"  # given for `api_token`, a parameter nbops treats as secret
PARAMS = ("rows = 1\napi_token = 'placeholder'", ["parameters"])
# Logs a metric, then waits for a file the tests never create: the run is in progress until
# a signal stops it.
WAITING = (
    "import pathlib, time\n"
    "import nbops\n"
    "nbops.log_metric('started', 1)\n"
    "while not pathlib.Path('never-created').exists():\n"
    "    time.sleep(0.1)",
    ["train"],
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    return tmp_path


@pytest.fixture
def store(project: Path) -> RunStore:
    return RunStore(project / ".nbops")


@pytest.fixture
def waiting_run(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> Iterator[tuple[subprocess.Popen[str], RunRecord]]:
    """`nbops run` in progress (its cell waiting), given the secret; stopped after the test."""
    make_notebook([PARAMS, WAITING], name="wait.ipynb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "run", "wait.ipynb", "-p", "api_token", SECRET],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, _wait_until_running(store, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


def _wait_until_running(store: RunStore, proc: subprocess.Popen[str]) -> RunRecord:
    """The run's record, once the store shows it running its waiting cell (and papermill
    has saved the output notebook of the cells before it)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = store.list()
        if runs and runs[0].status == "running" and runs[0].metrics:
            output = store.run_dir(runs[0].run_id) / "output.ipynb"
            if output.exists():
                return runs[0]
        time.sleep(0.2)
    raise AssertionError("the run never showed as running in its waiting cell")


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_sigterm_records_the_run_as_terminated_with_its_partial_output_redacted(
    store: RunStore, waiting_run: tuple[subprocess.Popen[str], RunRecord]
) -> None:
    proc, running = waiting_run

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == errors.Terminated.exit_code == 143, stderr
    assert stderr.strip() == f"nbops: terminated: run {running.run_id} recorded as terminated"
    record = store.load(running.run_id)
    assert record.status == "terminated"
    assert record.latest_metrics() == {"started": 1.0}
    folder = store.run_dir(record.run_id)
    partial = nbformat.read(folder / "output.ipynb", as_version=4)
    # the secret went to the kernel through its environment: papermill's parameters (written
    # into the output notebook as it runs) hold it redacted or not at all
    assert partial.metadata["papermill"]["parameters"].get("api_token", "***") == "***"
    assert _files_holding(folder, SECRET) == []


def test_a_sigkilled_run_is_shown_and_stored_as_killed_with_its_output_redacted(
    project: Path, store: RunStore, waiting_run: tuple[subprocess.Popen[str], RunRecord]
) -> None:
    proc, running = waiting_run
    folder = store.run_dir(running.run_id)
    # the secret reached the kernel through its environment, so not even papermill's copy
    # of the running notebook holds it (the redaction on detection is tested in
    # tests/runs/test_liveness.py)
    assert _files_holding(folder, SECRET) == []

    proc.kill()
    proc.wait(timeout=60)
    listed = run_nbops("runs", "list", cwd=project)

    assert listed.returncode == 0, listed.stderr
    assert running.run_id in listed.stdout and "killed" in listed.stdout
    assert "running" not in listed.stdout
    stored = json.loads((folder / "record.json").read_text())
    assert stored["status"] == "killed"
    assert f"pid {proc.pid}" in stored["failure"]["evalue"]
    assert _files_holding(folder, SECRET) == []
    assert nbformat.read(folder / "output.ipynb", as_version=4).cells  # still the partial run


FILL = "FILL" + "-THE-DISK"  # printed by a cell; never in a cell's source


def _disk_fills_on(marker: bytes) -> Callable[[int, memoryview], int]:
    """A write system call on a disk that fills up when the data holds `marker`: half the
    bytes are written, then ENOSPC, as a real full disk does."""
    real = files._write_chunk

    def write(handle: int, data: memoryview) -> int:
        if marker in bytes(data):
            real(handle, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(handle, data)

    return write


def test_a_full_disk_while_papermill_saves_the_output_fails_the_run_leaving_no_truncated_file(
    project: Path,
    store: RunStore,
    make_notebook: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: no small filesystem can be mounted here, so the disk fills up at the
    # write layer every run file goes through (files._write_chunk, one os.write), raising the
    # real OSError(ENOSPC) a full disk raises, after a partial write.
    make_notebook([PARAMS, (f"print({FILL[:4]!r} + {FILL[4:]!r})", ["train"])], name="fill.ipynb")
    monkeypatch.setattr(files, "_write_chunk", _disk_fills_on(FILL.encode()))

    with pytest.raises(errors.DiskFullError) as raised:
        run_notebook(project / "fill.ipynb", {"api_token": SECRET}, store=store)

    message = str(raised.value)
    assert "\n" not in message and "the disk is full" in message
    assert f"free space in {store.run_dir(raised.value.run_id or '').resolve()}" in message
    record = store.load(raised.value.run_id or "")
    assert record.status == "failed" and record.failure is not None
    assert record.failure.ename == "DiskFullError"
    folder = store.run_dir(record.run_id)
    assert files.leftover_temporaries(folder) == []
    saved = nbformat.read(folder / "output.ipynb", as_version=4)  # the last complete save
    assert FILL not in nbformat.writes(saved)
    assert _files_holding(folder, SECRET) == []


SITECUSTOMIZE = '''
"""Fault injection for the test: a disk that is full for model files (see the test)."""
import builtins, errno, io, os

_open = io.open


class _FullDisk:
    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def _open_on_full_disk(file, mode="r", *args, **kwargs):
    handle = _open(file, mode, *args, **kwargs)
    if ".skops" in str(file) and any(m in mode for m in "wax"):
        return _FullDisk(handle)
    return handle


io.open = builtins.open = _open_on_full_disk
'''


def test_a_full_disk_while_the_notebook_logs_its_model_is_one_line_and_a_failed_run(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    # Fault injection: a sitecustomize on PYTHONPATH (the kernel inherits it) makes every
    # write of a model file raise the real OSError(ENOSPC) after writing half its bytes, as a
    # disk that fills up mid-write does; no real full filesystem can be made here.
    hooks = project / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    make_notebook(
        [
            PARAMS,
            (
                "import nbops\nfrom sklearn.linear_model import LogisticRegression\n"
                "model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])\n"
                "nbops.log_model(model)",
                ["train"],
            ),
        ],
        name="model.ipynb",
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]),
    }

    # A new process: the interpreter imports sitecustomize when it starts.
    proc = run_nbops("run", "model.ipynb", cwd=project, env=env, timeout=300, fresh=True)

    assert proc.returncode == errors.DiskFullError.exit_code == 39, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    (record,) = store.list()
    models = store.run_dir(record.run_id) / "models"
    assert line.startswith("nbops: error: ") and "the disk is full" in line
    assert f"free space in {(project / '.nbops').resolve()}," in line  # where runs write
    assert record.status == "failed" and record.failure is not None
    assert record.failure.ename == "DiskFullError" and record.models == []
    assert list(models.iterdir()) == []  # no model.skops, whole or truncated, no temporary


def test_a_disk_full_at_the_end_of_a_run_uses_the_space_held_for_its_record(
    project: Path,
    store: RunStore,
    make_notebook: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection (see above): the disk has no room for the final record.json while the
    # space the run held at its start is still held.
    make_notebook([PARAMS, ("x = 1", ["train"])], name="small.ipynb")
    real, refused = files._write_chunk, []

    def write(handle: int, data: memoryview) -> int:
        held = list(store.directory.glob(f"runs/*/{files.RESERVE_FILE}"))
        if b'"ended_at": "' in bytes(data) and held:
            refused.append(held)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(handle, data)

    monkeypatch.setattr(files, "_write_chunk", write)

    record = run_notebook(project / "small.ipynb", store=store)

    assert refused, "the final record never met the full disk"
    folder = store.run_dir(record.run_id)
    assert json.loads((folder / "record.json").read_text())["status"] == "completed"
    assert store.load(record.run_id).status == "completed"
    assert not (folder / files.RESERVE_FILE).exists()
    assert not (folder / files.DISK_FULL_MARK).exists()
