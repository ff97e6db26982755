"""The cell-tag vocabulary: which tags nbops reads, and what role and step a cell has.

The vocabulary is defined once, in `vocabulary.json` beside this module; the JupyterLab
extension is tested against the same file, so the UI cannot write a tag this module ignores.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, cached_property
from importlib import resources
from typing import Any

from nbops.errors import CellLocation, TagError


class Role(StrEnum):
    """What a tagged cell is for."""

    SETUP = "setup"
    PARAMETERS = "parameters"
    TRANSFORM = "transform"
    TRAIN = "train"
    EVALUATE = "evaluate"
    SKIP = "skip"


# The tag papermill gives the cell it inserts, after the parameters cell, with a run's
# parameter values. That cell belongs to the run, not to the pipeline: the analysis leaves it
# out, so an executed notebook exports as its source does (with the notebook's defaults).
PAPERMILL_INJECTED_TAG = "injected-parameters"
# The tag of the cells `nbops run` adds to the copy it executes, to record what the steps
# computed (runs/capture_plan.py). Like papermill's cell, they belong to the run.
NBOPS_CAPTURE_TAG = "nbops-capture"


@cache
def vocabulary() -> dict[str, Any]:
    """The tag vocabulary as shipped in `vocabulary.json` (roles, colours, name pattern)."""
    text = resources.files("nbops.notebook").joinpath("vocabulary.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _role_spec(role: Role) -> dict[str, Any]:
    for spec in vocabulary()["roles"]:
        if spec["name"] == role.value:
            return dict(spec)
    raise KeyError(role)  # pragma: no cover - Role and vocabulary.json are tested to agree


def is_named_role(role: Role) -> bool:
    """Whether cells of this role may name their step (`transform:features`)."""
    return bool(_role_spec(role)["named"])


def is_exported(role: Role) -> bool:
    """Whether cells of this role become code in the exported package."""
    return bool(_role_spec(role)["exported"])


@dataclass(frozen=True)
class CellTag:
    """The nbops meaning of one cell's tags: its role and, for a named step, the step name."""

    role: Role
    name: str | None = None

    @cached_property  # read for every cell; a notebook's cells share a few CellTags (_READ)
    def step_tag(self) -> str:
        """The tag as written in the notebook: `transform` or `transform:features`."""
        return (
            f"{self.role.value}{vocabulary()['separator']}{self.name}" if self.name else self.role
        )

    @property
    def step_name(self) -> str:
        """The step's function name: its own name, or the role for an unnamed step."""
        return self.name or self.role.value


def parse_tag(tag: str, location: CellLocation) -> CellTag | None:
    """Read one tag. Tags that are not nbops roles (`hide-input`, ...) give None.

    Raises TagError for a role with a malformed step name (`transform:My Step`) or a name
    on a role that cannot have one (`setup:x`).
    """
    sep = vocabulary()["separator"]
    head, has_sep, name = tag.strip().partition(sep)
    try:
        role = Role(head.lower())
    except ValueError:
        return None
    if not has_sep:
        return CellTag(role)
    if not is_named_role(role):
        raise TagError(
            f"tag {tag!r} names a step, but {role.value} cells cannot be named",
            location=location,
            fix=f"use the plain tag {role.value!r}",
        )
    if not re.fullmatch(vocabulary()["step_name_pattern"], name):
        raise TagError(
            f"tag {tag!r} has an invalid step name {name!r}",
            location=location,
            fix="step names are lower-case Python identifiers, e.g. 'transform:clean_data'",
        )
    return CellTag(role, name)


# The meaning of each list of tags read so far (CellTag is immutable; errors are not kept):
# a notebook's cells share a few lists of tags, read again for every cell before.
_READ: dict[tuple[str, ...], CellTag | None] = {}
_READ_LIMIT = 4096


def cell_tag(tags: list[str], location: CellLocation) -> CellTag | None:
    """The nbops role of a cell with these tags, or None for an untagged cell.

    Raises TagError when the cell carries two different nbops roles.
    """
    key = tuple(tags)
    if key in _READ:
        return _READ[key]
    found = _cell_tag(tags, location)
    if len(_READ) >= _READ_LIMIT:
        _READ.clear()
    _READ[key] = found
    return found


def _cell_tag(tags: list[str], location: CellLocation) -> CellTag | None:
    found = {t for tag in tags if (t := parse_tag(tag, location)) is not None}
    if len(found) > 1:
        names = ", ".join(sorted(repr(str(t.step_tag)) for t in found))
        raise TagError(
            f"cell has more than one nbops tag ({names})",
            location=location,
            fix="keep one role tag per cell, or split the cell in two",
        )
    return found.pop() if found else None
