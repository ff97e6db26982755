"""nbops._gc: what a process loads for its whole life is loaded without the cyclic collector's
passes, then frozen out of every later pass; an exception freezes nothing."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from nbops._gc import loaded_for_life


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the objects frozen here go back to the oldest generation
    if enabled:
        gc.enable()
    else:
        gc.disable()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


def test_the_collector_is_off_while_loading_and_the_loaded_objects_are_frozen() -> None:
    gc.enable()
    gc.unfreeze()
    passes = sum(s["collections"] for s in gc.get_stats())
    with loaded_for_life():
        assert not gc.isenabled()
        kept = [_Node() for _ in range(50_000)]  # far past the threshold of a young pass
    assert gc.isenabled()
    assert sum(s["collections"] for s in gc.get_stats()) == passes  # no pass ran
    assert gc.get_freeze_count() >= len(kept)


def test_an_exception_while_loading_freezes_nothing_and_turns_the_collector_back_on() -> None:
    gc.enable()
    gc.unfreeze()
    with pytest.raises(RuntimeError), loaded_for_life():
        raise RuntimeError("the bundle could not be loaded")
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_turned_off_before_stays_off() -> None:
    gc.disable()
    with loaded_for_life():
        pass
    assert not gc.isenabled()
