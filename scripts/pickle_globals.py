"""Write src/nbops/runs/pickle_globals.json: the globals a captured model's pickle may
reference beyond nbops.runs.pickled_model.RECONSTRUCTORS (see that module's docstring).

    .venv/bin/python scripts/pickle_globals.py

They are what skops trusts by default, spelled as pickle spells them (a class by its
`__module__.__qualname__`, a ufunc by the name pickle writes for it), and nbops's own vetted
names (nbops.bundle.allowlist, but not the boosting libraries) with scikit-learn's Cython loss
classes it allows. Run it after
upgrading skops, scikit-learn, numpy or scipy; tests/runs/test_pickled_model.py checks that
the file trusts nothing this would not.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "nbops" / "runs" / "pickle_globals.json"


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    while module:
        try:
            obj: Any = importlib.import_module(module)
        except ImportError:
            module, _, head = module.rpartition(".")
            attr = f"{head}.{attr}"
            continue
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    raise LookupError(name)


def _pickle_name(obj: Any) -> str | None:
    """The one global pickle writes for `obj` (a class, a ufunc), or None."""
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    from nbops.runs.pickled_model import referenced_globals

    try:
        names = referenced_globals(io.BytesIO(pickle.dumps(obj, protocol=5)))
    except Exception:
        return None
    return names[0] if names and len(names) == 1 else None


def skops_defaults() -> set[str]:
    """What skops trusts by default that a model's pickle can reference, as pickle names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skops.io import _trusted_types as t

        names = [
            *t.SKLEARN_ESTIMATOR_TYPE_NAMES,
            *t.SKLEARN_INTERNAL_TYPE_NAMES,
            *t.NUMPY_DTYPE_TYPE_NAMES,
            *t.NUMPY_UFUNC_TYPE_NAMES,
            *t.SCIPY_UFUNC_TYPE_NAMES,
            *t.NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES,
        ]
        found = set()
        for name in names:
            try:
                spelled = _pickle_name(_resolve(name))
            except (LookupError, AttributeError):
                continue
            if spelled is not None:
                found.add(spelled)
    return found


def nbops_vetted() -> set[str]:
    """nbops's own vetted names, and the Cython loss classes of scikit-learn its allow-list
    admits. Not functools.partial (pickle needs none), and not the boosting libraries: their
    boosters parse their model bytes as they unpickle, before nbops.bundle.boosters could
    check them, so a boosted model is saved with skops in the kernel, as before."""
    from nbops.bundle import allowlist

    names = (allowlist.VETTED_TYPES | allowlist.VETTED_FUNCTIONS) - {"functools.partial"}
    import sklearn._loss._loss as losses

    cython = {f"sklearn._loss._loss.{n}" for n in dir(losses) if n.startswith("Cy")}
    return set(names) | {n for n in cython if allowlist.is_allowed(n)}


def derived_globals() -> list[str]:
    return sorted(skops_defaults() | nbops_vetted())


def main() -> int:
    names = derived_globals()
    TARGET.write_text(json.dumps({"globals": names}, indent=0) + "\n", encoding="utf-8")
    print(f"{TARGET.relative_to(ROOT)}: {len(names)} globals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
