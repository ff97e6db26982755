"""How values travel between the steps of an exported pipeline on an orchestrator.

Each value a step hands to another is written with one declared serialisation, chosen when
the pipeline is exported and recorded in its manifest:

- ``parquet``: a pandas DataFrame (its index kept);
- ``parquet-series``: a pandas Series, as a one-column parquet file;
- ``npy``: a numpy array of numbers, booleans, dates or text (``allow_pickle=False``; an
  array of Python strings comes back as a numpy text array);
- ``json``: None, booleans, numbers, text, and lists and dicts of them (numpy scalars become
  Python numbers, tuples become lists);
- ``skops``: a model (an object with ``fit``, or anything from scikit-learn), loaded with
  exactly the types recorded at export trusted, and refused if it holds any other. The
  scikit-learn estimators of XGBoost, LightGBM and CatBoost travel this way too: skops keeps
  their boosters in the libraries' own formats (XGBoost's UBJSON model, LightGBM's text
  model, CatBoost's CBM bytes), never pickle.

Anything else is an export error, never a pickle. This file is standalone (standard library,
and pandas, numpy or skops imported when a value needs them): nbops copies it into packages
exported with ``--target`` as ``_nbops_io.py``, so orchestrator workers need no nbops.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["CODECS", "EXTENSIONS", "choose", "describe", "load", "metric_values", "save"]

CODECS = ("parquet", "parquet-series", "npy", "json", "skops")
EXTENSIONS = {
    "parquet": ".parquet",
    "parquet-series": ".parquet",
    "npy": ".npy",
    "json": ".json",
    "skops": ".skops",
}
_SERIES_COLUMN = "__nbops_series__"


class UnsupportedValue(TypeError):
    """The value has no declared serialisation."""


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, numbers.Real) and type(value).__module__ in ("builtins", "numpy"):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _to_json(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return {k: _to_json(v) for k, v in value.items()}


def choose(value: Any) -> str:
    """The serialisation for `value`; UnsupportedValue when there is none."""
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return "parquet"
        if isinstance(value, pd.Series):
            return "parquet-series"
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biufcmMUS":
                return "npy"
            if value.dtype.kind == "O" and all(isinstance(v, str) for v in value.ravel()):
                return "npy"
            raise UnsupportedValue(
                f"a numpy array of {value.dtype} values (only arrays of numbers, booleans, "
                "dates or text have a safe file format)"
            )
    if _is_json(value):
        return "json"
    if module == "sklearn" or callable(getattr(value, "fit", None)):
        return "skops"
    raise UnsupportedValue(f"a {_type_name(value)}")


def describe(value: Any) -> dict[str, Any]:
    """What the manifest records for a value: its serialisation, its type and, for skops,
    the types its file holds beyond skops's defaults (those a loader will trust)."""
    codec = choose(value)
    found: dict[str, Any] = {"codec": codec, "type": _type_name(value), "trusted": []}
    if codec == "skops":
        import skops.io as sio

        found["trusted"] = sorted(sio.get_untrusted_types(data=sio.dumps(value)))
    return found


def save(value: Any, path: str, codec: str) -> None:
    """Write `value` to `path` (a file) with `codec`, through a temporary file renamed over
    it: a reader sees the old file or the whole new one, and a failed write leaves neither
    a truncated file nor the temporary one.

    Its own temp + rename, not nbops._atomic: this file is copied into exported packages,
    whose workers have no nbops to import (see the module docstring).
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        if codec == "parquet":
            value.to_parquet(tmp)
        elif codec == "parquet-series":
            column = value.name if isinstance(value.name, str) else _SERIES_COLUMN
            value.to_frame(name=column).to_parquet(tmp)
        elif codec == "npy":
            import numpy as np

            array = value.astype(str) if value.dtype.kind == "O" else value
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
        elif codec == "json":
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(_to_json(value), f)
        elif codec == "skops":
            import skops.io as sio

            sio.dump(value, tmp)
        else:
            raise ValueError(f"unknown serialisation {codec!r}; known: {', '.join(CODECS)}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: str, codec: str, trusted: list[str] | tuple[str, ...] = ()) -> Any:
    """Read a value `save` wrote. A skops file holding a type outside `trusted` is refused."""
    if codec == "parquet":
        import pandas as pd

        return pd.read_parquet(path)
    if codec == "parquet-series":
        import pandas as pd

        frame = pd.read_parquet(path)
        series = frame[frame.columns[0]]
        if series.name == _SERIES_COLUMN:
            series.name = None
        return series
    if codec == "npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if codec == "json":
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    if codec == "skops":
        import skops.io as sio

        found = sio.get_untrusted_types(file=path)
        unexpected = sorted(set(found) - set(trusted))
        if unexpected:
            raise TypeError(
                f"{path} holds types the export did not declare ({', '.join(unexpected)}); "
                "export the pipeline again"
            )
        return sio.load(path, trusted=list(found))
    raise ValueError(f"unknown serialisation {codec!r}; known: {', '.join(CODECS)}")


def metric_values(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers among `values` (dicts of numbers flattened as `name.key`), as metrics."""
    found: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            found[f"{prefix}{key}"] = float(value)
        elif isinstance(value, Mapping):
            found.update(metric_values(value, f"{prefix}{key}."))
    return found
