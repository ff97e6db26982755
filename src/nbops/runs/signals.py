"""How a run meets SIGINT and SIGTERM.

`terminate_on_sigterm`: while its block runs, SIGTERM stops the run in progress as Ctrl-C
does (it raises `Terminated`, a KeyboardInterrupt), so the run is recorded as `terminated`.
`signals_held`: SIGINT and SIGTERM wait until its block (saving a run's final record) ends.
Both act in the main thread only; elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from nbops.errors import Terminated


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises Terminated, a
    KeyboardInterrupt: the run in progress stops as on Ctrl-C (its kernel shut down, its
    partial output kept and redacted) and is recorded as `terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (main thread only), then are delivered
    to the handlers they would have met."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    # a handler installed outside Python (getsignal gives None) cannot be put back: left alone
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for signum in dict.fromkeys(pending):
        signal.raise_signal(signum)
