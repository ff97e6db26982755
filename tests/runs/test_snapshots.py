"""Data snapshots (runs/snapshots.py): `track_data(..., snapshot=True)` keeps the data in the
store, content-addressed; `nbops data list|get|gc` show, write back and prune it.

The capture calls run in this process as they would in a kernel under `nbops run` (the run
folder comes from NBOPS_RUN_DIR); the record is then folded from the run's events and saved
in a real store, as `nbops run` does at the end of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from nbops import errors
from nbops.runs import capture, snapshots
from nbops.runs.capture import RUN_DIR_ENV, RUN_ID_ENV
from nbops.runs.events import read_events
from nbops.runs.record import RunRecord
from nbops.runs.snapshots import SnapshotSettings
from nbops.runs.store import RunStore
from tests.helpers import run_nbops
from tests.runs.conftest import make_record

RUN_A = "20260101-000000-aaaaaa"
RUN_B = "20260102-000000-bbbbbb"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project (pyproject.toml, store `.nbops/`), snapshots off unless a test turns them on."""
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nstore = ".nbops"\n', "utf-8")
    for name in (snapshots.SNAPSHOT_ENV, snapshots.MAX_BYTES_ENV, snapshots.STORE_MAX_BYTES_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store(root: Path) -> RunStore:
    return RunStore(root / ".nbops")


def in_run(store: RunStore, run_id: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the capture calls of this process write to run `run_id` of `store`."""
    folder = store.run_dir(run_id)
    monkeypatch.setenv(RUN_DIR_ENV, str(folder))
    monkeypatch.setenv(RUN_ID_ENV, run_id)
    capture._active = None
    return folder


def finish(
    store: RunStore, run_id: str, started: str = "2026-01-01T00:00:00.000+00:00"
) -> RunRecord:
    """Fold the run's events into its record and save it, as `nbops run` does at the end."""
    record = make_record(run_id, started_at=started)
    record.apply_events(read_events(store.run_dir(run_id)))
    store.save(record)
    return record


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def objects(store: RunStore) -> list[snapshots.StoredObject]:
    return snapshots.stored_objects(store.directory)


def test_a_tracked_file_is_kept_once_however_often_it_is_tracked(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = root / "train.csv"
    data.write_text("a,b\n1,2\n3,4\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)

    first = capture.track_data(data, "train", snapshot=True)
    inode = objects(store)[0].path.stat().st_ino
    second = capture.track_data(str(data), "again", snapshot=True)

    (kept,) = objects(store)
    assert kept.path.stat().st_ino == inode  # not written again
    assert kept.kind == "file" and kept.sha256 == sha256(data)
    assert kept.path.read_bytes() == data.read_bytes()
    assert (
        first["snapshot"]
        == second["snapshot"]
        == {
            "kind": "file",
            "sha256": sha256(data),
            "bytes": data.stat().st_size,
        }
    )


def test_a_frame_comes_back_from_its_parquet_copy_equal(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame(
        {
            "n": [3, 1, 2],
            "x": [0.5, float("nan"), 2.25],
            "s": ["a", None, "c"],
            "when": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01"]),
            "cat": pd.Categorical(["lo", "hi", "lo"]),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    in_run(store, RUN_A, monkeypatch)
    fingerprint = capture.track_data(frame, "features", snapshot=True)
    finish(store, RUN_A)

    loaded = snapshots.load_snapshot(RUN_A, "features")

    pd.testing.assert_frame_equal(loaded, frame)
    assert fingerprint["snapshot"]["kind"] == "parquet"
    assert capture.fingerprint_data(loaded)["sha256"] == fingerprint["sha256"]


def test_data_over_snapshot_max_bytes_is_not_kept_says_so_once_and_the_run_warns(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = root / "big.csv"
    data.write_text("x\n" + "1\n" * 100, "utf-8")
    monkeypatch.setenv(snapshots.SNAPSHOT_ENV, "1")
    monkeypatch.setenv(snapshots.MAX_BYTES_ENV, "64")
    in_run(store, RUN_A, monkeypatch)

    fingerprint = capture.track_data(data, "big")  # snapshot_data = true, from the run's env
    record = finish(store, RUN_A)

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "'big'" in lines[0] and "not kept" in lines[0] and "snapshot_max_bytes" in lines[0]
    assert fingerprint["snapshot"] == {"skipped": lines[0]}
    assert objects(store) == []
    assert lines[0] in record.warnings


def test_a_full_data_store_keeps_no_more_and_names_data_store_max_bytes(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(snapshots.SNAPSHOT_ENV, "1")
    monkeypatch.setenv(snapshots.STORE_MAX_BYTES_ENV, "150")
    in_run(store, RUN_A, monkeypatch)
    (root / "one.csv").write_bytes(b"1" * 100)
    (root / "two.csv").write_bytes(b"2" * 100)

    kept = capture.track_data(root / "one.csv", "one")
    refused = capture.track_data(root / "two.csv", "two")

    assert kept["snapshot"]["kind"] == "file"
    assert "data_store_max_bytes" in refused["snapshot"]["skipped"]
    assert "nbops data gc" in capsys.readouterr().err
    assert [o.sha256 for o in objects(store)] == [kept["sha256"]]


def test_without_snapshot_data_only_the_fingerprint_is_recorded(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "d.csv").write_text("a\n1\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)

    fingerprint = capture.track_data(root / "d.csv", "d")

    assert "snapshot" not in fingerprint
    assert objects(store) == []


def test_snapshot_data_in_pyproject_turns_snapshots_on_in_an_interactive_kernel(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "pyproject.toml").write_text(
        "[tool.nbops]\nsnapshot_data = true\nsnapshot_max_bytes = 1234\n", "utf-8"
    )

    assert snapshots.settings() == SnapshotSettings(True, 1234, snapshots.DEFAULT_STORE_MAX_BYTES)


def test_a_kept_copy_changed_on_disk_is_refused_with_exit_42(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = root / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(data, "train", snapshot=True)
    finish(store, RUN_A)
    (kept,) = objects(store)
    kept.path.write_text("a\n2\n", "utf-8")

    result = run_nbops("data", "get", RUN_A, "train", "-o", "out.csv", cwd=root)

    assert result.returncode == errors.DataSnapshotError.exit_code == 42, result.stderr
    assert "no longer matches its hash" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "out.csv").exists()


def test_a_missing_kept_copy_is_refused_with_exit_42(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = root / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(data, "train", snapshot=True)
    finish(store, RUN_A)
    objects(store)[0].path.unlink()

    with pytest.raises(errors.DataSnapshotError, match="is missing"):
        snapshots.get_data(store, RUN_A, "train", root / "out.csv")


def test_data_get_writes_the_kept_bytes_after_the_file_changed(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = root / "train.csv"
    data.write_text("a\n1\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(data, "train", snapshot=True)
    finish(store, RUN_A)
    data.write_text("a\n999\n", "utf-8")

    result = run_nbops("data", "get", RUN_A[-6:], "train", "-o", "old.csv", cwd=root)

    assert result.returncode == 0, result.stderr
    assert (root / "old.csv").read_text("utf-8") == "a\n1\n"


# -- DVC --------------------------------------------------------------------------------------


def dvc_repo(root: Path, content: bytes, *, cache: bool = True, lock: bool = False) -> Path:
    """A DVC 3 repository by hand: `.dvc/`, data/train.csv, its `.dvc` file (or a dvc.lock
    stage listing it) and, with `cache`, the cache entry `.dvc/cache/files/md5/<2>/<30>`."""
    (root / ".dvc").mkdir()
    data = root / "data" / "train.csv"
    data.parent.mkdir()
    data.write_bytes(content)
    md5 = hashlib.md5(content).hexdigest()
    if lock:
        (root / "dvc.lock").write_text(
            "schema: '2.0'\nstages:\n  prepare:\n    cmd: python prepare.py\n    outs:\n"
            f"    - path: data/train.csv\n      hash: md5\n      md5: {md5}\n"
            f"      size: {len(content)}\n",
            "utf-8",
        )
    else:
        (root / "data" / "train.csv.dvc").write_text(
            f"outs:\n- md5: {md5}\n  size: {len(content)}\n  hash: md5\n  path: train.csv\n",
            "utf-8",
        )
    if cache:
        entry = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        entry.parent.mkdir(parents=True)
        entry.write_bytes(content)
    return data


@pytest.mark.parametrize("lock", [False, True], ids=["dvc-file", "dvc-lock"])
def test_a_dvc_tracked_file_records_its_dvc_hash_and_no_copy(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch, lock: bool
) -> None:
    content = b"a,b\n1,2\n"
    data = dvc_repo(root, content, lock=lock)
    in_run(store, RUN_A, monkeypatch)

    fingerprint = capture.track_data(data, "train", snapshot=True)
    finish(store, RUN_A)
    data.write_bytes(b"a,b\n5,6\n")  # the workspace moves on

    snap = fingerprint["snapshot"]
    assert snap["kind"] == "dvc" and snap["md5"] == hashlib.md5(content).hexdigest()
    assert snap["dvc_file"].endswith("dvc.lock" if lock else "train.csv.dvc")
    assert objects(store) == []
    snapshots.get_data(store, RUN_A, "train", root / "restored.csv")
    assert (root / "restored.csv").read_bytes() == content


def test_a_dvc_file_whose_cache_is_missing_says_dvc_checkout_with_exit_42(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dvc_repo(root, b"a\n1\n", cache=False)
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(data, "train", snapshot=True)
    finish(store, RUN_A)

    result = run_nbops("data", "get", RUN_A, "train", "-o", "x.csv", cwd=root)

    assert result.returncode == 42, result.stderr
    assert "dvc checkout" in result.stderr and "train.csv.dvc" in result.stderr


def test_a_file_changed_since_dvc_add_is_copied_into_the_store(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dvc_repo(root, b"a\n1\n")
    data.write_bytes(b"a\n2\n")  # DVC's hash no longer describes it
    in_run(store, RUN_A, monkeypatch)

    fingerprint = capture.track_data(data, "train", snapshot=True)

    assert fingerprint["snapshot"]["kind"] == "file"
    assert [o.sha256 for o in objects(store)] == [sha256(data)]


# -- list and gc ------------------------------------------------------------------------------


def two_runs(root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run A keeps old.csv, run B keeps new.csv; returns their shas."""
    (root / "old.csv").write_text("v\n1\n", "utf-8")
    (root / "new.csv").write_text("v\n2\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)
    old = capture.track_data(root / "old.csv", "train", snapshot=True)["sha256"]
    finish(store, RUN_A, "2026-01-01T00:00:00.000+00:00")
    in_run(store, RUN_B, monkeypatch)
    new = capture.track_data(root / "new.csv", "train", snapshot=True)["sha256"]
    finish(store, RUN_B, "2026-01-02T00:00:00.000+00:00")
    return old, new


def age(store: RunStore, seconds: float = 3600) -> None:
    """Make every kept object older than gc's grace period."""
    for obj in objects(store):
        past = obj.path.stat().st_mtime - seconds
        os.utime(obj.path, (past, past))


def test_gc_frees_objects_no_run_references_and_keeps_the_referenced(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = two_runs(root, store, monkeypatch)
    (root / "orphan.csv").write_text("v\n3\n", "utf-8")
    in_run(store, "20260103-000000-cccccc", monkeypatch)  # never recorded: its object is orphaned
    orphan = capture.track_data(root / "orphan.csv", "x", snapshot=True)["sha256"]
    age(store)

    dry = run_nbops("data", "gc", "--dry-run", cwd=root)
    assert dry.returncode == 0, dry.stderr
    assert {o.sha256 for o in objects(store)} == {old, new, orphan}
    result = run_nbops("data", "gc", cwd=root)

    assert result.returncode == 0, result.stderr
    assert "Freed 4 B: 1 object(s) deleted" in result.stdout
    assert {o.sha256 for o in objects(store)} == {old, new}


def test_gc_keep_runs_frees_older_runs_data_but_not_registry_pins(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = two_runs(root, store, monkeypatch)
    age(store)

    snapshots.collect_garbage(store.directory, snapshots.references(store, keep_runs=1))
    assert {o.sha256 for o in objects(store)} == {new}

    old_again = capture.fingerprint_data(root / "old.csv")["sha256"]
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(root / "old.csv", "train", snapshot=True)
    age(store)
    event = {"action": "promote", "detail": {"reference_snapshot": old_again}}
    (store.directory / "registry.jsonl").write_text(json.dumps(event) + "\n", "utf-8")
    result = snapshots.collect_garbage(store.directory, snapshots.references(store, keep_runs=1))

    assert result.pinned == 1 and result.deleted == []
    assert {o.sha256 for o in objects(store)} == {new, old}


def test_data_list_json_names_each_object_with_its_runs(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = two_runs(root, store, monkeypatch)

    result = run_nbops("data", "list", "--json", cwd=root)
    per_run = run_nbops("data", "list", "--run", RUN_B, "--json", cwd=root)

    assert result.returncode == 0, result.stderr
    rows = {r["sha256"]: r for r in json.loads(result.stdout)}
    assert rows[old]["runs"] == [RUN_A] and rows[new]["runs"] == [RUN_B]
    assert rows[old]["names"] == ["train"] and rows[old]["kind"] == "file"
    (row,) = json.loads(per_run.stdout)
    assert (row["name"], row["sha256"], row["status"]) == ("train", new, "kept")


def test_a_frame_parquet_cannot_hold_is_skipped_and_the_cell_goes_on(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.DataFrame({"mixed": [1, "two", 3.0]})  # object column of mixed types
    in_run(store, RUN_A, monkeypatch)

    fingerprint = capture.track_data(frame, "odd", snapshot=True)

    assert "Parquet cannot hold this frame" in fingerprint["snapshot"]["skipped"]
    assert "'odd'" in capsys.readouterr().err
    assert objects(store) == []


def test_a_record_naming_a_path_instead_of_a_hash_is_refused(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "d.csv").write_text("a\n1\n", "utf-8")
    in_run(store, RUN_A, monkeypatch)
    capture.track_data(root / "d.csv", "d", snapshot=True)
    record = finish(store, RUN_A)
    assert record.data[0].snapshot is not None
    record.data[0].snapshot.sha256 = "../../../../etc/passwd"
    store.save(record)

    with pytest.raises(errors.DataSnapshotError, match="malformed hash"):
        snapshots.get_data(store, RUN_A, "d", root / "out")


def test_gc_keeps_the_data_of_a_run_still_in_progress(
    root: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running run's record gets its data from the run's event sidecar as the store reads
    it; with --keep-runs 0 it still counts."""
    (root / "d.csv").write_text("v\n1\n", "utf-8")
    store.save(make_record(RUN_A, status="running"))
    in_run(store, RUN_A, monkeypatch)
    sha = capture.track_data(root / "d.csv", "d", snapshot=True)["sha256"]
    age(store)

    result = snapshots.collect_garbage(store.directory, snapshots.references(store, keep_runs=0))

    assert result.deleted == []
    assert [o.sha256 for o in objects(store)] == [sha]
