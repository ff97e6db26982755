"""Loading a bundle someone else may have written: the allow-list decides from names before
importing anything, archives are refused as soon as they expand past their limits (and their
temporary folder goes on SIGTERM too), and a malformed manifest or serving entry is one line
on the command line, never a traceback.

The bundle is the session fixture's (tests/bundle/conftest.py), copied and rewritten the way
an attacker who can edit both the files and the manifest's hashes would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.bundle.allowlist import is_allowed, vetted_module
from nbops.bundle.load import load_bundle
from nbops.errors import BundleIntegrityError
from tests.e2e.conftest import run_nbops

from .conftest import Built


def _rewrite(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the manifest, then recompute every hash as an attacker would."""
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    for rel in data["files"]:
        data["files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    data["model"]["sha256"] = data["files"]["model.skops"]
    (folder / "manifest.json").write_text(json.dumps(data))


def _predict(bundle: Path, tmp_path: Path) -> Any:
    """`nbops predict BUNDLE records.csv`, as a user runs it."""
    records = tmp_path / "records.csv"
    records.write_text("a,b,c\n1.0,1.5,x\n")
    return run_nbops("predict", str(bundle), str(records), "-o", "out.csv", cwd=tmp_path)


def _one_line_error(result: Any, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbops: error: "), result.stderr
    return lines[0]


# -- the allow-list decides from names -----------------------------------------------------------

PROBE = """\
from pathlib import Path

Path({marker!r}).write_text("imported")


class Probe:
    pass
"""


@pytest.fixture
def probe_in_sklearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module with an import-time side effect (it writes a marker file) that Python finds as
    `sklearn.nbops_probe`, as a module dropped into scikit-learn's folder would be. Returns
    the marker's path."""
    import sklearn

    marker = tmp_path / "IMPORTED"
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "nbops_probe.py").write_text(PROBE.format(marker=str(marker)))
    monkeypatch.setattr(sklearn, "__path__", [*sklearn.__path__, str(folder)])
    monkeypatch.syspath_prepend(str(folder))  # also importable as a top-level module
    yield marker
    for name in ("sklearn.nbops_probe", "nbops_probe"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", ["sklearn.nbops_probe.Probe", "nbops_probe.Probe"])
def test_a_manifest_naming_a_module_with_an_import_side_effect_never_imports_it(
    bundle_copy: Path, probe_in_sklearn: Path, name: str
) -> None:
    _rewrite(bundle_copy, lambda d: d["model"]["types"].append(name))
    with pytest.raises(BundleIntegrityError, match=name.replace(".", r"\.")):
        load_bundle(bundle_copy)
    assert not probe_in_sklearn.exists()
    assert "sklearn.nbops_probe" not in sys.modules and "nbops_probe" not in sys.modules


def test_a_manifest_naming_numpy_f2py_main_is_refused_without_running_it(
    bundle_copy: Path, tmp_path: Path
) -> None:
    name = "numpy.f2py.__main__.X"
    _rewrite(bundle_copy, lambda d: d["model"]["types"].append(name))
    line = _one_line_error(_predict(bundle_copy, tmp_path), 29)
    assert name in line and "never loads" in line
    assert not (tmp_path / "out.csv").exists()


# Segments an attacker would use, real module names of trusted packages among them.
_SEGMENTS = st.sampled_from(
    [
        "sklearn",
        "numpy",
        "f2py",
        "__main__",
        "__init__",
        "tests",
        "test_base",
        "conftest",
        "experimental",
        "enable_iterative_imputer",
        "utils",
        "_testing",
        "linear_model",
        "_logistic",
        "LogisticRegression",
        "dtypes",
        "nbops_probe",
        "Probe",
        "this",
        "antigravity",
        "os",
        "system",
    ]
)
_IDENTIFIERS = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    first=st.sampled_from(["sklearn", "numpy", "nbops_probe", "this", "antigravity"]),
    rest=st.lists(st.one_of(_SEGMENTS, _IDENTIFIERS), min_size=1, max_size=5),
)
def test_deciding_trust_imports_only_vetted_modules(
    probe_in_sklearn: Path, first: str, rest: list[str]
) -> None:
    name = ".".join([first, *rest])
    before = set(sys.modules)
    allowed = is_allowed(name)
    imported = set(sys.modules) - before
    vetted = vetted_module(name)
    # nothing is imported but the vetted module of the name (and its parent packages)
    assert all(
        vetted is not None and (vetted[0] == m or vetted[0].startswith(m + ".")) for m in imported
    ), (name, imported)
    assert not probe_in_sklearn.exists()
    if allowed:
        assert vetted is not None
        assert not any(p.startswith("__") or p in ("tests", "conftest") for p in name.split("."))


def test_every_scikit_learn_estimator_is_still_allowed_by_name() -> None:
    from sklearn.utils import all_estimators

    refused = [
        f"{cls.__module__}.{cls.__qualname__}"
        for _, cls in all_estimators()
        if not is_allowed(f"{cls.__module__}.{cls.__qualname__}")
    ]
    assert refused == []
    # compiled classes a fitted model holds (KNeighbors' trees and metric)
    assert is_allowed("sklearn.neighbors._kd_tree.KDTree")
    assert is_allowed("sklearn.metrics._dist_metrics.EuclideanDistance64")
    # a name that re-exports, a test helper, a switch module: refused
    assert not is_allowed("sklearn.utils.Bunch")
    assert not is_allowed("sklearn.utils._testing.TempMemmap")
    assert not is_allowed("sklearn.experimental.enable_iterative_imputer.IterativeImputer")
