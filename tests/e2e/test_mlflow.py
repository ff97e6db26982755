"""The MLflow tracking backend, against a local MLflow store (SQLite; no server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nbops.runs.store import RunStore
from tests.helpers import run_nbops

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow


def test_a_run_is_logged_to_mlflow_with_params_metrics_tags_and_artifacts(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    # A tracking_uri alone turns MLflow on.
    (tmp_path / "pyproject.toml").write_text(f'[tool.nbops]\ntracking_uri = "{uri}"\n')
    make_notebook(
        [
            ("alpha = 0.5", ["parameters"]),
            (
                "import nbops\n"
                "for step, loss in enumerate([0.9, 0.4]):\n"
                "    nbops.log_metric('loss', loss, step=step)\n"
                "nbops.log_param('solver', 'lbfgs')",
                ["train"],
            ),
        ],
        name="fit.ipynb",
    )

    result = run_nbops("run", "fit.ipynb", "-p", "alpha", "0.25", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "INFO" not in result.stderr
    record = RunStore(tmp_path / ".nbops").load("latest")
    assert record.tracking["backend"] == "mlflow"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(record.tracking["run_id"])
    assert run.data.params == {"alpha": "0.25", "solver": "lbfgs"}
    assert run.data.metrics == {"loss": 0.4}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.4)]
    assert run.data.tags["nbops.run_id"] == record.run_id
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "fit"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"output.ipynb", "source.ipynb", "record.json", "events.jsonl"} <= artifacts


def test_an_unknown_tracking_backend_is_refused_before_the_run(
    tmp_path: Path, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([("x = 1", ["train"])], name="fit.ipynb")
    result = run_nbops("run", "fit.ipynb", "--tracking", "wandb", cwd=tmp_path)
    assert result.returncode == 19
    assert (
        result.stderr.strip()
        == "nbops: error: unknown tracking backend 'wandb'; use one of: sqlite, mlflow"
    )
    assert RunStore(tmp_path / ".nbops").list() == []
