"""The cell-tag vocabulary: which tags are nbops roles, and how a cell's tags are read."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from nbops.errors import CellLocation, TagError
from nbops.notebook.tags import (
    CellTag,
    Role,
    cell_tag,
    is_exported,
    is_named_role,
    parse_tag,
    vocabulary,
)


def _shipped_vocabulary() -> dict:
    text = resources.files("nbops.notebook").joinpath("vocabulary.json").read_text("utf-8")
    return json.loads(text)


# -- the vocabulary file and the Role enum -------------------------------------------------


def test_role_enum_and_vocabulary_json_list_the_same_roles_in_the_same_order():
    assert [r["name"] for r in _shipped_vocabulary()["roles"]] == [r.value for r in Role]


def test_vocabulary_returns_the_contents_of_vocabulary_json():
    assert vocabulary() == _shipped_vocabulary()


def test_vocabulary_role_names_are_unique():
    names = [r["name"] for r in _shipped_vocabulary()["roles"]]
    assert len(names) == len(set(names))


def test_every_vocabulary_role_has_the_fields_the_extension_reads():
    wanted = {"name", "label", "description", "named", "exported", "color"}
    for spec in _shipped_vocabulary()["roles"]:
        assert wanted <= spec.keys(), spec["name"]


def test_step_name_pattern_compiles_and_accepts_a_lower_case_identifier():
    assert re.fullmatch(vocabulary()["step_name_pattern"], "clean_data2")


def test_only_transform_train_and_evaluate_steps_can_be_named():
    assert {r for r in Role if is_named_role(r)} == {Role.TRANSFORM, Role.TRAIN, Role.EVALUATE}


def test_every_role_but_skip_is_exported():
    assert {r for r in Role if not is_exported(r)} == {Role.SKIP}


# -- parse_tag -------------------------------------------------------------------------------


@pytest.fixture
def loc() -> CellLocation:
    return CellLocation("nb.ipynb", 2, "abc")


@pytest.mark.parametrize("role", list(Role))
def test_parse_tag_reads_each_plain_role(role, loc):
    assert parse_tag(role.value, loc) == CellTag(role)


def test_parse_tag_ignores_case_and_surrounding_space_of_the_role(loc):
    assert parse_tag("  Transform ", loc) == CellTag(Role.TRANSFORM)


@pytest.mark.parametrize("role", [Role.TRANSFORM, Role.TRAIN, Role.EVALUATE])
def test_parse_tag_reads_a_named_step(role, loc):
    assert parse_tag(f"{role.value}:clean_data", loc) == CellTag(role, "clean_data")


@pytest.mark.parametrize(
    "tag", ["hide-input", "remove-cell", "transformer", "papermill", "injected-parameters", ""]
)
def test_parse_tag_ignores_tags_that_are_not_nbops_roles(tag, loc):
    assert parse_tag(tag, loc) is None


def test_parse_tag_ignores_a_non_nbops_tag_containing_the_separator(loc):
    assert parse_tag("jupyter:hide", loc) is None


@pytest.mark.parametrize(
    "name", ["My Step", "Features", "1st", "clean-data", "_private", "", "a.b", "é"]
)
def test_parse_tag_rejects_an_invalid_step_name(name, loc):
    with pytest.raises(TagError, match="invalid step name"):
        parse_tag(f"transform:{name}", loc)


@pytest.mark.parametrize("role", [Role.SETUP, Role.PARAMETERS, Role.SKIP])
def test_parse_tag_rejects_a_name_on_a_role_that_cannot_be_named(role, loc):
    with pytest.raises(TagError, match="cannot be named"):
        parse_tag(f"{role.value}:x", loc)


def test_tag_error_names_the_cell_it_was_found_in(loc):
    with pytest.raises(TagError) as info:
        parse_tag("transform:Bad Name", loc)
    assert info.value.location == loc
    assert str(info.value).startswith("nb.ipynb, cell 2 (id abc): ")


# -- CellTag ---------------------------------------------------------------------------------


def test_step_tag_of_a_named_step_is_the_tag_as_written():
    assert CellTag(Role.TRAIN, "forest").step_tag == "train:forest"


def test_step_tag_of_an_unnamed_step_is_the_role():
    assert CellTag(Role.TRAIN).step_tag == "train"


def test_step_name_is_the_name_of_a_named_step():
    assert CellTag(Role.TRANSFORM, "features").step_name == "features"


def test_step_name_of_an_unnamed_step_is_the_role():
    assert CellTag(Role.EVALUATE).step_name == "evaluate"


# -- cell_tag --------------------------------------------------------------------------------


def test_a_cell_without_tags_has_no_role(loc):
    assert cell_tag([], loc) is None


def test_a_cell_with_only_other_tags_has_no_role(loc):
    assert cell_tag(["hide-input", "remove-output"], loc) is None


def test_cell_tag_finds_the_role_among_other_tags(loc):
    assert cell_tag(["hide-input", "train:forest", "remove-output"], loc) == CellTag(
        Role.TRAIN, "forest"
    )


def test_the_same_role_written_twice_is_one_role(loc):
    assert cell_tag(["transform", "Transform"], loc) == CellTag(Role.TRANSFORM)


@pytest.mark.parametrize(
    "tags",
    [
        ["setup", "transform"],
        ["parameters", "skip"],
        ["transform:a", "transform:b"],
        ["transform", "transform:features"],
    ],
)
def test_two_roles_on_one_cell_raise_tag_error(tags, loc):
    with pytest.raises(TagError, match="more than one nbops tag"):
        cell_tag(tags, loc)


def test_cell_tag_raises_for_an_invalid_tag_among_valid_ones(loc):
    with pytest.raises(TagError, match="invalid step name"):
        cell_tag(["transform", "train:Bad"], loc)


def test_two_roles_error_names_the_tags_as_written_in_the_notebook(loc):
    with pytest.raises(TagError) as info:
        cell_tag(["setup", "transform:features"], loc)
    assert "('setup', 'transform:features')" in str(info.value)


def test_a_list_of_tags_read_again_means_the_same_and_errors_are_not_kept() -> None:
    first = CellLocation("nb.ipynb", 1, "a")
    again = CellLocation("nb.ipynb", 7, "b")
    assert cell_tag(["transform:clean", "hide-input"], first) == CellTag(Role.TRANSFORM, "clean")
    assert cell_tag(["transform:clean", "hide-input"], again) == CellTag(Role.TRANSFORM, "clean")
    assert cell_tag(["hide-input"], again) is None
    for location in (first, again):  # each error names its own cell
        with pytest.raises(TagError) as info:
            cell_tag(["train", "evaluate"], location)
        assert info.value.location == location
