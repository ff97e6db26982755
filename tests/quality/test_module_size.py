"""The quality packages keep one job per module: no module grows past ~600 lines."""

from __future__ import annotations

from pathlib import Path

import nbops.quality

LIMIT = 600


def test_no_quality_module_is_over_600_lines() -> None:
    root = Path(nbops.quality.__file__).parent
    sizes = {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for path in root.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
