"""Secret parameters end to end: a notebook with `db_password = "hunter2"` exported, run,
rerun and bundled through the real CLI; no file nbops writes holds the value, and the
exported package reads it from NBOPS_PARAM_DB_PASSWORD."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from nbops import errors
from nbops.runs.store import RunStore
from tests.helpers import build_notebook, run_nbops

pytestmark = pytest.mark.slow

SECRET = "hunter2"
GIVEN = "given-on-the-command-line-42"
FROM_ENV = "from-the-environment-7"

IRIS = [
    (
        "import nbops\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import train_test_split",
        ["setup"],
    ),
    (f'n_estimators = 10\ndb_password: str = "{SECRET}"  # the database', ["parameters"]),
    (
        "frame = load_iris(as_frame=True).frame\n"
        "nbops.log_metric('password_length', len(db_password))",
        ["transform:load"],
    ),
    (
        'X = frame.drop(columns="target")\n'
        'y = frame["target"]\n'
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["transform:split"],
    ),
    (
        "model = RandomForestClassifier(n_estimators=n_estimators, random_state=0)\n"
        "model.fit(X_train, y_train)",
        ["train"],
    ),
    ("accuracy = model.score(X_test, y_test)\naccuracy", ["evaluate"]),
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBOPS_PARAM_")}
    return {**env, **extra}


def _nbops(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_nbops(*args, cwd=cwd, env=_env(**env), timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported and bundled in one step, then run with the secret given on the command
    line, with it in the environment, and rerun."""
    root = tmp_path_factory.mktemp("secrets-project")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    build_notebook(root / "iris.ipynb", IRIS)
    for args, env in [
        (("export", "iris.ipynb", "--bundle"), {}),
        (("run", "iris.ipynb", "-p", f"db_password={GIVEN}"), {}),
        (("run", "iris.ipynb"), {"NBOPS_PARAM_DB_PASSWORD": FROM_ENV}),
        (("rerun", "latest"), {}),
    ]:
        result = _nbops(*args, cwd=root, **env)
        assert result.returncode == 0, (args, result.stderr)
    return root


def _written_files(root: Path) -> dict[str, bytes]:
    """Every file under the project but the notebook itself, archives opened."""
    files: dict[str, bytes] = {}
    for path in root.rglob("*"):
        if not path.is_file() or path == root / "iris.ipynb":
            continue
        files[str(path.relative_to(root))] = path.read_bytes()
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as archive:
                for member in archive.getmembers():
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        files[f"{path.name}!{member.name}"] = extracted.read()
    return files


def test_no_file_nbops_writes_holds_a_secret_value(project: Path) -> None:
    files = _written_files(project)
    kinds = {
        "package": "pipelines/iris/iris/params.py",
        "manifest": "pipelines/iris/iris/manifest.json",
        "version copy": "pipelines/.versions/iris/v1/iris/params.py",
        "bundle manifest": "bundles/iris-v1/manifest.json",
        "bundle card": "bundles/iris-v1/MODEL_CARD.md",
        "run store": ".nbops/runs.db",
    }
    for kind, rel in kinds.items():
        assert rel in files, kind
    run_files = [r for r in files if r.startswith(".nbops/runs/")]
    names = {Path(r).name for r in run_files}
    assert {"source.ipynb", "input.ipynb", "output.ipynb", "record.json"} <= names
    assert any(r.startswith("iris-v1.tar.gz!") for r in files)

    leaks = [
        (rel, value)
        for rel, data in files.items()
        for value in (SECRET, GIVEN, FROM_ENV)
        if value.encode() in data
    ]

    assert leaks == []


def test_each_run_used_the_value_it_was_given(project: Path) -> None:
    runs = sorted(RunStore(project / ".nbops").list(), key=lambda r: r.started_at)
    lengths = [r.latest_metrics()["password_length"] for r in runs]

    # export --bundle's run (default), -p, NBOPS_PARAM_..., rerun (the notebook's default)
    assert lengths == [len(SECRET), len(GIVEN), len(FROM_ENV), len(SECRET)]
    assert all(r.parameters["db_password"] == "***" for r in runs)


def test_the_exported_package_reads_the_secret_from_its_environment_variable(
    project: Path,
) -> None:
    folder = project / "pipelines" / "iris"
    command = [sys.executable, "-m", "iris"]

    ran = subprocess.run(
        command,
        cwd=folder,
        capture_output=True,
        text=True,
        env=_env(NBOPS_PARAM_DB_PASSWORD=SECRET),
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["accuracy"] > 0.8


def test_the_exported_package_names_the_variable_when_the_secret_is_missing(
    project: Path,
) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "iris"],
        cwd=project / "pipelines" / "iris",
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )

    assert ran.returncode == 2
    assert "NBOPS_PARAM_DB_PASSWORD" in ran.stderr.splitlines()[-1]
    assert "Traceback" not in ran.stderr


def test_the_manifest_marks_the_secret_and_names_its_variable(project: Path) -> None:
    manifest = json.loads((project / "pipelines/iris/iris/manifest.json").read_text())
    entry = next(p for p in manifest["parameters"] if p["name"] == "db_password")

    assert entry == {
        "name": "db_password",
        "type": "str",
        "default": None,
        "description": "the database",
        "secret": True,
        "env": "NBOPS_PARAM_DB_PASSWORD",
    }


def test_secret_params_in_the_project_config_keep_any_name_out_of_the_export(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nsecret_params = ["conn"]\n')
    build_notebook(
        tmp_path / "small.ipynb",
        [
            ('conn = "postgres://app:pa55word@db/sales"\nsize = 3', ["parameters"]),
            ("values = list(range(size)) + [len(conn)]", ["transform:load"]),
            ("total = sum(values)", ["train"]),
        ],
    )

    result = run_nbops("export", "small.ipynb", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    written = [p for p in (tmp_path / "pipelines").rglob("*") if p.is_file()]
    assert written and not [p for p in written if b"pa55word" in p.read_bytes()]
    assert "NBOPS_PARAM_CONN" in (tmp_path / "pipelines/small/small/params.py").read_text()


def test_a_run_killed_mid_cell_leaves_no_secret_on_disk(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    build_notebook(
        tmp_path / "slow.ipynb",
        [
            ('api_token = "tok-never-on-disk"\nsize = 2', ["parameters"]),
            (
                "import pathlib, time\n"
                "pathlib.Path('started').write_text(str(len(api_token)))\n"
                "deadline = time.monotonic() + 120\n"
                "while not pathlib.Path('release').exists() and time.monotonic() < deadline:\n"
                "    time.sleep(0.05)",
                ["train"],
            ),
        ],
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "run", "slow.ipynb", "-p", f"api_token={GIVEN}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, "the run ended before its cell started"
            assert time.monotonic() < deadline, "the cell never started"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)  # nbops and its kernel: nothing gets to clean up
        proc.wait(timeout=60)
    finally:
        (tmp_path / "release").write_text("")
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert (tmp_path / "started").read_text() == str(len(GIVEN))  # the kernel had the value
    run_files = [p for p in (tmp_path / ".nbops").rglob("*") if p.is_file()]
    assert any(p.name == "input.ipynb" for p in run_files)
    leaks = [
        p for p in run_files for v in (GIVEN, "tok-never-on-disk") if v.encode() in p.read_bytes()
    ]
    assert leaks == []


def test_a_rerun_without_a_source_for_the_secret_names_the_variable_to_set(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    notebook = build_notebook(
        tmp_path / "tiny.ipynb",
        [('api_token = "tok-tiny"', ["parameters"]), ("n = len(api_token)", ["train"])],
    )
    assert _nbops("run", "tiny.ipynb", cwd=tmp_path).returncode == 0
    notebook.unlink()

    refused = _nbops("rerun", "latest", cwd=tmp_path)
    given = _nbops("rerun", "latest", cwd=tmp_path, NBOPS_PARAM_API_TOKEN="tok-from-env")

    assert refused.returncode == errors.ParameterValueError.exit_code
    assert "NBOPS_PARAM_API_TOKEN" in refused.stderr and "Traceback" not in refused.stderr
    assert given.returncode == 0, given.stderr
