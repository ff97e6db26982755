"""read_notebook_pending: nbformat's validation left for later only when it cannot change what
was read, and then the same result, or the same error, as read_notebook."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from nbops.errors import NbopsError, NotebookReadError
from nbops.notebook.read import read_notebook, read_notebook_pending
from tests.notebook.test_read_plain import _notebook, _set, _valid


def _outcomes(data: Any, folder: Path) -> tuple[Any, Any]:
    """read_notebook's result (or error), and read_notebook_pending's after its validation."""
    path = folder / "nb.ipynb"
    path.write_text(json.dumps(data))
    outcomes: list[Any] = []
    for pending in (False, True):
        try:
            if pending:
                model, validation = read_notebook_pending(path)
                validation.run()
                outcomes.append(model)
            else:
                outcomes.append(read_notebook(path))
        except NbopsError as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes[0], outcomes[1]


@settings(max_examples=100, deadline=None)
@given(nb=_notebook())
def test_pending_reading_gives_what_reading_gives(nb: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        eager, pending = _outcomes(nb, Path(tmp))
    assert eager == pending


_INVALID = [
    _set(["cells", 0, "execution_count"], "one"),
    _set(["cells", 0, "metadata", "tags"], [1]),  # also a tag error: validation's comes first
    _set(["cells", 0, "metadata", "tags"], "transform"),
    _set(["metadata"], {"kernelspec": "python3"}),  # also breaks reading the kernel's name
    _set(["metadata"], {"kernelspec": {"name": 3}}),
    _set(["cells", 0, "id"], ""),
    _set(["cells", 0, "id"], 3),
    _set(["cells", 0, "cell_type"], "code cell"),
    {**_valid(), "bogus": 1},
]


@pytest.mark.parametrize("data", _INVALID)
def test_an_invalid_notebook_gets_the_error_reading_gives(data: Any, tmp_path: Path) -> None:
    eager, pending = _outcomes(data, tmp_path)
    assert eager == pending
    assert eager[0] is NotebookReadError


def test_validation_of_a_usual_notebook_waits(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_valid()))
    _, validation = read_notebook_pending(path)
    assert validation.pending
    validation.run()
    assert not validation.pending


def test_duplicate_ids_are_repaired_on_reading(tmp_path: Path) -> None:
    data = _valid()
    data["cells"].append({**data["cells"][0], "source": "z = 3"})
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(data))
    model, validation = read_notebook_pending(path)
    assert not validation.pending  # validated at once: it changes the ids
    ids = [c.cell_id for c in model.cells]
    assert ids[0] == "a" and len(set(ids)) == 2
    assert read_notebook(path).cells[0].cell_id == "a"


def test_the_error_of_later_work_follows_the_notebooks_own(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_set(["cells", 0, "execution_count"], "one")))
    _, validation = read_notebook_pending(path)
    with (
        pytest.raises(NotebookReadError, match="invalid notebook at cells/0"),
        validation.first(),
    ):
        raise ValueError("analysis failed")
    path.write_text(json.dumps(_valid()))
    _, validation = read_notebook_pending(path)
    with pytest.raises(ValueError, match="analysis failed"), validation.first():
        raise ValueError("analysis failed")
