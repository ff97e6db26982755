"""The bundle commands' files: `nbops predict` reads every data file `validate` reads and
writes its predictions whole; `nbops monitor --html` writes its report whole, into a folder
it makes when missing (as `nbops validate --html` does)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.e2e.conftest import run_nbops

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
