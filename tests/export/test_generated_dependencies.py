"""What a generated package needs beside its own code, and what `collect_metrics` touches.

- It imports nbops only where the notebook did, for its log calls, and then says why on the
  import line (the calls record into an active `nbops run`, and do nothing outside one) and
  lists nbops among its requirements.
- Without such calls it never imports nbops: its helpers (data_dir, _numbers, ...) are copied
  in, so it runs where nbops is not installed.
- `collect_metrics` hands `_numbers` only the metric values, and `_numbers` checks each
  value's type before anything else: prediction arrays are neither reported nor converted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.export.exporter import ExportResult, export_notebook
from tests.helpers import SMALL, build_notebook

LOGGING = [
    ("import nbops\nimport numpy as np", ["setup"]),
    ("n = 10", ["parameters"]),
    ("x = np.arange(n)\npreds = x * 2.0", ["train"]),
    (
        "score = float(preds.mean())\n"
        "nbops.log_metric('score', score)\n"
        "stats = {'m': 1.0, 'arr': preds}",
        ["evaluate"],
    ),
]

# Run a package with `import nbops` made to fail, as where nbops is not installed.
WITHOUT_NBOPS = (
    "import json, runpy, sys\n"
    "sys.modules['nbops'] = None\n"
    "sys.argv = [sys.argv[1]]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def logging_package(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    folder = tmp_path_factory.mktemp("logging")
    return export_notebook(build_notebook(folder / "logs.ipynb", LOGGING), folder / "out")


@pytest.fixture
def imported(logging_package: ExportResult) -> Iterator[Any]:
    import importlib

    sys.path.insert(0, str(logging_package.folder))
    try:
        yield importlib.import_module(logging_package.name)
    finally:
        sys.path.remove(str(logging_package.folder))
        for name in [m for m in sys.modules if m.split(".")[0] == logging_package.name]:
            del sys.modules[name]


def _nbops_imports(package_dir: Path) -> list[str]:
    return [
        line
        for path in sorted(package_dir.glob("*.py"))
        for line in path.read_text().splitlines()
        if line.startswith(("import nbops", "from nbops"))
    ]


def test_an_nbops_import_kept_for_log_calls_says_why_and_is_a_requirement(
    logging_package: ExportResult,
) -> None:
    imports = _nbops_imports(logging_package.package_dir)
    assert imports == [
        "import nbops  # kept for its log calls: they record under `nbops run`, else do nothing"
    ]
    manifest = json.loads((logging_package.package_dir / "manifest.json").read_text())
    assert "nbops" in manifest["requirements"]


def test_a_package_whose_notebook_does_not_use_nbops_runs_without_it(tmp_path: Path) -> None:
    result = export_notebook(build_notebook(tmp_path / "small.ipynb", SMALL), tmp_path / "out")
    assert _nbops_imports(result.package_dir) == []
    manifest = json.loads((result.package_dir / "manifest.json").read_text())
    assert "nbops" not in manifest["requirements"]
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_NBOPS, result.name],
        cwd=result.folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"score": pytest.approx(45**0.5)}


def test_collect_metrics_reports_the_metrics_and_leaves_prediction_arrays_out(
    imported: Any,
) -> None:
    results = imported.run()
    assert imported.collect_metrics(results) == {"score": 9.0, "stats.m": 1.0}
    source = (Path(imported.__file__).parent / "pipeline.py").read_text()
    collect = source.split("def collect_metrics", 1)[1].split("\n\n\n", 1)[0]
    assert "results.preds" not in collect and "results.x" not in collect


class Untouchable:
    """A prediction-like value that fails on any conversion or walk."""

    def __float__(self) -> float:
        raise AssertionError("converted to a number")

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("walked")

    def __len__(self) -> int:
        raise AssertionError("measured")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("converted to an array")


def test_numbers_checks_each_type_before_touching_a_value(imported: Any) -> None:
    numbers_of = imported.pipeline._numbers
    found = numbers_of({"acc": 0.5, "preds": Untouchable(), "by": {"a": 1, "p": Untouchable()}})
    assert found == {"acc": 0.5, "by.a": 1.0}
