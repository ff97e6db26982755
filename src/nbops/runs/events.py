"""A run's event sidecar, `events.jsonl`: its name, and reading it back.

The capture API (capture.py) appends one JSON object per line to it from inside the kernel;
the runner (execute.py) and the store (store.py) read it to fold the events into the run's
record. Reading lives here, apart from both writers and readers, so neither imports the other.

This module imports only the standard library: capture.py, which runs in every user's kernel,
imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The events a run's sidecar holds, in order; a torn last line is skipped."""
    path = directory / EVENTS_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text("utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves at most one partial line
    return events
