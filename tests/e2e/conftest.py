"""Fixtures for end-to-end tests (the helpers they use live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Cells, build_notebook


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    def make(cells: Cells, name: str = "analysis.ipynb") -> Path:
        return build_notebook(tmp_path / name, cells)

    return make
