"""nbops.redact: credentials inside text, and secret parameters inside notebook code."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from nbops.redact import (
    REDACTED,
    parameters_from_environment,
    redact_notebook,
    redact_parameters_source,
    redact_run_folder,
    redact_value,
    run_secret_names,
    run_secrets_environment,
    secret_env_var,
    write_redacted_copy,
)

SCHEMES = st.sampled_from(["postgres", "postgresql+psycopg", "mysql", "redis", "amqp", "https"])
USERS = st.text(string.ascii_letters + string.digits + "._-", max_size=12)
# What a URL parser reads as the password: anything up to the authority's last `@`, without
# `/`, `?`, `#` or spaces (those end the authority).
PASSWORDS = st.text(
    alphabet=st.characters(
        blacklist_characters="/?#", blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")
    ),
    min_size=1,
    max_size=30,
).filter(lambda p: p != REDACTED)
HOSTS = st.from_regex(
    r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,2}(:[0-9]{2,5})?", fullmatch=True
)
PATHS = st.from_regex(r"(/[a-z0-9_]{0,10}){0,2}", fullmatch=True)


@given(SCHEMES, USERS, PASSWORDS, HOSTS, PATHS)
def test_a_url_password_is_replaced_and_user_and_host_kept(
    scheme: str, user: str, password: str, host: str, path: str
) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}"

    assert redact_value(url) == f"{scheme}://{user}:{REDACTED}@{host}{path}"


@given(
    st.sampled_from(["password", "PASSWORD", "pwd", "access_token", "api_key", "sig", "token"]),
    st.text(string.ascii_letters + string.digits + "+/_.-", min_size=1, max_size=40),
    st.sampled_from(["&next=1", ";next=1", " next=1", ""]),
)
def test_a_secret_pair_value_is_replaced_and_the_rest_kept(
    key: str, secret: str, rest: str
) -> None:
    value = f"https://svc.example.com/x?mode=fast&{key}={secret}{rest}"

    assert redact_value(value) == f"https://svc.example.com/x?mode=fast&{key}={REDACTED}{rest}"


@given(st.text(max_size=80))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_value(text)

    assert redact_value(once) == once


FRAGMENTS = st.sampled_from(
    [*"ab=:@/?#&;, '\"*x", "password", "://", "postgres", "Bearer ", "token=", "AKIA", '"pwd": ']
)


@given(st.lists(FRAGMENTS, max_size=30).map("".join))
def test_redaction_is_idempotent_on_credential_shaped_text(text: str) -> None:
    once = redact_value(text)

    assert redact_value(once) == once


PLAIN_VALUES = st.one_of(
    st.from_regex(r"(/[a-z0-9_.-]{1,8}){1,4}(:(/[a-z0-9_.-]{1,8}){1,3}){0,3}", fullmatch=True),
    st.integers().map(str),
    st.from_regex(r"[a-z]{1,10}(_[a-z]{1,10}){0,2}", fullmatch=True),
    st.from_regex(
        r"https?://[a-z]{1,10}(\.[a-z]{2,5}){1,2}(:[0-9]{2,5})?(/[a-z0-9]{1,8}){0,3}"
        r"(\?(page|mode|region|authSource|lang)=[a-z0-9]{1,8}(&(sort|limit)=[a-z0-9@.]{1,8})?)?",
        fullmatch=True,
    ),
    st.sampled_from(["en_US.UTF-8", "xterm-256color", "1", "true", "C.UTF-8", "/bin/bash"]),
)


@given(PLAIN_VALUES)
def test_values_without_credentials_are_left_alone(value: str) -> None:
    assert redact_value(value) == value


def test_well_known_key_shapes_are_redacted() -> None:
    value = "id AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36

    assert redact_value(value) == f"id {REDACTED} and {REDACTED}"


def test_json_credentials_are_redacted_and_other_fields_kept() -> None:
    value = json.dumps({"user": "me", "password": "hunter2", "host": "db"})

    assert json.loads(redact_value(value)) == {"user": "me", "password": REDACTED, "host": "db"}


def test_the_secret_variable_of_a_parameter_is_its_upper_case_name_prefixed() -> None:
    assert secret_env_var("db_password") == "NBOPS_PARAM_DB_PASSWORD"


def test_a_secret_parameter_literal_is_replaced_keeping_annotation_and_comment() -> None:
    source = 'n = 3\ndb_password: str = "hunter2"  # the database\ntoken = os.environ["T"]\n'

    redacted = redact_parameters_source(source, {"db_password", "token"})

    assert redacted == (
        'n = 3\ndb_password: str = "***"  # the database\ntoken = os.environ["T"]\n'
    )


def test_a_multi_line_secret_literal_is_replaced_whole() -> None:
    source = 'api_key = (\n    "abc"\n    "def"\n)\nn = 1\n'

    assert redact_parameters_source(source, {"api_key"}) == 'api_key = (\n    "***"\n)\nn = 1\n'


def test_redact_notebook_rewrites_parameters_cells_and_papermill_metadata(tmp_path: Path) -> None:
    nb = new_notebook()
    params = new_code_cell('db_password = "hunter2"\nsize = 5')
    params.metadata["tags"] = ["parameters"]
    injected = new_code_cell('# Parameters\ndb_password = "other-secret"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [params, injected, new_code_cell("print(size)")]
    nb.metadata["papermill"] = {"parameters": {"db_password": "other-secret", "size": 5}}
    path = tmp_path / "partial.ipynb"
    nbformat.write(nb, path)

    assert redact_notebook(path, {"db_password"}) is True

    text = path.read_text("utf-8")
    assert "hunter2" not in text and "other-secret" not in text
    again = nbformat.read(path, as_version=4)
    assert again.cells[0].source == 'db_password = "***"\nsize = 5'
    assert again.metadata["papermill"]["parameters"] == {"db_password": REDACTED, "size": 5}
    assert redact_notebook(path, {"db_password"}) is False  # nothing left to do


def test_redact_notebook_leaves_a_truncated_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "output.ipynb"
    path.write_text('{"cells": [{"source": "db_password = \\"hun', "utf-8")

    assert redact_notebook(path, {"db_password"}) is False
    assert list(tmp_path.iterdir()) == [path]


def test_a_runs_parameters_cell_reads_secrets_from_the_kernel_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = 'size = 3\ndb_password: str = "hunter2"\ntoken = compute()\n'
    values = {"db_password": "given", "token": "tok-given"}

    code = parameters_from_environment(source, values)
    monkeypatch.setenv(*run_secrets_environment(values).popitem())
    namespace: dict[str, Any] = {"compute": lambda: "computed"}
    exec(code, namespace)

    assert "hunter2" not in code and "given" not in code
    assert (namespace["size"], namespace["db_password"]) == (3, "given")
    assert namespace["token"] == "tok-given"  # set after its computed line, as papermill would


def test_a_redacted_copy_of_a_notebook_without_secrets_is_byte_identical(
    tmp_path: Path,
) -> None:
    source = tmp_path / "nb.ipynb"
    nb = new_notebook()
    params = new_code_cell("size = 5")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params]
    nbformat.write(nb, source)

    write_redacted_copy(source, tmp_path / "copy.ipynb", {"db_password"})

    assert (tmp_path / "copy.ipynb").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.ipynb", "nb.ipynb"]


def test_redact_run_folder_redacts_every_notebook_a_dead_run_left(tmp_path: Path) -> None:
    for name in ("output.ipynb", "input.ipynb", "source.ipynb"):
        nb = new_notebook()
        params = new_code_cell('api_token = "tok-left-behind"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params]
        nbformat.write(nb, tmp_path / name)
    (tmp_path / "kernel.log").write_text("log")

    changed = redact_run_folder(tmp_path, {"api_token"})

    assert sorted(p.name for p in changed) == ["input.ipynb", "output.ipynb", "source.ipynb"]
    assert not [p for p in tmp_path.iterdir() if b"tok-left-behind" in p.read_bytes()]
    assert redact_run_folder(tmp_path, {"api_token"}) == []


def test_run_secret_names_include_secrets_given_for_computed_lines() -> None:
    from nbops.runs.record import ParameterSchema, RunRecord

    record = RunRecord(
        run_id="r1",
        notebook="nb.ipynb",
        notebook_sha256="0" * 64,
        parameters={"size": 3, "api_token": REDACTED, "conn": REDACTED},
        parameter_schema=[
            ParameterSchema(name="size", type="int", default=3, description="", secret=False),
            ParameterSchema(
                name="api_token", type="str", default=REDACTED, description="", secret=True
            ),
        ],
        started_at="2026-01-01T00:00:00+00:00",
    )

    assert run_secret_names(record) == {"api_token", "conn"}
