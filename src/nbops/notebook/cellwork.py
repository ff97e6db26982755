"""What the code cells of a notebook do, read from their syntax trees (never from the prose).

This is what role suggestions (`suggest.py`) are made from. Every top-level statement of a
cell gets one kind of `Work`: an import, a definition, a literal constant, configuration,
display (showing, printing or plotting only), loading data, cleaning it, making features,
splitting it, fitting a preprocessor (a scaler, an encoder, PCA), building a model, fitting
it, cross-validating, predicting, or computing a metric. A cell of only shell commands
(`!pip install`, `%%bash`) is marked as such, and a cell whose code cannot be exported (a
syntax error, a shell line among Python) says why.

The reading needs the whole notebook, in order: whether `knn = KNeighborsClassifier()`
builds a model depends on a later `knn.fit(...)`, and whether `y_pred.mean()` is a metric
depends on `y_pred` coming from `predict`. Everything here is pure: no file is read.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from nbops.errors import CellCodeError
from nbops.notebook.cellcode import CellCode, translate
from nbops.notebook.names import CellNames, cell_names
from nbops.notebook.read import Cell


class Work(StrEnum):
    """The kind of work one top-level statement does."""

    IMPORT = "import"
    DEFINE = "define"  # def or class
    CONSTANT = "constant"  # NAME = literal
    CONFIGURE = "configure"  # np.random.seed(0), warnings.filterwarnings(...)
    DISPLAY = "display"  # shows, prints or plots, and nothing else
    LOAD = "load"  # reads or generates the data
    CLEAN = "clean"  # updates a frame in place: dropna, fillna, astype...
    FEATURES = "features"  # any other data work
    SPLIT = "split"  # train_test_split
    PREPROCESS = "preprocess"  # builds or fits a scaler, encoder, PCA...
    MODEL = "model"  # builds an estimator that is fitted later
    FIT = "fit"  # fits an estimator
    CROSS_VALIDATE = "cross_validate"  # cross_val_score, cross_validate
    PREDICT = "predict"
    METRIC = "metric"  # a score, a metric function, a report


# Statement kinds from the most telling to the least: a statement that fits and scores is
# a metric, one that loads and cleans is a load, a pipeline of a scaler and a model a model.
PRECEDENCE = (
    Work.CROSS_VALIDATE, Work.METRIC, Work.FIT, Work.PREDICT, Work.SPLIT, Work.LOAD,
    Work.MODEL, Work.PREPROCESS, Work.CLEAN, Work.FEATURES, Work.CONFIGURE, Work.CONSTANT,
    Work.DEFINE, Work.DISPLAY, Work.IMPORT,
)  # fmt: skip

_CROSS_VALIDATION = frozenset(
    {"cross_val_score", "cross_validate", "cross_val_predict", "learning_curve",
     "validation_curve", "permutation_test_score"}
)  # fmt: skip
_SEARCHES = frozenset(
    {"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV",
     "BayesSearchCV"}
)  # fmt: skip
_FIT_METHODS = frozenset({"fit", "fit_predict", "partial_fit", "fit_generator", "train"})
_FIT_TRANSFORM = frozenset({"fit_transform", "fit_resample", "fit_on_texts"})
_PREDICT_METHODS = frozenset(
    {"predict", "predict_proba", "predict_log_proba", "decision_function", "predict_classes"}
)
_METRIC_FUNCTIONS = frozenset(
    {"classification_report", "confusion_matrix", "roc_curve", "precision_recall_curve",
     "auc", "log_loss", "hamming_loss", "zero_one_loss", "matthews_corrcoef", "max_error",
     "mean_absolute_error", "mean_squared_error", "mean_squared_log_error",
     "median_absolute_error", "mean_absolute_percentage_error", "root_mean_squared_error",
     "mean_pinball_loss", "multilabel_confusion_matrix", "precision_recall_fscore_support",
     "det_curve", "d2_absolute_error_score"}
)  # fmt: skip
# Metrics that are curves or tables, usually drawn rather than reported as numbers.
REPORTS = frozenset(
    {"confusion_matrix", "roc_curve", "precision_recall_curve", "det_curve",
     "multilabel_confusion_matrix", "classification_report", "learning_curve",
     "validation_curve", "from_estimator", "from_predictions"}
)  # fmt: skip
_METRIC_SUFFIX = re.compile(r"_(score|error|loss)$")
_METRIC_ATTRIBUTES = frozenset({"best_score_", "oob_score_", "best_params_score_"})
_SCORE_METHODS = frozenset({"score", "evaluate"})
_LOAD_FUNCTIONS = frozenset(
    {"loadtxt", "genfromtxt", "load_dataset", "urlretrieve", "fromfile", "load_workbook",
     "read_file"}
)  # fmt: skip
_NOT_LOADERS = frozenset(
    {"make_pipeline", "make_column_transformer", "make_union", "make_scorer",
     "make_column_selector", "load_ext", "load_model", "load_state_dict", "read_params"}
)  # fmt: skip
_CONFIGURE_CALLS = frozenset(
    {"seed", "filterwarnings", "simplefilter", "set_option", "manual_seed", "set_seed",
     "set_random_seed", "set_printoptions", "basicConfig", "disable_warnings", "chdir",
     "append", "insert", "seterr"}
)  # fmt: skip
_CONFIGURE_ROOTS = frozenset(
    {"np", "numpy", "random", "torch", "tf", "tensorflow", "warnings", "pd", "pandas",
     "logging", "os", "sys", "keras", "sklearn", "set_config"}
)  # fmt: skip
_PLOT_ROOTS = frozenset(
    {"plt", "sns", "px", "go", "ff", "pyplot", "alt", "mpl", "matplotlib", "ax", "axes",
     "axs", "ax1", "ax2", "fig", "figure", "g", "grid_plot", "plotting", "pio", "ipd",
     "plot_tree", "tree_plot", "hv", "bokeh", "yb", "scikitplot", "skplt", "missingno",
     "msno", "display", "Image", "HTML", "Markdown", "ConfusionMatrixDisplay",
     "RocCurveDisplay", "PrecisionRecallDisplay", "DecisionBoundaryDisplay",
     "PartialDependenceDisplay", "plot_confusion_matrix", "plot_roc_curve", "wordcloud",
     "WordCloud", "export_graphviz", "graphviz", "tqdm"}
)  # fmt: skip
_PLOT_CALLS = frozenset(
    {"plot", "hist", "scatter", "imshow", "heatmap", "bar", "barh", "boxplot", "pie",
     "show", "savefig", "subplots", "subplot", "figure", "legend", "title", "xlabel",
     "ylabel", "suptitle", "tight_layout", "set_title", "set_xlabel", "set_ylabel",
     "pairplot", "countplot", "barplot", "histplot", "displot", "distplot", "kdeplot",
     "lineplot", "scatterplot", "violinplot", "jointplot", "catplot", "regplot", "lmplot",
     "clustermap", "contourf", "contour", "plot_tree", "from_estimator",
     "from_predictions", "plot_surface", "stem", "step", "fill_between", "errorbar",
     "axhline", "axvline", "annotate", "text", "grid", "xticks", "yticks", "xlim",
     "ylim", "colorbar", "matshow", "print", "pprint", "display", "render", "style",
     "set_style", "set_theme", "set_palette", "set_context", "use", "rc", "close"}
)  # fmt: skip
_CLEAN_METHODS = frozenset(
    {"dropna", "fillna", "drop_duplicates", "replace", "astype", "rename", "drop",
     "interpolate", "clip", "ffill", "bfill", "to_datetime", "to_numeric", "strip",
     "lower", "upper", "reset_index", "set_index", "sort_values", "where", "mask",
     "convert_dtypes", "infer_objects", "round"}
)  # fmt: skip
_DATA_CLASSES = frozenset(
    {"DataFrame", "Series", "Path", "Counter", "OrderedDict", "defaultdict", "Index",
     "Categorical", "Timestamp", "Timedelta", "array", "Tensor", "Dataset", "DataLoader"}
)  # fmt: skip
_TRANSFORMER_CLASS = re.compile(
    r"(Scaler|Encoder|Imputer|Vectorizer|Transformer|Binarizer|Normalizer|Discretizer|PCA|"
    r"SVD|NMF|ICA|TSNE|Isomap|UMAP|Embedding|Tokenizer|Features|Selector|Threshold|"
    r"KBest|Percentile|RFE|RFECV|Sampler|SMOTE|Allocation|Analysis|Nystroem|Projection)$"
)
_ESTIMATOR_CLASS = re.compile(
    r"(Classifier|Regressor|Regression|SVC|SVR|NB|Forest|Boost|Booster|Tree|Trees|"
    r"Neighbors|KMeans|Clustering|DBSCAN|OPTICS|Birch|Lasso|Ridge|ElasticNet|Perceptron|"
    r"Discriminant|Analysis|Mixture|Estimator|Pipeline|Sequential|Model|Ensemble|Net|"
    r"LassoCV|RidgeCV|SearchCV|Stacking|Voting|Bagging|Isotonic|Ransac|Huber|TheilSen|"
    r"Lars|Prophet|ARIMA|SARIMAX|ExponentialSmoothing|OneClassSVM|IsolationForest|"
    r"LocalOutlierFactor|LinearSVC|LinearSVR|NuSVC|NuSVR|LGBM\w*|XGB\w*|CatBoost\w*)$"
)
_PIPELINE_FUNCTIONS = frozenset({"make_pipeline", "Pipeline"})
_COMMON_PREPROCESSOR = re.compile(r"(Scaler|Encoder|Imputer|Normalizer|Transformer)$")
# Calls on a model that only ask it something (so they do not build it).
_MODEL_QUERIES = frozenset(
    {"summary", "get_params", "get_config", "count_params", "copy", "get_booster",
     "get_feature_names_out", "plot", "save", "save_model", "to_json"}
)  # fmt: skip
_SHOW_CALLS = frozenset({"print", "pprint", "display"})
# What a bare expression statement can do that matters (anything else only shows a value).
_BARE_KINDS = frozenset(
    {Work.CROSS_VALIDATE, Work.METRIC, Work.FIT, Work.PREDICT, Work.PREPROCESS, Work.MODEL,
     Work.CONFIGURE}
)  # fmt: skip
_SHOWN_KINDS = frozenset({Work.CROSS_VALIDATE, Work.METRIC})
_SEED_CALLS = frozenset({"seed", "manual_seed", "set_seed", "set_random_seed"})
_DATA_MODULES = frozenset({"np", "numpy", "json", "torch", "joblib", "pickle", "yaml", "pd"})
# Keyword arguments that name a hyper-parameter, a size or a seed, whatever the call.
HYPER_KEYWORDS = frozenset(
    {"n_estimators", "test_size", "train_size", "random_state", "seed", "C", "alpha",
     "l1_ratio", "max_depth", "min_samples_split", "min_samples_leaf", "max_features",
     "max_leaf_nodes", "learning_rate", "n_neighbors", "max_iter", "gamma", "kernel",
     "degree", "n_components", "n_clusters", "penalty", "solver", "tol", "cv", "n_splits",
     "n_repeats", "epochs", "batch_size", "lr", "eta", "subsample", "colsample_bytree",
     "num_leaves", "reg_alpha", "reg_lambda", "min_child_weight", "max_bin", "iterations",
     "depth", "hidden_layer_sizes", "activation", "dropout", "units", "n_iter", "k",
     "criterion", "loss", "weights", "metric", "p", "leaf_size", "n_samples",
     "n_features", "n_informative", "noise", "shuffle", "stratify_by", "validation_split",
     "num_boost_round", "early_stopping_rounds", "class_weight", "bootstrap", "var_smoothing",
     "fit_intercept", "multi_class", "nrows", "sep", "ngram_range", "max_df", "min_df",
     "n_jobs", "verbose", "threshold", "quantile", "window", "steps", "order"}
)  # fmt: skip
# Keywords of constructors that carry data or layout, not hyper-parameters.
_NOT_HYPER = frozenset({"columns", "index", "data", "dtype", "name", "names", "figsize"})
# Variable names too generic to name a step after: the class it holds names it instead.
_GENERIC_NAMES = frozenset(
    {"model", "models", "clf", "classifier", "regressor", "reg", "estimator", "est", "m",
     "mdl", "pipe", "pipeline", "grid", "search", "gs", "grid_search", "gridsearch",
     "search_cv", "rs", "cv", "best_model", "final_model", "my_model", "base_model",
     "best_estimator", "tuned_model", "net", "nn", "network"}
)  # fmt: skip


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a cell and the work it does."""

    kind: Work
    line: int  # in the cell's translated code, from 1
    end_line: int
    subject: str | None = None  # what it fits, predicts with or scores; a metric's name
    calls: tuple[str, ...] = ()  # the calls that decided the kind, for reasons
    shown_only: bool = False  # a metric whose value is only printed or shown, never bound


@dataclass(frozen=True)
class Constant:
    """A top-level `NAME = literal` line."""

    name: str
    line: int
    source: str
    scalar: bool  # a number, text or bool (not a list or dict)


@dataclass
class CellWork:
    """What one code cell does."""

    cell: Cell
    statements: list[Statement] = field(default_factory=list)
    shell: str | None = None  # why this is a shell cell ("installs packages"), or None
    error: str | None = None  # why its code cannot be exported, or None
    code: CellCode | None = None
    names: CellNames = field(default_factory=CellNames)
    constants: list[Constant] = field(default_factory=list)
    hyper_uses: dict[str, str] = field(default_factory=dict)  # name -> `keyword=` or `call(`
    dropped: list[str] = field(default_factory=list)  # interactive lines the export drops
    # Names whose objects the cell changes through another name: `for df in (train, test):
    # df["x"] = ...` changes train and test; through `combine = [train, test]`, those too.
    mutates: set[str] = field(default_factory=set)

    @property
    def kinds(self) -> list[Work]:
        return [s.kind for s in self.statements]

    @property
    def work(self) -> list[Statement]:
        """The statements that do something beyond importing and showing."""
        return [s for s in self.statements if s.kind not in (Work.IMPORT, Work.DISPLAY)]

    @property
    def exportable(self) -> bool:
        return self.code is not None and self.shell is None

    def value_defines(self) -> set[str]:
        return {n for n, k in self.names.defines.items() if k != "import"}


def read_work(cells: Sequence[Cell]) -> list[CellWork]:
    """What each code cell does, in notebook order (one CellWork per code cell given)."""
    parsed = [_parse(c) for c in cells]
    trees = [w.code.tree for w in parsed if w.code is not None]
    context = _Context.first_pass(trees)
    aliases: dict[str, set[str]] = {}
    for w in parsed:
        if w.code is None:
            continue
        body = w.code.tree.body
        w.mutates = _mutated_through_loops(body, aliases)
        _remember_aliases(body, aliases)
        w.statements = [context.statement(stmt) for stmt in body]
        w.constants = _constants(w.code)
        w.hyper_uses = _hyper_uses(w.code.tree)
    return parsed


# -- reading a cell -----------------------------------------------------------------------

_CELL_MAGIC = re.compile(r"^%%(\w+)")
_SHELL_CELL_MAGICS = frozenset(
    {"bash", "sh", "script", "system", "writefile", "file", "html", "javascript", "js",
     "latex", "markdown", "svg", "perl", "ruby", "python2", "python3", "pypy", "sql",
     "bigquery", "R", "cmd", "powershell"}
)  # fmt: skip
_INSTALL = re.compile(r"^[!%]\s*(pip3?|conda|mamba|micromamba|uv)\b.*\binstall\b")


def _shell(source: str) -> str | None:
    """Why a cell is a shell cell (only shell commands or a non-Python cell magic), or None."""
    lines = [
        ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    if not lines:
        return None
    magic = _CELL_MAGIC.match(lines[0])
    if magic and magic.group(1) in _SHELL_CELL_MAGICS:
        if magic.group(1) in ("writefile", "file"):
            return f"writes a file ({lines[0]})"
        if any(_INSTALL.match("!" + ln) for ln in lines[1:]):
            return f"installs packages ({lines[0]})"
        return f"runs a {magic.group(1)} cell ({lines[0]})"
    if not all(ln.startswith(("!", "%")) and not ln.startswith("%%") for ln in lines):
        return None
    installs = [ln for ln in lines if _INSTALL.match(ln)]
    if installs:
        return f"installs packages ({installs[0]})"
    if any(ln.startswith("!") or ln.startswith(("%sh", "%system", "%cd")) for ln in lines):
        return f"runs shell commands ({next(ln for ln in lines if ln.startswith(('!', '%')))})"
    return None


def _parse(cell: Cell) -> CellWork:
    work = CellWork(cell=cell)
    work.shell = _shell(cell.source)
    try:
        code = translate(cell.source, cell.location)
    except CellCodeError as exc:
        work.error = exc.message
        return work
    if work.shell is None:
        work.code = code
        work.names = cell_names(code.tree)
        work.dropped = [d.message for d in code.diagnostics]
    return work


def _constants(code: CellCode) -> list[Constant]:
    lines = code.source.splitlines()
    found = []
    for stmt in code.tree.body:
        target = _literal_target(stmt)
        if target is None:
            continue
        value = stmt.value  # type: ignore[attr-defined]
        literal = ast.literal_eval(value)
        scalar = isinstance(literal, bool | int | float | str) and not isinstance(literal, bytes)
        text = "\n".join(lines[stmt.lineno - 1 : stmt.end_lineno]).strip()
        found.append(Constant(target, stmt.lineno, text, scalar))
    return found


def _literal_target(stmt: ast.stmt) -> str | None:
    """`NAME = literal` (or `NAME: T = literal`): the name, else None."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value = stmt.targets[0], stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and stmt.simple:
        target, value = stmt.target, stmt.value
    else:
        return None
    if not isinstance(target, ast.Name):
        return None
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return target.id


def _hyper_uses(tree: ast.Module) -> dict[str, str]:
    """Names this code passes as hyper-parameters, sizes, seeds or input paths."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = call_name(node)
        constructor = bool(func) and func[:1].isupper()
        for kw in node.keywords:
            if kw.arg is None or kw.arg in _NOT_HYPER:
                continue
            if kw.arg in HYPER_KEYWORDS or constructor:
                for name in _names_in(kw.value):
                    found.setdefault(name, f"{kw.arg}=")
        if node.args and (_is_loader(func) or func in _SEED_CALLS or func == "open"):
            for name in _names_in(node.args[0]):
                found.setdefault(name, f"{func}(")
    return found


def _names_in(node: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]


# -- what a statement does ----------------------------------------------------------------


def call_name(call: ast.Call) -> str:
    """The called name: `read_csv` for `pd.read_csv(...)`, `fit` for `m.fit(...)`."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain or call chain starts from: `plt` in `plt.gca().plot`."""
    while True:
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _is_loader(name: str) -> bool:
    if name in _NOT_LOADERS:
        return False
    return (
        name.startswith(("read_", "load_", "fetch_"))
        or name in _LOAD_FUNCTIONS
        or (name.startswith("make_") and name.endswith(("s", "classification", "regression")))
    )


def _is_plot_call(call: ast.Call) -> bool:
    root = _root(call.func)
    name = call_name(call)
    if root in _PLOT_ROOTS or name in _PLOT_CALLS:
        return True
    return name.startswith("plot_") or name.endswith(("plot", "Display"))


def _walk_calls(node: ast.AST) -> list[ast.Call]:
    """The calls a statement makes when it runs, outer calls first (not inside nested
    function or class bodies, which run later)."""
    calls: list[ast.Call] = []
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if current is not node and isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        ):
            continue
        if isinstance(current, ast.Call):
            calls.append(current)
        stack.extend(reversed(list(ast.iter_child_nodes(current))))
    return calls


def snake(name: str) -> str:
    """`RandomForestClassifier` -> `random_forest_classifier`; `SVC` -> `svc`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


def class_label(name: str) -> str:
    """A short step name for an estimator class: `RandomForestClassifier` -> `random_forest`."""
    label = snake(name)
    for suffix in ("_classifier", "_regressor", "_estimator"):
        if label.endswith(suffix) and label != suffix.strip("_"):
            label = label[: -len(suffix)]
    return label


@dataclass
class _Context:
    """What the statements read so far have shown: which names hold models, preprocessors,
    predictions and metric values."""

    fitted: set[str]  # names something calls .fit( on, anywhere in the notebook
    estimator_args: set[str]  # names given to cross_val_score / GridSearchCV
    helpers: dict[str, Work]  # the notebook's own functions that fit or score -> which
    models: dict[str, str] = field(default_factory=dict)  # name -> step label
    preprocessors: dict[str, str] = field(default_factory=dict)  # name -> class
    predictions: dict[str, str] = field(default_factory=dict)  # name -> model label
    metrics: dict[str, str | None] = field(default_factory=dict)  # metric value -> subject

    @classmethod
    def first_pass(cls, trees: Iterable[ast.Module]) -> _Context:
        fitted: set[str] = set()
        estimator_args: set[str] = set()
        for tree in trees:
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                name = call_name(call)
                if name in _FIT_METHODS and isinstance(call.func, ast.Attribute):
                    receiver = call.func.value
                    if isinstance(receiver, ast.Name):
                        fitted.add(receiver.id)
                if (name in _CROSS_VALIDATION or name in _SEARCHES) and call.args:
                    first = call.args[0]
                    if isinstance(first, ast.Name):
                        estimator_args.add(first.id)
                for kw in call.keywords:
                    if kw.arg == "estimator" and isinstance(kw.value, ast.Name):
                        estimator_args.add(kw.value.id)
        helpers = {
            stmt.name: kind
            for tree in trees
            for stmt in tree.body
            if isinstance(stmt, ast.FunctionDef) and (kind := _helper_kind(stmt)) is not None
        }
        return cls(fitted, estimator_args, helpers)

    # -- labels --------------------------------------------------------------------------
    def model_label(self, node: ast.expr | None) -> str | None:
        """The step label of the model an expression holds or builds."""
        if isinstance(node, ast.Name):
            if node.id in self.models and node.id.lower().rstrip("_0123456789") in _GENERIC_NAMES:
                return self.models[node.id]
            return node.id
        if isinstance(node, ast.Call):
            return self._built_label(node)
        if isinstance(node, ast.Attribute):  # grid.best_estimator_
            return self.model_label(node.value)
        return None

    def _built_label(self, call: ast.Call) -> str | None:
        name = call_name(call)
        if name in _SEARCHES:
            inner = call.args[0] if call.args else _keyword(call, "estimator")
            label = self.model_label(inner) if inner is not None else None
            return f"{label}_search" if label else "search"
        if name in _PIPELINE_FUNCTIONS:
            # Scalers, encoders and imputers are in every pipeline: name it by the rest.
            parts = [
                self.model_label(part)
                for part in _pipeline_parts(call)
                if not _COMMON_PREPROCESSOR.search(_class_of(part))
            ]
            kept = [p for p in parts if p][-3:]
            return "_".join(kept) if kept else "pipeline"
        if name[:1].isupper():
            return class_label(name)
        return None

    # -- statements ----------------------------------------------------------------------
    def statement(self, stmt: ast.stmt) -> Statement:
        kind, subject, calls, shown = self._classify(stmt)
        self._remember(stmt, kind, subject)
        line, end = stmt.lineno, stmt.end_lineno or stmt.lineno
        for dec in getattr(stmt, "decorator_list", []):
            line = min(line, dec.lineno)
        return Statement(kind, line, end, subject, tuple(calls), shown)

    def _classify(self, stmt: ast.stmt) -> tuple[Work, str | None, list[str], bool]:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            return Work.IMPORT, None, [], False
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return Work.DEFINE, stmt.name, [], False
        constant = _literal_target(stmt)
        if constant is not None:
            return Work.CONSTANT, constant, [], False
        value = stmt.value if isinstance(stmt, ast.Expr | ast.Assign | ast.AnnAssign) else None
        outer = call_name(value) if isinstance(value, ast.Call) else ""
        if isinstance(value, ast.Call) and _is_plot_call(value) and outer not in _SHOW_CALLS:
            return Work.DISPLAY, None, [outer], False
        found = self._call_kinds(stmt) + self._read_kinds(stmt)
        shown = False
        if isinstance(stmt, ast.Expr):
            # A bare expression binds nothing: only what it changes or scores counts.
            shown = outer in _SHOW_CALLS
            keep = _SHOWN_KINDS if shown else _BARE_KINDS
            found = [f for f in found if f[0] in keep or (f[0] is Work.CLEAN and _inplace(stmt))]
        if found:
            kind, subject, _ = min(found, key=lambda f: PRECEDENCE.index(f[0]))
            calls = list(dict.fromkeys(c for k, _, c in found if k is kind and c))
            if kind is Work.CLEAN and not self._updates_in_place(stmt):
                kind = Work.FEATURES
            return kind, subject, calls, shown and kind is Work.METRIC
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Call) and _mutates(stmt.value):
                return Work.FEATURES, None, [outer], False
            return Work.DISPLAY, None, [outer] if outer else [], False
        inner = _walk_calls(stmt)
        if inner and all(_is_plot_call(c) for c in inner) and not _assigned_names(stmt):
            return Work.DISPLAY, None, [call_name(inner[0])], False
        return Work.FEATURES, None, [], False

    def _call_kinds(self, stmt: ast.stmt) -> list[tuple[Work, str | None, str]]:
        found: list[tuple[Work, str | None, str]] = []
        target = _assigned_name(stmt)
        for call in _walk_calls(stmt):
            name = call_name(call)
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            kind: Work | None = None
            subject: str | None = None
            if name in _CROSS_VALIDATION:
                kind = Work.CROSS_VALIDATE
                first = call.args[0] if call.args else _keyword(call, "estimator")
                subject = self.model_label(first) if first is not None else None
            elif name in _FIT_METHODS and receiver is not None:
                if self._is_preprocessor(receiver):
                    kind, subject = Work.PREPROCESS, self._preprocessor_class(receiver)
                elif isinstance(receiver, ast.Call):  # nb = MultinomialNB().fit(X, y)
                    kind, subject = Work.FIT, self._target_label(target, receiver)
                else:
                    kind, subject = Work.FIT, self.model_label(receiver)
            elif name in _FIT_TRANSFORM and receiver is not None:
                if self._is_model(receiver) and not self._is_preprocessor(receiver):
                    kind, subject = Work.FIT, self.model_label(receiver)
                else:
                    kind, subject = Work.PREPROCESS, self._preprocessor_class(receiver)
            elif name in _PREDICT_METHODS and receiver is not None:
                kind, subject = Work.PREDICT, self.model_label(receiver)
            elif name in _SCORE_METHODS and receiver is not None and self._is_model(receiver):
                kind, subject = Work.METRIC, self.model_label(receiver)
            elif name in _METRIC_FUNCTIONS or (
                _METRIC_SUFFIX.search(name) and name not in _CROSS_VALIDATION
            ):
                kind, subject = Work.METRIC, self._metric_subject(call, name)
            elif receiver is None and name in self.helpers:
                kind = self.helpers[name]
                first = call.args[0] if call.args else None
                subject = self.model_label(first) if first is not None else None
            elif name == "train_test_split":
                kind = Work.SPLIT
            elif _is_loader(name) or (name == "load" and _root(call.func) in _DATA_MODULES):
                kind = Work.LOAD
            elif name in _SEARCHES or name in _PIPELINE_FUNCTIONS:
                kind, subject = Work.MODEL, self._target_label(target, call)
            elif name[:1].isupper() and name not in _DATA_CLASSES:
                if _TRANSFORMER_CLASS.search(name) and not _ESTIMATOR_CLASS.search(name):
                    kind, subject = Work.PREPROCESS, name
                elif (target is not None and target in self.fitted | self.estimator_args) or (
                    _ESTIMATOR_CLASS.search(name)
                ):
                    kind, subject = Work.MODEL, self._target_label(target, call)
            elif name in _CONFIGURE_CALLS and _root(call.func) in _CONFIGURE_ROOTS:
                kind = Work.CONFIGURE
            elif (
                receiver is not None
                and _root(receiver) in self.models
                and name not in _MODEL_QUERIES
            ):
                kind, subject = Work.MODEL, self.model_label(receiver)  # model.compile(...)
            elif name in _CLEAN_METHODS:
                kind = Work.CLEAN
            if kind is not None:
                found.append((kind, subject, name))
        return found

    def _read_kinds(self, stmt: ast.stmt) -> list[tuple[Work, str | None, str]]:
        """Metrics read from metric values or predictions: `scores.mean()`, `grid.best_score_`,
        `(y_pred == y_test).mean()`."""
        found: list[tuple[Work, str | None, str]] = []
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and node.attr in _METRIC_ATTRIBUTES:
                found.append((Work.METRIC, self.model_label(node.value), node.attr))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id in self.metrics:
                    found.append((Work.METRIC, self.metrics[node.id] or node.id, ""))
                elif node.id in self.predictions and _assigned_name(stmt) is not None:
                    found.append((Work.METRIC, self.predictions[node.id], ""))
        return found

    def _remember(self, stmt: ast.stmt, kind: Work, subject: str | None) -> None:
        targets = _assigned_names(stmt)
        for name in targets:
            self.predictions.pop(name, None)
            self.metrics.pop(name, None)
        if kind is Work.MODEL and subject:
            for name in targets:
                self.models[name] = subject
        elif kind is Work.PREPROCESS and subject:
            for name in targets:
                if isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(
                    stmt.value, ast.Call
                ) and call_name(stmt.value)[:1].isupper():  # fmt: skip
                    self.preprocessors[name] = subject
        elif kind is Work.PREDICT and subject:
            for name in targets:
                self.predictions[name] = subject
        elif kind in (Work.METRIC, Work.CROSS_VALIDATE):
            # rows.append({"r2": r2_score(...)}) makes `rows` hold metrics too.
            self.metrics.update(dict.fromkeys([*targets, *_filled(stmt)], subject))
        elif kind is Work.FIT and subject and isinstance(stmt, ast.Assign):
            for name in targets:  # history = model.fit(...); model = LinearRegression().fit(...)
                self.models.setdefault(name, subject)

    def _is_preprocessor(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.preprocessors
        if isinstance(node, ast.Call):
            name = call_name(node)
            return bool(_TRANSFORMER_CLASS.search(name)) and not _ESTIMATOR_CLASS.search(name)
        return False

    def _preprocessor_class(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.preprocessors.get(node.id)
        if isinstance(node, ast.Call):
            return call_name(node)
        return None

    def _is_model(self, node: ast.expr) -> bool:
        root = _root(node)
        if root is not None and (root in self.models or root in self.fitted):
            return True
        return isinstance(node, ast.Call) and bool(_ESTIMATOR_CLASS.search(call_name(node)))

    def _target_label(self, target: str | None, call: ast.Call) -> str | None:
        built = self._built_label(call)
        if target is None:
            return built
        if target.lower().rstrip("_0123456789") in _GENERIC_NAMES and built:
            return built
        return target

    def _metric_subject(self, call: ast.Call, name: str) -> str:
        for arg in call.args:
            if isinstance(arg, ast.Name) and arg.id in self.predictions:
                return self.predictions[arg.id]
            if isinstance(arg, ast.Call) and call_name(arg) in _PREDICT_METHODS:
                label = self.model_label(getattr(arg.func, "value", None))
                if label:
                    return label
        return re.sub(r"_score$", "", name)

    def _updates_in_place(self, stmt: ast.stmt) -> bool:
        """`df = df.dropna()`, `df["a"] = df["a"].fillna(0)`, `df.dropna(inplace=True)`."""
        if isinstance(stmt, ast.Expr):
            return _inplace(stmt)
        targets = _assigned_bases(stmt)
        reads = {_root(c.func) for c in _walk_calls(stmt)}
        return bool(targets & reads)


def _helper_kind(func: ast.FunctionDef) -> Work | None:
    """Whether a function the notebook defines scores (METRIC) or fits (FIT) when called."""
    calls = [c for c in ast.walk(func) if isinstance(c, ast.Call)]
    names = {call_name(c) for c in calls}
    metrics = {n for n in names if n in _METRIC_FUNCTIONS or _METRIC_SUFFIX.search(n)}
    metrics |= names & (_CROSS_VALIDATION | {"score"})
    plots = any(_is_plot_call(c) and call_name(c) not in _SHOW_CALLS for c in calls)
    if metrics and not (plots and metrics <= REPORTS):
        return Work.METRIC
    if names & _FIT_METHODS:
        return Work.FIT
    return None


def _inplace(stmt: ast.stmt) -> bool:
    return any(kw.arg == "inplace" for c in _walk_calls(stmt) for kw in c.keywords)


def _class_of(node: ast.expr) -> str:
    return call_name(node) if isinstance(node, ast.Call) else ""


def _remember_aliases(body: list[ast.stmt], aliases: dict[str, set[str]]) -> None:
    """`combine = [train, test]`: combine holds train and test."""
    for stmt in body:
        for name in _assigned_names(stmt):
            aliases.pop(name, None)
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.List | ast.Tuple)
        ):
            held = {e.id for e in stmt.value.elts if isinstance(e, ast.Name)}
            if held:
                aliases[stmt.targets[0].id] = held


def _mutated_through_loops(body: list[ast.stmt], aliases: dict[str, set[str]]) -> set[str]:
    """Names a `for` loop changes through its loop variable (see CellWork.mutates)."""
    found: set[str] = set()
    for loop in (n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.For)):
        if not isinstance(loop.target, ast.Name):
            continue
        var = loop.target.id
        if not any(_changes(node, var) for stmt in loop.body for node in ast.walk(stmt)):
            continue
        for name in _names_in(loop.iter):
            found.add(name)
            found |= aliases.get(name, set())
    return found


def _changes(node: ast.AST, var: str) -> bool:
    """Whether `node` changes the object `var` holds: `var[...] = `, `var.x = `,
    `var.method(..., inplace=True)`."""
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(
            isinstance(t, ast.Subscript | ast.Attribute) and _root(t) == var for t in targets
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _root(node.func.value) == var and any(kw.arg == "inplace" for kw in node.keywords)
    return False


def _filled(stmt: ast.stmt) -> list[str]:
    """Containers a statement fills: `rows.append(...)`, `scores[name] = ...`."""
    names = []
    for node in ast.walk(stmt):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "extend", "update", "add", "setdefault")
            and isinstance(node.func.value, ast.Name)
        ):
            names.append(node.func.value.id)
        elif isinstance(node, ast.Assign):
            names += [
                t.value.id
                for t in node.targets
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
            ]
    return names


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _pipeline_parts(call: ast.Call) -> list[ast.expr]:
    """The steps of `make_pipeline(a, b)` or `Pipeline([("a", a), ("b", b)])`."""
    if call_name(call) == "make_pipeline":
        return list(call.args)
    steps = call.args[0] if call.args else _keyword(call, "steps")
    if isinstance(steps, ast.List | ast.Tuple):
        return [e.elts[1] for e in steps.elts if isinstance(e, ast.Tuple) and len(e.elts) == 2]
    return []


def _mutates(call: ast.Call) -> bool:
    """Whether a bare call looks like it changes something (so it is not display)."""
    name = call_name(call)
    if any(kw.arg == "inplace" for kw in call.keywords):
        return True
    return name in {"append", "extend", "update", "add", "insert", "pop", "remove", "sort",
                    "clear", "setdefault", "discard", "compile", "add_module", "to_csv",
                    "to_parquet", "save", "dump", "write", "mkdir", "makedirs", "seed",
                    "set_params", "log_metric", "log_metrics", "log_param", "log_params",
                    "log_model", "log_artifact", "track_data", "exec", "run"}  # fmt: skip


def _assigned_name(stmt: ast.stmt) -> str | None:
    names = _assigned_names(stmt)
    return names[0] if len(names) == 1 else None


def _assigned_names(stmt: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    names: list[str] = []
    for t in targets:
        if isinstance(t, ast.Name):
            names.append(t.id)
        elif isinstance(t, ast.Tuple | ast.List):
            names.extend(e.id for e in t.elts if isinstance(e, ast.Name))
    return names


def _assigned_bases(stmt: ast.stmt) -> set[str]:
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    bases = {_root(t) for t in targets}
    return {b for b in bases if b}
