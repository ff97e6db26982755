"""Fidelity: the exported package reproduces the notebook's metrics.

Each example notebook is executed top to bottom through papermill on a real kernel, with the
same parameter overrides the package gets on its command line; the metric values are read
back from a cell appended to the executed copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbops.export.exporter import export_notebook
from tests.helpers import EXAMPLES, SMALL, build_notebook, notebook_metrics

pytestmark = pytest.mark.slow

OVERRIDES = {
    "penguins": {"test_size": 0.3, "n_estimators": 50},
    "synthetic_regression": {"n_rows": 800, "alpha": 0.5},
    "passengers": {"n_estimators": 50, "max_depth": 4},
    "churn": {"C": 0.5, "test_size": 0.3},
}


def package_metrics(folder: Path, name: str, params: dict[str, object]) -> dict[str, float]:
    args = [f"--param={k}={v}" for k, v in params.items()]
    proc = subprocess.run(
        [sys.executable, "-m", name, *args], cwd=folder, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_exported_example_gives_the_notebooks_metrics(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The examples log to nbops; point the kernel's capture at a scratch run folder.
    monkeypatch.setenv("NBOPS_RUN_DIR", str(tmp_path / "run"))
    notebook = EXAMPLES / f"{name}.ipynb"
    result = export_notebook(notebook, tmp_path / "pipelines")

    exported = package_metrics(result.folder, name, OVERRIDES[name])
    expected = notebook_metrics(notebook, result.folder, name, OVERRIDES[name], tmp_path)

    assert exported, "the example must report metrics"
    assert exported == pytest.approx(expected, rel=1e-12)


def test_every_example_notebook_is_covered() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.ipynb")} == set(OVERRIDES)


def test_a_jupytext_percent_script_exports_like_its_notebook(tmp_path: Path) -> None:
    notebook = build_notebook(tmp_path / "small.ipynb", SMALL)
    script = tmp_path / "small_script.py"
    import jupytext

    jupytext.write(nbformat.read(notebook, as_version=4), script, fmt="py:percent")
    assert '# %% tags=["transform:load"]' in script.read_text()

    from_nb = export_notebook(notebook, tmp_path / "a")
    from_py = export_notebook(script, tmp_path / "b", name="small")

    assert [s.key for s in from_py.manifest.steps] == [s.key for s in from_nb.manifest.steps]
    assert package_metrics(from_py.folder, "small", {}) == package_metrics(
        from_nb.folder, "small", {}
    )


def test_the_generated_test_file_passes(tmp_path: Path) -> None:
    result = export_notebook(build_notebook(tmp_path / "small.ipynb", SMALL), tmp_path / "out")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_pipeline.py"],
        cwd=result.folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed" in proc.stdout
