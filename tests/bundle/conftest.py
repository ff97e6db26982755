"""A small bundle, built from a tiny exported notebook with only the bundle core (no runs)."""

from __future__ import annotations

import importlib.util
import io
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbops.bundle.manifest import ServingSpec
from nbops.bundle.write import build_bundle
from nbops.export.exporter import ExportResult, export_notebook
from nbops.quality.schema import Schema, infer_schema

SETUP = """\
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
"""
PARAMETERS = "n_rows = 300\nseed = 0\n"
LOAD = """\
rng = np.random.default_rng(seed)
raw = pd.DataFrame(
    {
        "a": rng.normal(size=n_rows),
        "b": rng.uniform(1.0, 2.0, size=n_rows),
        "c": rng.choice(["x", "y", "z"], size=n_rows),
    }
)
raw["label"] = ((raw.a / raw.b + (raw.c == "x") * 0.5 + rng.normal(0, 0.3, n_rows)) > 0).astype(int)
"""
FEATURES = 'feats = raw.assign(ratio=raw.a / raw.b)[["a", "ratio", "c"]]\n'
TRAIN = """\
model = Pipeline(
    [
        (
            "prep",
            ColumnTransformer(
                [
                    ("num", StandardScaler(), ["a", "ratio"]),
                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"]),
                ]
            ),
        ),
        ("clf", LogisticRegression()),
    ]
)
model.fit(feats, raw["label"])
"""


def write_notebook(path: Path) -> Path:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for source, tag in [
        (SETUP, "setup"),
        (PARAMETERS, "parameters"),
        (LOAD, "transform:load"),
        (FEATURES, "transform:features"),
        (TRAIN, "train"),
    ]:
        cell = new_code_cell(source)
        cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def import_package(folder: Path, name: str) -> ModuleType:
    """The exported package, under a private name (the test's own view of the pipeline)."""
    alias = f"_bundle_test_{uuid.uuid4().hex[:8]}_{name}"
    init = folder / name / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        alias, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def png_bytes() -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.5, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


SLICES = {
    "schema_version": 1,
    "kind": "nbops.slices",
    "task": "binary",
    "metrics": ["accuracy"],
    "n_rows": 300,
    "min_size": 30,
    "overall": {"accuracy": 0.9},
    "rows": [
        {"name": 'c == "x"', "metric": "accuracy", "value": 0.92, "count": 100, "gap": 0.02},
        {"name": 'c == "y"', "metric": "accuracy", "value": 0.85, "count": 100, "gap": -0.05},
    ],
}


@dataclass
class Built:
    """What the session fixture made: the export, the training frame, the model, the bundle."""

    export: ExportResult
    package: ModuleType
    raw: pd.DataFrame
    features: pd.DataFrame
    model: Any
    schema: Schema
    spec: ServingSpec
    out: Path
    folder: Path

    @property
    def requests(self) -> pd.DataFrame:
        return self.raw.drop(columns=["label"])

    def build(self, out: Path, **changes: Any) -> Path:
        """Build another bundle like the fixture's, with some arguments changed."""
        return build_bundle(out, **{**self.build_kwargs(), **changes})

    def build_kwargs(self) -> dict[str, Any]:
        export = self.export
        return {
            "name": "tiny",
            "model": self.model,
            "export_folder": export.folder,
            "serving": self.spec,
            "schema": self.schema,
            "reference": None,
            "source": {
                "notebook": "tiny.ipynb",
                "notebook_sha256": export.manifest.source.sha256,
                "export_version": export.version,
                "run_id": "20240101-000000-abcdef",
                "parameters": {"n_rows": 300, "seed": 0},
                "data": [
                    {"name": "raw", "type": "dataframe", "sha256": "ab" * 32, "rows": 300},
                ],
                "git_commit": "0123456789abcdef",
                "git_dirty": False,
            },
            "metrics": {"accuracy": 0.9},
            "slice_metrics": SLICES,
            "gates": [
                {
                    "gate": "accuracy >= 0.8",
                    "passed": True,
                    "left": 0.9,
                    "right": 0.8,
                    "reason": "0.9 >= 0.8",
                },
            ],
            "override": False,
            "failed_gates": [],
            "requirements": list(export.manifest.requirements),
            "plots": [("accuracy by slice", png_bytes())],
        }


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("bundle")
    notebook = write_notebook(root / "tiny.ipynb")
    export = export_notebook(notebook, root / "pipelines")
    package = import_package(export.folder, export.name)
    results = package.run()
    raw, feats, model = results.raw, results.feats, results.model
    schema = infer_schema(raw, label="label", name="tiny")
    spec = ServingSpec.from_export(
        export.manifest, "transform:features", request_columns=["a", "b", "c"], label="label"
    )
    partial = Built(export, package, raw, feats, model, schema, spec, root / "bundles", root)
    partial.folder = partial.build(partial.out)
    return partial


@pytest.fixture
def bundle_copy(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built bundle folder, free to tamper with."""
    target = tmp_path / built.folder.name
    shutil.copytree(built.folder, target)
    return target


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
