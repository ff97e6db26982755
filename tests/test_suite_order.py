"""The test suite's own plumbing: files run heaviest first, from measured durations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.conftest as suite
from scripts.test_durations import per_file


@dataclass
class Item:
    nodeid: str


def order(items: list[Item]) -> list[str]:
    suite.pytest_collection_modifyitems(None, None, items)
    return [item.nodeid for item in items]


def test_files_run_heaviest_first_and_each_file_keeps_its_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    durations = tmp_path / "durations.json"
    durations.write_text(
        json.dumps({"tests/a.py": 1, "tests/b.py": 90, "tests/c.py": 5, "tests/d.py": 7})
    )
    monkeypatch.setattr(suite, "DURATIONS", durations)
    items = [
        Item("tests/a.py::test_1"),
        Item("tests/a.py::test_2"),
        Item("tests/b.py::test_2"),
        Item("tests/b.py::test_1"),
        Item("tests/c.py::test_1[x]"),
        Item("tests/new.py::test_x"),  # not measured: the median (7), before c.py
    ]
    assert order(items) == [
        "tests/b.py::test_2",
        "tests/b.py::test_1",
        "tests/new.py::test_x",
        "tests/c.py::test_1[x]",
        "tests/a.py::test_1",
        "tests/a.py::test_2",
    ]


@pytest.mark.parametrize("content", [None, "not json", "[1, 2]", "{}"])
def test_without_usable_durations_the_order_is_pytests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None
) -> None:
    durations = tmp_path / "durations.json"
    if content is not None:
        durations.write_text(content)
    monkeypatch.setattr(suite, "DURATIONS", durations)
    names = ["tests/a.py::t", "tests/b.py::t", "tests/a.py::u"]
    assert order([Item(n) for n in names]) == names


def test_durations_are_summed_per_file_from_a_pytest_log() -> None:
    log = [
        "============================= slowest durations ==============================",
        "61.20s call     tests/e2e/test_airflow_loop_e2e.py::test_q2_retrains[x-1]",
        "3.05s setup    tests/e2e/test_airflow_loop_e2e.py::test_recent_stops",
        "0.50s teardown tests/e2e/test_airflow_loop_e2e.py::test_recent_stops",
        "2.00s call     tests/quality/test_drift.py::test_a",
        "(12 durations < 0.005s hidden.  Use -vv to show these durations.)",
        "FAILED tests/quality/test_drift.py::test_a - 1.00s call",
    ]
    assert per_file(log) == {
        "tests/e2e/test_airflow_loop_e2e.py": 64.8,
        "tests/quality/test_drift.py": 2.0,
    }


def test_the_suite_has_measured_durations_for_its_files() -> None:
    weights = json.loads(suite.DURATIONS.read_text())
    assert weights and all(isinstance(v, (int, float)) and v >= 0 for v in weights.values())
    measured = [path for path in weights if Path(path).exists()]
    assert len(measured) >= len(weights) * 0.8, "durations.json is stale: regenerate it"
