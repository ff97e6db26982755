"""The public surface of `import nbops`: exactly what is meant, and cheap to import."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import nbops

PUBLIC = {
    "CellLocation",
    "ExportResult",
    "NbopsError",
    "StepGraph",
    "__version__",
    "analyse",
    "check_export",
    "export_notebook",
    "hash_split",
    "load_snapshot",
    "infer_schema",
    "inspect",
    "inspection",
    "load_bundle",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "read_notebook",
    "run_notebook",
    "slice_metrics",
    "track_data",
    "validate",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(nbops.__all__) == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in nbops.__all__:
        assert getattr(nbops, name) is not None


def test_importing_nbops_loads_nothing_heavy() -> None:
    probe = "import json, sys, nbops; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {
        "pandas",
        "numpy",
        "sklearn",
        "papermill",
        "nbformat",
        "IPython",
        "pydantic",
        "typer",
        "skops",
    }
    assert not (heavy & loaded), sorted(heavy & loaded)


def test_the_tag_vocabulary_lists_the_roles_the_library_reads() -> None:
    from nbops.notebook.tags import Role, vocabulary

    assert [r["name"] for r in vocabulary()["roles"]] == [r.value for r in Role]


def test_the_capture_api_imports_only_the_standard_library() -> None:
    probe = (
        "import json, sys; before = set(sys.modules); "
        "from nbops import log_metric, log_metrics, log_param, track_data, log_model; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded <= set(sys.stdlib_module_names) | {"nbops"}, sorted(
        loaded - set(sys.stdlib_module_names)
    )


def test_the_quality_functions_take_their_implementations_parameters() -> None:
    """`nbops.infer_schema`, `validate` and `slice_metrics` show the real parameters (not
    `**options`), with the implementation's names, kinds, defaults and annotations; the two
    that record a report add `name`."""
    from nbops.quality.schema import infer_schema
    from nbops.quality.slices import slice_metrics
    from nbops.quality.validate import validate

    cases = [
        (nbops.infer_schema, infer_schema, set()),
        (nbops.validate, validate, {"name"}),
        (nbops.slice_metrics, slice_metrics, {"name"}),
    ]
    for public, implementation, recording in cases:
        shown = inspect.signature(public)
        real = inspect.signature(implementation)
        assert [p for p in shown.parameters.values() if p.name not in recording] == list(
            real.parameters.values()
        ), public.__name__
        assert shown.return_annotation == real.return_annotation, public.__name__
        for name in recording:
            assert shown.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_the_quality_functions_signatures_load_nothing_heavy() -> None:
    probe = (
        "import inspect, json, sys, nbops; "
        "[inspect.signature(f) for f in (nbops.validate, nbops.slice_metrics, nbops.infer_schema)]; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not ({"pandas", "numpy", "pydantic"} & loaded), sorted(
        {"pandas", "numpy", "pydantic"} & loaded
    )
