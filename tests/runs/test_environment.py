"""What a run ran on: environment variables (without secrets), packages, git state."""

from __future__ import annotations

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
