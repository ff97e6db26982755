"""Run parameters: read from the parameters cell, converted to its types, or refused."""

from __future__ import annotations

import contextlib
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import ConfigError, ParameterValueError
from nbops.notebook.read import NotebookModel, read_notebook
from nbops.runs.parameters import (
    ParameterSpec,
    _python_type,
    convert,
    parameter_specs,
    read_parameter_file,
    resolve_parameters,
)

from .conftest import write_notebook

NotebookWith = Callable[[str], NotebookModel]


def spec(type_: str, default: Any = None, name: str = "p") -> ParameterSpec:
    return ParameterSpec(name=name, type=type_, default=default, description="", secret=False)


def specs_by_name(nb: NotebookModel, secret_names: list[str] | None = None) -> dict[str, Any]:
    return {s.name: s for s in parameter_specs(nb, secret_names)}


# --- parameter_specs ------------------------------------------------------------------------


def test_specs_give_name_type_default_and_description(notebook_with: NotebookWith) -> None:
    nb = notebook_with('n_trees = 100  # trees in the forest\ntest_size: float = 0.2\nname = "rf"')

    specs = parameter_specs(nb)

    assert [(s.name, s.type, s.default) for s in specs] == [
        ("n_trees", "int", 100),
        ("test_size", "float", 0.2),
        ("name", "str", "rf"),
    ]
    assert specs[0].description == "trees in the forest"


def test_notebook_without_parameters_cell_has_no_specs(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["train"])])

    assert parameter_specs(read_notebook(path)) == []


@pytest.mark.parametrize("name", ["api_token", "AWS_SECRET", "db_password", "private_key"])
def test_secret_looking_name_makes_a_secret(notebook_with: NotebookWith, name: str) -> None:
    nb = notebook_with(f'{name} = "x"\nn = 1')

    specs = specs_by_name(nb)

    assert specs[name].secret
    assert not specs["n"].secret


def test_name_listed_in_secret_params_makes_a_secret(notebook_with: NotebookWith) -> None:
    nb = notebook_with('endpoint = "https://example.org"\nn = 1')

    assert specs_by_name(nb, ["endpoint"])["endpoint"].secret
    assert not specs_by_name(nb)["endpoint"].secret


def test_secret_comment_makes_a_secret(notebook_with: NotebookWith) -> None:
    nb = notebook_with('dsn = "postgres://u:p@h/db"  # secret\nn = 1  # rows')

    specs = specs_by_name(nb)

    assert specs["dsn"].secret
    assert not specs["n"].secret


# --- resolve_parameters / convert -----------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "text", "expected"),
    [
        ("int", "42", 42),
        ("int", "-7", -7),
        ("float", "0.25", 0.25),
        ("float", "3", 3.0),
        ("bool", "true", True),
        ("bool", "false", False),
        ("list[int]", "[1, 2, 3]", [1, 2, 3]),
        ("str", "hello", "hello"),
        ('Literal["rf", "gbm"]', "gbm", "gbm"),
        ("Optional[int]", "5", 5),
        ("Optional[int]", "null", None),
        ("int | None", "5", 5),
    ],
)
def test_text_value_is_converted_to_the_declared_type(type_: str, text: str, expected: Any) -> None:
    value = convert(spec(type_), text, notebook="nb.ipynb")

    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["123", "007", "1.5", "true", "null", "[1]"])
def test_str_parameter_keeps_text_as_is(text: str) -> None:
    assert convert(spec("str", "a"), text, notebook="nb.ipynb") == text


@pytest.mark.parametrize(("type_", "text"), [("str | None", "123"), ('Literal["1", "2"]', "1")])
def test_text_parameter_that_may_be_none_keeps_digits_as_text(type_: str, text: str) -> None:
    assert convert(spec(type_), text, notebook="nb.ipynb") == text


def test_value_from_a_parameters_file_is_converted_too() -> None:
    assert convert(spec("float", 0.5), 1, notebook="nb.ipynb") == 1.0


def test_resolve_merges_defaults_with_converted_overrides() -> None:
    specs = [spec("int", 10, name="n"), spec("float", 0.2, name="rate"), spec("str", "a", "s")]

    values = resolve_parameters(specs, {"n": "20", "s": "b"}, notebook="nb.ipynb")

    assert values == {"n": 20, "rate": 0.2, "s": "b"}


def test_unknown_parameter_is_refused_listing_known_names() -> None:
    specs = [spec("int", 10, name="n_trees"), spec("float", 0.2, name="test_size")]

    with pytest.raises(ParameterValueError) as info:
        resolve_parameters(specs, {"n_tree": "5"}, notebook="nb.ipynb")

    message = str(info.value)
    assert "'n_tree'" in message
    assert "n_trees" in message
    assert "test_size" in message


def test_unknown_parameter_of_notebook_without_parameters_says_so() -> None:
    with pytest.raises(ParameterValueError, match="no parameters cell"):
        resolve_parameters([], {"n": "5"}, notebook="nb.ipynb")


@pytest.mark.parametrize(
    ("type_", "text"),
    [("int", "abc"), ("int", "3.5"), ("float", "fast"), ("list[int]", "1,2"), ("bool", "maybe")],
)
def test_wrong_type_is_refused_naming_parameter_and_type(type_: str, text: str) -> None:
    with pytest.raises(ParameterValueError) as info:
        resolve_parameters([spec(type_, name="n_trees")], {"n_trees": text}, notebook="nb.ipynb")

    message = str(info.value)
    assert "'n_trees'" in message
    assert f"expects {type_}" in message


def test_literal_outside_its_choices_is_refused() -> None:
    with pytest.raises(ParameterValueError, match="'model' expects"):
        convert(spec('Literal["rf", "gbm"]', name="model"), "svm", notebook="nb.ipynb")


def test_bool_for_an_int_parameter_is_refused() -> None:
    with pytest.raises(ParameterValueError):
        convert(spec("int", 10, name="n"), "true", notebook="nb.ipynb")


def test_parameter_error_is_one_line() -> None:
    with pytest.raises(ParameterValueError) as info:
        convert(spec("int", "a\nb", name="n"), "x\ny\nz", notebook="nb.ipynb")

    assert "\n" not in str(info.value)


def test_parameter_error_names_the_notebook() -> None:
    with pytest.raises(ParameterValueError) as info:
        resolve_parameters([spec("int")], {"q": "1"}, notebook="work/train.ipynb")

    assert str(info.value).startswith("work/train.ipynb: ")


@given(st.integers())
def test_any_int_as_text_converts_back_for_an_int_parameter(number: int) -> None:
    assert convert(spec("int", 0), str(number), notebook="nb.ipynb") == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_as_text_converts_back_for_a_float_parameter(number: float) -> None:
    value = convert(spec("float", 0.0), repr(number), notebook="nb.ipynb")

    assert value == number
    assert math.copysign(1, value) == math.copysign(1, number)


@given(st.text())
def test_any_text_is_kept_for_a_str_parameter(text: str) -> None:
    assert convert(spec("str", ""), text, notebook="nb.ipynb") == text


@given(st.lists(st.integers(min_value=-(10**6), max_value=10**6)))
def test_any_int_list_as_text_converts_back_for_a_list_parameter(numbers: list[int]) -> None:
    assert convert(spec("list[int]", []), str(numbers), notebook="nb.ipynb") == numbers


# --- read_parameter_file --------------------------------------------------------------------


def test_parameter_file_holds_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("n_trees: 200\nrate: 0.1\nname: rf\nlayers: [1, 2]\n", "utf-8")

    assert read_parameter_file(path) == {
        "n_trees": 200,
        "rate": 0.1,
        "name": "rf",
        "layers": [1, 2],
    }


def test_parameter_file_may_be_json(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"n_trees": 200, "debug": true}', "utf-8")

    assert read_parameter_file(path) == {"n_trees": 200, "debug": True}


def test_empty_parameter_file_gives_no_parameters(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("", "utf-8")

    assert read_parameter_file(path) == {}


def test_invalid_yaml_parameter_file_is_a_config_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("n: 1\nname: [unclosed\n", "utf-8")

    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        read_parameter_file(path)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just text\n", "42\n"])
def test_parameter_file_not_holding_a_mapping_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, "utf-8")

    with pytest.raises(ConfigError, match="mapping"):
        read_parameter_file(path)


def test_missing_parameter_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"

    with pytest.raises(ConfigError) as info:
        read_parameter_file(path)

    assert str(path) in str(info.value)


def test_parameter_file_not_in_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\xff\xfen: 1\n")

    with pytest.raises(ConfigError):
        read_parameter_file(path)


# --- _python_type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("int", int),
        ("list[int]", list[int]),
        ("dict[str, Any]", dict[str, Any]),
        ("tuple[int, ...]", tuple[int, ...]),
        ("Optional[str]", typing.Optional[str]),  # noqa: UP045
        ("int | None", typing.Optional[int]),  # noqa: UP045
        ('Literal["a", "b"]', typing.Literal["a", "b"]),
    ],
)
def test_annotation_text_names_its_type(source: str, expected: Any) -> None:
    assert _python_type(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('x')",
        "np.ndarray",
        "Path",
        "list[int",
        "open('/etc/passwd').read()",
    ],
)
def test_annotation_nbops_cannot_see_is_any(source: str) -> None:
    assert _python_type(source) is Any


def test_annotation_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    result = _python_type(f"__import__('pathlib').Path({str(marker)!r}).touch()")

    assert result is Any
    assert not marker.exists()


@pytest.mark.parametrize("source", ['"np.ndarray"', "\"__import__('os').system('x')\""])
def test_quoted_annotation_nbops_cannot_see_is_any(source: str) -> None:
    assert _python_type(source) is Any


def test_quoted_annotation_code_is_not_run_by_convert(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    annotation = f"\"__import__('pathlib').Path({str(marker)!r}).touch()\""

    with contextlib.suppress(Exception):  # refusing the value is fine; running code is not
        convert(spec(annotation, 1), "5", notebook="nb.ipynb")

    assert not marker.exists()
