"""Settings for every test process (the pytest process and each xdist worker).

jsonschema's optional `iri` format check imports rfc3987_syntax when it is installed, which
compiles some thirty Lark grammars at import (~3.4 s of CPU in each test process that imports
nbformat). No schema the tests validate has an `iri` format, so the test processes mark it
absent, as nbops's command line does for its own process (cli/common.py); processes the tests
start (CLI subprocesses, kernels, lab servers) are left as they are.

The files run heaviest first (pytest_collection_modifyitems, from tests/durations.json).
"""

import json
import signal
import sys
from pathlib import Path
from typing import Any

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

# A suite started in the background by a shell without job control (`bash scripts/test.sh &`
# in a script) inherits SIGINT ignored, and so would every command a test starts: the tests
# that press Ctrl-C on `nbops run` or `nbops sweep` would wait on a process that cannot hear
# it. The test processes take Python's own handler back, as a terminal's foreground has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# -- the order of files: heaviest first --------------------------------------------------------

# Each test file's measured time (setup + call + teardown of its tests, seconds), written by
# scripts/test_durations.py from a whole-suite run with --durations=0.
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    """Run the files with the longest measured times first, each file's tests in their order.

    With `-n 4 --dist loadfile --no-loadscope-reorder` (scripts/test.sh) xdist hands out files
    in this order, two at a time per worker: the long ones (an Airflow loop, a browser file)
    start at once instead of running alone at the end. A file not measured yet counts as the
    median. Without the file (or an unreadable one) the order is pytest's.
    """
    try:
        weights = {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return
    if not weights:
        return
    median = sorted(weights.values())[len(weights) // 2]
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(item.nodeid.split("::", 1)[0], len(first_seen))

    def key(item: Any) -> tuple[float, int]:
        path = item.nodeid.split("::", 1)[0]
        return (-weights.get(path, median), first_seen[path])

    items.sort(key=key)
