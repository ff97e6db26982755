"""A bundle's `code/` package, imported from the verified bytes loading holds in memory, and
the serving function the manifest names, checked before it is called.

The package is imported under a unique private name (`_nbops_bundle_<hex>_<package>`) by a
finder that serves only the verified files (never files read again, nor `.pyc` caches) and is
removed again at once; sys.path is not touched. `import_serving` returns the request frame
-> model input function (None when the model alone serves); `serving_function` checks that
the named function is a plain function of that module taking the expected arguments.
BundleIntegrityError, one line, for a manifest that names something else.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import keyword
import sys
import types
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from nbops.bundle.frozen_values import VALUES_DIR, decode_values
from nbops.bundle.manifest import CODE_DIR, MANIFEST_FILE, BundleManifest
from nbops.errors import BundleError, BundleIntegrityError

__all__ = ["import_serving", "serving_function"]


class _VerifiedSourceLoader(importlib.abc.SourceLoader):
    """Executes a module from source bytes already checked against the manifest. No bytecode
    cache is read or written (`path_stats` is left unimplemented)."""

    def __init__(self, path: str, source: bytes) -> None:
        self._path = path
        self._source = source

    def get_filename(self, fullname: str) -> str:
        return self._path

    def get_data(self, path: str) -> bytes:
        if path == self._path:
            return self._source
        raise OSError(f"{path} is not a verified bundle file")


class _BundleFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of one bundled package, by their private names, among verified files."""

    def __init__(self, modules: dict[str, tuple[str, bytes, bool]]) -> None:
        self._modules = modules

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        entry = self._modules.get(fullname)
        if entry is None:
            return None
        file_path, source, is_package = entry
        return importlib.util.spec_from_file_location(
            fullname,
            file_path,
            loader=_VerifiedSourceLoader(file_path, source),
            submodule_search_locations=[str(Path(file_path).parent)] if is_package else None,
        )


def import_serving(
    folder: Path, contents: dict[str, bytes], manifest: BundleManifest
) -> Callable[[Any], Any] | None:
    serving = manifest.serving
    if serving.step is None:
        return None
    if not (serving.package and serving.module and serving.function and serving.input):
        raise BundleIntegrityError(
            f"the manifest's serving step {serving.step!r} names no package, module, function "
            "or input",
            fix="rebuild the bundle",
        )
    for field, value in (
        ("package", serving.package),
        ("function", serving.function),
        ("input", serving.input),
        *(("module", part) for part in serving.module.split(".")),
    ):
        if not value.isidentifier() or keyword.iskeyword(value):
            raise BundleIntegrityError(
                f"the manifest's serving.{field} {value!r} is not a Python name",
                location=MANIFEST_FILE,
                fix="rebuild the bundle",
            )
    alias = f"_nbops_bundle_{uuid.uuid4().hex[:12]}_{serving.package}"
    prefix = f"{CODE_DIR}/{serving.package}/"
    modules: dict[str, tuple[str, bytes, bool]] = {}
    for rel, data in contents.items():
        if not rel.startswith(prefix) or not rel.endswith(".py"):
            continue
        parts = rel[len(prefix) : -len(".py")].split("/")
        is_package = parts[-1] == "__init__"
        dotted = [alias, *(parts[:-1] if is_package else parts)]
        modules[".".join(dotted)] = (str(folder / rel), data, is_package)
    if alias not in modules:
        raise BundleIntegrityError(
            f"{prefix}__init__.py is missing from the bundle", fix="rebuild the bundle"
        )
    module_name = f"{alias}.{serving.module}"
    if module_name not in modules:
        raise BundleIntegrityError(
            f"the manifest's serving.module {serving.module!r} is not a module of {prefix}",
            location=MANIFEST_FILE,
            fix="rebuild the bundle",
        )
    finder = _BundleFinder(modules)
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(alias)
        module = importlib.import_module(module_name)
        common = (
            importlib.import_module(f"{alias}.common") if f"{alias}.common" in modules else None
        )
    except BundleError:
        raise
    except Exception as e:
        raise BundleError(
            f"the bundled code cannot be imported ({type(e).__name__}: {e})",
            location=f"{CODE_DIR}/{serving.package}",
            fix="install the bundle's requirements.lock",
        ) from None
    finally:
        sys.meta_path.remove(finder)
    setup: dict[str, Any] = {}
    for setup_name in serving.setup:
        # the module's own names only: no module `__getattr__` runs
        if common is None or setup_name not in vars(common):
            raise BundleIntegrityError(
                f"{serving.package}.common has no {setup_name!r} for the serving step",
                fix="rebuild the bundle",
            )
        setup[setup_name] = vars(common)[setup_name]
    frame_input = serving.input
    parameters = dict(serving.parameters)
    if serving.values is not None:
        expected = {frame_input: None, "_nbops_frozen": None}
    else:
        expected = {frame_input: None, **dict.fromkeys(parameters), **dict.fromkeys(setup)}
    fn = serving_function(
        module, serving.function, expected, where=modules[module_name][0], alias=alias
    )
    configure = vars(common).get("configure") if common is not None else None
    if callable(configure):
        configure()  # the notebook's setup calls, as the pipeline runs them first
    if serving.values is not None:
        return _derived_serve(fn, frame_input, serving, contents)

    def serve(frame: Any) -> Any:
        out = fn(**{frame_input: frame}, **parameters, **setup)
        return out[0] if isinstance(out, tuple) else out

    return serve


def serving_function(
    module: ModuleType, name: str, arguments: dict[str, Any], *, where: str, alias: str
) -> Callable[..., Any]:
    """The function `name` of the bundle's serving module, checked to be a serving function
    without calling anything: a plain Python function (not a class, a builtin, a partial or a
    generator), defined in that module's own verified source (`where`) rather than imported
    from another module, and whose signature accepts `arguments` as keyword arguments (the
    request frame's name, the step's parameters and setup values; or the frozen values of a
    serving path). `alias`: the private name the package was imported under (shown as the
    package's own name). BundleIntegrityError, one line, otherwise."""
    package = alias.split("_", 4)[-1]

    def shown(dotted: str) -> str:
        return package + dotted[len(alias) :] if dotted.startswith(alias) else dotted

    qualified = f"{shown(module.__name__)}.{name}"
    fn = vars(module).get(name)  # the module's own names: no module `__getattr__` runs

    def refuse(what: str) -> BundleIntegrityError:
        return BundleIntegrityError(
            f"the manifest's serving.function {qualified} is not a serving function: {what}",
            location=MANIFEST_FILE,
            fix="rebuild the bundle (nbops bundle)",
        )

    if fn is None:
        raise refuse("the module defines no such name")
    if not isinstance(fn, types.FunctionType):
        kind = "a class" if isinstance(fn, type) else f"a {type(fn).__name__}"
        raise refuse(f"it is {kind}")
    code = fn.__code__
    if fn.__module__ != module.__name__ or code.co_filename != where:
        raise refuse(f"it is {shown(fn.__module__)}.{fn.__qualname__}, from another module")
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        raise refuse("it is a generator or a coroutine")
    try:
        inspect.signature(fn, follow_wrapped=False).bind(**arguments)
    except (TypeError, ValueError) as e:
        raise refuse(
            f"it does not take {', '.join(arguments)} as keyword arguments ({e})"
        ) from None
    return fn


def _derived_serve(
    fn: Callable[..., Any], frame_input: str, serving: Any, contents: dict[str, bytes]
) -> Callable[[Any], Any]:
    """The serving function of a path sliced from the notebook, with its frozen values read
    from the verified bytes (skops files trusting only allow-listed types)."""
    if serving.values not in contents:
        raise BundleIntegrityError(f"{serving.values} is missing", fix="rebuild the bundle")
    files = {k: v for k, v in contents.items() if k.startswith(f"{VALUES_DIR}/")}
    values = decode_values(contents[serving.values], files, list(serving.value_types))

    def serve(frame: Any) -> Any:
        return fn(**{frame_input: frame}, _nbops_frozen=values)

    return serve
