"""Writing nbops tags into a notebook file, changing nothing else.

`write_tags(path, {cell index: tag or None})` replaces the nbops role tag of those cells in
their standard `metadata.tags` (None removes it); every other tag (`hide-input`,
`parameters` of another tool...) and everything else in the file is left as it was: the
notebook's nbformat and minor version, its metadata, cells without ids stay without ids.
An `.ipynb` is edited as JSON (written as Jupyter writes it: one-space indent, sorted keys);
a jupytext percent script (`.py`) gets the tags in its `# %%` markers through jupytext.

The file is replaced atomically (a temporary file beside it, then a rename), so a failure
leaves the notebook as it was. Raises NotebookReadError when the file cannot be read as the
notebook it was, and NotebookWriteError when it cannot be written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nbops._atomic import atomic_write_text
from nbops.errors import NotebookReadError, NotebookWriteError
from nbops.notebook.suggest import Suggestion, is_nbops_tag
from nbops.notebook.tags import CellTag


def write_tags(path: str | Path, tags: Mapping[int, CellTag | None]) -> int:
    """Set the nbops tag of the cells at these indexes (from 0, as `Cell.index`); return how
    many cells changed. Nothing is written when none does."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookReadError(
            f"cannot read the notebook to write its tags ({exc})",
            location=str(path),
            fix="check the path and that the file is UTF-8 text",
        ) from None
    if path.suffix == ".py":
        new_text, changed = _percent_script(text, tags, path)
    else:
        new_text, changed = _ipynb(text, tags, path)
    if changed:
        _replace_atomically(path, new_text)
    return changed


def retagged(existing: list[Any], tag: CellTag | None) -> list[str]:
    """A cell's tags with its nbops role tag replaced by `tag` (others kept, in order)."""
    others = [str(t) for t in existing if not is_nbops_tag(str(t))]
    return others + ([str(tag.step_tag)] if tag else [])


def _set_tags(cell: dict[str, Any], tag: CellTag | None) -> bool:
    metadata = cell.setdefault("metadata", {})
    existing = list(metadata.get("tags", []))
    new = retagged(existing, tag)
    if new == [str(t) for t in existing]:
        return False
    if new:
        metadata["tags"] = new
    else:
        metadata.pop("tags", None)
    return True


def _ipynb(text: str, tags: Mapping[int, CellTag | None], path: Path) -> tuple[str, int]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise NotebookReadError(
            "not a notebook: the file is not valid JSON",
            location=str(path),
            fix="open it in Jupyter and save it again",
        ) from None
    cells = _cell_dicts(data, path)
    changed = 0
    for index, tag in sorted(tags.items()):
        cell = _code_cell(cells, index, path)
        changed += _set_tags(cell, tag)
    # As nbformat writes notebooks, so a Jupyter save afterwards changes nothing else.
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", changed


def _cell_dicts(data: Any, path: Path) -> list[dict[str, Any]]:
    """The cells in notebook order (v3 notebooks: their worksheets', one after another, as
    nbformat's upgrade orders them)."""
    if isinstance(data, dict) and isinstance(data.get("cells"), list):
        return list(data["cells"])
    if isinstance(data, dict) and isinstance(data.get("worksheets"), list):
        return [c for ws in data["worksheets"] for c in ws.get("cells", [])]
    raise NotebookReadError(
        "not a notebook: the JSON has no 'cells'",
        location=str(path),
        fix="pass a Jupyter notebook (.ipynb) or a jupytext percent script (.py)",
    )


def _code_cell(cells: list[Any], index: int, path: Path) -> dict[str, Any]:
    if not 0 <= index < len(cells) or not isinstance(cells[index], dict):
        raise NotebookReadError(
            f"the notebook has no cell {index + 1}",
            location=str(path),
            fix="the file changed since it was read: suggest the tags again",
        )
    cell: dict[str, Any] = cells[index]
    if cell.get("cell_type") != "code":
        raise NotebookReadError(
            f"cell {index + 1} is a {cell.get('cell_type')} cell, not a code cell",
            location=str(path),
            fix="the file changed since it was read: suggest the tags again",
        )
    return cell


def _percent_script(text: str, tags: Mapping[int, CellTag | None], path: Path) -> tuple[str, int]:
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent")
    changed = 0
    for index, tag in sorted(tags.items()):
        cell = _code_cell(nb.cells, index, path)
        changed += _set_tags(cell, tag)
    return jupytext.writes(nb, fmt="py:percent"), changed


def _replace_atomically(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)  # keeps the notebook's mode
    except OSError as exc:
        raise NotebookWriteError(
            f"cannot write the tags into the notebook ({exc.strerror or exc})",
            location=str(path),
            fix="check that the notebook's folder is writable and the disk is not full",
        ) from None


def write_suggestion(suggestion: Suggestion, cells: Iterable[int] | None = None) -> int:
    """Write a suggestion's changed tags (only `cells`, by index, when given) into its
    notebook; return how many cells changed.

    Raises NotebookWriteError when the file changed since it was read (its sha256 differs):
    the suggestion may no longer fit it.
    """
    path = suggestion.notebook.path
    try:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise NotebookReadError(
            f"cannot read the notebook ({exc.strerror})", location=str(path), fix="check the path"
        ) from None
    if current != suggestion.notebook.sha256:
        raise NotebookWriteError(
            "the notebook changed since the tags were suggested",
            location=str(path),
            fix="save it, then suggest the tags again",
        )
    tags = suggestion.tags()
    if cells is not None:
        wanted = set(cells)
        tags = {i: t for i, t in tags.items() if i in wanted}
    return write_tags(path, tags)
