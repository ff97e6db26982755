"""The tests' fork server (tests/_clifork.py) gives what a new `python -m nbops` process gives:
the same output, errors and exit codes, each command in its own environment and working
directory, a hung command killed at its timeout, a dead zygote replaced, and a real process
where a child could differ (another PYTHONPATH, a module in cwd shadowing a preloaded one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops import errors
from tests import _clifork
from tests.helpers import SMALL, build_notebook, run_nbops


def _both(*args: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The command forked from the zygote (checked that it was), then in a new process."""
    environment = {**os.environ, **env}
    before = _clifork.forked()
    forked = run_nbops(*args, cwd=cwd, env=environment)
    assert _clifork.forked() == before + 1, "the command did not run in a forked child"
    return forked, run_nbops(*args, cwd=cwd, env=environment, fresh=True)


def _same(
    forked: subprocess.CompletedProcess[str], fresh: subprocess.CompletedProcess[str]
) -> None:
    assert (forked.args, forked.returncode, forked.stdout, forked.stderr) == (
        fresh.args,
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


@pytest.fixture(autouse=True)
def _forking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_clifork.DISABLE_ENV, raising=False)


def test_a_command_that_succeeds_reads_its_working_directory_as_a_new_process_does(
    tmp_path: Path,
) -> None:
    build_notebook(tmp_path / "small.ipynb", SMALL)
    forked, fresh = _both("tags", "small.ipynb", cwd=tmp_path)
    assert forked.returncode == 0 and "transform:load" in forked.stdout
    _same(forked, fresh)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    gone, gone_fresh = _both("tags", "small.ipynb", cwd=elsewhere)
    assert gone.returncode == errors.NotebookReadError.exit_code != 0
    _same(gone, gone_fresh)


def test_a_usage_error_exits_2_with_the_same_usage_text(tmp_path: Path) -> None:
    forked, fresh = _both("runs", "compare", "20240101-000000-abcdef", cwd=tmp_path)
    assert forked.returncode == 2 and "two or more" in forked.stderr
    _same(forked, fresh)


def test_an_nbops_error_is_one_line_and_its_exit_code(tmp_path: Path) -> None:
    forked, fresh = _both("validate", "gone.csv", "--schema", "schema.json", cwd=tmp_path)
    assert forked.returncode == errors.QualityInputError.exit_code
    assert forked.stderr.startswith("nbops: error: ") and forked.stderr.count("\n") == 1
    _same(forked, fresh)


@pytest.fixture
def zygote_started_with_columns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A zygote whose own environment has COLUMNS=150 (the tests' one has none)."""
    _clifork._stop()
    monkeypatch.setattr(_clifork, "_START_ENV", {**_clifork._START_ENV, "COLUMNS": "150"})
    yield
    _clifork._stop()  # the next test's zygote has the tests' environment again


@pytest.mark.usefixtures("zygote_started_with_columns")
def test_each_command_has_exactly_its_own_environment(tmp_path: Path) -> None:
    # rich sizes the help to COLUMNS when the output is not a terminal.
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    before = _clifork.forked()
    narrow = run_nbops("--help", cwd=tmp_path, env=environment)
    assert _clifork.forked() == before + 1
    narrow_fresh = run_nbops("--help", cwd=tmp_path, env=environment, fresh=True)
    wide, wide_fresh = _both("--help", cwd=tmp_path, COLUMNS="120")
    assert max(map(len, narrow.stdout.splitlines())) == 80  # not the zygote's COLUMNS
    assert max(map(len, wide.stdout.splitlines())) == 120
    _same(narrow, narrow_fresh)
    _same(wide, wide_fresh)


def test_a_hung_command_is_killed_at_its_timeout(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "hangs.ipynb")  # opening it waits for a writer that never comes
    run_nbops("--version", cwd=tmp_path)  # the zygote started: the timeout is the command's
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_nbops("tags", "hangs.ipynb", cwd=tmp_path, timeout=3)
    assert time.monotonic() - started < 60
    forked, fresh = _both("--version", cwd=tmp_path)  # the zygote still serves
    _same(forked, fresh)


def test_a_zygote_killed_between_commands_is_replaced(tmp_path: Path) -> None:
    run_nbops("--version", cwd=tmp_path)
    zygote = _clifork._state["zygote"]
    os.kill(zygote.proc.pid, signal.SIGKILL)
    zygote.proc.wait(timeout=60)
    forked, fresh = _both("--version", cwd=tmp_path)
    assert _clifork._state["zygote"].proc.pid != zygote.proc.pid
    _same(forked, fresh)


def test_the_variables_importing_scikit_learn_sets_still_fork(tmp_path: Path) -> None:
    # Once any test in this process imported scikit-learn, every request's environment has
    # what its import sets; a new process importing it ends with the same values.
    with_defaults = {
        **{k: v for k, v in os.environ.items() if k not in _clifork._IMPORT_DEFAULTS},
        **_clifork._IMPORT_DEFAULTS,
    }
    before = _clifork.forked()
    run_nbops("--version", cwd=tmp_path, env=with_defaults)
    assert _clifork.forked() == before + 1
    other = {**with_defaults, "KMP_INIT_AT_FORK": "TRUE"}  # a value the import would not set
    run_nbops("--version", cwd=tmp_path, env=other)
    assert _clifork.forked() == before + 1


@pytest.mark.parametrize(
    "change",
    ["PYTHONPATH", "HOME", "a module in cwd", "NBOPS_TEST_NO_FORK"],
)
def test_what_a_child_could_not_follow_runs_in_a_new_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    environment = dict(os.environ)
    if change == "PYTHONPATH":  # another code under test
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(tmp_path), os.environ.get("PYTHONPATH", "")]
        )
    elif change == "HOME":  # read when the libraries are imported
        environment["HOME"] = str(tmp_path)
    elif change == "a module in cwd":  # a new process would import it instead of the library
        (tmp_path / "yaml.py").write_text("raise SystemExit('the yaml.py in cwd')\n")
    else:
        monkeypatch.setenv(_clifork.DISABLE_ENV, "1")
    before = _clifork.forked()
    done = run_nbops("--version", cwd=tmp_path, env=environment)
    assert _clifork.forked() == before
    assert done.returncode == 0, done.stderr
