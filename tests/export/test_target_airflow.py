"""`nbops export --target airflow`: an Airflow 3 TaskFlow DAG from the notebook.

Airflow itself loads the DAG file (its DagBag, in a child process with a scratch AIRFLOW_HOME,
so no state leaks into the user's ~/airflow), and the slow test runs it with `airflow dags
test` on a SQLite metadata database and compares its metrics with the notebook's own, run
through papermill.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.config import StepResources
from nbops.errors import TargetBuildError
from nbops.export.exporter import ExportResult, export_notebook
from nbops.export.formatting import lint_problems
from nbops.export.manifest import ParameterEntry
from nbops.export.targets import TargetContext, TargetOptions
from tests._shared_runs import AIRFLOW, migrated_airflow_db, shared_notebook_metrics
from tests.helpers import (
    EXAMPLES,
    TWO_MODELS,
    build_notebook,
    package_metric_names,
    reported_metric_names,
    run_nbops,
)

# Not pytest.importorskip: importing airflow here would create ~/airflow in the test process.
if importlib.util.find_spec("airflow") is None:
    pytest.skip("apache-airflow is not installed", allow_module_level=True)

PENGUINS = EXAMPLES / "penguins.ipynb"
# Small enough to run fast, weak enough that the metrics are not a perfect 1.0.
PARAMS = {"n_estimators": 3, "max_depth": 1, "test_size": 0.4}
OPTIONS = TargetOptions(steps={"train": StepResources(retries=2, cpu_limit="2")})
PYPROJECT = '[tool.nbops.steps.train]\nretries = 2\ncpu_limit = "2"\n'


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow child process: its own home, SQLite database and DAGs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NBOPS_"))}
    home.mkdir(parents=True, exist_ok=True)
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **extra,
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportResult]:
    out = tmp_path_factory.mktemp("airflow") / "pipelines"
    yield export_notebook(PENGUINS, out, targets=["airflow"], options=OPTIONS)


# Loads the export folder with Airflow's DagBag (every .py file, not only those that look like
# DAG files, so .airflowignore is what keeps the package's modules out), then calls the DAG
# file's own `_save` in a fake task context to see where values go.
# Run as the `airflow` command is (tests/_shared_runs.py): rfc3987_syntax marked absent, and
# no interpreter finalisation once the result is printed.
_LOAD = r"""
import atexit, importlib.util, json, os, sys, time
from types import SimpleNamespace
sys.modules.setdefault("rfc3987_syntax", None)
folder = sys.argv[1]
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=folder, safe_mode=False)
found = {
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "parsed": sorted(s.file for s in bag.dagbag_stats),
    "parse_seconds": max(s.duration.total_seconds() for s in bag.dagbag_stats),
    "loaded": [m for m in ("pandas", "sklearn", "numpy", "skops", "penguins.transform",
                           "penguins.params", "penguins._nbops_io") if m in sys.modules],
    "dags": {},
}
for dag_id, dag in bag.dags.items():
    found["dags"][dag_id] = {
        "tasks": dag.task_ids,
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "params": {k: {"default": p.value, "description": p.description, **p.schema}
                   for k in dag.params for p in [dag.params.get_param(k)]},
        "tags": sorted(dag.tags), "schedule": dag.schedule, "catchup": dag.catchup,
    }
spec = importlib.util.spec_from_file_location("airflow_dag", os.path.join(folder, "airflow_dag.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
fake = {"dag": SimpleNamespace(dag_id="penguins"), "run_id": "manual__1", "ti": SimpleNamespace(task_id="train")}
module.get_current_context = lambda: fake
found["saved_default"] = module._save({"n": (3, "json")})
os.environ["NBOPS_ARTIFACT_ROOT"] = sys.argv[2]
found["saved_root"] = module._save({"n": (3, "json")})
# then, in the same process (Airflow imports once), the DAG folder at an export root
root = sys.argv[3]
bag = DagBag(dag_folder=root, safe_mode=False)
found["at_export_root"] = {
    "import_errors": {os.path.relpath(str(k), root): v for k, v in bag.import_errors.items()},
    "parsed": sorted(str(s.file) for s in bag.dagbag_stats),
    "dags": {d: os.path.relpath(dag.fileloc, root) for d, dag in bag.dags.items()},
}
print("NBOPS-DAGBAG " + json.dumps(found))
import threading
for thread in threading.enumerate():
    if thread is not threading.main_thread() and not thread.daemon:
        thread.join()
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


@pytest.fixture(scope="module")
def export_root(exported: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export root holding penguins v2 and, kept under .versions, v1 (the module's export,
    copied): the notebook changed since v1."""
    out = tmp_path_factory.mktemp("export-root") / "pipelines"
    shutil.copytree(exported.folder.parent, out)
    notebook = out.parent / "penguins.ipynb"
    notebook.write_text(
        PENGUINS.read_text("utf-8").replace("n_estimators = 200", "n_estimators = 100"), "utf-8"
    )
    second = export_notebook(notebook, out, targets=["airflow"])
    assert second.version == 2
    return out


@pytest.fixture(scope="module")
def loaded(
    exported: ExportResult, export_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """What Airflow makes of the export folder (and, under "at_export_root", of a DAG folder
    at an export root holding a kept version)."""
    tmp = tmp_path_factory.mktemp("dagbag")
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, str(exported.folder), str(tmp / "root"), str(export_root)],
        env=airflow_env(tmp / "home", exported.folder),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.split("NBOPS-DAGBAG ", 1)[1])
    return result


def test_the_export_writes_a_lint_clean_dag_file_next_to_the_package(
    exported: ExportResult,
) -> None:
    assert (exported.folder / "airflow_dag.py").is_file()
    assert (exported.package_dir / "_nbops_io.py").is_file()
    assert exported.manifest.targets == ["airflow"]
    assert {"airflow_dag.py", ".airflowignore"} <= set(exported.manifest.files)
    assert lint_problems(exported.folder) == []
    text = (exported.folder / "airflow_dag.py").read_text()
    assert "import pickle" not in text
    assert "NBOPS_ARTIFACT_ROOT" in text and "they all share" in text  # the docstring says so


def test_airflow_loads_the_dag_with_one_task_per_step_and_the_step_graph(
    exported: ExportResult, loaded: dict[str, Any]
) -> None:
    assert loaded["import_errors"] == {}
    assert loaded["parsed"] == ["airflow_dag.py"]  # .airflowignore keeps the package out
    assert list(loaded["dags"]) == ["penguins"]
    dag = loaded["dags"]["penguins"]
    steps = exported.manifest.steps
    assert dag["tasks"] == [s.key.replace(":", "_") for s in steps]
    expected = {
        s.key.replace(":", "_"): sorted(
            {i.step.replace(":", "_") for i in s.inputs if i.source == "step" and i.step}
        )
        for s in steps
    }
    assert dag["upstream"] == expected
    assert dag["upstream"]["evaluate"] == ["train", "transform_split"]
    assert dag["tags"] == ["nbops"]
    assert dag["schedule"] is None and dag["catchup"] is False


def test_the_notebook_parameters_are_dag_params_with_their_defaults(
    exported: ExportResult, loaded: dict[str, Any]
) -> None:
    params = loaded["dags"]["penguins"]["params"]
    assert list(params) == [p.name for p in exported.manifest.parameters]
    assert {k: p["default"] for k, p in params.items()} == {
        p.name: p.default for p in exported.manifest.parameters
    }
    assert params["test_size"] == {
        "default": 0.25,
        "type": "number",
        "description": "share of the rows held out for evaluation",
    }
    assert params["n_estimators"]["type"] == "integer"


def test_step_retries_become_task_retries_and_pod_resources_are_noted_as_not_applied(
    exported: ExportResult, loaded: dict[str, Any]
) -> None:
    retries = loaded["dags"]["penguins"]["retries"]
    assert retries["train"] == 2 and retries["evaluate"] == 0
    text = (exported.folder / "airflow_dag.py").read_text()
    assert "@task(retries=2)\ndef train(" in text
    assert "# [tool.nbops.steps] train: cpu_limit='2' not applied" in text


def test_parsing_the_dag_file_is_light(loaded: dict[str, Any]) -> None:
    # Airflow parses DAG files often: the step modules (and pandas, scikit-learn) are
    # imported inside the tasks, not when the file is parsed.
    assert loaded["loaded"] == []
    assert loaded["parse_seconds"] < 5


def test_values_go_under_the_artifact_root_by_dag_run_and_task(
    exported: ExportResult, loaded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    default = Path(loaded["saved_default"]["n"])
    # out of the export folder, which the next export replaces: under AIRFLOW_HOME
    assert default.parts[-6:] == (
        "home",
        "nbops-artifacts",
        "penguins",
        "manual__1",
        "train",
        "n.json",
    )
    assert exported.folder not in default.parents
    assert json.loads(default.read_text()) == 3
    root = Path(loaded["saved_root"]["n"])
    assert root.parts[-5:] == ("root", "penguins", "manual__1", "train", "n.json")


def test_the_cli_writes_the_same_dag_file_with_the_steps_from_pyproject(
    exported: ExportResult, tmp_path: Path
) -> None:
    shutil.copy(PENGUINS, tmp_path / "penguins.ipynb")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    proc = run_nbops("export", "penguins.ipynb", "-o", "out", "--target", "airflow", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "airflow_dag.py" in proc.stdout
    written = (tmp_path / "out" / "penguins" / "airflow_dag.py").read_text()
    assert written == (exported.folder / "airflow_dag.py").read_text()


def _context(exported: ExportResult, **changes: Any) -> TargetContext:
    fields: dict[str, Any] = {
        "name": "penguins",
        "manifest": exported.manifest,
        "artifacts": exported.manifest.artifacts,
        "options": TargetOptions(),
        "requirements": ["pandas==2.0.0"],
        **changes,
    }
    return TargetContext(**fields)


def test_each_task_runs_the_notebooks_setup_configure_before_its_step(
    exported: ExportResult,
) -> None:
    from nbops.export.targets import airflow

    text = airflow.render(_context(exported, configure=True))["airflow_dag.py"]
    assert text.count("\n    configure()\n") == len(exported.manifest.steps)
    assert "@task(retries" not in text  # no [tool.nbops.steps] settings here


def test_tasks_report_metrics_under_the_names_the_package_gives_them(tmp_path: Path) -> None:
    notebook = build_notebook(tmp_path / "two_models.ipynb", TWO_MODELS)
    result = export_notebook(notebook, tmp_path / "out", targets=["airflow"])
    names = reported_metric_names((result.folder / "airflow_dag.py").read_text())

    assert names == {"knn.accuracy", "tree.accuracy", "accuracy_score"}
    assert names == package_metric_names(result.folder, result.name)


def test_a_package_name_that_hides_a_module_is_refused(exported: ExportResult) -> None:
    from nbops.export.targets import airflow

    with pytest.raises(TargetBuildError, match="--name"):
        airflow.render(_context(exported, name="statistics"))


@pytest.mark.parametrize(
    ("annotation", "default", "schema"),
    [
        ("int", 3, {"type": "integer"}),
        ("float", 1, {"type": "number"}),
        ("int | None", None, {"type": ["integer", "null"]}),
        ("Optional[str]", "a", {"type": ["null", "string"]}),
        ("int", None, {"type": ["integer", "null"]}),  # an unannotated-None default
        ("list[int]", [1, 2], {"type": "array"}),
        ("tuple[int, ...]", (1, 2), {"type": "array"}),
        ("dict[str, Any]", {"a": 1}, {"type": "object"}),
        ("Literal['gini', 'entropy']", "gini", {"type": "string", "enum": ["gini", "entropy"]}),
        ("Literal[Kind.A]", "a", {}),  # values that are not literals: left to Params
        ("Any", None, {}),
        ("MyType", 3, {}),
    ],
)
def test_parameter_annotations_become_json_schema_types(
    annotation: str, default: Any, schema: dict[str, Any]
) -> None:
    from nbops.export.targets.airflow import param_schema

    parameter = ParameterEntry(name="p", type=annotation, default=default)
    got_default, got_schema = param_schema(parameter, "nb.ipynb")
    assert got_schema == schema
    assert got_default == (list(default) if isinstance(default, tuple) else default)


def test_a_default_a_dag_param_cannot_hold_is_one_clear_error(tmp_path: Path) -> None:
    notebook = build_notebook(
        tmp_path / "raw.ipynb",
        [
            ("marker = b'\\x00'", ["parameters"]),
            ("size = len(marker)", ["transform"]),
            ("score = float(size)", ["evaluate"]),
        ],
    )
    proc = run_nbops("export", str(notebook), "-o", "out", "--target", "airflow", cwd=tmp_path)
    assert proc.returncode == 33
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "`marker`" in proc.stderr and "JSON" in proc.stderr
    assert not (tmp_path / "out" / "raw").exists()


@pytest.mark.slow
def test_airflow_runs_the_dag_and_gives_the_notebooks_metrics(
    exported: ExportResult,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "artifacts"
    env = airflow_env(tmp_path / "home", exported.folder, NBOPS_ARTIFACT_ROOT=str(root))
    migrated_airflow_db(tmp_path_factory, tmp_path / "home")  # as `airflow db migrate` does
    started = time.perf_counter()
    proc = subprocess.run(
        [*AIRFLOW, "dags", "test", "penguins", "-c", json.dumps(PARAMS)],
        env=env,
        cwd=PENGUINS.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    took = time.perf_counter() - started
    print(f"airflow dags test: {took:.1f} s")

    with sqlite3.connect(tmp_path / "home" / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance").fetchall())
        xcom = dict(
            db.execute(
                "SELECT key, value FROM xcom WHERE task_id = 'evaluate' AND dag_id = 'penguins'"
            ).fetchall()
        )
    assert states == dict.fromkeys(states, "success") and len(states) == 5
    from_airflow = json.loads(xcom["metrics"])
    assert json.loads(xcom["return_value"])["metrics"] == from_airflow

    monkeypatch.setenv("NBOPS_RUN_DIR", str(tmp_path / "run"))
    expected = shared_notebook_metrics(
        tmp_path_factory, PENGUINS, exported.folder, "penguins", PARAMS
    )
    expected = {k: v for k, v in expected.items() if k in from_airflow}

    assert set(from_airflow) == {"accuracy", "f1_macro"}
    assert from_airflow["accuracy"] < 1.0  # a real comparison, not two perfect scores
    assert from_airflow == pytest.approx(expected, rel=1e-9)
    # every task ran in its own process and passed files on: the model is a skops file
    models = list(root.glob("penguins/*/train/model.skops"))
    assert len(models) == 1 and models[0].read_bytes()[:2] == b"PK"


def test_a_dag_folder_at_the_export_root_loads_each_pipeline_once_not_its_kept_versions(
    export_root: Path, loaded: dict[str, Any]
) -> None:
    assert (export_root / ".versions/penguins/v1/airflow_dag.py").is_file()
    found = loaded["at_export_root"]
    assert found["import_errors"] == {}
    assert found["dags"] == {"penguins": "penguins/airflow_dag.py"}
    assert len(found["parsed"]) == 1, found["parsed"]
