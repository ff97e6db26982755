"""What a run ran on: environment variables (without secrets), packages, git state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbops.runs.environment import environment_info, git_info, installed_packages, safe_environment


def test_secret_looking_variables_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_TEST_API_TOKEN", "t0ken")
    monkeypatch.setenv("NBOPS_TEST_DB_PASSWORD", "pw")
    monkeypatch.setenv("NBOPS_TEST_PLAIN", "visible")

    env = safe_environment()

    assert env["NBOPS_TEST_PLAIN"] == "visible"
    assert "NBOPS_TEST_API_TOKEN" not in env
    assert "NBOPS_TEST_DB_PASSWORD" not in env


def test_installed_packages_have_lowercase_names_and_versions() -> None:
    packages = installed_packages()

    assert "pydantic" in packages
    assert all(name == name.lower() for name in packages)


def test_environment_info_names_the_kernel() -> None:
    assert environment_info("python3").kernel == "python3"


def test_folder_outside_git_has_empty_git_info(tmp_path: Path) -> None:
    info = git_info(tmp_path)

    assert (info.commit, info.branch, info.dirty) == (None, None, None)


def test_a_password_inside_a_url_value_is_redacted_keeping_user_and_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/sales")
    monkeypatch.setenv("NBOPS_TEST_CACHE", "redis://:s3cret@cache:6379/0")

    env = safe_environment()

    assert env["DATABASE_URL"] == "postgres://app:***@db.internal:5432/sales"
    assert env["NBOPS_TEST_CACHE"] == "redis://:***@cache:6379/0"


def test_query_tokens_and_authorization_values_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "NBOPS_TEST_SERVICE", "https://api.example.com/v1?user=me&access_token=abc123"
    )
    monkeypatch.setenv("NBOPS_TEST_HEADER", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")

    env = safe_environment()

    assert env["NBOPS_TEST_SERVICE"] == "https://api.example.com/v1?user=me&access_token=***"
    assert env["NBOPS_TEST_HEADER"] == "Bearer ***"


def test_secret_parameter_variables_are_left_out_whatever_their_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBOPS_PARAM_CONN", "plain-looking-but-secret")

    assert "NBOPS_PARAM_CONN" not in safe_environment()


def _dist(folder: Path, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_package_installed_or_removed_after_a_look_shows_in_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is kept between runs; installing or removing a package changes it."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(site))
    _dist(site, "nbops_test_first", "1.0")
    assert installed_packages()["nbops_test_first"] == "1.0"

    _dist(site, "nbops_test_second", "2.0")
    (site / "nbops_test_first-1.0.dist-info" / "METADATA").unlink()
    (site / "nbops_test_first-1.0.dist-info").rmdir()
    packages = installed_packages()

    assert packages["nbops_test_second"] == "2.0"
    assert "nbops_test_first" not in packages


def test_a_new_process_lists_the_same_packages_as_a_fresh_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = "import json; from nbops.runs.environment import installed_packages as p; print(json.dumps(p()))"
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)  # the second reads the first's cache file
    ]
    scan = "import json; from nbops.runs.environment import _scan_packages as p; print(json.dumps(p()))"
    fresh = subprocess.run([sys.executable, "-c", scan], capture_output=True, text=True, check=True)

    assert list((tmp_path / "cache" / "nbops").glob("packages-*.json"))
    assert runs[0].stdout == runs[1].stdout == fresh.stdout


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "feature/x")
    (tmp_path / "a.txt").write_text("a")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_git_info_names_the_commit_and_branch_of_a_clean_checkout(repo: Path) -> None:
    info = git_info(repo)

    assert (info.commit, info.branch, info.dirty) == (
        _git(repo, "rev-parse", "HEAD"),
        "feature/x",
        False,
    )


def test_a_changed_tracked_file_makes_the_checkout_dirty_and_an_untracked_one_does_not(
    repo: Path,
) -> None:
    (repo / "new.txt").write_text("untracked")
    assert git_info(repo).dirty is False
    (repo / "a.txt").write_text("changed")
    assert git_info(repo).dirty is True


def test_a_detached_head_is_named_head_as_git_rev_parse_names_it(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")

    assert git_info(repo).branch == "HEAD" == _git(repo, "rev-parse", "--abbrev-ref", "HEAD")


def test_a_repository_without_commits_has_empty_git_info(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")

    info = git_info(tmp_path)

    assert (info.commit, info.branch, info.dirty) == (None, None, None)
