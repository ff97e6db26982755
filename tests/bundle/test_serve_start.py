"""The server's start: `nbops serve` imports what serving needs and nothing else (no test
modules, no dask, no other command group), and skops.io is imported with exactly the trusted
types skops itself lists (nbops.bundle.skops_import), from a cache only while it matches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbops.bundle import skops_import

from .conftest import Built

# Imported by skops's own listing of scikit-learn's estimators (`all_estimators`), never
# needed to serve: test modules, dask (through the vendored array-api-compat), other commands.
NOT_AT_START = (
    "pytest", "_pytest", "sklearn.utils._testing", "dask", "dask.array",
    "nbops.cli.export", "nbops.cli.runs", "nbops.cli.quality", "nbops.export",
)  # fmt: skip

_PROBE = """
import json, sys
import uvicorn

seen = {}

def run(app, **options):  # stands in for the server: the app is built, the model loaded
    seen["modules"] = sorted(sys.modules)
    seen["health"] = app.state.health

uvicorn.run = run
if len(sys.argv) > 2:  # no walking allowed: the estimator list must come from the cache
    import nbops.bundle.skops_import as si

    def refuse():
        raise AssertionError("walked scikit-learn")

    si._walk = refuse
from nbops.cli import main

sys.argv = ["nbops", "serve", sys.argv[1], "--port", "0"]
try:
    main()
except SystemExit as e:
    seen["exit"] = e.code
import sklearn.utils
import sklearn.utils.discovery
from skops.io import _trusted_types

seen["estimators"] = list(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES)
seen["restored"] = sklearn.utils.all_estimators is sklearn.utils.discovery.all_estimators
print(json.dumps(seen))
"""


def _serve_probe(bundle: Path, cache: Path, *, cached: bool = False) -> dict[str, Any]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONWARNINGS": "ignore"}
    args = [sys.executable, "-c", _PROBE, str(bundle), *(["cached"] if cached else [])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _skops_own_list() -> list[str]:
    """What `import skops.io` lists, computed as skops computes it."""
    from sklearn.utils import all_estimators
    from skops.io._utils import get_type_name

    return [
        get_type_name(c) for _, c in all_estimators() if get_type_name(c).startswith("sklearn.")
    ]


def test_nbops_serve_starts_without_test_modules_dask_or_other_commands(
    built: Built, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    expected = sorted(_skops_own_list())
    for cached in (False, True):  # the first start walks and caches, the second reads it
        seen = _serve_probe(built.folder, cache, cached=cached)
        assert seen.get("exit") in (None, 0)
        assert seen["health"] == {"status": "starting"}  # uvicorn's lifespan probes it next
        assert [m for m in NOT_AT_START if m in seen["modules"]] == []
        assert "skops.io" in seen["modules"] and "nbops.bundle.serve" in seen["modules"]
        assert sorted(seen["estimators"]) == expected
        assert seen["restored"]
    assert len(list((cache / "nbops").glob("skops-estimators-*.json"))) == 1


def test_the_walk_lists_what_all_estimators_lists() -> None:
    from sklearn.utils import all_estimators

    assert sorted(skops_import._walk()) == sorted(
        (c.__module__, c.__name__) for _, c in all_estimators()
    )


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _cached(stamps: dict[str, Any], names: list[tuple[str, str]]) -> Path:
    skops_import._write_cache(stamps, names)
    return skops_import._cache_file(stamps)


NAMES = [("sklearn.linear_model._logistic", "LogisticRegression")]


def test_the_cache_is_read_back_for_the_same_libraries(cache_home: Path) -> None:
    stamps = skops_import._stamps()
    assert stamps is not None
    _cached(stamps, NAMES)
    assert skops_import._read_cache(stamps) == NAMES
    assert skops_import.estimator_names() == NAMES  # what a start then gives skops


@pytest.mark.parametrize("changed", ["scikit-learn", "skops", "record", "python"])
def test_a_cache_of_other_libraries_is_not_read(cache_home: Path, changed: str) -> None:
    stamps = skops_import._stamps()
    assert stamps is not None
    _cached(stamps, NAMES)
    other = {**stamps, changed: "something else"}
    path = skops_import._cache_file(other)
    path.write_text(json.dumps({"stamps": stamps, "estimators": [list(n) for n in NAMES]}))
    assert skops_import._read_cache(other) is None  # its stamps are not these


@pytest.mark.parametrize(
    "name",
    [
        ("builtins", "eval"),
        ("posix", "system"),
        ("sklearn.utils._testing", "TempMemmap"),
        ("sklearn.tests.test_base", "T"),
        ("sklearn.not_a_module", "X"),
        ("sklearn.linear_model._logistic", "_private"),
    ],
)
def test_a_cache_naming_a_type_outside_scikit_learn_is_not_read(
    cache_home: Path, name: tuple[str, str]
) -> None:
    stamps = skops_import._stamps()
    assert stamps is not None
    _cached(stamps, [*NAMES, name])
    assert skops_import._read_cache(stamps) is None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="file modes are POSIX")
def test_a_cache_others_may_write_is_not_read(cache_home: Path) -> None:
    stamps = skops_import._stamps()
    assert stamps is not None
    path = _cached(stamps, NAMES)
    os.chmod(path, 0o666)
    assert skops_import._read_cache(stamps) is None
    os.chmod(path, 0o644)
    assert skops_import._read_cache(stamps) == NAMES


_THREADS = """
import sys, threading
import sklearn.utils
import sklearn.utils.discovery
from nbops.bundle.skops_import import skops_io

barrier = threading.Barrier(4)
found = []

def load():
    barrier.wait()
    found.append(skops_io())

threads = [threading.Thread(target=load) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert len({id(m) for m in found}) == 1 and found[0] is sys.modules["skops.io"]
assert sklearn.utils.all_estimators is sklearn.utils.discovery.all_estimators
print("ok")
"""


def test_threads_importing_skops_at_once_leave_scikit_learn_as_it_was(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
