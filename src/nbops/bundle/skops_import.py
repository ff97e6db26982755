"""`import skops.io` without walking all of scikit-learn, with the same trusted types.

On import, skops.io lists scikit-learn's estimators among the types it trusts by default
(`skops.io._trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES`) with `sklearn.utils.all_estimators()`,
which imports every public module of scikit-learn and, walking its packages, also imports
the ones whose classes it then ignores: `sklearn.utils._testing` (which imports pytest) and
the vendored array-api-compat's dask namespace (dask.array, when dask is installed). That is
most of a server's start beyond `import sklearn` (~1 s on a quiet 2-core machine, ~2 s
loaded), for a list of names that only changes when scikit-learn or skops does.

`skops_io()` imports skops.io with `sklearn.utils.all_estimators` standing in, for that
import only, by `_estimator_names`, which gives skops the very names `all_estimators()` would:

- from the cache (`<user cache>/nbops/skops-estimators-<key>.json`) when its stamps match
  the installed scikit-learn (its version and its RECORD: every installed file with its size
  and modification time), skops (its version and the file that lists the trusted types)
  and the interpreter, so the list cannot outlive what it was computed from; the file is
  read only when it is the user's own and nobody else may write it, and every name must be a
  class of a module the installed scikit-learn lists (outside its tests and tooling), so
  even an altered file cannot make skops trust anything outside scikit-learn's own modules;
- otherwise computed as `all_estimators()` computes it (the same walk, the same filters:
  classes deriving from BaseEstimator, not abstract, in modules outside tests, externals,
  experimental and private modules), but without importing the packages whose modules it
  skips anyway nor pytest, then written to the cache for the next process.

Right after that list, skops lists the numpy and scipy ufuncs it trusts, looking for the
module of each in every loaded module (`skops.io._utils.whichmodule`); for that import only,
`fast_whichmodule` stands in for that search, with the same answers (~80 ms less).

What skops then checks is unchanged: the same default list, the same `trusted=` argument
(nbops.bundle.load), the same refusal of anything else. Any other use of `all_estimators`
(a type filter, another caller) gets scikit-learn's own, and a skops that no longer calls it
on import is imported as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# Deferred import: nbops.bundle.allowlist (its scikit-learn module listing), only to check a
# cached list, so a process that never reads the cache never reads scikit-learn's RECORD.

# The module parts all_estimators skips (sklearn.utils.discovery._MODULE_TO_IGNORE, read from
# there when it is).
_IGNORED_PARTS = frozenset(
    {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}
)
_CACHE_VERSION = 1
_LOCK = threading.Lock()


def skops_io() -> ModuleType:
    """The `skops.io` module, imported with the estimator list from the cache or the light walk."""
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    with _LOCK:  # one thread stands in for all_estimators, and puts it back, at a time
        return _import_skops_io()


def _import_skops_io() -> ModuleType:
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    import sklearn.utils

    real = getattr(sklearn.utils, "all_estimators", None)
    names: list[tuple[str, str]] | None = None

    patched: list[tuple[ModuleType, Any]] = []

    def standing_in(type_filter: Any = None) -> list[tuple[str, type]]:
        nonlocal names
        if type_filter is not None or real is None:
            return list(real(type_filter)) if real is not None else []
        if names is None:
            names = estimator_names()
        # skops lists its trusted ufuncs next, in the same module: look their modules up fast
        utils = sys.modules.get("skops.io._utils")
        search = getattr(utils, "whichmodule", None)
        if utils is not None and callable(search) and not patched:
            patched.append((utils, search))
            utils.whichmodule = fast_whichmodule(search)  # type: ignore[attr-defined]
        return [(name, _named(module, name)) for module, name in names]

    sklearn.utils.all_estimators = standing_in
    try:
        return importlib.import_module("skops.io")
    finally:
        if real is not None:
            sklearn.utils.all_estimators = real
        for utils, search in patched:
            utils.whichmodule = search  # type: ignore[attr-defined]


def fast_whichmodule(real: Any) -> Any:
    """skops's `whichmodule(obj, name)` (`real`), giving the same answer faster.

    For an object without `__module__` (a ufunc), skops asks every loaded module, in import
    order, for `name` with `getattr(module, name, None)`, and answers the first module that
    holds the very object. On a plain module without a module `__getattr__`, that `getattr`
    of a name that is not a dunder is exactly a lookup in the module's `__dict__`, without
    the AttributeError raised and dropped for every module lacking it: on import, skops
    looks up ~840 ufuncs among ~1,700 modules that way (~80 ms of a server's start).
    Any other module or object, a dotted name and a dunder name go through `getattr` (or
    `real`) as skops does."""
    plain = ModuleType

    def whichmodule(obj: Any, name: str) -> Any:
        module_name = getattr(obj, "__module__", None)
        if module_name is not None:
            return module_name
        if not isinstance(name, str) or "." in name or name.startswith("__"):
            return real(obj, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # as skops does
            for module_name, module in sys.modules.copy().items():
                if module_name == "__main__" or module_name == "__mp_main__" or module is None:
                    continue
                if type(module) is plain:
                    namespace = module.__dict__
                    if name in namespace:
                        found = namespace[name]
                    elif "__getattr__" in namespace:
                        try:
                            found = getattr(module, name, None)
                        except (AttributeError, ImportError):
                            continue
                    else:
                        continue
                else:
                    try:
                        found = getattr(module, name, None)
                    except (AttributeError, ImportError):
                        continue
                if found is obj:
                    return module_name
        return "__main__"

    return whichmodule


def _named(module: str, name: str) -> type:
    """A class carrying only a name, which is all skops reads of an estimator on import."""
    return type(name, (), {"__module__": module})


def estimator_names() -> list[tuple[str, str]]:
    """(module, class name) of what `sklearn.utils.all_estimators()` gives, sorted by name:
    from the cache when it matches the installed libraries, else walked and cached."""
    stamps = _stamps()
    if stamps is not None:
        cached = _read_cache(stamps)
        if cached is not None:
            return cached
    names = _walk()
    if stamps is not None:
        _write_cache(stamps, names)
    return names


# -- the walk ------------------------------------------------------------------------------------


def _modules(path: list[str], prefix: str) -> Iterator[str]:
    """What `pkgutil.walk_packages(path, prefix)` yields whose name all_estimators keeps,
    without importing a package none of whose modules it keeps (tests, externals, private)."""
    from sklearn.utils import discovery

    ignored = getattr(discovery, "_MODULE_TO_IGNORE", _IGNORED_PARTS)  # scikit-learn's own
    for info in pkgutil.iter_modules(path, prefix):
        name = info.name
        parts = name.split(".")
        if any(p in ignored for p in parts) or "._" in name:
            continue  # skipped by all_estimators, and so is everything below it
        yield name
        if info.ispkg:
            package = importlib.import_module(name)
            yield from _modules(list(getattr(package, "__path__", None) or []), name + ".")


def _walk() -> list[tuple[str, str]]:
    """all_estimators() (no type filter) as names, computed as it computes it."""
    import sklearn
    from sklearn.base import BaseEstimator

    found: set[tuple[str, type]] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for module_name in _modules(list(sklearn.__path__), "sklearn."):
            module = importlib.import_module(module_name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if not name.startswith("_"):
                    found.add((name, cls))
    estimators = {
        (name, cls)
        for name, cls in found
        if issubclass(cls, BaseEstimator)
        and name != "BaseEstimator"
        and not getattr(cls, "__abstractmethods__", None)
    }
    ordered = sorted(estimators, key=lambda item: item[0])
    return [(str(cls.__module__), str(cls.__name__)) for _, cls in ordered]


# -- the cache -----------------------------------------------------------------------------------


def _stamps() -> dict[str, Any] | None:
    """What the estimator list depends on, to key the cache; None when it cannot be told
    (then nothing is cached)."""
    import importlib.metadata

    try:
        sklearn_dist = importlib.metadata.distribution("scikit-learn")
        skops_dist = importlib.metadata.distribution("skops")
        record = _record(sklearn_dist)
        spec = importlib.util.find_spec("skops")  # the package alone: skops.io not imported
    except Exception:
        return None
    if record is None or spec is None or not spec.submodule_search_locations:
        return None
    package = next(iter(spec.submodule_search_locations))
    origin = os.path.join(package, "io", "_trusted_types.py")
    try:
        listing = os.stat(origin)
    except OSError:
        return None
    return {
        "version": _CACHE_VERSION,
        "python": sys.version,
        "executable": sys.executable,
        "scikit-learn": sklearn_dist.version,
        "skops": skops_dist.version,
        "trusted_types": [origin, listing.st_size, listing.st_mtime_ns],
        "record": record,
    }


def _record(dist: Any) -> str | None:
    """A digest of the installed scikit-learn: every file its RECORD lists under sklearn/,
    with its size and modification time (a file changed, added or removed changes it)."""
    from nbops.bundle.allowlist import sklearn_files

    files = sklearn_files()
    if not files:
        return None
    digest = hashlib.sha256()
    for posix, path in files:
        try:
            info = os.stat(path)
        except OSError:
            info = None
        stamp = f"{posix}\0{info.st_size}\0{info.st_mtime_ns}" if info else f"{posix}\0-"
        digest.update(stamp.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _cache_file(stamps: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(stamps, sort_keys=True).encode()).hexdigest()[:24]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbops" / f"skops-estimators-{key}.json"


def _read_cache(stamps: dict[str, Any]) -> list[tuple[str, str]] | None:
    path = _cache_file(stamps)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if hasattr(os, "getuid") and (
                info.st_uid != os.getuid() or info.st_mode & 0o022
            ):  # not the user's own, or writable by others: not trusted
                return None
            data = json.loads(handle.read())
        if data["stamps"] != stamps:
            return None
        names = [(str(module), str(name)) for module, name in data["estimators"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return names if names and all(_plausible(m, n) for m, n in names) else None


def _plausible(module: str, name: str) -> bool:
    """A class name in a scikit-learn module its installation lists, outside its tests and
    tooling (the allow-list's rule, nbops.bundle.allowlist.vetted_module, by name alone)."""
    from nbops.bundle.allowlist import _SKLEARN_DENIED_PARTS, _sklearn_modules

    parts = module.split(".")
    return (
        name.isidentifier()
        and not name.startswith("_")
        and parts[0] == "sklearn"
        and module in _sklearn_modules()
        and not any(p in _SKLEARN_DENIED_PARTS or p.startswith("test_") for p in parts[1:])
    )


def _write_cache(stamps: dict[str, Any], names: list[tuple[str, str]]) -> None:
    """Keep the list for the next process; a cache that cannot be written is skipped."""
    path = _cache_file(stamps)
    text = json.dumps({"stamps": stamps, "estimators": [list(n) for n in names]})
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".skops-estimators-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
