"""The layer rule, executable: dependencies point one way.

    cli, labserver, the package root      commands, the Jupyter server, `import nbops`
    workbench                             the notebook-facing API and the inspector
    bundle                                build, load, serve, monitor a bundle
    runs | export | quality               independent of one another
    notebook | gates
    errors, config, redact, _version, _*  the base

A module imports its own layer or a lower one, at the top or inside a function alike; the
packages of a middle layer do not import each other (tests/layers_graph.py lists the one
allowed edge and why); no two modules import each other at import time. The graph is read
with ast from src/nbops, nothing is imported.
"""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

import nbops
import nbops._version

from .layers_graph import (
    SIBLING_IMPORTS,
    SRC,
    Import,
    all_imports,
    cycles,
    layer,
    modules,
    redundant_function_imports,
    sideways,
    unit,
    upward,
)

# Cycles that only close through an import inside a function, each with why it stays. The
# set must match exactly: a new one fails, and so does one that is gone (drop it here). The
# last one (bundle.load <-> bundle.signing) went when both began reading the bundle's files
# through nbops.bundle.contents.
KNOWN_FUNCTION_CYCLES: set[frozenset[str]] = set()

# Function-level imports of a module the file already imports at the top are dropped.
REDUNDANT_EXEMPT: set[str] = set()


def _describe(found: list[Import]) -> list[str]:
    return sorted(
        {
            f"{i.source}:{i.line} ({i.where}) -> {i.target}: "
            f"layer {layer(i.source)} -> {layer(i.target)}"
            for i in found
        }
    )


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer(name)  # raises for a module (a new top-level package) the rule does not place


def test_no_module_imports_a_higher_layer() -> None:
    assert _describe(upward(all_imports())) == []


def test_runs_export_and_quality_do_not_import_each_other() -> None:
    assert _describe(sideways(all_imports())) == []


def test_each_allowed_sibling_import_is_still_there() -> None:
    edges = {(unit(i.source), unit(i.target)) for i in all_imports()}
    assert set(SIBLING_IMPORTS) <= edges


def test_no_two_modules_import_each_other_at_import_time() -> None:
    assert cycles(all_imports(), ("top",)) == []


def test_cycles_through_function_level_imports_are_only_the_known_ones() -> None:
    found = {frozenset(c) for c in cycles(all_imports(), ("top", "function"))}
    assert found == KNOWN_FUNCTION_CYCLES


def test_no_function_imports_a_module_already_imported_at_the_top() -> None:
    found = [
        i
        for i in redundant_function_imports(all_imports())
        if unit(i.source) not in REDUNDANT_EXEMPT
    ]
    assert [f"{i.source}:{i.line} -> {i.target}" for i in found] == []


def test_each_module_deferring_imports_says_why() -> None:
    """A module that imports nbops modules inside functions says why in a `# Deferred
    import...` comment: what is deferred, and what stays light or which cycle it avoids."""
    paths = modules()
    deferring = {i.source for i in all_imports() if i.where == "function"}
    silent = {m for m in deferring if "# Deferred import" not in paths[m].read_text("utf-8")}
    assert silent == set()


def test_the_readme_architecture_draws_every_package() -> None:
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    diagram = section.split("```")[1]
    packages = {
        path.stem if path.is_file() else path.name
        for path in (SRC / "nbops").iterdir()
        if not path.name.startswith(("_", ".")) and (path.suffix == ".py" or path.is_dir())
    } - {"labextension"}
    assert {p for p in packages if p.removesuffix(".py") not in diagram} == set()


def test_the_version_has_one_home_the_build_reads() -> None:
    assert nbops.__version__ == nbops._version.__version__
    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in project["project"]["dynamic"]
    assert "version" not in project["project"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/nbops/_version.py"


# -- the checker itself: it catches what it is for ------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "nbops" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    for folder in [tmp_path / "nbops", *(tmp_path / "nbops").rglob("*")]:
        if folder.is_dir() and not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text("", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "code",
    [
        "from nbops.bundle.load import load_bundle\n",
        "def f():\n    from nbops.bundle import load\n",
        "import nbops.workbench.api\n",
        "from nbops import __version__\n",
        "from ..bundle import load\n",
    ],
    ids=["top-level", "in-a-function", "import-statement", "package-root", "relative"],
)
def test_the_checker_finds_a_lower_layer_importing_a_higher_one(tmp_path: Path, code: str) -> None:
    src = _tree(
        tmp_path,
        {"runs/store.py": code, "bundle/load.py": "", "workbench/api.py": ""},
    )
    found = upward(all_imports(src))
    assert [(i.source, layer(i.target)) for i in found] != []
    assert {i.source for i in found} == {"nbops.runs.store"}


def test_the_checker_finds_runs_importing_quality(tmp_path: Path) -> None:
    src = _tree(
        tmp_path, {"runs/ci.py": "from nbops.quality import report\n", "quality/report.py": ""}
    )
    assert [(i.source, i.target) for i in sideways(all_imports(src))] == [
        ("nbops.runs.ci", "nbops.quality.report")
    ]


def test_the_checker_finds_a_cycle_at_import_time(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "runs/a.py": "from nbops.runs import b\n",
            "runs/b.py": "from nbops.runs.a import x\n",
        },
    )
    assert cycles(all_imports(src)) == [["nbops.runs.a", "nbops.runs.b"]]


def test_the_checker_does_not_count_type_checking_imports_as_cycles(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "runs/a.py": "from nbops.runs import b\n",
            "runs/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbops.runs.a import x\n",
        },
    )
    assert cycles(all_imports(src)) == []


def test_the_checker_finds_a_function_import_repeating_a_top_level_one(tmp_path: Path) -> None:
    code = "from nbops.errors import A\n\ndef f():\n    from nbops.errors import B\n"
    src = _tree(tmp_path, {"runs/store.py": code, "errors.py": ""})
    assert [(i.source, i.line) for i in redundant_function_imports(all_imports(src))] == [
        ("nbops.runs.store", 4)
    ]
