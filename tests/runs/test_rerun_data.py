"""`nbops rerun` runs on the data the run kept (runs/history.py), not the file as it is now.

Two real-kernel tests through the CLI (a parameter naming the data; a hard-coded path with
--restore-data), and the parts that need no kernel: the warnings, and the in-place restore
putting the current file back when the run fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.runs.capture import fingerprint_data
from nbops.runs.history import _restored_in_place, rerun_warnings
from nbops.runs.snapshots import SnapshotSettings, keep
from nbops.runs.store import RunStore
from tests.helpers import build_notebook, run_nbops
from tests.runs.conftest import make_record


def _project(tmp_path: Path, settings: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[tool.nbops]\nstore = ".nbops"\n{settings}', "utf-8")
    return tmp_path


def _work(read: str, snapshot: str = ", snapshot=True") -> tuple[str, list[str]]:
    return (
        "import nbops, pandas as pd\n"
        f"frame = pd.read_csv({read})\n"
        f"nbops.track_data({read}, 'train'{snapshot})\n"
        "nbops.log_metric('mean', float(frame['v'].mean()))",
        ["train"],
    )


def _mean(store: RunStore, run_id: str) -> float:
    return store.load(run_id).latest_metrics()["mean"]


@pytest.mark.slow
def test_rerun_passes_the_kept_copy_as_the_parameter_naming_the_changed_file(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path)
    (root / "data.csv").write_text("v\n1\n2\n3\n", "utf-8")
    build_notebook(
        root / "train.ipynb", [("data_path = 'data.csv'", ["parameters"]), _work("data_path")]
    )
    store = RunStore(root / ".nbops")
    first = run_nbops("run", "train.ipynb", cwd=root)
    assert first.returncode == 0, first.stderr
    (original,) = store.list()
    (root / "data.csv").write_text("v\n100\n200\n", "utf-8")  # the data moves on

    again = run_nbops("rerun", original.run_id, cwd=root)

    assert again.returncode == 0, again.stderr
    assert "passed as the parameter 'data_path'" in again.stderr
    rerun = next(r for r in store.list() if r.rerun_of == original.run_id)
    assert _mean(store, rerun.run_id) == _mean(store, original.run_id) == 2.0
    assert rerun.data[0].sha256 == original.data[0].sha256
    assert Path(rerun.parameters["data_path"]).parent == store.run_dir(rerun.run_id) / "data"
    assert (root / "data.csv").read_text("utf-8") == "v\n100\n200\n"


@pytest.mark.slow
def test_rerun_with_restore_data_puts_a_hard_coded_file_back_for_the_run_only(
    tmp_path: Path,
) -> None:
    """The copy is kept by `snapshot_data = true` (no argument in the notebook)."""
    root = _project(tmp_path, "snapshot_data = true\n")
    (root / "fixed.csv").write_text("v\n4\n6\n", "utf-8")
    build_notebook(
        root / "train.ipynb", [("seed = 0", ["parameters"]), _work("'fixed.csv'", snapshot="")]
    )
    store = RunStore(root / ".nbops")
    assert run_nbops("run", "train.ipynb", cwd=root).returncode == 0
    (original,) = store.list()
    (root / "fixed.csv").write_text("v\n0\n", "utf-8")

    again = run_nbops("rerun", original.run_id, "--restore-data", cwd=root)

    assert again.returncode == 0, again.stderr
    rerun = next(r for r in store.list() if r.rerun_of == original.run_id)
    assert _mean(store, rerun.run_id) == _mean(store, original.run_id) == 5.0
    assert (root / "fixed.csv").read_text("utf-8") == "v\n0\n"
    assert sorted(p.name for p in root.glob("fixed.csv*")) == ["fixed.csv"]


def _changed_run(root: Path, parameters: dict[str, str]) -> tuple[RunStore, str]:
    """A recorded run that kept train.csv, which has changed since."""
    store = RunStore(root / ".nbops")
    data = root / "train.csv"
    data.write_text("v\n1\n", "utf-8")
    run_id = "20260101-000000-aaaaaa"
    fingerprint = fingerprint_data(data)
    snap = keep(data, "train", fingerprint, store.directory, SnapshotSettings(True))
    record = make_record(run_id, notebook=str(root / "train.ipynb"), parameters=parameters)
    record.apply_events([{"kind": "data", "name": "train", **fingerprint, "snapshot": snap}])
    store.save(record)
    data.write_text("v\n2\n", "utf-8")
    return store, run_id


def test_without_restore_data_the_warning_says_the_rerun_reads_the_current_file(
    tmp_path: Path,
) -> None:
    store, run_id = _changed_run(_project(tmp_path), {"seed": 1})

    (warning,) = [w for w in rerun_warnings(store.load(run_id)) if "train.csv" in w]

    assert "no parameter names it" in warning and "--restore-data" in warning


def test_a_parameter_given_relative_to_the_notebook_names_the_tracked_file(
    tmp_path: Path,
) -> None:
    store, run_id = _changed_run(_project(tmp_path), {"data_path": "train.csv"})

    (warning,) = [w for w in rerun_warnings(store.load(run_id)) if "train.csv" in w]

    assert "passed as the parameter 'data_path'" in warning


def test_the_current_file_comes_back_when_the_restored_run_fails(tmp_path: Path) -> None:
    current, kept = tmp_path / "fixed.csv", tmp_path / "kept"
    current.write_text("now", "utf-8")
    kept.write_text("then", "utf-8")

    with pytest.raises(RuntimeError), _restored_in_place([(current, kept)]):
        assert current.read_text("utf-8") == "then"
        raise RuntimeError("the run failed")

    assert current.read_text("utf-8") == "now"
    assert [p.name for p in tmp_path.glob("fixed.csv*")] == ["fixed.csv"]


def test_a_rerun_whose_kept_copy_is_gone_stops_with_42_before_anything_runs(
    tmp_path: Path,
) -> None:
    from nbops.errors import DataSnapshotError
    from nbops.runs.history import rerun
    from nbops.runs.snapshots import stored_objects

    root = _project(tmp_path)
    store, run_id = _changed_run(root, {"data_path": "train.csv"})
    (kept,) = stored_objects(store.directory)
    kept.path.unlink()

    with pytest.raises(DataSnapshotError) as raised:
        rerun(run_id, store=store)

    assert raised.value.exit_code == 42 and "is missing" in str(raised.value)
    assert [r.run_id for r in store.list()] == [run_id]
    assert sorted(p.name for p in (store.directory / "runs").iterdir()) == [run_id]
