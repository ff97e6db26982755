"""A quicker "this notebook is valid" for nbformat 4, with nbformat's own compiled schema.

nbformat checks each cell against its schema's `oneOf` of the three cell kinds: every cell
is checked against all three, and the two that must fail raise (and format) an error each,
which is a third of validating a large notebook. The kinds are told apart by `cell_type`
(each definition allows only its own), so a cell valid against its own kind's definition
is valid against the `oneOf`, and the notebook is valid when, besides, it is valid with no
cells. `certainly_valid` checks exactly that, with the functions nbformat's validator
(fastjsonschema) compiled for those definitions. It answers True only when nbformat would
find the notebook valid; anything else (an error, a cell kind it does not know, another
validator) is False, and the caller validates with nbformat as before, which gives nbformat's own error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CELL_KINDS = ("code", "markdown", "raw")


def certainly_valid(nb: dict[str, Any]) -> bool:
    """True when nbformat.validate(nb) would raise nothing and change nothing: `nb` is a
    plain v4 notebook dict whose cells all have distinct string ids (so nbformat repairs
    nothing), valid against the schema. False means "not known": validate as usual."""
    checks = _compiled(nb)
    if checks is None:
        return False
    whole, cell_checks = checks
    cells = nb.get("cells")
    if type(cells) is not list:
        return False
    ids = [cell.get("id") if type(cell) is dict else None for cell in cells]
    if not all(type(i) is str for i in ids) or len(set(ids)) != len(ids):
        return False  # nbformat would add or repair ids
    try:
        whole({**nb, "cells": []})
        for cell in cells:
            cell_checks[cell["cell_type"]](cell)
    except Exception:  # invalid, or a kind with no check: nbformat says which
        return False
    return True


def _compiled(
    nb: dict[str, Any],
) -> tuple[Callable[[Any], Any], dict[Any, Callable[[Any], Any]]] | None:
    """nbformat's compiled check of a whole notebook of this version, and of each cell
    kind's definition; None when they cannot be had as expected."""
    major, minor = nb.get("nbformat"), nb.get("nbformat_minor")
    if major != 4 or type(major) is not int or type(minor) is not int or minor < 0:
        return None
    try:
        from nbformat.validator import get_validator

        validator = get_validator(version=4, version_minor=minor)
        if getattr(validator, "name", None) != "fastjsonschema":
            return None
        whole = validator._validator
        names = whole.__globals__
        cell_checks = {kind: names[f"validate___definitions_{kind}_cell"] for kind in CELL_KINDS}
    except Exception:  # another nbformat or fastjsonschema than the one this was built on
        return None
    if not callable(whole) or not all(callable(check) for check in cell_checks.values()):
        return None
    return whole, cell_checks
