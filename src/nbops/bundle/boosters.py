"""The trees of XGBoost and LightGBM boosters, checked before their libraries parse them.

skops saves a booster through the library's own `__getstate__`: XGBoost's model snapshot
(UBJSON) as a binary member of the skops zip, LightGBM's text model as a string in its
`schema.json`. When skops loads the model, the library's C++ parser reads those bytes, and
neither library checks the links of the trees it reads: a child index or a feature index out
of range is followed when the model is loaded or when it predicts (reading outside its
arrays; a LightGBM leaf index out of range aborts the process while loading).

`check_boosters(data)` reads a skops file's schema without building any object, finds every
XGBoost and LightGBM booster in it, parses their models here (a small UBJSON reader for
XGBoost, the text format for LightGBM) and raises BundleIntegrityError, naming the problem,
when a tree is malformed: every tree's children in range and each node reached once from the
root (no cycle), every split feature below the model's feature count, every category span
inside its array. A booster stored in any other form is refused.

CatBoost's model (CBM) is a flatbuffer its loader verifies; nbops leaves it to CatBoost.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any, ClassVar

from nbops.errors import BundleIntegrityError

__all__ = ["check_boosters", "check_lightgbm_text", "check_xgboost_model"]

_BOOSTERS = {("xgboost.core", "Booster"), ("lightgbm.basic", "Booster")}


def _bad(what: str) -> BundleIntegrityError:
    return BundleIntegrityError(
        f"a decision tree in the model is malformed: {what}",
        location="model.skops",
        fix="the model file was not written by the library that trained it; rebuild the bundle",
    )


# -- the skops file ------------------------------------------------------------------------------


def check_boosters(data: bytes) -> None:
    """Check every XGBoost and LightGBM booster a skops file holds, before anything is built."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return  # not a skops file: skops refuses it itself
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if (node.get("__module__"), node.get("__class__")) in _BOOSTERS:
            _check_booster_node(node, archive)
        stack.extend(node.values())


def _check_booster_node(node: dict[str, Any], archive: zipfile.ZipFile) -> None:
    module = node["__module__"]
    state = node.get("content")
    if not (
        isinstance(state, dict)
        and state.get("__loader__") == "DictNode"
        and isinstance(state.get("content"), dict)
    ):
        raise _bad(f"a {module} booster is not stored as the library writes it")
    for key in ("handle", "_handle"):
        value = state["content"].get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _bad(f"a {module} booster is not stored as the library writes it")
        loader = value.get("__loader__")
        if loader == "JsonNode" and value.get("content") == "null":
            continue
        if module == "lightgbm.basic" and loader == "JsonNode":
            try:
                text = json.loads(str(value.get("content", "null")))
            except ValueError:
                text = None
            if not isinstance(text, str):
                raise _bad("a LightGBM booster's model is not text")
            check_lightgbm_text(text)
        elif module == "xgboost.core" and loader == "BytearrayNode":
            try:
                raw = archive.read(str(value.get("file")))
            except KeyError:
                raise _bad("an XGBoost booster's model is missing from the file") from None
            check_xgboost_model(_xgboost_snapshot(raw))
        else:
            raise _bad(f"a {module} booster is not stored as the library writes it")


def _xgboost_snapshot(raw: bytes) -> dict[str, Any]:
    """The model of an XGBoost snapshot (UBJSON `{"Config": ..., "Model": ...}`), or of a
    UBJSON or JSON model."""
    try:
        document = json.loads(raw) if raw[:1] == b"{" and raw[1:2] in b'"\n\r\t ' else None
        if document is None:
            document = UBJReader(raw).document()
    except (ValueError, IndexError, struct.error, RecursionError) as e:
        raise _bad(f"an XGBoost model cannot be read ({e})") from None
    if isinstance(document, dict) and "Model" in document:
        document = document["Model"]
    if not isinstance(document, dict):
        raise _bad("an XGBoost model is not an object")
    return document


class UBJReader:
    """Universal Binary JSON, as XGBoost writes it: big-endian numbers, strong-typed arrays
    (`[$d#L<count>`) read as lists. Every length is checked against the bytes left."""

    _NUMBERS: ClassVar[dict[str, str]] = {
        "i": ">b",
        "U": ">B",
        "I": ">h",
        "l": ">i",
        "L": ">q",
        "d": ">f",
        "D": ">d",
    }
    _MAX_DEPTH = 64

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def document(self) -> Any:
        value = self.value(self.marker(), 0)
        return value

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise ValueError("truncated UBJSON")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def marker(self) -> str:
        return self.take(1).decode("latin-1")

    def number(self, marker: str) -> Any:
        fmt = self._NUMBERS.get(marker)
        if fmt is None:
            raise ValueError(f"unexpected UBJSON marker {marker!r}")
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        marker = self.marker()
        if marker not in "iUIlL":
            raise ValueError("a UBJSON length is not an integer")
        n = int(self.number(marker))
        if n < 0 or n > len(self.data) - self.at:
            raise ValueError("a UBJSON length exceeds the data")
        return n

    def text(self) -> str:
        return self.take(self.length()).decode("utf-8")

    def value(self, marker: str, depth: int) -> Any:
        if depth > self._MAX_DEPTH:
            raise ValueError("UBJSON nested too deeply")
        if marker in self._NUMBERS:
            return self.number(marker)
        if marker == "S" or marker == "H":
            return self.text()
        if marker == "C":
            return self.take(1).decode("latin-1")
        if marker in "TFZ":
            return {"T": True, "F": False, "Z": None}[marker]
        if marker == "[":
            return self.array(depth)
        if marker == "{":
            return self.object(depth)
        raise ValueError(f"unexpected UBJSON marker {marker!r}")

    def array(self, depth: int) -> list[Any]:
        kind, count = self.container_header()
        if kind is not None and count is not None:
            fmt = self._NUMBERS.get(kind)
            if fmt is None:
                return [self.value(kind, depth + 1) for _ in range(count)]
            size = struct.calcsize(fmt)
            chunk = self.take(size * count)
            return list(struct.unpack(f">{count}{fmt[1]}", chunk))
        items: list[Any] = []
        while True:
            if count is not None and len(items) == count:
                return items
            marker = self.marker()
            if count is None and marker == "]":
                return items
            items.append(self.value(marker, depth + 1))

    def object(self, depth: int) -> dict[str, Any]:
        kind, count = self.container_header()
        found: dict[str, Any] = {}
        while True:
            if count is not None and len(found) == count:
                return found
            if count is None and self.data[self.at : self.at + 1] == b"}":
                self.at += 1
                return found
            key = self.text()
            found[key] = self.value(kind if kind is not None else self.marker(), depth + 1)

    def container_header(self) -> tuple[str | None, int | None]:
        kind: str | None = None
        count: int | None = None
        if self.data[self.at : self.at + 1] == b"$":
            self.at += 1
            kind = self.marker()
            if self.data[self.at : self.at + 1] != b"#":
                raise ValueError("a typed UBJSON container without a count")
        if self.data[self.at : self.at + 1] == b"#":
            self.at += 1
            count = self.length()
        return kind, count


# -- the checks ----------------------------------------------------------------------------------


def _check_links(left: Any, right: Any, count: int, leaves: int | None) -> None:
    """The children of the inner nodes of a tree of `count` nodes (`left`, `right`): in
    range, every node the child of at most one node and the root of none, so a walk from the
    root reaches each node once and ends. `leaves`: None when leaves are nodes (XGBoost),
    else the number of leaves a negative child `~i` designates (LightGBM)."""
    import numpy as np

    children = np.concatenate([left, right]).astype(np.int64)
    if leaves is None:
        nodes = children
    else:
        leaf = children < 0
        if np.any(~children[leaf] >= leaves):
            raise _bad("a leaf index is out of range")
        if np.any(np.bincount(~children[leaf], minlength=1) > 1):
            raise _bad("a leaf has two parents")
        nodes = children[~leaf]
    if np.any((nodes < 0) | (nodes >= count)):
        raise _bad("a child index is out of range")
    if np.any(nodes == 0) or np.any(np.bincount(nodes, minlength=1) > 1):
        raise _bad("a node has two parents")


def check_xgboost_model(model: dict[str, Any]) -> None:
    """XGBoost's trees, from its model document (`{"learner": ..., "version": ...}`)."""
    import numpy as np

    try:
        learner = model["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        part = learner["gradient_booster"]
        if part["name"] == "gblinear":
            return
        if part["name"] == "dart":
            part = part["gbtree"]
        trees = part["model"]["trees"]
        if not isinstance(trees, list):
            raise TypeError
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _bad("an XGBoost model lacks its trees") from None
    for tree in trees:
        try:
            count = int(tree["tree_param"]["num_nodes"])
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            parents = np.asarray(tree["parents"], dtype=np.int64)
            feature = np.asarray(tree["split_indices"], dtype=np.int64)
            cat_nodes = np.asarray(tree.get("categories_nodes", []), dtype=np.int64)
            segments = np.asarray(tree.get("categories_segments", []), dtype=np.int64)
            sizes = np.asarray(tree.get("categories_sizes", []), dtype=np.int64)
            categories = len(tree.get("categories", []))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            raise _bad("an XGBoost tree lacks node fields") from None
        if count < 1 or not (len(left) == len(right) == len(parents) == len(feature) == count):
            raise _bad("its node arrays disagree on the number of nodes")
        leaf = left == -1
        if np.any(leaf != (right == -1)):
            raise _bad("a node has one child")
        _check_links(left[~leaf], right[~leaf], count, None)
        if np.any((parents[1:] < 0) | (parents[1:] >= count)):
            raise _bad("a parent index is out of range")
        if np.any((feature[~leaf] < 0) | (feature[~leaf] >= n_features)):
            raise _bad("a feature index is out of range")
        if not (len(cat_nodes) == len(segments) == len(sizes)):
            raise _bad("its category arrays disagree")
        if np.any((cat_nodes < 0) | (cat_nodes >= count)) or np.any(
            (segments < 0) | (sizes < 0) | (segments + sizes > categories)
        ):
            raise _bad("a category index is out of range")


def check_lightgbm_text(text: str) -> None:
    """LightGBM's trees, from its text model."""
    import numpy as np

    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line == "end of trees":
            break
        else:
            key, sep, value = line.partition("=")
            if sep:
                current[key] = value

    def ints(tree: dict[str, str], key: str) -> Any:
        return np.asarray([int(v) for v in tree.get(key, "").split()], dtype=np.int64)

    try:
        n_features = int(header["max_feature_idx"]) + 1
        for tree in trees:
            leaves = int(tree["num_leaves"])
            if leaves < 1:
                raise _bad("a LightGBM tree has no leaf")
            features = ints(tree, "leaf_features")
            if np.any((features < 0) | (features >= n_features)):
                raise _bad("a feature index is out of range")
            if leaves == 1:
                continue
            count = leaves - 1
            left, right = ints(tree, "left_child"), ints(tree, "right_child")
            feature, decision = ints(tree, "split_feature"), ints(tree, "decision_type")
            threshold = np.asarray([float(v) for v in tree["threshold"].split()])
            sizes = {len(left), len(right), len(feature), len(decision), len(threshold)}
            if sizes != {count}:
                raise _bad("its node arrays disagree on the number of nodes")
            _check_links(left, right, count, leaves)
            if np.any((feature < 0) | (feature >= n_features)):
                raise _bad("a feature index is out of range")
            categorical = (decision & 1) == 1
            if np.any(categorical):
                n_cat = int(tree.get("num_cat", "0"))
                bounds = ints(tree, "cat_boundaries")
                cat_index = threshold[categorical]
                n_words = len(ints(tree, "cat_threshold"))
                if (
                    len(bounds) != n_cat + 1
                    or bounds[0] < 0
                    or np.any(np.diff(bounds) < 0)
                    or bounds[-1] > n_words
                    or not np.all((cat_index >= 0) & (cat_index < n_cat))
                ):
                    raise _bad("a category index is out of range")
    except (KeyError, ValueError, OverflowError):
        raise _bad("a LightGBM tree lacks node fields") from None
