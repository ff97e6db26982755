"""`nbops runs list --notebook PATH` finds a notebook's runs whatever path form recorded them:
`nbops run` and `ci` record the path as typed (relative to where they ran), sweeps record it
absolute. The store indexes each run under the notebook's absolute path when it saves it,
and matches the rows an older nbops indexed as typed (relative ones from the project root)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nbops.runs.store import RunStore
from tests.helpers import run_nbops

from .conftest import make_record

TRAIN = ["20260101-000001-aaaaa1", "20260101-000002-aaaaa2", "20260101-000003-aaaaa3"]
OTHER = "20260101-000004-bbbbb4"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    for name in ("train.ipynb", "other.ipynb"):
        (root / "notebooks" / name).write_text("{}")
    return root


def _listed(cwd: Path, notebook: str) -> set[str]:
    result = run_nbops("runs", "list", "--notebook", notebook, "-n", "50", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {r for r in [*TRAIN, OTHER] if r in result.stdout}


QUERIES = [
    ("", "notebooks/train.ipynb"),
    ("", "./notebooks/../notebooks/train.ipynb"),
    ("notebooks", "train.ipynb"),
    ("notebooks", "{root}/notebooks/train.ipynb"),
]


@pytest.mark.parametrize(("where", "query"), QUERIES)
def test_runs_list_finds_runs_recorded_under_any_path_form(
    project: Path, monkeypatch: pytest.MonkeyPatch, where: str, query: str
) -> None:
    store = RunStore(project / ".nbops")
    monkeypatch.chdir(project)  # `nbops run notebooks/train.ipynb` from the root
    store.save(make_record(TRAIN[0], notebook="notebooks/train.ipynb"))
    store.save(make_record(OTHER, notebook="notebooks/other.ipynb"))
    # a sweep records the absolute path
    store.save(make_record(TRAIN[1], notebook=str(project / "notebooks" / "train.ipynb")))
    monkeypatch.chdir(project / "notebooks")  # `nbops ci train.ipynb` from its folder
    store.save(make_record(TRAIN[2], notebook="train.ipynb"))
    store.save(make_record(TRAIN[2], notebook="train.ipynb", status="failed"))  # saved again

    assert _listed(project / where, query.format(root=project)) == set(TRAIN)


@pytest.mark.parametrize(("where", "query"), QUERIES)
def test_runs_list_matches_rows_an_older_nbops_indexed_as_typed(
    project: Path, where: str, query: str
) -> None:
    RunStore(project / ".nbops")
    rows = [
        (TRAIN[0], "notebooks/train.ipynb"),
        (TRAIN[1], str(project / "notebooks" / "train.ipynb")),
        (OTHER, "notebooks/other.ipynb"),
    ]
    with sqlite3.connect(project / ".nbops" / "runs.db") as db:
        for run_id, notebook in rows:
            record = make_record(run_id, notebook=notebook)
            db.execute(
                "INSERT INTO runs (run_id, notebook, status, started_at, record)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, notebook, "completed", record.started_at, record.model_dump_json()),
            )
    assert _listed(project / where, query.format(root=project)) == set(TRAIN[:2])
