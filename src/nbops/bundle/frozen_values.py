"""The values a derived serving path freezes from the training side, stored in a bundle and
read back (nbops.bundle.serving_path writes and checks the code that reads them).

`serving/values.json` holds numbers, strings, None, lists, tuples, dicts, sets, numpy
arrays and scalars, pandas Index/Series/DataFrame and timestamps, as tagged JSON;
`serving/vN.skops` holds fitted scikit-learn objects such as encoders and scalers, written
with skops, their types checked against nbops's allow-list and loaded trusting only those:
never pickle. Any other value is a BundleError naming the expression and its cell. A value
computed inside a loop is stored per loop value (`keyed`). The generated code calls the
decoded `FrozenValues` as `_nbops_frozen("vN")`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbops.bundle.allowlist import check_tree_bounds, disallowed, trusted_types
from nbops.errors import BundleError

if TYPE_CHECKING:
    from nbops.bundle.serving_path import Captured
    from nbops.notebook.slicing import FrozenExpression, ServingPath

__all__ = ["VALUES_DIR", "VALUES_FILE", "FrozenValues", "decode_values", "encode_values"]

# Deferred import: nbops.bundle.skops_import (skops.io, scikit-learn) when a value is read
# from its skops file, so reading frozen values of plain JSON imports neither.

VALUES_DIR = "serving"
VALUES_FILE = f"{VALUES_DIR}/values.json"
_MAX_VALUES_BYTES = 50_000_000


# -- encoding ----------------------------------------------------------------------------------------


class FrozenValues:
    """The values frozen from the training side, called by the generated code:
    `values("v1")`, or `values("v3", (col,))` for one computed per loop value."""

    def __init__(self, values: dict[str, Any], keyed: dict[str, dict[tuple[Any, ...], Any]]):
        self._values = values
        self._keyed = keyed

    def __call__(self, key: str, keys: tuple[Any, ...] = ()) -> Any:
        if key in self._keyed:
            table = self._keyed[key]
            try:
                return table[tuple(keys)]
            except (KeyError, TypeError):
                known = ", ".join(repr(k[0] if len(k) == 1 else k) for k in list(table)[:5])
                raise BundleError(
                    f"the serving path has no value {key} for {keys!r} (the notebook computed "
                    f"it for {known})",
                    fix="serve requests the notebook's loop covered",
                ) from None
        try:
            return self._values[key]
        except KeyError:
            raise BundleError(
                f"the bundle holds no serving value {key!r}", fix="rebuild the bundle"
            ) from None


def encode_values(
    captured: Captured, path: ServingPath
) -> tuple[bytes, dict[str, bytes], list[str]]:
    """The values file, the skops files beside it, and the types those hold beyond skops's
    defaults. BundleError for a value of a type nbops does not store."""
    files: dict[str, bytes] = {}
    types: set[str] = set()
    by_key = {f.key: f for f in path.frozen.values()}

    def encode(value: Any, key: str) -> Any:
        return _encode(value, key, files, types, by_key[key])

    missing = [
        f
        for f in path.frozen.values()
        if f.key not in captured.values and f.key not in captured.keyed
    ]
    if missing:
        first = missing[0]
        raise BundleError(
            f"the value of {first.text!r} was never computed when the notebook's code ran",
            location=first.statement.location,
            fix="make sure the cell runs that expression on the test frame",
        )
    document: dict[str, Any] = {"schema_version": 1, "kind": "nbops.serving_values"}
    document["values"] = {k: encode(v, k) for k, v in captured.values.items()}
    document["keyed"] = {
        k: [[_encode_key(key, k, by_key[k]), encode(v, k)] for key, v in table.items()]
        for k, table in captured.keyed.items()
    }
    document["expressions"] = {
        f.key: {"code": f.text, "cell": f.statement.cell.number, "keys": list(f.keys)}
        for f in path.frozen.values()
    }
    data = json.dumps(document, indent=1, allow_nan=False).encode("utf-8")
    if len(data) > _MAX_VALUES_BYTES:
        raise BundleError(
            f"the frozen serving values take {len(data) // 1_000_000} MB",
            fix="freeze summaries (column lists, medians, fitted encoders), not whole frames",
        )
    return data, files, sorted(types)


def _encode_key(key: tuple[Any, ...], name: str, frozen: FrozenExpression) -> list[Any]:
    out = []
    for part in key:
        if hasattr(part, "item") and not isinstance(part, str | bytes):
            part = part.item()
        if not (part is None or isinstance(part, bool | int | str)):
            raise BundleError(
                f"{frozen.text!r} depends on {', '.join(frozen.keys)}, whose value "
                f"{part!r} is not a string or a number",
                location=frozen.statement.location,
                fix="loop over column names or numbers in the code the test frame goes through",
            )
        out.append(part)
    return out


def _encode(
    value: Any, key: str, files: dict[str, bytes], types: set[str], frozen: FrozenExpression
) -> Any:
    import numpy as np
    import pandas as pd

    def again(v: Any) -> Any:
        return _encode(v, key, files, types, frozen)

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    # exact types only: a subclass (defaultdict, namedtuple) would lose its behaviour
    if type(value) is list:
        return [again(v) for v in value]
    if type(value) is tuple:
        return {"$tuple": [again(v) for v in value]}
    if type(value) in (set, frozenset):
        return {"$set": [again(v) for v in value]}
    if type(value) is dict:
        return {"$dict": [[again(k), again(v)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return {"$scalar": str(value.dtype), "value": again(value.item())}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufcUSO?M":
            raise _unstorable(value, frozen)
        return {
            "$array": str(value.dtype),
            "shape": list(value.shape),
            "data": [again(v) for v in value.ravel().tolist()],
        }
    if isinstance(value, pd.Timestamp):
        return {"$timestamp": value.isoformat()}
    if value is pd.NaT:
        return {"$nat": True}
    if isinstance(value, pd.Index) and not isinstance(value, pd.MultiIndex):
        return {"$index": _series_values(value, again), "name": again(value.name)}
    if isinstance(value, pd.Series):
        return {
            "$series": _series_values(value, again),
            "index": again(value.index),
            "name": again(value.name),
        }
    if isinstance(value, pd.DataFrame):
        return {
            "$frame": [[again(c), _series_values(value[c], again)] for c in value.columns],
            "index": again(value.index),
        }
    if type(value).__module__.split(".")[0] == "sklearn":
        return {"$skops": _skops_file(value, key, files, types, frozen)}
    raise _unstorable(value, frozen)


def _series_values(values: Any, again: Callable[[Any], Any]) -> dict[str, Any]:
    import pandas as pd

    dtype = values.dtype
    out: dict[str, Any] = {"dtype": str(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        out["categories"] = again(list(dtype.categories))
        out["ordered"] = bool(dtype.ordered)
        out["data"] = [again(v) for v in values.astype(object).tolist()]
        return out
    out["data"] = [again(v) for v in values.tolist()]
    return out


def _skops_file(
    value: Any, key: str, files: dict[str, bytes], types: set[str], frozen: FrozenExpression
) -> str:
    import skops.io as sio

    try:
        data = sio.dumps(value)
        held = sorted(sio.get_untrusted_types(data=data))
    except Exception as e:
        raise BundleError(
            f"skops cannot save the value of {frozen.text!r} ({type(e).__name__}: {e})",
            location=frozen.statement.location,
        ) from None
    refused = disallowed(held)
    if refused:
        raise BundleError(
            f"the value of {frozen.text!r} holds the type {refused[0]!r}, which nbops does not "
            "load from bundles",
            location=frozen.statement.location,
            fix="fit scikit-learn transformers on the training frame",
        )
    name = f"{VALUES_DIR}/{key}-{len(files) + 1}.skops"
    files[name] = data
    types.update(held)
    return name


def _unstorable(value: Any, frozen: FrozenExpression) -> BundleError:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    return BundleError(
        f"the serving path reads {frozen.text!r}, computed on the training side, and its value "
        f"(a {kind}) cannot be stored safely in a bundle",
        location=frozen.statement.location,
        fix="nbops stores numbers, strings, lists, dicts, numpy arrays, pandas objects and "
        "fitted scikit-learn objects; compute one of those in the notebook",
    )


# -- decoding ----------------------------------------------------------------------------------------


def decode_values(data: bytes, files: dict[str, bytes], trusted: list[str]) -> FrozenValues:
    """The FrozenValues of a values file; skops files loaded trusting only `trusted`."""
    try:
        document = json.loads(data)
        values = {k: _decode(v, files, trusted) for k, v in document["values"].items()}
        keyed = {
            k: {tuple(key): _decode(v, files, trusted) for key, v in rows}
            for k, rows in document["keyed"].items()
        }
    except BundleError:
        raise
    except Exception as e:
        raise BundleError(
            f"the bundle's serving values cannot be read ({type(e).__name__}: {e})",
            location=VALUES_FILE,
            fix="rebuild the bundle",
        ) from None
    return FrozenValues(values, keyed)


def _decode(value: Any, files: dict[str, bytes], trusted: list[str]) -> Any:
    import numpy as np
    import pandas as pd

    def again(v: Any) -> Any:
        return _decode(v, files, trusted)

    if isinstance(value, list):
        return [again(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$float" in value:
        return float(value["$float"])
    if "$tuple" in value:
        return tuple(again(v) for v in value["$tuple"])
    if "$set" in value:
        return {again(v) for v in value["$set"]}
    if "$dict" in value:
        return {_hashable(again(k)): again(v) for k, v in value["$dict"]}
    if "$scalar" in value:
        return np.dtype(value["$scalar"]).type(again(value["value"]))
    if "$array" in value:
        dtype = np.dtype(value["$array"])
        items = [again(v) for v in value["data"]]
        if dtype.kind == "O":
            array = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                array[i] = item
        else:
            array = np.array(items, dtype=dtype)
        return array.reshape(value["shape"])
    if "$timestamp" in value:
        return pd.Timestamp(value["$timestamp"])
    if "$nat" in value:
        return pd.NaT
    if "$index" in value:
        return pd.Index(_array(value["$index"], again), name=again(value["name"]))
    if "$series" in value:
        return pd.Series(
            _array(value["$series"], again), index=again(value["index"]), name=again(value["name"])
        )
    if "$frame" in value:
        columns = [(_hashable(again(c)), _array(v, again)) for c, v in value["$frame"]]
        frame = pd.DataFrame(
            {i: array for i, (_, array) in enumerate(columns)}, index=again(value["index"])
        )
        frame.columns = pd.Index([c for c, _ in columns])
        return frame
    if "$skops" in value:
        return _load_skops(str(value["$skops"]), files, trusted)
    raise ValueError(f"unknown value tag {sorted(value)}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _array(spec: dict[str, Any], again: Callable[[Any], Any]) -> Any:
    import numpy as np
    import pandas as pd

    data = [again(v) for v in spec["data"]]
    dtype = spec["dtype"]
    if "categories" in spec:
        return pd.Categorical(data, categories=again(spec["categories"]), ordered=spec["ordered"])
    if dtype == "object":
        array = np.empty(len(data), dtype=object)
        array[:] = data
        return array
    return pd.array(data, dtype=dtype)


def _load_skops(name: str, files: dict[str, bytes], trusted: list[str]) -> Any:
    from nbops.bundle.skops_import import skops_io

    sio = skops_io()

    if name not in files:
        raise BundleError(f"{name} is missing from the bundle", fix="rebuild the bundle")
    data = files[name]
    untrusted = sio.get_untrusted_types(data=data)
    value = sio.loads(data, trusted=trusted_types(untrusted, trusted))
    check_tree_bounds(value)
    return value
