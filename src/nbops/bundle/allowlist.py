"""The types nbops lets skops load from a bundle's model file, and nothing else.

skops refuses, by default, every type it has not vetted itself; `skops.io.get_untrusted_types`
lists them. nbops decides which of those it trusts — never the manifest alone:

- the names in `VETTED_TYPES`, collected from what `get_untrusted_types` reports for realistic
  models (Pipeline + ColumnTransformer + SimpleImputer + OneHotEncoder + StandardScaler with
  RandomForest, HistGradientBoosting, LogisticRegression and Ridge), across skops versions;
- any *class* defined in scikit-learn: the name starts with `sklearn.`, and importing it gives a
  class whose own `__module__` and `__qualname__` spell that same name (so a name re-exporting
  something from outside scikit-learn, or a function, does not pass). Functions are trusted
  by name only (`VETTED_FUNCTIONS`): a model calls the functions it holds on its input, and
  some scikit-learn functions read or write files;
- any numpy scalar type or dtype class (`numpy.float64`, `numpy.dtypes.Int64DType`...);
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

`check_tree_bounds(model)`: skops leaves `sklearn.tree._tree.Tree` and HistGradientBoosting's
`TreePredictor` untrusted because their node arrays hold indices scikit-learn follows without
bounds checks. nbops trusts them for the models it builds, and checks, after loading, that
every child and feature index of every tree stays in range. It checks the trees of XGBoost and
LightGBM boosters the same way, on the model the library holds after loading (XGBoost's JSON
model, LightGBM's text model): every node reached once from the root, every child and split
feature in range. CatBoost's symmetric trees are left to CatBoost's own loader.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
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
    """Whether nbops lets skops load the type (or function) `name` ("module.QualName")."""
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
    if name.startswith("sklearn."):
        obj = _resolve(name)
        return (
            isinstance(obj, type)
            and obj.__module__.startswith("sklearn.")
            and f"{obj.__module__}.{obj.__qualname__}" == name
        )
    if name.startswith("numpy."):
        import numpy as np

        obj = _resolve(name)
        if not isinstance(obj, type) or not obj.__module__.startswith("numpy"):
            return False
        return issubclass(obj, np.generic | np.dtype)
    return False


def _resolve(name: str) -> Any:
    """The object a dotted name designates, importing the longest module prefix; None if none."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:  # a module that fails to import is not a type we trust
            return None
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
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
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        if kind == "xgboost.core.Booster":
            _check_xgboost(obj)
            continue
        if kind == "lightgbm.basic.Booster":
            _check_lightgbm(obj)
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


def _check_links(left: Any, right: Any, inner: Any, count: int, leaves: int | None) -> None:
    """The children of the `inner` nodes of a tree of `count` nodes: in range, and every node
    the child of at most one node and the root of none, so a walk from the root reaches each
    node once and ends. `leaves`: None when leaves are nodes (XGBoost), else the number of
    leaves a negative child `~i` designates (LightGBM)."""
    import numpy as np

    children = np.concatenate([left[inner], right[inner]]).astype(np.int64)
    if leaves is None:
        nodes = children
    else:
        leaf = children < 0
        if np.any(~children[leaf] >= leaves):
            raise _bad_tree("a leaf index is out of range")
        nodes = children[~leaf]
        if np.any(np.bincount(~children[leaf], minlength=1) > 1):
            raise _bad_tree("a leaf has two parents")
    if np.any((nodes < 0) | (nodes >= count)):
        raise _bad_tree("a child index is out of range")
    if np.any(nodes == 0) or np.any(np.bincount(nodes, minlength=1) > 1):
        raise _bad_tree("a node has two parents")


def _check_xgboost(booster: Any) -> None:
    """XGBoost's trees, read from the JSON model the loaded booster holds."""
    import json

    import numpy as np

    try:
        model = json.loads(booster.save_raw(raw_format="json"))
        learner = model["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        booster_part = learner["gradient_booster"]
        if booster_part["name"] == "gblinear":
            return
        if booster_part["name"] == "dart":
            booster_part = booster_part["gbtree"]
        trees = booster_part["model"]["trees"]
    except Exception as e:  # a booster XGBoost cannot describe is not one we serve
        raise _bad_tree(f"XGBoost cannot describe its model ({type(e).__name__})") from None
    for tree in trees:
        try:
            count = int(tree["tree_param"]["num_nodes"])
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            feature = np.asarray(tree["split_indices"], dtype=np.int64)
            cat_nodes = np.asarray(tree.get("categories_nodes", []), dtype=np.int64)
            segments = np.asarray(tree.get("categories_segments", []), dtype=np.int64)
            sizes = np.asarray(tree.get("categories_sizes", []), dtype=np.int64)
            categories = len(tree.get("categories", []))
        except (KeyError, TypeError, ValueError):
            raise _bad_tree("an XGBoost tree lacks node fields") from None
        if not (len(left) == len(right) == len(feature) == count):
            raise _bad_tree("its node arrays disagree on the number of nodes")
        leaf = left == -1
        if np.any(leaf != (right == -1)):
            raise _bad_tree("a node has one child")
        _check_links(left, right, ~leaf, count, None)
        if np.any((feature[~leaf] < 0) | (feature[~leaf] >= n_features)):
            raise _bad_tree("a feature index is out of range")
        if not (len(cat_nodes) == len(segments) == len(sizes)):
            raise _bad_tree("its category arrays disagree")
        if np.any((cat_nodes < 0) | (cat_nodes >= count)) or np.any(
            (segments < 0) | (sizes < 0) | (segments + sizes > categories)
        ):
            raise _bad_tree("a category index is out of range")


def _check_lightgbm(booster: Any) -> None:
    """LightGBM's trees, read from the text model the loaded booster holds."""
    import numpy as np

    try:
        text = booster.model_to_string(num_iteration=-1)
    except Exception as e:
        raise _bad_tree(f"LightGBM cannot describe its model ({type(e).__name__})") from None
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line == "end of trees":
            break
        else:
            key, sep, value = line.partition("=")
            if sep:
                current[key] = value

    def ints(tree: dict[str, str], key: str) -> Any:
        return np.asarray([int(float(v)) for v in tree.get(key, "").split()], dtype=np.int64)

    try:
        n_features = int(header["max_feature_idx"]) + 1
        for tree in trees:
            leaves = int(tree["num_leaves"])
            if leaves < 1:
                raise _bad_tree("a LightGBM tree has no leaf")
            features = ints(tree, "leaf_features")
            if np.any((features < 0) | (features >= n_features)):
                raise _bad_tree("a feature index is out of range")
            if leaves == 1:
                continue
            count = leaves - 1
            left, right = ints(tree, "left_child"), ints(tree, "right_child")
            feature, decision = ints(tree, "split_feature"), ints(tree, "decision_type")
            threshold = np.asarray([float(v) for v in tree["threshold"].split()])
            if not (len(left) == len(right) == len(feature) == len(decision) == count):
                raise _bad_tree("its node arrays disagree on the number of nodes")
            if len(threshold) != count:
                raise _bad_tree("its node arrays disagree on the number of nodes")
            _check_links(left, right, np.ones(count, dtype=bool), count, leaves)
            if np.any((feature < 0) | (feature >= n_features)):
                raise _bad_tree("a feature index is out of range")
            categorical = (decision & 1) == 1
            if np.any(categorical):
                n_cat = int(tree.get("num_cat", "0"))
                bounds = ints(tree, "cat_boundaries")
                cat_index = threshold[categorical]
                if (
                    len(bounds) != n_cat + 1
                    or np.any(np.diff(bounds) < 0)
                    or (
                        len(bounds)
                        and (bounds[0] < 0 or bounds[-1] > len(ints(tree, "cat_threshold")))
                    )
                    or np.any((cat_index < 0) | (cat_index >= n_cat))
                ):
                    raise _bad_tree("a category index is out of range")
    except (KeyError, ValueError):
        raise _bad_tree("a LightGBM tree lacks node fields") from None
