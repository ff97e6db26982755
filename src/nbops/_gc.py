"""Loading what a process keeps for its whole life without the cyclic collector's passes.

CPython's cyclic garbage collector passes over young objects as they are made, and over every
object alive once enough have lived long. A server's start makes about a million objects
(scikit-learn, scipy, pandas, the web stack, the model) that all live as long as the process:
in `nbops serve`, the collector's passes over them took 0.21 s of a 1.4 s start (465 passes,
three of them over everything), and later passes while serving would walk them again.

`loaded_for_life()` turns the collector off while such objects are loaded and then freezes
everything alive (`gc.freeze()`): frozen objects are left out of every later pass, so the
passes while serving walk only what serving makes. Reference counting still frees what is
dropped; only reference cycles made during the load (little: imports and a model's load) are
kept with the rest. On an exception the collector is turned back on and nothing is frozen.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def loaded_for_life() -> Iterator[None]:
    """The collector off while the block loads; what is alive then frozen (see above)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except BaseException:
        if enabled:
            gc.enable()
        raise
    gc.freeze()
    if enabled:
        gc.enable()
