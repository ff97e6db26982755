"""What a run records without nbops calls: the capture cells `nbops run` adds, what they
record in the kernel, and how the record lets explicit calls win."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.export.exporter import export_notebook
from nbops.notebook.analysis import analyse
from nbops.notebook.read import read_notebook
from nbops.notebook.tags import NBOPS_CAPTURE_TAG
from nbops.runs.autocapture import metric_numbers, record
from nbops.runs.capture import log_metric, log_model
from nbops.runs.capture_plan import add_capture_cells, capture_calls, capture_warnings
from nbops.runs.events import read_events
from tests.runs.conftest import make_record, write_notebook

CELLS = [
    ("import math", ["setup"]),
    ("n = 10  # rows", ["parameters"]),
    ("values = [i / n for i in range(n)]", ["transform"]),
    ("model = sum(values)", ["train"]),
    ("values[:3]", []),
    (
        "error = abs(model - 4.5)\nreport = {'error': error, 'n': n}\nmath.sqrt(model)",
        ["evaluate:a"],
    ),
    ("error = model / 100", ["evaluate:b"]),
]


# -- the capture cells -----------------------------------------------------------------------


def test_a_capture_cell_follows_each_step_with_metrics_and_each_kept_expression(
    tmp_path: Path,
) -> None:
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", CELLS))

    calls = [(c.after, c.step, c.metrics, c.output) for c in capture_calls(notebook)]

    assert calls == [
        (5, "evaluate:a", {"a.error": "error", "report": "report"}, "sqrt"),
        (6, "evaluate:b", {"b.error": "error"}, None),
    ]


def test_a_capture_cell_after_a_cell_that_prints_a_metric_evaluates_it_again(
    tmp_path: Path,
) -> None:
    cells = [
        ("from statistics import mean\n"
         "def mean_squared_error(a, b):\n    return mean((x - y) ** 2 for x, y in zip(a, b))\n"
         "def mean_error_score(a):\n    return mean(a)", ["setup"]),
        ("y_test, y_pred = [1.0, 2.0], [1.5, 2.0]", ["train"]),
        ('print("Mean squared error: %.2f" % mean_squared_error(y_test, y_pred))\n'
         "print(f'{mean_error_score(y_test):.2f}', len(y_test))", ["evaluate"]),
    ]  # fmt: skip
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    [call] = capture_calls(notebook)

    assert (call.after, call.evaluate) == (
        2,
        {
            "mean_squared_error": "mean_squared_error(y_test, y_pred)",
            "mean_error": "mean_error_score(y_test)",
        },
    )
    assert "evaluate={'mean_squared_error': 'mean_squared_error(y_test, y_pred)'" in call.source()


def test_the_executed_copy_gets_the_capture_cells_and_analyses_as_the_notebook(
    tmp_path: Path,
) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", CELLS)
    notebook = read_notebook(path)
    (tmp_path / "run").mkdir()

    copy = add_capture_cells(path, notebook, tmp_path / "run")

    cells = nbformat.read(copy, as_version=4).cells
    tagged = [i for i, c in enumerate(cells) if NBOPS_CAPTURE_TAG in c.metadata.get("tags", [])]
    assert tagged == [6, 8]
    assert "record(globals(), 'evaluate:a'" in cells[6].source
    assert len(nbformat.read(path, as_version=4).cells) == len(CELLS)  # the user's file as is
    ours, theirs = analyse(read_notebook(copy)), analyse(notebook)
    assert [(s.key, s.outputs) for s in ours.steps] == [(s.key, s.outputs) for s in theirs.steps]


def test_a_notebook_nbops_cannot_export_runs_without_capture_cells(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", [("x = 1", []), ("print(y)", ["evaluate"])])

    assert add_capture_cells(path, read_notebook(path), tmp_path) == path


def test_why_nothing_is_captured_names_the_analysis_error_and_its_cell(tmp_path: Path) -> None:
    cells = [("data = [3, 1, 2]", []), ("total = sum(data)", ["train"])]
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    [warning] = capture_warnings(notebook)
    assert warning.startswith("metrics and the model are not captured automatically")
    assert "cell 2" in warning and "'data'" in warning and "untagged cell: cell 1" in warning


def test_an_exportable_notebook_has_no_capture_warning(tmp_path: Path) -> None:
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", CELLS))

    assert capture_warnings(notebook) == []


def test_an_explicit_log_model_means_no_captured_model(tmp_path: Path) -> None:
    cells = [*CELLS[:3], ("model = sum(values)\nnbops.log_model(model)", ["train"])]
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    assert all(c.model is None for c in capture_calls(notebook))


# -- in the kernel ---------------------------------------------------------------------------


def test_record_writes_the_numbers_as_captured_metrics(run_dir: Path) -> None:
    namespace = {"acc": 0.9, "report": {"a": {"f1": 0.5}, "n": "x"}, "pred": [1, 2], "flag": True}

    record(namespace, "evaluate", {"acc": "acc", "report": "report", "pred": "pred", "x": "x"})

    events = read_events(run_dir)
    assert [(e["name"], e["value"], e["auto"]) for e in events] == [
        ("acc", 0.9, True),
        ("report.a.f1", 0.5, True),
    ]


def test_record_reads_the_previous_cells_shown_value_from_out(run_dir: Path) -> None:
    # While cell 3 runs, IPython's history holds inputs 1..3 and the outputs shown so far.
    namespace = {"In": ["", "x = 1", "x / 4", "<capture>"], "Out": {2: 0.25}}

    record(namespace, "evaluate", output="x_ratio")

    [event] = read_events(run_dir)
    assert (event["name"], event["value"]) == ("x_ratio", 0.25)


def test_record_evaluates_a_printed_metric_in_the_notebooks_globals(run_dir: Path) -> None:
    namespace = {"y": [1.0, 3.0], "mean": lambda v: sum(v) / len(v)}

    record(namespace, "evaluate", evaluate={"y_mean": "mean(y)"})

    [event] = read_events(run_dir)
    assert (event["name"], event["value"]) == ("y_mean", 2.0)


def test_a_printed_metric_that_fails_to_evaluate_again_is_skipped_and_said(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record({"acc": 0.5}, "evaluate", {"acc": "acc"}, evaluate={"r2": "r2_score(y, p)"})

    assert [e["name"] for e in read_events(run_dir)] == ["acc"]
    assert "nbops: could not record 'r2' of step 'evaluate': name 'r2_score'" in (
        capsys.readouterr().err
    )


def test_record_never_fails_the_run(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record({"model": (i for i in [])}, "train", model="model")  # skops cannot save a generator

    assert "nbops: could not record step 'train'" in capsys.readouterr().err
    assert not [e for e in read_events(run_dir) if e["kind"] == "model"]


def test_record_saves_the_model_as_the_runs_captured_model(run_dir: Path) -> None:
    from sklearn.linear_model import LinearRegression

    record({"reg": LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])}, "evaluate", model="reg")

    [event] = read_events(run_dir)
    assert (event["kind"], event["name"], event["auto"]) == ("model", "model", True)
    assert (run_dir / event["path"]).exists()


# -- explicit calls win ----------------------------------------------------------------------


def test_an_explicit_metric_wins_over_the_captured_one_and_keeps_its_history(
    run_dir: Path,
) -> None:
    for epoch, loss in enumerate([0.9, 0.4]):
        log_metric("loss", loss, step=epoch)
    record({"loss": 0.4, "acc": 0.8}, "train", {"loss": "loss", "acc": "acc"})

    rec = make_record()
    rec.apply_events(read_events(run_dir))

    assert [(p.value, p.step) for p in rec.metrics["loss"]] == [(0.9, 0), (0.4, 1)]
    assert rec.latest_metrics() == {"loss": 0.4, "acc": 0.8}


def test_an_explicit_model_wins_over_the_captured_one(run_dir: Path) -> None:
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    record({"reg": reg}, "evaluate", model="reg")
    log_model(reg, "model")

    rec = make_record()
    rec.apply_events(read_events(run_dir))

    [model] = rec.models
    assert model["path"] == "models/model.skops" and "auto" not in model


# -- one flattening rule -----------------------------------------------------------------------

_leaf = st.one_of(
    st.floats(allow_nan=False), st.integers(), st.booleans(), st.text(max_size=3), st.none()
)
_values = st.recursive(
    _leaf,
    lambda inner: st.dictionaries(st.text("abc", max_size=2), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def generated_numbers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The `_numbers` of an exported package's pipeline.py: what collect_metrics applies."""
    tmp = tmp_path_factory.mktemp("pkg")
    result = export_notebook(write_notebook(tmp / "flat.ipynb", CELLS), tmp / "out")
    sys.path.insert(0, str(result.folder))
    try:
        yield importlib.import_module("flat.pipeline")._numbers
    finally:
        sys.path.remove(str(result.folder))
        for name in [m for m in sys.modules if m == "flat" or m.startswith("flat.")]:
            del sys.modules[name]


@given(st.dictionaries(st.text("xyz", min_size=1, max_size=2), _values, max_size=4))
def test_the_run_flattens_values_as_the_exported_package_does(
    generated_numbers: Any, values: dict[str, Any]
) -> None:
    assert metric_numbers(values) == generated_numbers(values)


def test_a_notebook_without_cell_ids_gets_capture_cells_without_ids(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", CELLS)
    data = json.loads(path.read_text("utf-8"))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    path.write_text(json.dumps(data), "utf-8")

    copy = add_capture_cells(path, read_notebook(path), tmp_path)

    nb = nbformat.read(copy, as_version=4)
    nbformat.validate(nb)
    assert [("id" in c, NBOPS_CAPTURE_TAG in c.metadata.get("tags", [])) for c in nb.cells][5:] == [
        (False, False), (False, True), (False, False), (False, True),
    ]  # fmt: skip


# -- data files a step reads -------------------------------------------------------------------


def test_a_step_reading_a_file_named_by_a_parameter_fingerprints_it_as_the_frame_read(
    tmp_path: Path,
) -> None:
    cells = [
        ("import pandas as pd\nimport numpy as np", ["setup"]),
        ('data_path = "data/churn.csv"', ["parameters"]),
        ('customers = pd.read_csv(data_path, sep=",")\nlabels = np.loadtxt("data/y.txt")\n'
         "extra = pd.read_parquet(path=data_path)\nprint(customers.shape)", ["transform:load"]),
        ("total = len(customers) + len(labels) + len(extra)", ["train"]),
    ]  # fmt: skip
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    [call] = [c for c in capture_calls(notebook) if c.data or c.data_paths]

    assert (call.after, call.step) == (2, "transform:load")
    assert call.data == {"customers": "data_path", "extra": "data_path"}
    assert call.data_paths == {"labels": "data/y.txt"}
    assert "data={'customers': 'data_path', 'extra': 'data_path'}" in call.source()


def test_a_notebook_that_tracks_its_data_itself_gets_no_data_capture(tmp_path: Path) -> None:
    cells = [
        ("import pandas as pd\nimport nbops", ["setup"]),
        ('data_path = "data/churn.csv"', ["parameters"]),
        ('customers = pd.read_csv(data_path)\nnbops.track_data(customers, "c")', ["transform"]),
    ]
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    assert not any(c.data or c.data_paths for c in capture_calls(notebook))


def test_a_path_built_by_an_expression_is_not_guessed(tmp_path: Path) -> None:
    cells = [
        ("import pandas as pd", ["setup"]),
        ('folder = "data"', ["parameters"]),
        ('frame = pd.read_csv(f"{folder}/x.csv")\nother = pd.read_csv(folder + "/y.csv")', ["transform"]),
    ]  # fmt: skip
    notebook = read_notebook(write_notebook(tmp_path / "nb.ipynb", cells))

    assert not any(c.data or c.data_paths for c in capture_calls(notebook))


def test_record_fingerprints_the_files_read_and_skips_what_is_not_a_file(
    run_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "churn.csv"
    data.write_text("id,churned\n1,0\n")
    namespace = {"data_path": str(data), "url": "https://example.org/x.csv", "buffer": object()}

    record(
        namespace,
        "transform:load",
        data={"customers": "data_path", "remote": "url", "memory": "buffer", "gone": "nothing"},
        data_paths={"missing": str(tmp_path / "absent.csv")},
    )

    events = [e for e in read_events(run_dir) if e["kind"] == "data"]
    assert [(e["name"], e["type"], e["sha256"]) for e in events] == [
        ("customers", "file", hashlib.sha256(data.read_bytes()).hexdigest())
    ]
