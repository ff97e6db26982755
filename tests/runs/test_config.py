"""Project settings: `[tool.nbops]` in pyproject.toml, and finding the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops._paths import find_root
from nbops.config import NbopsConfig, load_project
from nbops.errors import ConfigError


def write_pyproject(folder: Path, text: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(text, "utf-8")
    return path


# --- load_project ---------------------------------------------------------------------------


def test_folder_without_pyproject_gets_the_defaults(tmp_path: Path) -> None:
    project = load_project(tmp_path)

    assert project.root == tmp_path.resolve()
    assert project.config == NbopsConfig()
    assert project.store_dir == tmp_path.resolve() / ".nbops"


def test_pyproject_without_nbops_section_gets_the_defaults(tmp_path: Path) -> None:
    write_pyproject(tmp_path, '[project]\nname = "demo"\n')

    assert load_project(tmp_path).config == NbopsConfig()


def test_default_settings() -> None:
    config = NbopsConfig()

    assert (config.store, config.tracking, config.export_dir) == (".nbops", "sqlite", "pipelines")
    assert (config.gates, config.secret_params, config.baseline) == ([], [], None)


def test_nbops_section_is_read(tmp_path: Path) -> None:
    write_pyproject(
        tmp_path,
        "[tool.nbops]\n"
        'store = "var/runs"\n'
        'gates = ["accuracy >= 0.9"]\n'
        'secret_params = ["dsn"]\n'
        'baseline = "20260101-000000-aaaaaa"\n',
    )

    project = load_project(tmp_path)

    assert project.config.gates == ["accuracy >= 0.9"]
    assert project.config.secret_params == ["dsn"]
    assert project.config.baseline == "20260101-000000-aaaaaa"
    assert project.store_dir == tmp_path.resolve() / "var" / "runs"


def test_working_directory_is_the_default_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, '[tool.nbops]\nstore = "here"\n')
    monkeypatch.chdir(tmp_path)

    assert load_project().store_dir == tmp_path.resolve() / "here"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('tracking = "wandb"', "tracking"),
        ('gates = "accuracy >= 0.9"', "gates"),
        ("store = 3", "store"),
        ('stroe = ".runs"', "stroe"),
    ],
)
def test_invalid_field_is_a_config_error_naming_it(tmp_path: Path, line: str, field: str) -> None:
    path = write_pyproject(tmp_path, f"[tool.nbops]\n{line}\n")

    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)

    message = str(info.value)
    assert f"[tool.nbops] {field}:" in message
    assert str(path) in message


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.nbops\nstore = \n")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_project(tmp_path)

    assert str(path) in str(info.value)


def test_pyproject_not_in_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.nbops]\nstore = '\xff'\n")

    with pytest.raises(ConfigError):
        load_project(tmp_path)


def test_config_error_is_one_line(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[tool.nbops\n")

    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)

    assert "\n" not in str(info.value)


# --- find_root ------------------------------------------------------------------------------


def test_root_is_the_nearest_folder_with_a_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    deep = tmp_path / "notebooks" / "exploration"
    deep.mkdir(parents=True)

    assert find_root(deep) == tmp_path.resolve()


def test_root_is_the_nearest_folder_with_a_store(tmp_path: Path) -> None:
    (tmp_path / ".nbops").mkdir()
    deep = tmp_path / "notebooks"
    deep.mkdir()

    assert find_root(deep) == tmp_path.resolve()


def test_nearer_marker_wins_over_an_outer_one(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    inner = tmp_path / "packages" / "model"
    inner.mkdir(parents=True)
    write_pyproject(inner, "")

    assert find_root(inner / ".") == inner.resolve()


def test_start_folder_holding_the_marker_is_the_root(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")

    assert find_root(tmp_path) == tmp_path.resolve()


def test_without_any_marker_the_start_is_the_root(tmp_path: Path) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)

    assert find_root(start) == start.resolve()


def test_the_search_stops_at_the_stop_folder(tmp_path: Path) -> None:
    """The lab server's root: a project above it is not found; one at it or below is."""
    write_pyproject(tmp_path, '[tool.nbops]\nstore = "outer"\n')
    stop = (tmp_path / "served").resolve()
    start = stop / "a" / "b"
    start.mkdir(parents=True)

    assert find_root(start, stop=stop) == start
    assert load_project(start, stop=stop).config.store == ".nbops"
    assert find_root(start) == tmp_path.resolve()  # without a stop, as before
    write_pyproject(stop, "")
    assert find_root(start, stop=stop) == stop


def test_markers_of_the_wrong_kind_are_not_roots(tmp_path: Path) -> None:
    start = tmp_path / "a"
    start.mkdir()
    (tmp_path / ".nbops").write_text("a file, not the store folder", "utf-8")
    (tmp_path / "pyproject.toml").mkdir()

    assert find_root(start) == start.resolve()


def test_working_directory_is_the_default_start_for_find_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, "")
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)

    assert find_root() == tmp_path.resolve()
