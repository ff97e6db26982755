"""Data larger than memory: validate and slice_metrics over partitioned Parquet (a folder,
a glob) and Dask DataFrames give the in-memory reports, merged from chunks; errors are one
line with exit 26; memory stays bounded by the chunk, not the data."""

from __future__ import annotations

import itertools
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops import slice_metrics
from nbops.errors import QualityInputError
from nbops.quality.schema import infer_schema
from nbops.quality.stream import source as stream_source
from nbops.quality.stream.slices import auc_sketch_error
from nbops.quality.validate import validate
from tests.helpers import run_nbops

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _stream_data import part_frame


def _write_parts(folder: Path, frame: pd.DataFrame, cuts: list[int]) -> Path:
    """`frame` as hive partitions part=K cut at `cuts` (row positions)."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(frame))), len(frame)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        (folder / f"part={k}").mkdir()
        table = pa.Table.from_pandas(frame.iloc[a:b], preserve_index=False)
        pq.write_table(table, folder / f"part={k}" / "data.parquet", row_group_size=997)
    return folder


def _same_checks(a, b) -> None:
    """Every check of the in-memory report `a` is in the streamed `b` with the same status,
    count, examples and statistics (floats to 1e-9)."""
    streamed = {c.name: c for c in b.checks}
    for check in a.checks:
        if check.kind == "unexpected_column":
            continue  # the streamed data also has the partition column
        other = streamed[check.name]
        assert (other.status, other.count) == (check.status, check.count), check.name
        assert other.example_rows == check.example_rows, check.name
        for key, value in check.stats.items():
            if isinstance(value, float):
                assert other.stats[key] == pytest.approx(value, abs=1e-9, rel=1e-9), key
            else:
                assert other.stats[key] == value, key


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return part_frame(20_000, 1).to_pandas()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(200, 6_000),
    cuts=st.lists(st.integers(1, 5_999), max_size=4),
    shift=st.sampled_from([0.0, 0.3, 3.0]),
    bad=st.booleans(),
)
def test_merged_chunk_statistics_equal_the_whole_frames(
    tmp_path_factory: pytest.TempPathFactory,
    reference: pd.DataFrame,
    seed: int,
    rows: int,
    cuts: list[int],
    shift: float,
    bad: bool,
) -> None:
    schema = infer_schema(reference, label="y_true")
    frame = part_frame(rows, seed, shift=shift).to_pandas()
    if bad:  # values out of range, unknown categories, nulls where none were
        frame.loc[frame.index[::97], "f0"] = 1e6
        frame.loc[frame.index[::89], "cat0"] = "zz"
        frame.loc[frame.index[::83], "n0"] = None
    folder = _write_parts(tmp_path_factory.mktemp("parts"), frame, cuts)
    _same_checks(validate(frame, schema), validate(folder, schema))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(300, 5_000),
    cuts=st.lists(st.integers(1, 4_999), max_size=4),
)
def test_streamed_slice_counts_are_exact_and_auc_within_the_stated_error(
    tmp_path_factory: pytest.TempPathFactory, seed: int, rows: int, cuts: list[int]
) -> None:
    frame = part_frame(rows, seed).to_pandas()
    folder = _write_parts(tmp_path_factory.mktemp("slices"), frame, cuts)
    a = slice_metrics(frame.y_true, frame.y_pred, frame.y_score, ["cat0"], data=frame)
    b = slice_metrics("y_true", "y_pred", "y_score", ["cat0"], data=str(folder))
    assert b.sketch_error["roc_auc"] == auc_sketch_error()
    assert [(r.name, r.metric, r.count) for r in a.rows] == [
        (r.name, r.metric, r.count) for r in b.rows
    ]
    for x, y in zip(a.rows, b.rows, strict=True):
        if x.metric == "roc_auc":
            assert x.value is not None and y.value is not None
            assert abs(x.value - y.value) <= b.sketch_error["roc_auc"]
        else:
            assert (x.value, x.ci_low, x.ci_high) == (y.value, y.ci_low, y.ci_high)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 200_000), q=st.floats(0.01, 0.99))
def test_kll_quantiles_are_within_the_stated_rank_error(seed: int, n: int, q: float) -> None:
    from datasketches import kll_doubles_sketch

    from nbops.quality.stream.reference import KLL_K, kll_rank_error

    x = np.random.default_rng(seed).normal(size=n)
    sketch = kll_doubles_sketch(KLL_K)
    for part in np.array_split(x, 7):  # merged from chunks, as streamed
        piece = kll_doubles_sketch(KLL_K)
        if part.size:
            piece.update(part)
        sketch.merge(piece)
    value = sketch.get_quantile(q, True)
    rank = np.count_nonzero(x <= value) / n
    assert abs(rank - q) <= kll_rank_error() + 1 / n


def test_a_streamed_reference_is_sketched_and_says_so(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    schema = infer_schema(reference, label="y_true")
    ref = _write_parts(tmp_path / "ref", reference, [7_000, 13_000])
    data = _write_parts(tmp_path / "data", part_frame(5_000, 3).to_pandas(), [2_000])
    report = validate(data, schema, reference=str(ref))
    psi = next(c for c in report.checks if c.name == "f0.drift_psi")
    assert psi.stats["exact"] is False and psi.stats["sketch"] == "kll"
    exact = validate(data, schema)
    assert next(c for c in exact.checks if c.name == "f0.drift_psi").stats["exact"] is True
    in_memory = validate(pd.read_parquet(data).drop(columns=["part"]), schema, reference=reference)
    ks = next(c for c in in_memory.checks if c.name == "f0.drift_ks").stats["statistic"]
    ks_sketched = next(c for c in report.checks if c.name == "f0.drift_ks").stats["statistic"]
    assert abs(ks - ks_sketched) <= 2 * float(psi.stats["sketch_rank_error"]) + 1e-3


def test_cli_validates_a_partitioned_folder_and_a_glob(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    infer_schema(reference, label="y_true").save(tmp_path / "schema.json")
    frame = part_frame(4_000, 5).to_pandas()
    frame.loc[frame.index[:3], "cat1"] = "unknown"
    _write_parts(tmp_path / "data", frame, [1_500, 3_000])
    for target in ("data", "data/part=*/*.parquet"):
        done = run_nbops("validate", target, "--schema", "schema.json", "--json", cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # the unknown categories fail
        report = __import__("json").loads(done.stdout)
        assert report["rows"] == 4_000
        failed = {c["name"]: c["count"] for c in report["checks"] if c["status"] == "fail"}
        assert failed == {"cat1.categories": 3}


@pytest.mark.parametrize(
    ("make", "where", "said"),
    [
        (lambda d: d.mkdir(), "empty", "holds no .parquet files"),
        (lambda d: None, "nothing/*.parquet", "matches no file"),
    ],
)
def test_cli_refuses_an_empty_folder_or_glob_in_one_line(
    tmp_path: Path, reference: pd.DataFrame, make, where: str, said: str
) -> None:
    infer_schema(reference, label="y_true").save(tmp_path / "schema.json")
    make(tmp_path / where)
    done = run_nbops("validate", where, "--schema", "schema.json", cwd=tmp_path)
    assert done.returncode == 26
    assert said in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if said in line]) == 1


def test_files_with_mismatching_schemas_are_refused_naming_the_file(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    infer_schema(reference, label="y_true").save(tmp_path / "schema.json")
    frame = part_frame(1_000, 5).to_pandas()
    _write_parts(tmp_path / "data", frame, [500])
    odd = frame.iloc[:10].assign(n0=lambda f: f.n0.astype(str))
    (tmp_path / "data" / "part=9").mkdir()
    pq.write_table(
        pa.Table.from_pandas(odd, preserve_index=False), tmp_path / "data" / "part=9" / "x.parquet"
    )
    done = run_nbops("validate", "data", "--schema", "schema.json", cwd=tmp_path)
    assert done.returncode == 26, done.stderr
    assert "part=9" in done.stderr and "'n0'" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_slice_column_is_named(tmp_path: Path) -> None:
    _write_parts(tmp_path / "d", part_frame(500, 2).to_pandas(), [])
    with pytest.raises(QualityInputError, match="column 'nope' is not in the data"):
        slice_metrics("y_true", "y_pred", None, ["nope"], data=str(tmp_path / "d"))


def test_streaming_memory_is_bounded_by_the_chunk_not_the_data(
    tmp_path: Path, reference: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = infer_schema(reference, label="y_true")
    frame = part_frame(600_000, 4).to_pandas()
    size = int(frame.memory_usage(deep=True).sum())
    folder = _write_parts(tmp_path / "big", frame, [200_000, 400_000])
    del frame
    monkeypatch.setattr(stream_source, "CHUNK_ROWS", 20_000)
    tracemalloc.start()
    report = validate(folder, schema, workers=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.rows == 600_000
    assert peak < size / 10, (peak, size)


def test_a_dask_dataframe_on_a_local_cluster_gives_the_in_memory_reports(
    reference: pd.DataFrame,
) -> None:
    dd = pytest.importorskip("dask.dataframe")
    from distributed import Client, LocalCluster

    from nbops.runs.sweep import LOCAL_SCHEDULER

    schema = infer_schema(reference, label="y_true")
    frame = part_frame(3_000, 8, shift=0.2).to_pandas()
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            scheduler_kwargs=LOCAL_SCHEDULER,  # not on 0.0.0.0:8787, as nbops's own
        ) as cluster,
        Client(cluster),
    ):
        ddf = dd.from_pandas(frame, npartitions=3)
        _same_checks(validate(frame, schema), validate(ddf, schema))
        a = slice_metrics(frame.y_true, frame.y_pred, None, ["cat0"], data=frame)
        b = slice_metrics("y_true", "y_pred", None, ["cat0"], data=ddf)
        assert [(r.name, r.value, r.count) for r in a.rows] == [
            (r.name, r.value, r.count) for r in b.rows
        ]
