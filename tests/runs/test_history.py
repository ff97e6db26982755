"""Looking back at runs: comparing them side by side, and what changed before a rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.notebook.read import read_notebook
from nbops.runs.capture import fingerprint_data
from nbops.runs.history import ComparisonRow, compare, rerun_warnings
from nbops.runs.record import DataFingerprint, MetricPoint, ParameterSchema, RunRecord

from .conftest import make_record, write_notebook


def with_metrics(run_id: str, params: dict, **metrics: list[float]) -> RunRecord:
    return make_record(
        run_id,
        parameters=params,
        metrics={
            name: [MetricPoint(value=v, step=i, ts=float(i)) for i, v in enumerate(values)]
            for name, values in metrics.items()
        },
    )


def row(rows: list[ComparisonRow], kind: str, name: str) -> ComparisonRow:
    return next(r for r in rows if r.kind == kind and r.name == name)


# --- compare --------------------------------------------------------------------------------


def test_compare_gives_one_row_per_parameter_then_per_metric() -> None:
    a = with_metrics("a", {"n": 1, "lr": 0.1}, loss=[0.5], acc=[0.8])
    b = with_metrics("b", {"n": 2, "lr": 0.1}, loss=[0.4], acc=[0.8])

    rows = compare([a, b])

    assert [(r.kind, r.name) for r in rows] == [
        ("param", "lr"),
        ("param", "n"),
        ("metric", "acc"),
        ("metric", "loss"),
    ]


def test_compare_rows_hold_each_runs_value_in_order() -> None:
    a = with_metrics("a", {"n": 1}, loss=[0.9, 0.5])
    b = with_metrics("b", {"n": 2}, loss=[0.4])

    rows = compare([a, b])

    assert row(rows, "param", "n").values == [1, 2]
    assert row(rows, "metric", "loss").values == [0.5, 0.4]


def test_rows_differ_only_where_the_runs_disagree() -> None:
    a = with_metrics("a", {"n": 1, "lr": 0.1}, loss=[0.5], acc=[0.8])
    b = with_metrics("b", {"n": 2, "lr": 0.1}, loss=[0.4], acc=[0.8])

    rows = compare([a, b])

    assert {r.name for r in rows if r.differs} == {"n", "loss"}


def test_value_missing_from_one_run_differs() -> None:
    a = with_metrics("a", {"n": 1}, loss=[0.5])
    b = with_metrics("b", {}, acc=[0.9])

    rows = compare([a, b])

    assert row(rows, "param", "n").values == [1, None]
    assert row(rows, "param", "n").differs
    assert row(rows, "metric", "acc").values == [None, 0.9]


def test_equal_lists_and_dicts_do_not_differ() -> None:
    a = with_metrics("a", {"layers": [8, 4], "opts": {"x": 1}})
    b = with_metrics("b", {"layers": [8, 4], "opts": {"x": 1}})

    assert not any(r.differs for r in compare([a, b]))


def test_a_single_run_differs_nowhere() -> None:
    rows = compare([with_metrics("a", {"n": 1}, loss=[0.5])])

    assert [r.differs for r in rows] == [False, False]


# --- rerun_warnings -------------------------------------------------------------------------


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "train.ipynb", [("n = 1", ["parameters"])])


def record_of(notebook: Path, **fields: object) -> RunRecord:
    return make_record(
        notebook=str(notebook), notebook_sha256=read_notebook(notebook).sha256, **fields
    )


def tracked_file(path: Path, name: str = "train") -> DataFingerprint:
    return DataFingerprint(name=name, **fingerprint_data(path))


def test_no_warnings_when_nothing_changed(notebook: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    record = record_of(notebook, data=[tracked_file(data)])

    assert rerun_warnings(record) == []


def test_changed_notebook_is_warned_about(notebook: Path) -> None:
    record = record_of(notebook)
    write_notebook(notebook, [("n = 2", ["parameters"])])

    [warning] = rerun_warnings(record)

    assert "changed since run" in warning
    assert str(notebook) in warning


def test_missing_notebook_is_warned_about(notebook: Path) -> None:
    record = record_of(notebook)
    notebook.unlink()

    [warning] = rerun_warnings(record)

    assert "is gone" in warning


def test_changed_data_file_is_warned_about(notebook: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    record = record_of(notebook, data=[tracked_file(data)])
    data.write_text("a\n2\n", "utf-8")

    [warning] = rerun_warnings(record)

    assert "'train'" in warning
    assert "changed since the run" in warning


def test_missing_data_file_is_warned_about(notebook: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    record = record_of(notebook, data=[tracked_file(data)])
    data.unlink()

    [warning] = rerun_warnings(record)

    assert "'train'" in warning
    assert "is gone" in warning


def test_tracked_dataframe_gives_no_warning(notebook: Path) -> None:
    frame = DataFingerprint(name="features", type="dataframe", sha256="0" * 64, rows=3)
    record = record_of(notebook, data=[frame])

    assert rerun_warnings(record) == []


def test_secret_parameters_are_warned_about(notebook: Path) -> None:
    schema = [
        ParameterSchema(name="api_token", type="str", default="***", secret=True),
        ParameterSchema(name="n", type="int", default=1),
    ]
    record = record_of(notebook, parameter_schema=schema)

    [warning] = rerun_warnings(record)

    assert warning.startswith("secret parameters api_token were not recorded")


def test_every_change_gets_its_own_warning(notebook: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"1")
    schema = [ParameterSchema(name="key", type="str", default="***", secret=True)]
    record = record_of(notebook, data=[tracked_file(data)], parameter_schema=schema)
    notebook.unlink()
    data.write_bytes(b"2")

    assert len(rerun_warnings(record)) == 3


def test_relative_data_path_is_checked_beside_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = write_notebook(folder / "train.ipynb", [("n = 1", ["parameters"])])
    (folder / "train.csv").write_text("a\n1\n", "utf-8")
    monkeypatch.chdir(folder)  # `nbops run` starts the kernel in the notebook's folder
    tracked = tracked_file(Path("train.csv"))
    monkeypatch.chdir(tmp_path)  # the user runs nbops from the project root
    record = make_record(
        notebook="notebooks/train.ipynb",
        notebook_sha256=read_notebook(notebook).sha256,
        data=[tracked],
    )

    assert rerun_warnings(record) == []
