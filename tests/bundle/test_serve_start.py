"""The server's start: `nbops serve` imports what serving needs and nothing else (no test
modules, no dask, no other command group), and skops.io is imported with exactly the trusted
types skops itself lists (nbops.bundle.skops_import), from a cache only while it matches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbops.bundle import skops_import

from .conftest import Built

# Imported by skops's own listing of scikit-learn's estimators (`all_estimators`), never
# needed to serve: test modules, dask (through the vendored array-api-compat), other commands.
NOT_AT_START = (
    "pytest", "_pytest", "sklearn.utils._testing", "dask", "dask.array",
    "nbops.cli.export", "nbops.cli.runs", "nbops.cli.quality", "nbops.export", "fastapi",
)  # fmt: skip

_PROBE = """
import json, sys
import uvicorn

seen = {}

def run(app, **options):  # stands in for the server: the app is built, the model loaded
    import gc

    seen["modules"] = sorted(sys.modules)
    seen["health"] = app.state.health
    seen["gc"] = {  # the start ran no pass of the collector over everything, and froze it
        "enabled": gc.isenabled(),
        "full passes": gc.get_stats()[2]["collections"],
        "frozen": gc.get_freeze_count(),
    }

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
# the ufuncs skops trusts, as it listed them on import and as its own search lists them now
# (modules imported since come after the ones it found them in)
import numpy as np
import scipy.special
from skops.io import _utils

seen["whichmodule_restored"] = _utils.whichmodule.__module__ == "skops.io._utils"
seen["ufuncs"] = [_trusted_types.SCIPY_UFUNC_TYPE_NAMES, _trusted_types.NUMPY_UFUNC_TYPE_NAMES]
seen["skops_ufuncs"] = [
    _utils.get_public_type_names(module=scipy.special, oftype=np.ufunc),
    _utils.get_public_type_names(module=np, oftype=np.ufunc),
]
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
        assert seen["restored"] and seen["whichmodule_restored"]
        assert seen["gc"]["enabled"] and seen["gc"]["full passes"] == 0
        assert seen["gc"]["frozen"] > 100_000  # scikit-learn, pandas, the model, the app
        scipy_ufuncs, numpy_ufuncs = seen["ufuncs"]
        assert len(scipy_ufuncs) > 100 and len(numpy_ufuncs) > 50
        assert seen["ufuncs"] == seen["skops_ufuncs"]
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


# -- skops's module search for ufuncs, made fast (skops_import.fast_whichmodule) ----------------


class _PropertyModule(types.ModuleType):
    @property
    def wanted(self) -> Any:
        return _SHARED["obj"]


_SHARED: dict[str, Any] = {}
_KINDS = (
    "plain holding it",  # a module whose __dict__ has the name bound to the object
    "plain holding another",  # the name bound to something else
    "plain without",
    "lazy giving it",  # module __getattr__ returns the object
    "lazy raising AttributeError",
    "lazy raising ImportError",
    "subclass property giving it",  # a ModuleType subclass: only getattr sees the property
    "object holding it",  # not a module at all
    "None",
)


def _entry(kind: str, name: str, obj: Any) -> Any:
    if kind == "None":
        return None
    if kind == "object holding it":
        return types.SimpleNamespace(**{name: obj})
    if kind == "subclass property giving it":
        return _PropertyModule("fake")
    module = types.ModuleType("fake")
    if kind == "plain holding it":
        setattr(module, name, obj)
    elif kind == "plain holding another":
        setattr(module, name, object())
    elif kind.startswith("lazy"):

        def lazy(attr: str) -> Any:
            if attr != name:
                raise AttributeError(attr)
            if kind == "lazy giving it":
                return obj
            raise AttributeError(attr) if "Attribute" in kind else ImportError(attr)

        module.__getattr__ = lazy  # type: ignore[method-assign]
    return module


def _outcome(search: Any, obj: Any, name: str) -> tuple[str, Any]:
    """The answer, or the exception raised (a module another test left loaded may raise
    from its `__getattr__`: both searches must then raise alike)."""
    try:
        return "answered", search(obj, name)
    except BaseException as e:  # SystemExit included, as raised
        return "raised", type(e)


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(_KINDS), max_size=6),
    name=st.sampled_from(["wanted", "__wanted__", "a.wanted"]),
)
def test_the_fast_module_search_answers_as_skops_does(kinds: list[str], name: str) -> None:
    from skops.io import _utils

    obj = type("Ufunc", (), {"__module__": None, "__name__": name})()  # no module: searched
    _SHARED["obj"] = obj
    fast = skops_import.fast_whichmodule(_utils.whichmodule)
    keys = [f"_nbops_fake_{i}" for i in range(len(kinds))]
    try:
        for key, kind in zip(keys, kinds, strict=True):
            sys.modules[key] = _entry(kind, name.split(".")[-1], obj)
        assert _outcome(fast, obj, name) == _outcome(_utils.whichmodule, obj, name)
    finally:
        for key in keys:
            sys.modules.pop(key, None)


def test_the_fast_module_search_finds_every_ufunc_where_skops_does() -> None:
    import numpy as np
    import scipy.special
    from skops.io import _utils

    fast = skops_import.fast_whichmodule(_utils.whichmodule)
    found = 0
    for module in (np, scipy.special):
        for attr in dir(module):
            obj = getattr(module, attr)
            if isinstance(obj, np.ufunc):
                found += 1
                expected = _outcome(_utils.whichmodule, obj, obj.__name__)
                assert _outcome(fast, obj, obj.__name__) == expected, attr
    assert found > 150


def test_scikit_learn_files_are_read_as_the_metadata_library_lists_them() -> None:
    import importlib.metadata

    from nbops.bundle.allowlist import sklearn_files

    dist = importlib.metadata.distribution("scikit-learn")
    expected = [
        (e.as_posix(), str(e.locate()))
        for e in dist.files or []
        if e.as_posix().startswith("sklearn/") and "__pycache__" not in e.as_posix()
    ]
    assert len(expected) > 500
    assert sklearn_files() == expected
