"""The types nbops lets skops load from a bundle's model file, and nothing else.

skops refuses, by default, every type it has not vetted itself; `skops.io.get_untrusted_types`
lists them. nbops decides which of those it trusts — never the manifest alone:

- the names in `VETTED_TYPES`, collected from what `get_untrusted_types` reports for realistic
  models (Pipeline + ColumnTransformer + SimpleImputer + OneHotEncoder + StandardScaler with
  RandomForest, HistGradientBoosting, LogisticRegression and Ridge), across skops versions;
- any *class* defined in scikit-learn: the name is `sklearn.<module>.<Class>` where `<module>`
  is a module the installed scikit-learn distribution lists in its RECORD (outside its tests,
  tooling and `__dunder__` modules) and, for a Python module, its source defines that class
  (read with `ast`); only then is the module imported, and the class's own `__module__` and
  `__qualname__` must spell that same name (so a name re-exporting something from outside
  scikit-learn, or a function, does not pass). Functions are trusted by name only
  (`VETTED_FUNCTIONS`): a model calls the functions it holds on its input, and some
  scikit-learn functions read or write files;
- any numpy scalar type or dtype class, named `numpy.X` or `numpy.dtypes.X` (`numpy.float64`,
  `numpy.dtypes.Int64DType`...);
- the scikit-learn API estimators of XGBoost, LightGBM and CatBoost and the boosters they hold
  (`BOOSTING_TYPES`, exact names; nbops never imports a module to decide whether to trust one
  of them). skops saves each through the library's own `__getstate__`, so the file holds the
  library's own model format as data, never Python code: XGBoost's UBJSON model snapshot,
  LightGBM's text model, CatBoost's CBM bytes. The library parses it when the model loads.

Nothing else: not builtins (`builtins.eval`), not `os`/`posix`/`subprocess`/`sys`/`importlib`,
not pickle or joblib, and `functools.partial` only because skops checks the callable a partial
wraps as a type of its own (a partial of `posix.system` also reports `posix.system`).

`trusted_types(untrusted, manifest_types)` is what `load_bundle` passes to skops: every type the
file holds beyond skops's defaults must be in the manifest's list *and* allowed here; a type the
manifest lists that is not allowed here is refused even when the file does not hold it, so a
manifest can narrow the allow-list, never widen it.

Trust is decided from the name before anything is imported (`vetted_module`): a name outside
these rules (`numpy.f2py.__main__.X`, `sklearn.tests.x.Y`, a module on sys.path) is refused
without its module ever running; the only modules imported are the vetted ones a rule names.

`check_tree_bounds(model)`: skops leaves `sklearn.tree._tree.Tree` and HistGradientBoosting's
`TreePredictor` untrusted because their node arrays hold indices scikit-learn follows without
bounds checks. nbops trusts them for the models it builds, and checks, after loading, that
every child and feature index of every tree stays in range. XGBoost and LightGBM boosters get
the same checks on the file, before their library parses it (nbops.bundle.boosters).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from nbops.errors import BundleIntegrityError

# What `get_untrusted_types` reports for the realistic models above, plus the scikit-learn
# internals older skops versions did not trust by default (losses, links, binning).
VETTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.ma.core.MaskedArray",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._pcg64.PCG64",
        "numpy.random._mt19937.MT19937",
        "numpy.random.bit_generator.SeedSequence",
        "functools.partial",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfTweedieLoss",
        "sklearn._loss.loss.HalfTweedieLossIdentity",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.MultinomialLogit",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._csc.csc_array",
    }
)

# Gradient boosting, scikit-learn API: the estimators and the boosters they hold, and what
# LightGBM's booster keeps its evaluation results in. Exact names, checked without importing.
BOOSTING_TYPES: frozenset[str] = frozenset(
    {
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
        "collections.OrderedDict",
        "catboost.core.CatBoostClassifier",
        "catboost.core.CatBoostRegressor",
    }
)

SUPPORTED_MODELS = "scikit-learn, numpy, XGBoost, LightGBM or CatBoost objects"

# Functions a model may hold and call on its input: pure computations only.
VETTED_FUNCTIONS: frozenset[str] = frozenset(
    {
        "sklearn.utils.validation.check_array",
        "numpy.log",
        "numpy.log1p",
        "numpy.exp",
        "numpy.expm1",
        "numpy.sqrt",
    }
)

# Never trusted, whatever a rule would say (checked first; the rules could not admit them
# anyway, this keeps it so if a rule grows).
_DENIED_PREFIXES = (
    "builtins.",
    "__builtin__.",
    "os.",
    "posix.",
    "nt.",
    "subprocess.",
    "sys.",
    "importlib.",
    "pickle.",
    "_pickle.",
    "joblib.",
    "shutil.",
    "socket.",
    "ctypes.",
    "runpy.",
    "code.",
    "pty.",
    "io.",
    "pathlib.",
    "numpy.load",
    "numpy.lib.npyio.",
    "sklearn.externals.",
    "sklearn.utils._joblib.",
    "sklearn.datasets.",
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_cache: dict[str, bool] = {}


def is_allowed(name: str) -> bool:
    """Whether nbops lets skops load the type (or function) `name` ("module.QualName").

    Decided from the name first (`vetted_module`): nothing is imported unless the name's
    module is one nbops vetted; a name that needs a rule imports that module only."""
    if not isinstance(name, str) or not _NAME.match(name):
        return False
    if name.startswith(_DENIED_PREFIXES) or name == "numpy.load":
        return False
    if name in VETTED_TYPES or name in BOOSTING_TYPES or name in VETTED_FUNCTIONS:
        return True
    if name not in _cache:
        _cache[name] = _allowed_by_rule(name)
    return _cache[name]


def _allowed_by_rule(name: str) -> bool:
    split = vetted_module(name)
    if split is None:
        return False
    module_name, qualname = split
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception:  # a module that fails to import is not one we trust
        return False
    for part in qualname.split("."):
        # the object's own namespace only: no module `__getattr__`, no descriptor runs
        obj = vars(obj).get(part) if hasattr(obj, "__dict__") else None
        if obj is None:
            return False
    if not isinstance(obj, type) or f"{obj.__module__}.{obj.__qualname__}" != name:
        return False
    if module_name.startswith("sklearn."):
        return True
    import numpy as np

    return issubclass(obj, np.generic | np.dtype)


# Folders and modules of scikit-learn nbops never imports for a bundle: tests, build and test
# tooling, switches that change the library when imported, and file-reading helpers.
_SKLEARN_DENIED_PARTS = frozenset(
    {
        "tests",
        "conftest",
        "externals",
        "experimental",
        "datasets",
        "_build_utils",
        "_testing",
        "estimator_checks",
        "_min_dependencies",
        "_distributor_init",
        "_show_versions",
    }
)
# The numpy modules whose attributes can be trusted types: scalar types and dtype classes.
_NUMPY_MODULES = frozenset({"numpy", "numpy.dtypes"})


def vetted_module(name: str) -> tuple[str, str] | None:
    """`name` split into a module nbops may import and the qualified name in it, or None.

    Decided from the name and the files scikit-learn installed, importing nothing:

    - `numpy.X` or `numpy.dtypes.X` (one attribute): numpy's scalar types and dtype classes;
    - `sklearn.<module>.<Class>[.<Nested>]`, where `<module>` is a module file listed in the
      installed scikit-learn distribution's RECORD (not a file added to its folder later),
      outside its tests, tooling and `__dunder__` modules, and, for a Python source module,
      whose source defines that class (read with `ast`, not run). A compiled module cannot be
      read, so its listing in RECORD is what vets it.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        return None
    parts = name.split(".")
    if any(p.startswith("__") for p in parts):
        return None
    if parts[0] == "numpy":
        module, _, attr = name.rpartition(".")
        return (module, attr) if module in _NUMPY_MODULES else None
    if parts[0] != "sklearn":
        return None
    modules = _sklearn_modules()
    for cut in range(len(parts) - 1, 1, -1):
        module = ".".join(parts[:cut])
        if module not in modules:
            continue
        if any(p in _SKLEARN_DENIED_PARTS or p.startswith("test_") for p in parts[1:cut]):
            return None
        source = modules[module]
        qualname = parts[cut:]
        if source is not None and not _defines_class(source, tuple(qualname)):
            return None
        return module, ".".join(qualname)
    return None


_sklearn_modules_cache: dict[str, Path | None] | None = None
_sklearn_files_cache: list[tuple[str, str]] | None = None


def sklearn_files() -> list[tuple[str, str]]:
    """The files the installed scikit-learn distribution lists under `sklearn/` (outside
    `__pycache__`), as (the RECORD's posix path, the file's absolute path); [] when it is
    not installed. RECORD is read as text: `Distribution.files` makes two pathlib objects of
    each of its ~1,000 lines, which cost a server's start 10 ms a reading."""
    global _sklearn_files_cache
    if _sklearn_files_cache is not None:
        return _sklearn_files_cache
    import csv
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        _sklearn_files_cache = []
        return _sklearn_files_cache
    record = dist.read_text("RECORD")
    listed: list[tuple[str, str]] = []
    if record is None:  # not installed from a wheel: the metadata library's own reading
        for entry in dist.files or []:
            listed.append((entry.as_posix(), str(entry.locate())))
    else:
        base = str(dist.locate_file(""))
        for row in csv.reader(record.splitlines()):
            if row and row[0]:
                posix = row[0]
                if "//" in posix or "." in posix.split("/") or posix.endswith("/"):
                    posix = PurePosixPath(posix).as_posix()  # as Distribution.files has it
                listed.append((posix, os.path.join(base, posix)))
    _sklearn_files_cache = [
        (posix, path)
        for posix, path in listed
        if posix.startswith("sklearn/") and "__pycache__" not in posix
    ]
    return _sklearn_files_cache


def _sklearn_modules() -> dict[str, Path | None]:
    """The modules the installed scikit-learn distribution lists in its RECORD: dotted name ->
    its Python source file, or None for a compiled module. Nothing is imported."""
    global _sklearn_modules_cache
    if _sklearn_modules_cache is not None:
        return _sklearn_modules_cache
    import importlib.machinery

    found: dict[str, Path | None] = {}
    extensions = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    for posix, path in sklearn_files():
        stem: str | None = None
        source: Path | None = None
        if posix.endswith(".py"):
            stem = posix[: -len(".py")]
            source = Path(path)
        else:
            for suffix in extensions:
                if posix.endswith(suffix):
                    stem = posix[: -len(suffix)]
                    break
        if stem is None:
            continue
        dotted = stem.split("/")
        if dotted[-1] == "__init__":
            dotted = dotted[:-1]
        if all(p.isidentifier() for p in dotted):
            found[".".join(dotted)] = source
    _sklearn_modules_cache = found
    return found


_class_cache: dict[tuple[Path, tuple[str, ...]], bool] = {}


def _defines_class(source: Path, qualname: tuple[str, ...]) -> bool:
    """Whether the Python file `source` defines the class `qualname` (nested classes joined),
    read with `ast` and never executed."""
    key = (source, qualname)
    if key not in _class_cache:
        try:
            body: list[ast.stmt] = ast.parse(source.read_bytes()).body
        except (OSError, SyntaxError, ValueError):
            body = []
        found = False
        for part in qualname:
            match = _class_in(body, part)
            if match is None:
                break
            body = match.body
        else:
            found = True
        _class_cache[key] = found
    return _class_cache[key]


def _class_in(body: list[ast.stmt], name: str) -> ast.ClassDef | None:
    """The class `name` defined in a block, also under a top-level `if`/`try` (a definition
    that depends on the library's version)."""
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
        if isinstance(node, ast.If | ast.Try):
            blocks = [node.body, node.orelse]
            if isinstance(node, ast.Try):
                blocks += [h.body for h in node.handlers] + [node.finalbody]
            for block in blocks:
                found = _class_in(block, name)
                if found is not None:
                    return found
    return None


def trusted_types(untrusted: list[str], manifest_types: list[str]) -> list[str]:
    """The types to pass to skops as `trusted`: `untrusted` (what the file holds beyond skops's
    defaults), each listed in the manifest and allowed by nbops.

    Raises BundleIntegrityError naming the first type that is not allowed (a manifest type
    outside nbops's allow-list counts, whether the file holds it or not) or that the file holds
    but the manifest does not list.
    """
    for name in manifest_types:
        if not is_allowed(name):
            raise BundleIntegrityError(
                f"the manifest trusts the type {name!r}, which nbops never loads",
                location="manifest.json",
                fix=f"rebuild the bundle from a model made of {SUPPORTED_MODELS}",
            )
    listed = set(manifest_types)
    for name in untrusted:
        if not is_allowed(name):
            raise BundleIntegrityError(
                f"the model holds the type {name!r}, which nbops never loads",
                location="model.skops",
                fix=f"rebuild the bundle from a model made of {SUPPORTED_MODELS}",
            )
        if name not in listed:
            raise BundleIntegrityError(
                f"the model holds the type {name!r}, which the manifest does not list",
                location="model.skops",
                fix="the model file does not match the manifest; rebuild the bundle",
            )
    return sorted(set(untrusted))


def disallowed(types: Iterable[str]) -> list[str]:
    """The names among `types` nbops does not allow, in order."""
    return [t for t in types if not is_allowed(t)]


# -- tree bounds ---------------------------------------------------------------------------------

_MAX_OBJECTS = 200_000


def check_tree_bounds(model: Any) -> None:
    """Raise BundleIntegrityError if a decision tree in `model` has a child or feature index out
    of range (which scikit-learn would follow without a check, reading outside its arrays)."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    stack: list[tuple[Any, int | None]] = [(model, None)]
    while stack:
        obj, n_features = stack.pop()
        if id(obj) in seen or len(seen) > _MAX_OBJECTS:
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            _check_tree(obj, n_features)
            continue
        if isinstance(obj, TreePredictor):
            _check_predictor(obj, n_features)
            continue
        if isinstance(obj, str | bytes | int | float | bool) or obj is None:
            continue
        if isinstance(obj, dict):
            stack.extend((v, n_features) for v in obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend((v, n_features) for v in obj)
        elif type(obj).__module__.startswith("numpy"):
            if getattr(obj, "dtype", None) is not None and obj.dtype == object:
                stack.extend((v, n_features) for v in obj.ravel())
        elif hasattr(obj, "__dict__"):
            try:
                own = getattr(obj, "n_features_in_", None)
            except Exception:  # a property of an unfitted step
                own = None
            if isinstance(own, int) and not isinstance(own, bool):
                n_features = own
            stack.extend((v, n_features) for v in vars(obj).values())


def _bad_tree(what: str) -> BundleIntegrityError:
    return BundleIntegrityError(
        f"a decision tree in the model is malformed: {what}",
        location="model.skops",
        fix="the model file was not written by the library that trained it; rebuild the bundle",
    )


def _check_tree(tree: Any, n_features: int | None) -> None:
    import numpy as np

    count = int(tree.node_count)
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    if not (len(left) == len(right) == len(feature) == count):
        raise _bad_tree("its node arrays disagree on the number of nodes")
    if n_features is not None and int(tree.n_features) != n_features:
        raise _bad_tree(f"it reads {tree.n_features} features, its estimator {n_features}")
    index = np.arange(count)
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        raise _bad_tree("a node has one child")
    inner = ~leaf
    # Children come after their parent (depth-first order): in range, and no cycle.
    if np.any((left[inner] <= index[inner]) | (left[inner] >= count)):
        raise _bad_tree("a left child index is out of range")
    if np.any((right[inner] <= index[inner]) | (right[inner] >= count)):
        raise _bad_tree("a right child index is out of range")
    if np.any((feature[inner] < 0) | (feature[inner] >= int(tree.n_features))):
        raise _bad_tree("a feature index is out of range")
    values = np.asarray(tree.value)
    if values.shape[0] != count:
        raise _bad_tree("its values disagree on the number of nodes")


def _check_predictor(predictor: Any, n_features: int | None) -> None:
    import numpy as np

    nodes = predictor.nodes
    names = set(nodes.dtype.names or ())
    needed = {"left", "right", "feature_idx", "is_leaf", "is_categorical", "bitset_idx"}
    if not needed <= names:
        raise _bad_tree("a gradient-boosting tree lacks node fields")
    count = len(nodes)
    index = np.arange(count)
    inner = nodes["is_leaf"] == 0
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    if np.any((left[inner] <= index[inner]) | (left[inner] >= count)):
        raise _bad_tree("a left child index is out of range")
    if np.any((right[inner] <= index[inner]) | (right[inner] >= count)):
        raise _bad_tree("a right child index is out of range")
    feature = nodes["feature_idx"].astype(np.int64)
    if np.any(feature[inner] < 0) or (
        n_features is not None and np.any(feature[inner] >= n_features)
    ):
        raise _bad_tree("a feature index is out of range")
    categorical = inner & (nodes["is_categorical"] != 0)
    bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    if np.any(nodes["bitset_idx"][categorical].astype(np.int64) >= bitsets):
        raise _bad_tree("a category bitset index is out of range")
