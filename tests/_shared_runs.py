"""Expensive, read-only results several test files need, made once per test session even
when pytest-xdist spreads those files over several worker processes.

`shared_folder` makes a folder once under the session's common temporary root (the parent of
the workers' own roots), under a file lock, and hands every later caller the same finished
folder. A caller only reads it (or copies what it needs out of it). The results here are
keyed on everything they depend on, so a key never names a stale result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import notebook_metrics

# The `airflow` command as the tests run it: Airflow's own entry point (what the `airflow`
# script calls, with the script's folder first on sys.path), in a Python that
# - marks the optional rfc3987_syntax absent, as tests/conftest.py does for the test processes:
#   jsonschema would compile some thirty Lark grammars at import (~1 s of CPU per command) for
#   an `iri` format check no schema Airflow validates uses;
# - once the command has returned, its non-daemon threads have ended and the atexit handlers
#   have run (Airflow's own clean-up: database sessions closed, logs flushed), leaves without
#   the interpreter's finalisation, which after a DAG run with pandas and scikit-learn loaded
#   spends ~2.5 s of CPU tearing the heap down and has nothing left to write.
# The exit code is the command's. Measured on `airflow dags test` of the penguins DAG: 10.5 s
# (wall, nearly all CPU) with the `airflow` script, 7.7 s this way; the same task states.
_AIRFLOW_MAIN = """
import atexit, os, sys, threading
sys.path[0] = os.path.dirname(sys.executable)
sys.modules.setdefault("rfc3987_syntax", None)
sys.argv[0] = os.path.join(sys.path[0], "airflow")
from airflow.__main__ import main
code = 0
try:
    sys.exit(main())
except SystemExit as exc:  # as the interpreter reads it
    if exc.code is None or isinstance(exc.code, int):
        code = exc.code or 0
    else:
        print(exc.code, file=sys.stderr)
        code = 1
for thread in threading.enumerate():  # as the interpreter does first on the way out
    if thread is not threading.main_thread() and not thread.daemon:
        thread.join()
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""
AIRFLOW = [sys.executable, "-c", _AIRFLOW_MAIN]


def _session_root(factory: pytest.TempPathFactory) -> Path:
    """The temporary root every worker of this session shares (its own root without xdist)."""
    root = factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl  # deferred: POSIX only, as are the Airflow and kfp runs that need it

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits (without using CPU) for the maker
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_folder(factory: pytest.TempPathFactory, key: str, make: Callable[[Path], None]) -> Path:
    """The folder `make` fills, made once per session for `key`: the first caller makes it
    (into a scratch folder renamed into place when done), the others wait and reuse it."""
    shared = _session_root(factory) / "shared-runs"
    shared.mkdir(exist_ok=True)
    done = shared / key
    with _locked(shared / f"{key}.lock"):
        if not done.is_dir():
            scratch = shared / f"{key}.making"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            make(scratch)
            scratch.rename(done)
    return done


def _airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NBOPS_"))}
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def migrated_airflow_db(factory: pytest.TempPathFactory, home: Path) -> Path:
    """Put a freshly migrated Airflow metadata database (SQLite) at HOME/airflow.db, as
    `airflow db migrate` leaves it: migrated once per session and Airflow version, copied for
    each caller (the migration takes tens of CPU-seconds; a copy, milliseconds)."""

    def make(folder: Path) -> None:
        scratch_home = folder / "home"
        (scratch_home / "dags").mkdir(parents=True)
        proc = subprocess.run(
            [*AIRFLOW, "db", "migrate"],
            env=_airflow_env(scratch_home),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        shutil.copy(scratch_home / "airflow.db", folder / "airflow.db")
        shutil.rmtree(scratch_home)

    template = shared_folder(factory, f"airflow-db-{version('apache-airflow')}", make)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "airflow.db"
    shutil.copy(template / "airflow.db", target)
    return target


def shared_notebook_metrics(
    factory: pytest.TempPathFactory,
    notebook: Path,
    folder: Path,
    name: str,
    params: dict[str, Any],
) -> dict[str, float]:
    """`tests.helpers.notebook_metrics`, run once per session for the same notebook,
    parameters and exported flattening rule (the package's pipeline.py and manifest)."""
    digest = hashlib.sha256()
    for part in (
        notebook.read_bytes(),
        json.dumps(params, sort_keys=True).encode(),
        name.encode(),
        (folder / name / "pipeline.py").read_bytes(),
        json.dumps(
            json.loads((folder / name / "manifest.json").read_text())["metrics_from"]
        ).encode(),
    ):
        digest.update(hashlib.sha256(part).digest())

    def make(out: Path) -> None:
        metrics = notebook_metrics(notebook, folder, name, params, out)
        (out / "metrics.json").write_text(json.dumps(metrics))

    made = shared_folder(factory, f"notebook-metrics-{digest.hexdigest()[:16]}", make)
    result: dict[str, float] = json.loads((made / "metrics.json").read_text())
    return result
