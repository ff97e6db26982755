"""`nbops run`, `runs list/show/compare` and `rerun` on real kernels, through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from nbops import errors
from nbops.runs.store import RunStore
from tests.helpers import build_notebook, run_nbops

pytestmark = pytest.mark.slow

PARAMS = (
    "rows = 10  # how many rows\nscale: float = 2.0\napi_token = 'sk-default'",
    ["parameters"],
)
WORK = (
    "import nbops\n"
    "total = rows * scale\n"
    "nbops.log_metric('total', total)\n"
    "for epoch, loss in enumerate([0.9, 0.5, 0.2]):\n"
    "    nbops.log_metric('loss', loss, step=epoch)\n"
    "nbops.log_param('note', 'hello')",
    ["train"],
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nstore = ".nbops"\n')
    return tmp_path


@pytest.fixture
def store(project: Path) -> RunStore:
    return RunStore(project / ".nbops")


def _single_run(store: RunStore):  # type: ignore[no-untyped-def]
    (record,) = store.list()
    return record


def test_a_run_records_parameters_metrics_and_the_output_notebook(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")

    result = run_nbops("run", "train.ipynb", "-p", "rows", "5", "-p", "scale=3", cwd=project)

    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    assert record.status == "completed"
    assert record.parameters == {"rows": 5, "scale": 3.0, "api_token": "***"}
    assert record.latest_metrics() == {"total": 15.0, "loss": 0.2}
    assert [p.step for p in record.metrics["loss"]] == [0, 1, 2]
    assert record.logged_params == {"note": "hello"}
    assert [(c.role, c.status) for c in record.cells] == [("parameters", "ok"), ("train", "ok")]
    assert all(c.duration_s is not None for c in record.cells)
    assert record.environment is not None and record.environment.kernel == "python3"
    assert record.notebook_sha256 and record.started_at and record.duration_s is not None
    output = store.run_dir(record.run_id) / "output.ipynb"
    executed = nbformat.read(output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "rows = 5" in injected[0].source
    assert f"Run {record.run_id} completed" in result.stdout


def test_metrics_survive_clearing_the_output_notebook(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    run_nbops("run", "train.ipynb", cwd=project)
    record = _single_run(store)
    output = store.run_dir(record.run_id) / "output.ipynb"
    executed = nbformat.read(output, as_version=4)
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbformat.write(executed, output)
    assert store.load(record.run_id).latest_metrics()["total"] == 20.0
    assert (store.run_dir(record.run_id) / "events.jsonl").exists()


def test_secret_parameters_are_redacted_from_record_and_output_notebook(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    result = run_nbops("run", "train.ipynb", "-p", "api_token", "sk-live-123", cwd=project)
    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    folder = store.run_dir(record.run_id)
    for path in [folder / "output.ipynb", folder / "record.json"]:
        text = path.read_text()
        assert "sk-live-123" not in text and "sk-default" not in text, path
    assert record.parameters["api_token"] == "***"


def test_secret_looking_environment_variables_are_not_captured(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    env_probe = run_nbops(
        "run", "train.ipynb",
        cwd=project,
        env={**__import__("os").environ, "MY_SERVICE_TOKEN": "t0k", "PLAIN_SETTING": "visible"},
    )  # fmt: skip
    assert env_probe.returncode == 0, env_probe.stderr
    variables = _single_run(store).environment.variables  # type: ignore[union-attr]
    assert "MY_SERVICE_TOKEN" not in variables
    assert variables["PLAIN_SETTING"] == "visible"


def test_a_notebook_without_tags_runs_and_warns_that_nothing_is_captured(
    project: Path, store: RunStore
) -> None:
    build_notebook(
        project / "scratch.ipynb",
        [
            "# Quick look",
            ("import statistics\nscores = [0.81, 0.86, 0.84]", []),
            ("statistics.mean(scores)", []),
        ],
    )
    result = run_nbops("run", "scratch.ipynb", cwd=project)

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("nbops: warning")]
    assert len(warnings) == 1
    assert "metrics and the model are not captured automatically" in warnings[0]
    assert "no cell is tagged" in warnings[0]
    record = _single_run(store)
    assert record.status == "completed" and not record.metrics and not record.models
    assert record.warnings == [warnings[0].removeprefix("nbops: warning: ")]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-p", "rowz", "5"], "unknown parameter 'rowz' (known: rows, scale, api_token)"),
        (["-p", "rows", "many"], "parameter 'rows' expects int, got 'many'"),
    ],
)
def test_bad_parameters_are_refused_before_any_kernel_starts(
    args: list[str],
    fragment: str,
    project: Path,
    store: RunStore,
    make_notebook: Callable[..., Path],
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    result = run_nbops("run", "train.ipynb", *args, cwd=project)
    assert result.returncode == errors.ParameterValueError.exit_code
    assert len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr
    assert store.list() == []


def test_a_parameters_file_is_read_and_checked(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    (project / "params.yaml").write_text("rows: 4\nscale: 0.5\n")
    result = run_nbops("run", "train.ipynb", "-f", "params.yaml", "-p", "rows", "6", cwd=project)
    assert result.returncode == 0, result.stderr
    assert _single_run(store).parameters["rows"] == 6  # the command line wins over the file
    assert _single_run(store).parameters["scale"] == 0.5


@pytest.mark.parametrize(
    ("code", "status", "error", "fragment"),
    [
        ("raise ValueError('boom')", "failed", errors.RunFailedError, "ValueError: boom"),
        ("import os\nos._exit(3)", "killed", errors.KernelDiedError, "the kernel died"),
        ("import time\ntime.sleep(60)", "timeout", errors.RunTimeoutError, "timed out"),
    ],
)
def test_a_run_that_does_not_complete_is_recorded_with_its_status(
    code: str,
    status: str,
    error: type[errors.RunError],
    fragment: str,
    project: Path,
    store: RunStore,
    make_notebook: Callable[..., Path],
) -> None:
    make_notebook(
        [
            PARAMS,
            ("import nbops\nnbops.log_metric('before', 1)", ["transform"]),
            (code, ["train"]),
            ("after = 1", []),
        ],
        name="train.ipynb",
    )
    result = run_nbops("run", "train.ipynb", "--timeout", "3", cwd=project)

    assert result.returncode == error.exit_code, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    record = _single_run(store)
    assert record.status == status
    assert record.latest_metrics() == {"before": 1.0}
    assert record.failure is not None
    if status == "failed":
        assert (record.failure.cell_index, record.failure.role) == (2, "train")
        assert record.failure.ename == "ValueError" and record.failure.traceback
    assert [c.status for c in record.cells][-1] == "not run"
    assert (store.run_dir(record.run_id) / "output.ipynb").exists()


def test_ctrl_c_records_the_run_as_interrupted(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook(
        [
            PARAMS,
            (
                "import time\nimport nbops\nnbops.log_metric('started', 1)\ntime.sleep(60)",
                ["train"],
            ),
        ],
        name="train.ipynb",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "run", "train.ipynb"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = store.list()
        if runs and runs[0].metrics:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    record = _single_run(store)
    assert record.status == "interrupted"
    assert record.latest_metrics() == {"started": 1.0}


def test_runs_list_show_and_compare(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    make_notebook([PARAMS, WORK], name="train.ipynb")
    run_nbops("run", "train.ipynb", "-p", "rows", "1", cwd=project)
    run_nbops("run", "train.ipynb", "-p", "rows", "2", cwd=project)
    first, second = reversed(store.list())

    listing = run_nbops("runs", "list", cwd=project)
    assert listing.returncode == 0
    assert first.run_id in listing.stdout and second.run_id in listing.stdout

    show = run_nbops("runs", "show", first.run_id[-6:], "--json", cwd=project)
    assert json.loads(show.stdout)["parameters"]["rows"] == 1

    compared = run_nbops("runs", "compare", first.run_id, second.run_id, cwd=project)
    assert compared.returncode == 0, compared.stderr
    rows = {
        line.split("│")[2].strip(): line
        for line in compared.stdout.splitlines()
        if line.count("│") > 3
    }
    assert rows["param rows"].split("│")[1].strip() == "*"
    assert rows["param scale"].split("│")[1].strip() == ""
    assert rows["metric total"].split("│")[1].strip() == "*"


def test_runs_show_of_an_unknown_run_is_one_clear_error(project: Path) -> None:
    result = run_nbops("runs", "show", "nope", cwd=project)
    assert result.returncode == errors.RunNotFoundError.exit_code
    assert result.stderr.startswith("nbops: error: no run 'nope'")


def test_rerun_uses_the_same_parameters_and_notebook_version(
    project: Path, store: RunStore, make_notebook: Callable[..., Path]
) -> None:
    notebook = make_notebook([PARAMS, WORK], name="train.ipynb")
    run_nbops("run", "train.ipynb", "-p", "rows", "3", cwd=project)
    original = _single_run(store)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("rows * scale", "rows * scale * 100")
    nbformat.write(nb, notebook)

    result = run_nbops("rerun", original.run_id, cwd=project)

    assert result.returncode == 0, result.stderr
    assert "train.ipynb changed since run" in result.stderr
    rerun = store.load("latest")
    assert rerun.rerun_of == original.run_id
    assert rerun.parameters == original.parameters
    assert rerun.latest_metrics()["total"] == original.latest_metrics()["total"] == 6.0


def test_running_the_example_records_its_data_model_and_export_version(
    project: Path, store: RunStore
) -> None:
    import shutil

    from tests.helpers import EXAMPLES

    shutil.copy(EXAMPLES / "penguins.ipynb", project / "penguins.ipynb")
    assert run_nbops("export", "penguins.ipynb", cwd=project).returncode == 0

    result = run_nbops("run", "penguins.ipynb", "-p", "n_estimators", "30", cwd=project)

    assert result.returncode == 0, result.stderr
    record = _single_run(store)
    assert record.export_version == 1
    (data,) = record.data
    assert data.name == "penguins" and data.type == "dataframe"
    assert (data.model_extra or {})["rows"] == 342
    (model,) = record.models
    assert model["format"] == "skops" and model["class"] == "sklearn.pipeline.Pipeline"
    assert (store.run_dir(record.run_id) / model["path"]).stat().st_size > 0
    assert set(record.latest_metrics()) == {"accuracy", "f1_macro"}
    assert [c.role for c in record.cells if c.role] == [
        "setup", "parameters", "transform:load", "transform:features", "transform:split", "train", "evaluate",
    ]  # fmt: skip
