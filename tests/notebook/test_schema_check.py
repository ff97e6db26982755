"""nbops.notebook.schema_check.certainly_valid says a notebook is valid exactly when nbformat's
own validation finds it valid and repairs nothing (for the notebooks it can judge: plain v4
dicts whose cells have distinct string ids), and never says so for one nbformat rejects."""

from __future__ import annotations

import copy
import json
from typing import Any

import nbformat
import nbformat.v4
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nbops.notebook.schema_check import _compiled, certainly_valid

TEXT = st.one_of(st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3))
ODD = st.one_of(st.none(), st.integers(-2, 3), st.booleans(), st.text(max_size=3), st.just([]))
IDS = st.sampled_from(["a", "b", "cell-1", "x_2", "", "bad id", "é", "a" * 65])


def rarely(draw: st.DrawFn) -> bool:
    """One perturbation in ten: most notebooks drawn are valid, or nearly."""
    return draw(st.integers(0, 9)) == 0


@st.composite
def metadata(draw: st.DrawFn) -> Any:
    meta: dict[str, Any] = {}
    if draw(st.booleans()):
        meta["tags"] = draw(st.lists(st.sampled_from(["train", "setup", "a-b"]), max_size=2))
        if rarely(draw):
            meta["tags"] = draw(st.one_of(st.just(["x", "x"]), st.just(["a,b"]), ODD))
    if draw(st.booleans()):
        meta["collapsed"] = draw(st.booleans()) if not rarely(draw) else draw(ODD)
    if draw(st.booleans()):
        meta["jupyter"] = {"source_hidden": True} if not rarely(draw) else draw(ODD)
    if rarely(draw):
        meta[draw(st.sampled_from(["x", "name", "execution"]))] = draw(ODD)
    return meta if not rarely(draw) else draw(ODD)


@st.composite
def outputs(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["stream", "execute_result", "display_data", "error"]))
    if rarely(draw):
        kind = "odd"
    out: dict[str, Any] = {"output_type": kind}
    if kind == "stream":
        out.update(name="stdout" if not rarely(draw) else "other", text=draw(TEXT))
    elif kind in ("execute_result", "display_data"):
        out["data"] = {"text/plain": draw(TEXT)} if not rarely(draw) else draw(ODD)
        out["metadata"] = {} if not rarely(draw) else draw(ODD)
        if kind == "execute_result":
            out["execution_count"] = draw(st.integers(0, 3)) if not rarely(draw) else draw(ODD)
    elif kind == "error":
        out.update(ename="E", evalue="v", traceback=draw(st.lists(st.text(max_size=3))))
    if rarely(draw):
        out["extra"] = 1
    return out


@st.composite
def cells(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["code", "code", "markdown", "raw"]))
    if rarely(draw):
        kind = draw(st.sampled_from(["other", "Code", ""]))
    cell: dict[str, Any] = {"cell_type": kind, "metadata": draw(metadata()), "source": draw(TEXT)}
    if kind == "code" or rarely(draw):
        cell["outputs"] = draw(st.lists(outputs(), max_size=2)) if not rarely(draw) else draw(ODD)
        cell["execution_count"] = draw(st.one_of(st.none(), st.integers(0, 3)))
        if rarely(draw):
            cell["execution_count"] = draw(ODD)
    if rarely(draw):
        cell["attachments"] = draw(st.one_of(st.just({"a.png": {"image/png": "AA"}}), ODD))
    if rarely(draw):
        del cell[draw(st.sampled_from(sorted(cell)))]
    if rarely(draw):
        cell["surprise"] = draw(ODD)
    return cell


@st.composite
def notebooks(draw: st.DrawFn) -> dict[str, Any]:
    cell_list = draw(st.lists(cells(), max_size=4))
    for n, cell in enumerate(cell_list):  # distinct valid ids; sometimes odd, missing, repeated
        cell["id"] = f"cell-{n}"
        if rarely(draw):
            cell["id"] = draw(st.one_of(IDS, ODD))
        if rarely(draw):
            del cell["id"]
        if n and rarely(draw):
            cell["id"] = cell_list[n - 1].get("id")
    nb: dict[str, Any] = {
        "cells": cell_list,
        "metadata": draw(st.sampled_from([{}, {"kernelspec": {"name": "p", "display_name": "P"}}])),
        "nbformat": 4 if not rarely(draw) else draw(ODD),
        "nbformat_minor": 5 if not rarely(draw) else draw(st.one_of(st.integers(0, 6), ODD)),
    }
    if rarely(draw):
        nb["metadata"] = draw(ODD)
    if rarely(draw):
        nb["extra"] = 1
    return nb


def _nbformat_verdict(nb: dict[str, Any]) -> bool:
    """Valid for nbformat, and nothing changed by its validation."""
    checked = copy.deepcopy(nb)
    try:
        nbformat.validate(checked)
    except Exception:
        return False
    return checked == nb


def _judgeable(nb: dict[str, Any]) -> bool:
    """The notebooks certainly_valid answers for (any other: False, "not known")."""
    ids = [c.get("id") if isinstance(c, dict) else None for c in nb.get("cells", [])]
    return all(type(i) is str for i in ids) and len(set(ids)) == len(ids)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notebooks())
def test_certainly_valid_is_nbformats_verdict(nb: dict[str, Any]) -> None:
    before = copy.deepcopy(nb)
    quick = certainly_valid(nb)
    assert nb == before  # it changes nothing
    verdict = _nbformat_verdict(nb)
    event(f"nbformat valid: {verdict}; certainly valid: {quick}")
    if quick:
        assert verdict
    if verdict and _judgeable(nb):
        assert quick


def test_the_quick_check_is_the_one_used_with_this_nbformat() -> None:
    """Guards against a silent fall-back to the slow path after an nbformat upgrade."""
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    assert _compiled(nb) is not None
    cell = nbformat.v4.new_code_cell("x = 1")
    nb["cells"] = [json.loads(json.dumps(cell))]
    assert certainly_valid(nb)


def test_an_invalid_cell_among_valid_ones_is_not_certainly_valid() -> None:
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    good = json.loads(json.dumps(nbformat.v4.new_code_cell("x = 1")))
    bad = {**json.loads(json.dumps(nbformat.v4.new_markdown_cell("# t"))), "outputs": []}
    nb["cells"] = [good, bad]
    assert not certainly_valid(nb)
    nb["cells"] = [good]
    assert certainly_valid(nb)


def test_repeated_or_missing_ids_are_left_to_nbformat_which_repairs_them() -> None:
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    first, second = (json.loads(json.dumps(nbformat.v4.new_code_cell(s))) for s in "xy")
    nb["cells"] = [first, {**second, "id": first["id"]}]
    assert not _nbformat_verdict(nb)
    assert not certainly_valid(nb)
    nb["cells"] = [first, {k: v for k, v in second.items() if k != "id"}]
    assert not certainly_valid(nb)
