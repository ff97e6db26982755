"""Reading a notebook file (`.ipynb` of any v4 minor, or v1-v3 upgraded; or a jupytext
percent `.py`).

A notebook tagged only for Kale (`step:NAME`, `imports`, `pipeline-parameters`...) is read by
its Kale tags: each cell gets the nbops role Kale's rules give it (see kale.py).

Cells of a type nbops does not know (nbformat >= 4.6 allows "future" cell types) are kept in
the list, so cell numbers match what Jupyter shows, but have no role and no code. Cells
without an id (files older than nbformat 4.5, upgraded files, percent scripts) get one
derived from their content, so exports are reproducible; such ids are never shown to the
user as if they were the notebook's own: errors name those cells by number only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import CellLocation, NotebookReadError, TagError
from nbops.notebook.cellcode import Diagnostic
from nbops.notebook.kale import apply_kale
from nbops.notebook.schema_check import certainly_valid
from nbops.notebook.tags import NBOPS_CAPTURE_TAG, PAPERMILL_INJECTED_TAG, CellTag, Role, cell_tag


@dataclass(frozen=True)
class Cell:
    """One cell of a notebook, with its nbops role (None when untagged)."""

    index: int
    cell_id: str
    cell_type: str
    source: str
    tags: tuple[str, ...]
    tag: CellTag | None
    path: str
    id_from_content: bool = False  # the file has no id for it: nbops derived one

    @property
    def own_id(self) -> str | None:
        """The id the notebook file gives the cell; None when nbops derived it."""
        return None if self.id_from_content else self.cell_id

    @property
    def label(self) -> str:
        """How messages name the cell: `cell 3 (id ab12)`, or `cell 3` without its own id."""
        return f"cell {self.number}" + (f" (id {self.own_id})" if self.own_id else "")

    @property
    def number(self) -> int:
        """The cell's position as a person counts it, from 1."""
        return self.index + 1

    @property
    def role(self) -> Role | None:
        return self.tag.role if self.tag else None

    @property
    def location(self) -> CellLocation:
        return CellLocation(self.path, self.number, self.own_id)

    @property
    def injected(self) -> bool:
        """Whether papermill (the run's parameter values) or `nbops run` (a capture cell)
        inserted this cell: not part of the pipeline, so the analysis ignores it entirely."""
        return self.cell_type == "code" and (
            PAPERMILL_INJECTED_TAG in self.tags or NBOPS_CAPTURE_TAG in self.tags
        )


@dataclass(frozen=True)
class NotebookModel:
    """A notebook as nbops sees it: its cells and tags, and the file's fingerprint."""

    path: Path
    format: str
    sha256: str
    kernel_name: str
    cells: tuple[Cell, ...] = field(repr=False)
    kale: bool = False  # the roles come from Kale's tags (no cell had nbops tags)
    notes: tuple[Diagnostic, ...] = field(default=(), repr=False)  # warnings from reading tags

    @property
    def code_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.cell_type == "code"]

    @property
    def tagged_cells(self) -> list[Cell]:
        return [c for c in self.code_cells if c.tag is not None and not c.injected]


def read_notebook(path: str | Path, *, tag_problems: list[TagError] | None = None) -> NotebookModel:
    """Read and validate a notebook. `.py` files are read as jupytext percent notebooks.

    Raises NotebookReadError when the file is missing, not JSON, not a notebook, or invalid
    against the nbformat schema; TagError when a cell's tags cannot be understood, unless
    `tag_problems` is given (the panel's partial reading): each such error is then appended
    there and its cell read as untagged.
    """
    return _read(Path(path), tag_problems, defer=False)[0]


class PendingValidation:
    """nbformat's schema validation of a notebook already read, left for later (see
    `read_notebook_pending`). `run()` raises the NotebookReadError `read_notebook` would
    have raised for an invalid notebook; `first()` wraps work done before it, so that an
    error there is preceded by the notebook's own, as when it was validated on reading."""

    def __init__(self, check: Callable[[], None] | None = None) -> None:
        self._check = check

    @property
    def pending(self) -> bool:
        return self._check is not None

    def run(self) -> None:
        """Validate (once: a notebook found valid is not validated again)."""
        if self._check is not None:
            self._check()
            self._check = None

    @contextlib.contextmanager
    def first(self) -> Iterator[None]:
        """Run the block; when it raises, validate first and raise the validation's error
        if the notebook is invalid, else the block's."""
        try:
            yield
        except Exception:
            self.run()
            raise


def read_notebook_pending(path: str | Path) -> tuple[NotebookModel, PendingValidation]:
    """`read_notebook`, with nbformat's schema validation (a third of reading a large
    notebook) left to the caller's `PendingValidation.run()` when it cannot change what was
    read: for a v4 notebook read as plain JSON whose cells all have distinct string ids
    (validation repairs duplicate or missing ids in place). Otherwise it is done here, as
    `read_notebook` does it, and `run()` does nothing. Until `run()` has returned, the
    notebook may be invalid: the caller writes nothing and runs what it does with it under
    `PendingValidation.first()`.
    """
    return _read(Path(path), None, defer=True)


def _read(
    path: Path, tag_problems: list[TagError] | None, *, defer: bool
) -> tuple[NotebookModel, PendingValidation]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NotebookReadError(
            f"cannot read the file ({exc.strerror})",
            location=str(path),
            fix="check the path",
        ) from None
    validation = PendingValidation()
    if path.suffix == ".py":
        nb = _read_percent_script(raw, path)
        fmt = "py:percent"
        derived = set(range(len(nb.cells)))
    else:
        nb, derived, check = _read_ipynb_checked(raw, path, defer=defer)
        validation = PendingValidation(check)
        fmt = "ipynb"
    # What follows reads what validation checks (kernelspec, cells, tags): its errors come
    # after validation's.
    with validation.first():
        kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
        cells, kale, notes = apply_kale(_cells(nb, str(path), derived, tag_problems))
    model = NotebookModel(
        path=path,
        format=fmt,
        sha256=hashlib.sha256(raw).hexdigest(),
        kernel_name=kernel,
        cells=tuple(cells),
        kale=kale,
        notes=tuple(notes),
    )
    return model, validation


def _read_ipynb(raw: bytes, path: Path) -> Any:
    """The notebook as nbformat 4 (see _read_ipynb_ids)."""
    return _read_ipynb_ids(raw, path)[0]


def _read_ipynb_ids(raw: bytes, path: Path) -> tuple[Any, set[int]]:
    """The notebook as nbformat 4, and the indexes of the cells whose ids nbops derived."""
    nb, derived, _ = _read_ipynb_checked(raw, path, defer=False)
    return nb, derived


def _read_ipynb_checked(
    raw: bytes, path: Path, *, defer: bool
) -> tuple[Any, set[int], Callable[[], None] | None]:
    """`_read_ipynb_ids`, and with `defer` nbformat's validation returned rather than run
    when running it later cannot change what was read (see `read_notebook_pending`); None
    when it was run."""
    import nbformat

    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise NotebookReadError(
            f"not a notebook: the file is not valid JSON{where}",
            location=str(path),
            fix="open it in Jupyter and save it again, or restore it from version control",
        ) from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise NotebookReadError(
            "not a notebook: the JSON has no 'cells'",
            location=str(path),
            fix="pass a Jupyter notebook (.ipynb) or a jupytext percent script (.py)",
        )
    major = data.get("nbformat")
    if major not in (1, 2, 3, 4) or isinstance(major, bool):
        raise NotebookReadError(
            f"unsupported notebook format version {major!r}",
            location=str(path),
            fix="nbops reads nbformat 4 (and upgrades 1 to 3); save it with a current Jupyter",
        )
    derived = _fill_missing_ids(data)
    with _validation_errors(path):
        # A v4 document is read as nbformat.reads reads it, without writing the JSON out
        # and parsing it again, and validated once below (reads validates too). One of the
        # usual shape stays the parsed JSON (_v4_json): building nbformat's NotebookNode of
        # every dict in it cost as much as validating it.
        nb: Any = _v4_json(data) if major == 4 else None
        plain = nb is not None
        if nb is None:
            nb = _v4_node(data) if major == 4 else nbformat.reads(json.dumps(data), as_version=4)
        if major != 4:  # the upgrade makes up random ids; content ids keep exports stable
            sources = [_text(c.get("source", "")) for c in nb.cells]
            for c, cid in zip(nb.cells, _content_ids(sources), strict=True):
                c["id"] = cid
            derived = set(range(len(nb.cells)))
        if defer and plain and _distinct_ids(nb["cells"]):
            # Validation repairs nothing here (no missing or duplicate id): it can wait.
            return nb, derived, lambda: _validate(nb, path)
        if not (plain and certainly_valid(nb)):
            nbformat.validate(nb)
    return nb, derived, None


def _distinct_ids(cells: list[Any]) -> bool:
    """Whether every cell has a string id and no two the same: nbformat's validation then
    changes nothing in the notebook."""
    ids = [c.get("id") for c in cells]
    return all(type(i) is str for i in ids) and len(set(ids)) == len(ids)


def _validate(nb: Any, path: Path) -> None:
    """nbformat's validation; its quicker form first (nbops.notebook.schema_check)."""
    if certainly_valid(nb):
        return
    import nbformat

    with _validation_errors(path):
        nbformat.validate(nb)


@contextlib.contextmanager
def _validation_errors(path: Path) -> Iterator[None]:
    """nbformat's errors (and its warnings, not the user's concern) as NotebookReadError."""
    import warnings

    import nbformat

    try:
        with warnings.catch_warnings():  # nbformat's upgrade notices are not the user's concern
            warnings.simplefilter("ignore")
            yield
    except nbformat.ValidationError as exc:
        field_path = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise NotebookReadError(
            f"invalid notebook at {field_path}: {exc.message}",
            location=str(path),
            fix="open it in Jupyter and save it again to repair its structure",
        ) from None
    except Exception as exc:  # nbformat raises assorted errors for malformed documents
        raise NotebookReadError(
            f"not a notebook: {exc}",
            location=str(path),
            fix="open it in Jupyter and save it again",
        ) from None


def _v4_json(data: dict[str, Any]) -> dict[str, Any] | None:
    """A v4 notebook's parsed JSON with what nbformat does on reading done in place (its
    `rejoin_lines` and `strip_transient`), as plain dicts: the same data `_v4_node` gives,
    for every document of the shape those steps expect. None, with `data` unchanged, for any
    other shape: `_v4_node` then reads it, and reports what is wrong as nbformat does."""
    metadata = data.get("metadata")
    cells = data.get("cells")
    if not isinstance(metadata, dict) or not isinstance(cells, list):
        return None
    for cell in cells:
        if not _plain_cell(cell):
            return None
    # What nbformat.v4.rwbase.rejoin_lines and strip_transient do, on dicts.
    for cell in cells:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        if cell.get("cell_type") == "code":
            for output in cell.get("outputs", []):
                output_type = output.get("output_type", "")
                if output_type in {"execute_result", "display_data"}:
                    _rejoin_mimebundle(output.get("data", {}))
                elif output_type and isinstance(output.get("text", ""), list):
                    output["text"] = "".join(output["text"])
        cell["metadata"].pop("trusted", None)
    for key in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        metadata.pop(key, None)
    return data


def _plain_cell(cell: Any) -> bool:
    """Whether `_v4_json` can read a cell as nbformat would: a dict with a metadata dict,
    its source a string or a list of strings, no attachments (left to nbformat), and for a
    code cell a list of output dicts whose `data` is a dict and `text` a string or a list
    of strings."""
    if not isinstance(cell, dict) or not isinstance(cell.get("metadata"), dict):
        return False
    if "attachments" in cell or not _is_text(cell.get("source", "")):
        return False
    if cell.get("cell_type") != "code":
        return True
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        return False
    for output in outputs:
        if not isinstance(output, dict):
            return False
        output_type = output.get("output_type", "")
        if not isinstance(output_type, str):
            return False
        if output_type in {"execute_result", "display_data"}:
            if not isinstance(output.get("data", {}), dict):
                return False
        elif output_type and not _is_text(output.get("text", "")):
            return False
    return True


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(line, str) for line in value)
    )


def _rejoin_mimebundle(data: dict[str, Any]) -> None:
    """nbformat.v4.rwbase._rejoin_mimebundle: multi-line text fields joined, in place (JSON
    mime types left as they are)."""
    for key, value in list(data.items()):
        is_json = key == "application/json" or (
            key.startswith("application/") and key.endswith("+json")
        )
        if not is_json and isinstance(value, list) and all(isinstance(x, str) for x in value):
            data[key] = "".join(value)


def _v4_node(data: dict[str, Any]) -> Any:
    """A v4 notebook's parsed JSON as nbformat's NotebookNode, as nbformat.reads builds it."""
    import nbformat

    try:
        return nbformat.versions[4].to_notebook_json(data, minor=data.get("nbformat_minor", 0))
    except AttributeError as e:  # as nbformat.reader.reads words it
        raise nbformat.ValidationError(
            f"The notebook is invalid and is missing an expected key: {e}"
        ) from None


def _fill_missing_ids(data: dict[str, Any]) -> set[int]:
    """Give v4 cells without an id (files older than v4.5) ids derived from their content;
    return the indexes of those cells.

    Ids from the content, not random ones, keep a re-export of an unchanged v4.4 notebook
    byte-identical.
    """
    cells = data.get("cells")
    if data.get("nbformat") != 4 or not isinstance(cells, list):
        return set()
    if not all(isinstance(c, dict) and isinstance(c.get("source", ""), str | list) for c in cells):
        return set()  # malformed: let the schema validation name what is wrong
    minor = data.get("nbformat_minor", 0)
    if not isinstance(minor, int) or minor < 5:
        data["nbformat_minor"] = 5  # ids are valid from 4.5 on
    missing = {i for i, c in enumerate(cells) if "id" not in c}
    if missing:
        sources = [_text(c.get("source", "")) for c in cells]
        for i, (c, cid) in enumerate(zip(cells, _content_ids(sources), strict=True)):
            if i in missing:
                c["id"] = cid
    return missing


def _text(source: Any) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    return "".join(str(part) for part in source) if isinstance(source, list) else str(source)


def _content_ids(sources: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    ids = []
    for src in sources:
        base = hashlib.sha1(src.encode("utf-8")).hexdigest()[:8]
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _read_percent_script(raw: bytes, path: Path) -> Any:
    import jupytext

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookReadError(
            "not a notebook: the script is not UTF-8 text",
            location=str(path),
            fix="save the file as UTF-8",
        ) from None
    if "# %%" not in text:
        raise NotebookReadError(
            "not a notebook: the script has no '# %%' cell markers",
            location=str(path),
            fix="write it in jupytext's percent format ('# %% tags=[\"transform\"]' before each cell)",
        )
    nb = jupytext.reads(text, fmt="py:percent")
    # jupytext makes up random ids; ids from the content keep exports reproducible.
    for c, cid in zip(nb.cells, _content_ids([c.source for c in nb.cells]), strict=True):
        c["id"] = cid
    return nb


def _cells(
    nb: Any, path: str, derived: set[int], tag_problems: list[TagError] | None = None
) -> list[Cell]:
    cells = []
    for index, c in enumerate(nb["cells"]):  # plain dicts, or nbformat's NotebookNode
        cid = str(c.get("id") or "")
        tags = tuple(str(t) for t in c.get("metadata", {}).get("tags", []))
        location = CellLocation(path, index + 1, cid)
        tag = None
        cell_type = c["cell_type"]
        if cell_type == "code":
            try:
                tag = cell_tag(list(tags), location)
            except TagError as exc:
                if tag_problems is None:
                    raise
                tag_problems.append(exc)
        cells.append(
            Cell(
                index=index,
                cell_id=cid,
                cell_type=cell_type,
                source=_text(c.get("source", "")),  # a future cell type may have none
                tags=tags,
                tag=tag,
                path=path,
                id_from_content=index in derived,
            )
        )
    return cells
