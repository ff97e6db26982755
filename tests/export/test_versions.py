"""Writing exports: a folder appears whole or not at all."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from nbops.export import versions
from nbops.export.versions import VersionIndex, assign_version, write_tree


def test_a_failed_write_leaves_the_previous_folder_untouched(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    write_tree({"a.py": "old = 1\n", "b.py": "old = 2\n"}, target)
    # The second file cannot be written (a name longer than a file system allows), as when
    # the disk fills up: the first one is written already. Not a patched write function:
    # nbops._atomic.write_files writes with os.open/os.write, not Path.write_text.
    with pytest.raises(OSError):
        write_tree({"a.py": "new = 1\n", "b" * 300 + ".py": "new = 2\n"}, target)

    assert (target / "a.py").read_text() == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"], "no scratch folder left behind"


def test_a_new_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    write_tree({"a.py": "x = 1\n", "gone.py": "y = 2\n"}, target)
    write_tree({"a.py": "x = 3\n"}, target)
    assert sorted(p.name for p in target.iterdir()) == ["a.py"]
    assert (target / "a.py").read_text() == "x = 3\n"


def test_versions_are_content_addressed() -> None:
    index = VersionIndex(name="p")
    assert assign_version(index, "aaa") == (1, True)
    index.versions.append(
        versions.VersionEntry(
            version=1,
            content_hash="aaa",
            source_path="n",
            source_sha256="s",
            created_at="t",
            steps=1,
        )
    )
    assert assign_version(index, "aaa") == (1, False)
    assert assign_version(index, "bbb") == (2, True)


def _airflow_file_discovery() -> ModuleType:
    """Airflow's own DAG-folder walk (the module its DagBag lists files with), loaded from its
    file: it needs only pathspec, and importing the `airflow` package would create ~/airflow."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("apache-airflow is not installed")
    path = Path(spec.submodule_search_locations[0]) / "_shared/module_loading/file_discovery.py"
    if not path.is_file():
        pytest.skip(f"this Airflow has no {path.name} to walk a DAG folder with")
    loader = importlib.util.spec_from_file_location("_airflow_file_discovery", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def _record(out: Path, name: str, version: int, dag_file: str) -> None:
    """Record one export version whose folder holds an Airflow DAG file, as the target writes."""
    folder = out / name
    write_tree({"airflow_dag.py": dag_file, f"{name}/__init__.py": ""}, folder)
    index = versions.read_index(out, name)
    entry = versions.VersionEntry(
        version=version,
        content_hash=f"h{version}",
        source_path="n.ipynb",
        source_sha256="s",
        created_at="t",
        steps=1,
    )
    versions.record_version(out, index, entry, folder)


# Airflow's walk builds pathspec's GitWildMatchPattern, which this pathspec deprecates.
@pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")
def test_airflow_pointed_at_the_export_root_finds_only_the_current_dag_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "pipelines"
    for version in (1, 2, 3):
        _record(out, "penguins", version, f"# dag_id penguins, v{version}\n")
    _record(out, "churn", 1, "# dag_id churn\n")
    discovery = _airflow_file_discovery()
    found = sorted(
        Path(p).relative_to(out).as_posix()
        for p in discovery.find_path_from_directory(out, ".airflowignore", "glob")
        if p.endswith(".py")
    )
    assert "churn/airflow_dag.py" in found and "penguins/airflow_dag.py" in found
    assert not [p for p in found if p.startswith(".versions/")], found


def test_the_history_folder_carries_an_ignore_everything_file(tmp_path: Path) -> None:
    _record(tmp_path, "p", 1, "x = 1\n")
    assert (tmp_path / ".versions" / ".airflowignore").read_text("utf-8").splitlines()[-1] == "*"
    assert [e.version for e in versions.list_versions(tmp_path, "p")] == [1]
