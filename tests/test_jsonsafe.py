"""The JSON-safe conversion of each caller, pinned: the bundle build (manifest, model card),
the server's answers and the lab server's API, one converter (`nbops._jsonsafe`) with the
callers' real differences as options. Each table is what that caller gives."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbops.bundle.serve.frame import _json_safe as serve_json_safe
from nbops.bundle.write import json_safe as build_json_safe


class Thing:
    """An object JSON does not know, with a text and a repr that differ."""

    def __str__(self) -> str:
        return "a thing"

    def __repr__(self) -> str:
        return "Thing()"


def lab_json_safe(value: Any) -> Any:
    handlers = pytest.importorskip("nbops.labserver.handlers")
    return handlers.json_safe(value)


# What every caller does alike.
COMMON: list[tuple[str, Any, Any]] = [
    ("none", None, None),
    ("text", "s", "s"),
    ("bool", True, True),
    ("int", 3, 3),
    ("float", 1.5, 1.5),
    ("nan", math.nan, None),
    ("infinity", math.inf, None),
    ("minus infinity", -math.inf, None),
    ("tuple", (1, "a"), [1, "a"]),
    ("keys become text", {1: {"a": [1, math.inf]}}, {"1": {"a": [1, None]}}),
    ("path", Path("a/b"), "a/b"),
    # Sets sorted by repr, so a manifest is the same from run to run (the build listed a set
    # in its iteration order, the server wrote its text "{2, 10}"; both changed).
    ("set, sorted by repr", {2, 10}, [10, 2]),
    ("frozenset", frozenset({"b", "a"}), ["a", "b"]),
    ("bytes", b"x", "b'x'"),
]

# The bundle build: numpy as Python values, anything else as its text.
BUILD: list[tuple[str, Any, Any]] = [
    ("numpy integer", np.int64(3), 3),
    ("numpy float", np.float32(1.5), 1.5),
    ("numpy bool", np.bool_(True), True),
    ("numpy nan", np.float64("nan"), None),
    ("array", np.array([1.0, np.nan]), [1.0, None]),
    ("2-d array", np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    ("numpy in nested", {"a": (1, np.int64(2))}, {"a": [1, 2]}),
    ("datetime", datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
    ("date", date(2024, 1, 2), "2024-01-02"),
    ("timestamp", pd.Timestamp("2024-01-02 03:04:05"), "2024-01-02 03:04:05"),
    ("NaT", pd.NaT, "NaT"),
    ("NA", pd.NA, "<NA>"),
    ("datetime64 day", np.datetime64("2024-01-02"), "2024-01-02"),
    ("datetime64 ns", np.datetime64("2024-01-02T03:04:05", "ns"), 1704164645000000000),
    ("decimal", Decimal("1.5"), "1.5"),
    ("unknown object", Thing(), "a thing"),
]

# The server's answers: numpy as Python values, dates as ISO 8601, pandas' missing as null.
SERVE: list[tuple[str, Any, Any]] = [
    ("numpy integer", np.int64(3), 3),
    ("numpy float", np.float32(1.5), 1.5),
    ("numpy bool", np.bool_(True), True),
    ("numpy nan", np.float64("nan"), None),
    ("array", np.array([1.0, np.nan]), [1.0, None]),
    ("2-d array", np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    ("numpy in nested", {"a": (1, np.int64(2))}, {"a": [1, 2]}),
    ("datetime", datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
    ("date", date(2024, 1, 2), "2024-01-02"),
    ("timestamp", pd.Timestamp("2024-01-02 03:04:05"), "2024-01-02T03:04:05"),
    ("NaT", pd.NaT, None),
    ("NA", pd.NA, None),
    ("datetime64 day", np.datetime64("2024-01-02"), "2024-01-02"),
    ("datetime64 ns", np.datetime64("2024-01-02T03:04:05", "ns"), 1704164645000000000),
    ("decimal", Decimal("1.5"), "1.5"),
    ("unknown object", Thing(), "a thing"),
]

# The lab server's API: values shown as the Python literals they are (a parameter default).
LAB: list[tuple[str, Any, Any]] = [
    ("datetime", datetime(2024, 1, 2, 3, 4, 5), "datetime.datetime(2024, 1, 2, 3, 4, 5)"),
    ("date", date(2024, 1, 2), "datetime.date(2024, 1, 2)"),
    ("NA", pd.NA, "<NA>"),
    ("decimal", Decimal("1.5"), "Decimal('1.5')"),
    ("unknown object", Thing(), "Thing()"),
    ("set, sorted by repr", {2, 10}, [10, 2]),
    ("frozenset", frozenset({"b", "a"}), ["a", "b"]),
    # The one change the shared converter made: NumPy values are numbers here too (they were
    # their repr, "np.int64(3)"; the lab API's values are Python literals and run records).
    ("numpy integer", np.int64(3), 3),
    ("numpy array", np.array([1.5, np.inf]), [1.5, None]),
]


def _check(convert: Callable[[Any], Any], value: Any, expected: Any) -> None:
    result = convert(value)
    assert result == expected
    assert json.loads(json.dumps(result, allow_nan=False)) == expected


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in COMMON + BUILD],
                         ids=[c[0] for c in COMMON + BUILD])  # fmt: skip
def test_the_bundle_build_makes_plain_json_of(value: Any, expected: Any) -> None:
    _check(build_json_safe, value, expected)


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in COMMON + SERVE],
                         ids=[c[0] for c in COMMON + SERVE])  # fmt: skip
def test_the_server_answers_plain_json_of(value: Any, expected: Any) -> None:
    _check(serve_json_safe, value, expected)


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in COMMON + LAB],
                         ids=[c[0] for c in COMMON + LAB])  # fmt: skip
def test_the_lab_server_answers_plain_json_of(value: Any, expected: Any) -> None:
    _check(lab_json_safe, value, expected)


def test_the_shared_converter_imports_neither_numpy_nor_pandas() -> None:
    import subprocess
    import sys

    code = "import sys, nbops._jsonsafe; print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_shared_converter_keeps_nat_null_when_dates_are_iso() -> None:
    from nbops._jsonsafe import json_safe

    assert json_safe(
        [pd.NaT, pd.Timestamp("2024-01-02")], iso_dates=True, missing_as_null=True
    ) == [
        None,
        "2024-01-02T00:00:00",
    ]
    assert json_safe(pd.NaT, iso_dates=True) == "NaT"


# A stand-in "numpy" whose import is caught half-way by another thread: the lab server's job
# threads import numpy while a request is being answered.
_RACE = """
import importlib.abc, importlib.util, sys, threading
started, release = threading.Event(), threading.Event()

class SlowNumpy(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "numpy" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        started.set()
        release.wait(30)
        module.ndarray = type("ndarray", (), {})
        module.generic = type("generic", (), {})

sys.meta_path.insert(0, SlowNumpy())
from nbops._jsonsafe import json_safe
importer = threading.Thread(target=lambda: __import__("numpy"))
importer.start()
started.wait(30)
threading.Timer(0.2, release.set).start()
print(json_safe({"a": [1, 2.5]}))
importer.join()
"""


def test_a_numpy_import_under_way_in_another_thread_is_waited_for() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'a': [1, 2.5]}"
