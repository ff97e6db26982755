"""`nbops monitor` on data larger than memory: recent records as a folder (or glob) of
Parquet files, and a request log past the streaming size, are read in chunks and give the
report the whole-file path gives (checks, failures, prediction shifts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import run_nbops

from .conftest import Built, rows


def _monitor(bundle: Path, cwd: Path, *args: str) -> dict:
    done = run_nbops("monitor", str(bundle), *args, "--json", "m.json", cwd=cwd)
    assert done.returncode in (0, 31), done.stderr
    assert "Traceback" not in done.stderr
    return json.loads((cwd / "m.json").read_text())


def _parts(built: Built, folder: Path) -> None:
    frame = built.requests.reset_index(drop=True)
    for k, start in enumerate(range(0, len(frame), 40)):
        (folder / f"day={k}").mkdir(parents=True)
        table = pa.Table.from_pandas(frame.iloc[start : start + 40], preserve_index=False)
        pq.write_table(table, folder / f"day={k}" / "part.parquet")


@pytest.fixture(scope="module")
def whole_parquet(built: Built, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The report of the requests as one Parquet file, read whole: made once, the reference
    of both the folder and the glob."""
    root = tmp_path_factory.mktemp("whole")
    shutil.copytree(built.folder, root / built.folder.name)
    built.requests.to_parquet(root / "recent.parquet", index=False)
    return _monitor(root / built.folder.name, root, "--data", "recent.parquet")


@pytest.mark.parametrize("target", ["recent", "recent/day=*/*.parquet"])
def test_monitor_reads_a_parquet_folder_or_glob_in_chunks_as_the_whole_file(
    built: Built, bundle_copy: Path, whole_parquet: dict, tmp_path: Path, target: str
) -> None:
    _parts(built, tmp_path / "recent")
    whole = whole_parquet
    streamed = _monitor(bundle_copy, tmp_path, "--data", target)
    assert streamed["predictions"] == whole["predictions"]
    assert streamed["data"]["failed"] == [
        f for f in whole["data"]["failed"] if f["kind"] != "unexpected_column"
    ] + [f for f in streamed["data"]["failed"] if f["kind"] == "unexpected_column"]


def test_a_large_request_log_is_read_in_chunks_with_the_same_report(
    built: Built, bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = rows(built.requests.reset_index(drop=True))
    predictions = built.model.predict(built.features).tolist()
    lines = [
        json.dumps({"records": records[i : i + 7], "predictions": predictions[i : i + 7]})
        for i in range(0, len(records), 7)
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n{cut short\n")
    monkeypatch.setenv("NBOPS_STREAM_LOG_LINES", "50")  # several chunks
    whole = _monitor(bundle_copy, tmp_path, "--log", "requests.jsonl")
    monkeypatch.setenv("NBOPS_STREAM_LOG_BYTES", "1")
    streamed = _monitor(bundle_copy, tmp_path, "--log", "requests.jsonl")
    assert streamed == whole


def test_performance_estimation_on_a_parquet_folder_is_refused_in_one_line(
    built: Built, bundle_copy: Path, tmp_path: Path
) -> None:
    _parts(built, tmp_path / "recent")
    done = run_nbops(
        "monitor", str(bundle_copy), "--data", "recent", "--window", "1d", cwd=tmp_path
    )
    assert done.returncode == 26
    assert "performance estimation" in done.stderr and "Traceback" not in done.stderr
