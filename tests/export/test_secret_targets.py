"""A secret parameter in the orchestrator files of `nbops export --target kfp|airflow`: no
default anywhere, not a pipeline parameter or DAG param; each step's `Params` reads it from
NBOPS_PARAM_<NAME> in the component's or worker's environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nbops.export.exporter import export_notebook
from tests.helpers import build_notebook

SECRET = "hunter2-in-the-notebook"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("kfp")
    root = tmp_path_factory.mktemp("secret-targets")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        root / "small.ipynb",
        [
            (f'size = 4\ndb_password = "{SECRET}"', ["parameters"]),
            ("values = [i + len(db_password) for i in range(size)]", ["transform:load"]),
            ("total = sum(values)", ["train"]),
        ],
    )
    result = export_notebook(notebook, root / "pipelines", targets=["kfp", "airflow"])
    return result.folder


def test_no_orchestrator_file_holds_the_secret_default(exported: Path) -> None:
    written = [p for p in exported.parent.rglob("*") if p.is_file()]

    assert any(p.name == "kfp_pipeline.yaml" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []


def test_the_secret_is_no_kfp_pipeline_parameter(exported: Path) -> None:
    tree = ast.parse((exported / "kfp_pipeline.py").read_text())
    pipeline = next(
        f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "small_pipeline"
    )
    components = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f is not pipeline]

    assert [a.arg for a in pipeline.args.args] == ["size"]
    assert all("db_password" not in [a.arg for a in f.args.args] for f in components)
    assert "db_password=params.db_password" in (exported / "kfp_pipeline.py").read_text()


def test_the_secret_is_no_airflow_dag_param(exported: Path) -> None:
    dag = (exported / "airflow_dag.py").read_text()

    assert "'size': Param(" in dag or '"size": Param(' in dag
    assert "'db_password': Param(" not in dag and '"db_password": Param(' not in dag
