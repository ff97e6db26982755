"""Suite-wide pytest set-up: how the tests are shared out between pytest-xdist workers.

The suite runs in parallel (`-n` in pyproject's addopts, `--dist loadgroup`). Most tests are
handed out one by one; a test that uses a fixture shared by a module or a class (a notebook run
or bundle built once for the file), and every browser test (one lab per worker, tests of a file
that follow each other in one page's lab), is kept with the other tests of its file on one
worker, so the shared set-up runs once, as in a serial run."""

from __future__ import annotations

import pytest

_SHARED_SCOPES = {"module", "class", "package"}


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker itself; registered here too so a run without xdist
    # (`-p no:xdist`) still passes --strict-markers.
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        scopes = (
            {defs[-1].scope for defs in info.name2fixturedefs.values() if defs}
            if info is not None
            else set()
        )
        if "browser" in item.path.parts or scopes & _SHARED_SCOPES:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
