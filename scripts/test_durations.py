"""Write tests/durations.json (each test file's time) from a pytest log with --durations=0.

    .venv/bin/python scripts/test_durations.py LOG

The log's "slowest durations" lines (`12.34s call     tests/e2e/test_x.py::test_y`) are summed
per file, setup, call and teardown alike. tests/conftest.py orders the files by these times,
heaviest first, so that a four-worker run does not end with one long file running alone.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s+(setup|call|teardown)\s+(\S+?\.py)(?:::\S.*)?$")
OUT = Path(__file__).resolve().parents[1] / "tests" / "durations.json"


def per_file(lines: list[str]) -> dict[str, float]:
    times: dict[str, float] = defaultdict(float)
    for line in lines:
        match = LINE.match(line)
        if match:
            times[match.group(3)] += float(match.group(1))
    return {path: round(seconds, 1) for path, seconds in sorted(times.items())}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: test_durations.py LOG (a pytest log run with --durations=0)")
        return 2
    times = per_file(Path(argv[0]).read_text(encoding="utf-8", errors="replace").splitlines())
    if not times:
        print(f"{argv[0]}: no durations found (run pytest with --durations=0)")
        return 1
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print(f"{OUT}: {len(times)} files, {sum(times.values()) / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
