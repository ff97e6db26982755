"""A v4 notebook of the usual shape is read as plain dicts (read._v4_json), not nbformat's
NotebookNode: the result, and the error for a malformed file, are the same either way."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import NbopsError
from nbops.notebook import read
from nbops.notebook.read import read_notebook

_text = st.text(alphabet="ab %\n\t'\"#é", max_size=12)
_multiline = st.one_of(_text, st.lists(_text, max_size=3))
_mime = st.dictionaries(
    st.sampled_from(["text/plain", "text/html", "application/json", "application/vnd+json"]),
    st.one_of(_multiline, st.dictionaries(st.just("k"), st.integers(), max_size=1)),
    max_size=3,
)
_output = st.one_of(
    st.fixed_dictionaries(
        {"output_type": st.just("stream"), "name": st.just("stdout"), "text": _multiline}
    ),
    st.fixed_dictionaries(
        {
            "output_type": st.just("execute_result"),
            "data": _mime,
            "metadata": st.just({}),
            "execution_count": st.one_of(st.none(), st.integers(1, 9)),
        }
    ),
    st.fixed_dictionaries(
        {"output_type": st.just("display_data"), "data": _mime, "metadata": st.just({})}
    ),
    st.fixed_dictionaries(
        {
            "output_type": st.just("error"),
            "ename": _text,
            "evalue": _text,
            "traceback": st.lists(_text, max_size=2),
        }
    ),
)
_tags = st.lists(st.sampled_from(["setup", "transform", "train", "evaluate", "other"]), max_size=2)


@st.composite
def _cell(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["code", "markdown", "raw"]))
    metadata: dict[str, Any] = {"tags": draw(_tags)}
    if draw(st.booleans()):
        metadata["trusted"] = draw(st.booleans())
    cell: dict[str, Any] = {
        "cell_type": kind,
        "id": f"c{index}",
        "metadata": metadata,
        "source": draw(_multiline),
    }
    if kind == "code":
        cell["outputs"] = draw(st.lists(_output, max_size=2))
        cell["execution_count"] = None
    return cell


@st.composite
def _notebook(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 4))
    metadata: dict[str, Any] = {"kernelspec": {"name": "python3", "display_name": "P"}}
    for key in ("orig_nbformat", "signature"):
        if draw(st.booleans()):
            metadata[key] = 3 if key == "orig_nbformat" else "sha256:x"
    return {
        "cells": [draw(_cell(i)) for i in range(n)],
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": draw(st.sampled_from([4, 5])),
    }


def _read_both(data: Any, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """What read_notebook gives (its result or its error) with and without the dict path."""
    path = folder / "nb.ipynb"
    path.write_text(json.dumps(data))
    outcomes = []
    for plain in (True, False):
        if not plain:
            monkeypatch.setattr(read, "_v4_json", lambda data: None)
        try:
            outcomes.append(read_notebook(path))
        except NbopsError as exc:
            outcomes.append((type(exc), str(exc)))
    monkeypatch.undo()
    return outcomes[0], outcomes[1]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(nb=_notebook())
def test_plain_reading_gives_what_nbformat_gives(
    nb: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain, node = _read_both(nb, Path(tmp), monkeypatch)
    assert plain == node


def _valid() -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "id": "a",
                "metadata": {"tags": ["transform"]},
                "source": ["x = 1\n", "y = 2"],
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _set(path: list[Any], value: Any) -> dict[str, Any]:
    data = _valid()
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        _set(["cells", 0, "source"], ["x", 1]),
        _set(["cells", 0, "source"], 3),
        _set(["cells", 0, "metadata"], KeyError),
        _set(["cells", 0, "metadata"], ["tags"]),
        _set(["cells", 0], "not a cell"),
        _set(["cells", 0, "outputs"], [{"output_type": "stream", "name": "x", "text": [1]}]),
        _set(["cells", 0, "outputs"], [{"output_type": ["stream"]}]),
        _set(["cells", 0, "outputs"], "none"),
        _set(["cells", 0, "outputs"], [3]),
        _set(["cells", 0, "outputs"], [{"output_type": "display_data", "data": []}]),
        _set(["cells", 0, "attachments"], {"a.png": {"image/png": ["aa", "bb"]}}),
        _set(["cells", 0, "cell_type"], KeyError),
        _set(["metadata"], KeyError),
        _set(["metadata"], []),
        _set(["cells"], {}),
    ],
)
def test_a_malformed_notebook_gets_the_error_nbformat_gives(
    data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, node = _read_both(data, tmp_path, monkeypatch)
    assert plain == node


def test_a_notebook_of_the_usual_shape_takes_the_plain_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []
    real = read._v4_json

    def spy(data: dict[str, Any]) -> dict[str, Any] | None:
        out = real(data)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(read, "_v4_json", spy)
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_valid()))
    model = read_notebook(path)
    assert taken == [True]
    assert model.cells[0].source == "x = 1\ny = 2"
