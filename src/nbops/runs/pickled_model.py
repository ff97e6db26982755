"""The captured model's fast save: a pickle whose every global nbops trusts, or nothing.

Saving a model with skops inside the kernel costs `import skops.io` (~1.7 s: it walks all of
scikit-learn to list the types it trusts), most of an `nbops run`'s overhead. So the model
nbops captures itself (autocapture.py; never a `nbops.log_model` call, which stays skops) is
written in the kernel as a pickle (protocol 5) when, and only when, every global the pickle
references is one of `trusted_globals()`:

- the names skops trusts by default, as pickle spells them (scikit-learn's estimators and
  its internal losses, links and binning, numpy's scalar types, ufuncs and bit generators,
  scipy.special's ufuncs), with nbops's own vetted names (nbops.bundle.allowlist: trees,
  scipy's sparse matrices, a few pure numpy functions) and scikit-learn's Cython loss
  classes. Not the boosting libraries: XGBoost's and LightGBM's boosters parse their model
  bytes as they unpickle, before nbops.bundle.boosters could check them, so a boosted model
  is saved with skops in the kernel, as before. They are computed offline from the installed skops
  and nbops's allow-list (scripts/pickle_globals.py) into `pickle_globals.json`, so the
  kernel imports nothing to decide; a test checks the file trusts nothing they do not;
- `RECONSTRUCTORS`: the functions pickle itself needs for numpy arrays, scalars and random
  generators, and plain containers. None reads a file, imports, or calls an object it is
  not given; every one is reviewed by hand.

A name outside that list (a class defined in the notebook's `__main__` or a helper module
beside it, `builtins.getattr`, pandas, anything unknown), a nested name (`A.B`), or a pickle
nbops cannot read is not taken: the caller saves the model with skops as before.

The run records the file's sha256 and the list of its globals. Nothing reads the pickle with
`pickle.load`: `load_verified` checks the sha256 against the record, checks that every
global the file references is recorded and trusted (read from the opcodes, before anything
runs), then unpickles with an Unpickler whose `find_class` returns exactly those, and
refuses any other name (so a file altered on disk, or a record altered with it, can
construct nothing outside the list). Whoever needs the model in a secure format (a bundle,
the MLflow mirror) saves what it returns with skops and continues as with a skops file;
readers that need metadata only read the record.

Only the standard library: it runs inside the user's kernel.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import pickletools
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from nbops.runs.files import atomic_path

FORMAT = "pickle"
PROTOCOL = 5
TRUSTED_FILE = Path(__file__).with_name("pickle_globals.json")

# The reconstructors pickle writes for numpy arrays, scalars and random generators, and
# plain containers. Each is safe to call with any arguments: it builds a value of its own
# kind (or, for `scalar` of the object dtype, returns its argument), or calls a constructor
# it is handed (which find_class has vetted).
RECONSTRUCTORS: frozenset[str] = frozenset(
    {
        "numpy._core.numeric._frombuffer",
        "numpy.core.numeric._frombuffer",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray.scalar",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "builtins.slice",
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        "collections.OrderedDict",
    }
)

_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_GETS = frozenset({"BINGET", "LONG_BINGET", "GET"})
_NO_PUSH = frozenset({"PROTO", "FRAME", "STOP"})  # may fall between a global's two strings


class RefusedPickle(Exception):
    """The pickle is not the one the run recorded, or references a global nbops does not
    load; the message says which (one line)."""


@functools.cache
def trusted_globals() -> frozenset[str]:
    """Every global a fast-path pickle may reference: `RECONSTRUCTORS` and the names in
    `pickle_globals.json` (see the module docstring)."""
    names = json.loads(TRUSTED_FILE.read_text(encoding="utf-8"))["globals"]
    return RECONSTRUCTORS | frozenset(str(n) for n in names)


def referenced_globals(stream: IO[bytes]) -> list[str] | None:
    """The globals a pickle references, `module.name`, sorted; None when a reference cannot
    be read from the opcodes alone (a name built at load time, a nested `A.B`): such a pickle
    is never trusted. Nothing is unpickled."""
    found: set[str] = set()
    pushed: list[Any] = []  # what each opcode pushed, strings only (else None)
    memo: dict[Any, Any] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in _STRINGS:
                pushed.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = pushed[-1] if pushed else None
            elif name in _GETS:
                pushed.append(memo.get(arg))
            elif name == "GLOBAL":
                module, _, qualname = str(arg).partition(" ")
                found.add(_joined(module, qualname))
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                if len(pushed) < 2:
                    return None
                found.add(_joined(pushed[-2], pushed[-1]))
                pushed.append(None)
            elif name in _NO_PUSH:
                continue
            elif name in ("INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"):
                return None  # old-style or registry references: not written by protocol 5
            else:
                pushed.append(None)
    except (ValueError, TypeError):  # not a pickle, or one cut short
        return None
    except _Unreadable:
        return None
    return sorted(found)


class _Unreadable(Exception):
    pass


def _joined(module: Any, qualname: Any) -> str:
    if (
        not isinstance(module, str)
        or not isinstance(qualname, str)
        or not module
        or not qualname.isidentifier()
    ):
        raise _Unreadable
    return f"{module}.{qualname}"


def untrusted(names: Iterable[str]) -> list[str]:
    """The names among `names` a fast-path pickle may not reference, in order."""
    trusted = trusted_globals()
    return [n for n in names if n not in trusted]


def save(model: Any, target: Path) -> dict[str, Any] | None:
    """Pickle `model` to `target` (atomically) when every global the pickle references is
    trusted; returns what the run records of it (`format`, `sha256`, `globals`), or None,
    writing nothing, when it cannot be pickled or references anything else."""
    try:
        data = pickle.dumps(model, protocol=PROTOCOL)
    except Exception:  # a lambda, a generator, a lock...: skops decides what to do
        return None
    names = referenced_globals(io.BytesIO(data))
    if names is None or untrusted(names):
        return None
    with atomic_path(target) as temp:
        temp.write_bytes(data)
    return {"format": FORMAT, "sha256": hashlib.sha256(data).hexdigest(), "globals": names}


class _Restricted(pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: frozenset[str]) -> None:
        super().__init__(file, fix_imports=False)  # names as written: no Python 2 mapping
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if not name.isidentifier() or full not in self._allowed:
            raise RefusedPickle(f"it references {full!r}, which the run did not record")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("it holds a persistent reference")


def load_verified(path: Path, sha256: str, recorded: Iterable[str]) -> Any:
    """The model of a fast-path pickle, after checking it (see the module docstring).

    Raises RefusedPickle when the file is missing, its sha256 is not `sha256`, a recorded
    global is not trusted, or the file references a global outside `recorded` (found in
    the opcodes before anything is built, and refused again by `find_class`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RefusedPickle(f"the model file cannot be read ({exc.strerror or exc})") from None
    if not isinstance(sha256, str) or hashlib.sha256(data).hexdigest() != sha256:
        raise RefusedPickle("its sha256 differs from the one the run recorded")
    allowed = frozenset(str(n) for n in recorded)
    refused = untrusted(sorted(allowed))
    if refused:
        raise RefusedPickle(f"the run recorded the global {refused[0]!r}, which nbops never loads")
    names = referenced_globals(io.BytesIO(data))
    if names is None:
        raise RefusedPickle("its globals cannot be read from its opcodes")
    outside = [n for n in names if n not in allowed]
    if outside:
        raise RefusedPickle(f"it references {outside[0]!r}, which the run did not record")
    try:
        return _Restricted(io.BytesIO(data), allowed).load()
    except RefusedPickle:
        raise
    except Exception as exc:
        raise RefusedPickle(f"it does not unpickle ({type(exc).__name__}: {exc})") from None
