"""`nbops export --target kfp`: a Kubeflow Pipelines v2 pipeline from the notebook.

The pipeline is compiled by kfp itself and run with kfp's local subprocess runner (no
cluster, no network: packages_to_install is empty and kfp is not installed at run time), and
its metrics are compared with the notebook's own, run through papermill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.config import StepResources
from nbops.errors import ArtifactTypeError, ConfigError, MissingExtraError, TargetBuildError
from nbops.export.exporter import ExportResult, export_notebook
from nbops.export.formatting import lint_problems
from nbops.export.targets import TargetOptions
from tests._shared_runs import shared_notebook_metrics
from tests.helpers import (
    EXAMPLES,
    TWO_MODELS,
    build_notebook,
    package_metric_names,
    reported_metric_names,
    run_nbops,
)

yaml = pytest.importorskip("yaml")
pytest.importorskip("kfp")

PENGUINS = EXAMPLES / "penguins.ipynb"
# Small enough to run fast, weak enough that the metrics are not a perfect 1.0.
PARAMS = {"n_estimators": 3, "max_depth": 1, "test_size": 0.4}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportResult]:
    out = tmp_path_factory.mktemp("kfp") / "pipelines"
    options = TargetOptions(
        base_image="registry.example/penguins:1",
        install_packages=False,
        steps={"train": StepResources(cpu_limit="2", memory_limit="4G", retries=2)},
    )
    yield export_notebook(PENGUINS, out, targets=["kfp"], options=options)


def _spec(result: ExportResult) -> dict[str, Any]:
    return yaml.safe_load((result.folder / "kfp_pipeline.yaml").read_text())


def test_the_export_writes_the_pipeline_and_its_compiled_yaml_next_to_the_package(
    exported: ExportResult,
) -> None:
    assert (exported.folder / "kfp_pipeline.py").is_file()
    assert (exported.folder / "kfp_pipeline.yaml").is_file()
    assert (exported.package_dir / "_nbops_io.py").is_file()
    assert exported.manifest.targets == ["kfp"]
    assert "kfp_pipeline.py" in exported.manifest.files
    assert lint_problems(exported.folder) == []


def test_each_value_a_step_passes_on_has_a_declared_serialisation(
    exported: ExportResult,
) -> None:
    codecs = {name: a.codec for name, a in exported.manifest.artifacts.items()}
    assert codecs["penguins"] == "parquet"
    assert codecs["X_train"] == "parquet"
    assert codecs["y_train"] == "parquet-series"
    assert codecs["model"] == "skops"
    assert codecs["predictions"] == "npy"
    assert codecs["accuracy"] == "json"
    assert "sklearn.tree._tree.Tree" in exported.manifest.artifacts["model"].trusted
    text = (exported.folder / "kfp_pipeline.py").read_text()
    used = set(re.findall(r'io\.(?:save|load)\([^()]*?, "([\w-]+)"', text))
    assert used == {"parquet", "parquet-series", "npy", "json", "skops"}
    assert "import pickle" not in text


def test_the_compiled_pipeline_has_one_component_per_step_with_the_package_embedded(
    exported: ExportResult,
) -> None:
    spec = _spec(exported)
    steps = [s.key for s in exported.manifest.steps]
    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) == len(steps) == len(spec["components"])
    assert sorted(t["taskInfo"]["name"] for t in tasks.values()) == sorted(steps)
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        assert container["image"] == "registry.example/penguins:1"
        program = "\n".join(container["command"])
        assert "__KFP_EMBEDDED_ARCHIVE_B64" in program
        assert "pip install" not in program  # --no-install: the image has everything


def test_step_values_travel_as_typed_artifacts(exported: ExportResult) -> None:
    spec = _spec(exported)
    train = spec["components"]["comp-train"]
    inputs = train["inputDefinitions"]["artifacts"]
    outputs = train["outputDefinitions"]["artifacts"]
    assert inputs["X_train"]["artifactType"]["schemaTitle"] == "system.Dataset"
    assert outputs["model"]["artifactType"]["schemaTitle"] == "system.Model"
    evaluate = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    # the split step hands the train step its frames, not a copy of the raw data
    split_to_train = spec["root"]["dag"]["tasks"]["train"]["inputs"]["artifacts"]["X_train"]
    assert split_to_train["taskOutputArtifact"]["producerTask"] == "transform-split"


def test_the_notebook_parameters_are_pipeline_parameters_with_their_defaults(
    exported: ExportResult,
) -> None:
    parameters = _spec(exported)["root"]["inputDefinitions"]["parameters"]
    assert parameters["test_size"] == {
        "defaultValue": 0.25,
        "isOptional": True,
        "parameterType": "NUMBER_DOUBLE",
    }
    assert parameters["n_estimators"]["parameterType"] == "NUMBER_INTEGER"
    assert parameters["n_estimators"]["defaultValue"] == 200


def test_step_resources_from_the_configuration_reach_the_compiled_pipeline(
    exported: ExportResult,
) -> None:
    spec = _spec(exported)
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["resourceCpuLimit"] == "2"
    assert resources["resourceMemoryLimit"] == "4G"
    assert spec["root"]["dag"]["tasks"]["train"]["retryPolicy"]["maxRetryCount"] == 2
    assert "resources" not in spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]


def test_by_default_components_install_kfp_and_the_pinned_requirements(
    exported: ExportResult,
) -> None:
    from nbops.export.targets import TargetContext, kfp

    ctx = TargetContext(
        name="penguins",
        manifest=exported.manifest,
        artifacts=exported.manifest.artifacts,
        options=TargetOptions(),
        requirements=["pandas==2.0.0", "scikit-learn==1.5.0"],
    )
    text = kfp.render(ctx)["kfp_pipeline.py"]
    assert "PACKAGES = ['pandas==2.0.0', 'scikit-learn==1.5.0']" in text
    assert "INSTALL_KFP = True" in text
    assert "BASE_IMAGE = 'python:3.11-slim'" in text


def test_the_pipeline_runs_on_kfps_local_runner_and_gives_the_notebooks_metrics(
    exported: ExportResult,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kfp's subprocess runner starts `python3` from PATH: this environment's interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = f"""
import json, sys
sys.path.insert(0, {str(exported.folder)!r})
from kfp import local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root={str(tmp_path / "root")!r})
import kfp_pipeline
task = kfp_pipeline.penguins_pipeline(**{PARAMS!r})
print("NBOPS-METRICS " + json.dumps(task.output.metadata))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PENGUINS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from_kfp = json.loads(proc.stdout.split("NBOPS-METRICS ", 1)[1].splitlines()[0])

    monkeypatch.setenv("NBOPS_RUN_DIR", str(tmp_path / "run"))
    expected = shared_notebook_metrics(
        tmp_path_factory, PENGUINS, exported.folder, "penguins", PARAMS
    )
    expected = {k: v for k, v in expected.items() if k in from_kfp}

    assert set(from_kfp) == {"accuracy", "f1_macro"}
    assert from_kfp["accuracy"] < 1.0  # a real comparison, not two perfect scores
    assert from_kfp == pytest.approx(expected, rel=1e-9)
    # every step ran in its own process and passed files on: the model is a skops file
    models = list((tmp_path / "root").rglob("train/model"))
    assert models and models[0].read_bytes()[:2] == b"PK"


def test_components_report_metrics_under_the_names_the_package_gives_them(
    tmp_path: Path,
) -> None:
    notebook = build_notebook(tmp_path / "two_models.ipynb", TWO_MODELS)
    result = export_notebook(notebook, tmp_path / "out", targets=["kfp"])
    executors = _spec(result)["deploymentSpec"]["executors"].values()
    compiled = [c for e in executors for c in e["container"]["command"] if "metric_values" in c]
    names = set().union(*(reported_metric_names(code) for code in compiled))

    assert names == {"knn.accuracy", "tree.accuracy", "accuracy_score"}
    assert names == package_metric_names(result.folder, result.name)


def test_a_value_without_a_safe_serialisation_passed_to_a_later_step_is_an_export_error(
    tmp_path: Path,
) -> None:
    notebook = build_notebook(
        tmp_path / "odd.ipynb",
        [
            ("size = 4", ["parameters"]),
            ("codes = {i: str(i) for i in range(size)}", ["transform"]),
            ("total = sum(len(v) for v in codes.values())", ["train"]),
        ],
    )
    with pytest.raises(ArtifactTypeError) as caught:
        export_notebook(notebook, tmp_path / "out", targets=["kfp"])
    assert "`codes`" in str(caught.value) and "builtins.dict" in str(caught.value)
    assert not (tmp_path / "out" / "odd").exists()

    proc = run_nbops("export", str(notebook), "-o", "out2", "--target", "kfp", cwd=tmp_path)
    assert proc.returncode == 32
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out2" / "odd").exists()


def test_a_value_no_step_reads_and_that_cannot_be_passed_on_is_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    notebook = build_notebook(
        tmp_path / "extra.ipynb",
        [
            ("size = 4", ["parameters"]),
            ("values = list(range(size))", ["transform"]),
            ("score = float(sum(values))\nseen = {1, 2}", ["evaluate"]),
        ],
    )
    proc = run_nbops("export", str(notebook), "-o", "out", "--target", "kfp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: `seen` (a builtins.set)" in proc.stderr
    text = (tmp_path / "out" / "extra" / "kfp_pipeline.py").read_text()
    assert "score: Output[Artifact]" in text and "seen" not in text.split("@dsl.pipeline")[1]


def test_a_pipeline_that_fails_when_run_is_a_build_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    notebook = build_notebook(
        tmp_path / "broken.ipynb",
        [
            ("path = 'missing.csv'", ["parameters"]),
            ("text = open(path).read()", ["transform"]),
            ("n = len(text)", ["train"]),
        ],
    )
    with pytest.raises(TargetBuildError, match="FileNotFoundError"):
        export_notebook(notebook, tmp_path / "out", targets=["kfp"])
    assert not (tmp_path / "out" / "broken").exists()


def test_resources_for_a_step_the_pipeline_does_not_have_are_refused(tmp_path: Path) -> None:
    options = TargetOptions(steps={"tarin": StepResources(cpu_limit="1")})
    with pytest.raises(ConfigError, match=r"\[tool.nbops.steps.tarin\] names no step"):
        export_notebook(PENGUINS, tmp_path / "out", targets=["kfp"], options=options)


def test_an_unknown_target_or_a_missing_engine_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="unknown export target 'argo'"):
        export_notebook(PENGUINS, tmp_path / "out", targets=["argo"])

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "kfp" else real(n, *a)
    )
    with pytest.raises(MissingExtraError) as caught:
        export_notebook(PENGUINS, tmp_path / "out", targets=["kfp"])
    assert caught.value.fix == "pip install 'nbops[kfp]'"
    assert not (tmp_path / "out").exists()


def test_the_cli_takes_the_base_image_and_the_steps_from_pyproject(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "synthetic_regression.ipynb", tmp_path / "reg.ipynb")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbops]\nbase_image = "ghcr.io/acme/ml:2"\n\n'
        '[tool.nbops.steps.train]\nmemory_request = "1G"\n'
    )
    proc = run_nbops("export", "reg.ipynb", "-o", "out", "--target", "kfp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "kfp_pipeline.yaml" in proc.stdout
    spec = yaml.safe_load((tmp_path / "out" / "reg" / "kfp_pipeline.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"ghcr.io/acme/ml:2"}
    assert executors["exec-train"]["container"]["resources"]["resourceMemoryRequest"] == "1G"
    assert "pip install" in "\n".join(executors["exec-train"]["container"]["command"])


def test_check_covers_the_pipeline_file_and_says_how_to_export_it_again(
    exported: ExportResult, tmp_path: Path
) -> None:
    from nbops.errors import StaleExportError
    from nbops.export.exporter import check_export

    out = tmp_path / "pipelines"
    shutil.copytree(exported.folder, out / "penguins")
    assert check_export(PENGUINS, out).version == exported.version
    with (out / "penguins" / "kfp_pipeline.py").open("a") as f:
        f.write("# edited\n")
    with pytest.raises(StaleExportError, match=r"kfp_pipeline\.py was changed") as caught:
        check_export(PENGUINS, out)
    assert "--target kfp" in (caught.value.fix or "")
