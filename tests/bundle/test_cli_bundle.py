"""The bundle commands' files: `nbops predict` reads every data file `validate` reads and
writes its predictions whole; `nbops monitor --html` writes its report whole, into a folder
it makes when missing (as `nbops validate --html` does); `nbops bundle` says which run it
takes, and `--notebook` takes that notebook's latest run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nbops.errors import BundleError, RunNotFoundError
from nbops.runs.store import RunStore
from tests.helpers import run_nbops
from tests.runs.conftest import make_record

from .conftest import Built


def test_predict_scores_a_parquet_file_into_a_new_folder(
    built: Built, bundle_copy: Path, tmp_path: Path
) -> None:
    built.requests.head(10).to_parquet(tmp_path / "batch.pq")
    result = run_nbops(
        "predict", str(bundle_copy), "batch.pq", "-o", "out/predictions.csv", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert scored["prediction"].tolist() == built.model.predict(built.features.head(10)).tolist()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["predictions.csv"]


def test_monitor_writes_its_html_report_into_a_folder_it_makes(
    built: Built, bundle_copy: Path, tmp_path: Path
) -> None:
    built.requests.to_csv(tmp_path / "recent.csv", index=False)
    result = run_nbops(
        "monitor", str(bundle_copy), "--data", "recent.csv", "--html", "reports/m.html",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "reports" / "m.html").read_text().startswith("<!")
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["m.html"]


# -- which run `nbops bundle` takes -----------------------------------------------------------

A_RUN, B_RUN = "20260101-000001-aaaaa1", "20260101-000002-bbbbb2"


@pytest.fixture
def two_notebooks_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose newest run is b.ipynb's; neither run logged a model."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    monkeypatch.chdir(tmp_path)  # where `nbops run a.ipynb` ran
    store = RunStore(tmp_path / ".nbops")
    store.save(make_record(A_RUN, notebook="a.ipynb", started_at="2026-01-01T00:00:01+00:00"))
    store.save(make_record(B_RUN, notebook="b.ipynb", started_at="2026-01-01T00:00:02+00:00"))
    return tmp_path


def test_bundle_run_latest_says_which_run_it_took(two_notebooks_runs: Path) -> None:
    result = run_nbops("bundle", "--run", "latest", cwd=two_notebooks_runs)
    assert f"Bundling run {B_RUN} of b.ipynb" in result.stdout, result.stdout + result.stderr
    assert result.returncode == BundleError.exit_code  # no model logged: nothing bundled


def test_bundle_notebook_takes_the_latest_run_of_that_notebook(two_notebooks_runs: Path) -> None:
    result = run_nbops("bundle", "--notebook", "a.ipynb", cwd=two_notebooks_runs)
    assert f"Bundling run {A_RUN} of a.ipynb" in result.stdout, result.stdout + result.stderr
    assert f"run {A_RUN} did not record a model" in result.stderr


def test_bundle_notebook_without_runs_is_one_error_line(two_notebooks_runs: Path) -> None:
    result = run_nbops("bundle", "--notebook", "c.ipynb", "--run", "latest", cwd=two_notebooks_runs)
    assert result.returncode == RunNotFoundError.exit_code, result.stderr
    assert "c.ipynb" in result.stderr and len(result.stderr.strip().splitlines()) == 1
