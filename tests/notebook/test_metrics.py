"""The metric rule: which values of a notebook's steps are its metrics, and its model.

The notebooks are written the way tutorials are: the headline number is the last bare
expression of a cell, plots and prints sit among the work, fit and score share a cell.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.notebook.analysis import StepGraph
from nbops.notebook.metrics import (
    expression_name,
    looks_like_metric_name,
    metric_sources,
    model_source,
)

Analyse = Callable[..., StepGraph]

SETUP = (
    "import numpy as np\n"
    "import matplotlib.pyplot as plt\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.metrics import accuracy_score\n"
    "from sklearn.model_selection import cross_val_score, train_test_split\n"
    "from sklearn.neighbors import KNeighborsClassifier\n"
    "from sklearn.linear_model import LogisticRegression",
    ["setup"],
)
SPLIT = (
    "X, y = load_iris(return_X_y=True)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
    ["transform"],
)
FIT_KNN = ("knn = KNeighborsClassifier(n_neighbors=1)\nknn.fit(X_train, y_train)", ["train"])


def metrics(graph: StepGraph) -> dict[str, tuple[str, str]]:
    return {m.name: (m.step, m.value) for m in metric_sources(graph)}


def step_code(graph: StepGraph, key: str) -> str:
    step = next(s for s in graph.steps if s.key == key)
    return "".join(c.code.body for c in step.cells)


# -- headlines -------------------------------------------------------------------------------


def test_the_last_expression_of_an_evaluate_cell_is_kept_and_named_after_it(
    analyse_cells: Analyse,
) -> None:
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, ("knn.score(X_test, y_test)", ["evaluate"])])

    assert "knn_score = knn.score(X_test, y_test)" in step_code(graph, "evaluate")
    assert metrics(graph) == {"knn_score": ("evaluate", "knn_score")}


@pytest.mark.parametrize(
    ("expression", "metric"),
    [
        ("scores.mean()", "scores_mean"),
        ("np.mean(scores)", "scores_mean"),
        ("grid.best_score_", "grid_best_score"),
        ("round(knn.score(X_test, y_test), 3)", "knn_score"),
        ("cross_val_score(knn, X, y, cv=5).mean()", "cross_val_score_mean"),
        ("results['test_score'].mean()", "results_test_score_mean"),
    ],
)
def test_a_kept_expression_is_named_for_what_it_computes(expression: str, metric: str) -> None:
    node = ast.parse(expression, mode="eval").body
    assert expression_name(node, frozenset({"np"})) == metric


@pytest.mark.parametrize("other_cell", ["knn_score = 0", "print(knn_score)"])
def test_a_kept_value_never_takes_a_name_another_cell_binds_or_reads(
    analyse_cells: Analyse, other_cell: str
) -> None:
    score = ("knn.score(X_test, y_test)", ["evaluate"])
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, (other_cell, []), score])
    assert "knn_score_value = knn.score(X_test, y_test)" in step_code(graph, "evaluate")
    assert metrics(graph) == {"knn_score": ("evaluate", "knn_score_value")}


def test_a_kept_expression_never_shadows_a_name_the_notebook_uses(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("accuracy_score(y_test, knn.predict(X_test))", ["evaluate"]),
    ]
    graph = analyse_cells(cells)

    code = step_code(graph, "evaluate")
    assert "accuracy_score_value = accuracy_score(y_test, knn.predict(X_test))" in code
    # The metric keeps the plain name; the value gets one the function cannot collide with.
    assert metrics(graph) == {"accuracy_score": ("evaluate", "accuracy_score_value")}


@pytest.mark.parametrize(
    "last_line",
    [
        "X_test",  # a bare name: shown, already a value
        "df.head()",
        "scores.describe()",
        "X_test.shape",
        "plt.show()",
        "plt.plot(X_test[:, 0])",
        "print('test set:', len(X_test))",
        "knn.predict(X_test)",
        "len(X_test)",
        "df.sort_values('a')",
        "pd.DataFrame({'score': [knn.score(X_test, y_test)]})",
        "knn.score(X_test, y_test);",  # the author hid it
        "'accuracy: %.2f' % 0.5",
    ],
)
def test_displays_prints_plots_and_predictions_stay_display_only(
    analyse_cells: Analyse, last_line: str
) -> None:
    import_pd = ("import pandas as pd\ndf = pd.DataFrame({'a': [1]})\nscores = df.a", ["transform"])
    graph = analyse_cells([SETUP, SPLIT, import_pd, FIT_KNN, (last_line, ["evaluate"])])

    evaluate = next(s for s in graph.steps if s.key == "evaluate")
    assert evaluate.cells[0].headline is None
    assert metrics(graph) == {}


def test_a_train_cell_keeps_its_last_expression_only_when_it_is_a_metric(
    analyse_cells: Analyse,
) -> None:
    fit_and_score = (
        "knn = KNeighborsClassifier(n_neighbors=1).fit(X_train, y_train)\n"
        "knn.score(X_test, y_test)",
        ["train"],
    )
    fit_and_show = ("logreg = LogisticRegression()\nlogreg.fit(X_train, y_train)", ["train:lr"])
    graph = analyse_cells([SETUP, SPLIT, fit_and_score, fit_and_show])

    assert metrics(graph) == {"knn_score": ("train", "knn_score")}
    assert "logreg_fit =" not in step_code(graph, "train:lr")


# -- which values are metrics ----------------------------------------------------------------


def test_plot_bounds_sizes_constants_and_predictions_of_an_evaluate_step_are_not_metrics(
    analyse_cells: Analyse,
) -> None:
    plot = (
        "y_pred = knn.predict(X_test)\n"
        "x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1\n"
        "h = .02  # step size in the mesh\n"
        "xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(x_min, x_max, h))\n"
        "n_test = len(X_test)\n"
        "fig, ax = plt.subplots()\n"
        "ax.scatter(X[:, 0], X[:, 1], c=y)\n"
        "correct = (y_pred == y_test).sum()\n"
        "accuracy = accuracy_score(y_test, knn.predict(X_test))\n"
        "ax.set_title(f'accuracy {accuracy:.2f}')",
        ["evaluate"],
    )
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, plot])

    assert set(metrics(graph)) == {"correct", "accuracy"}


@pytest.mark.parametrize(
    "last_line",
    [
        "nbops.log_metric('accuracy', accuracy)",
        "mlflow.log_metrics({'accuracy': accuracy})",
        "log_metric('accuracy', accuracy)",
    ],
)
def test_a_cell_ending_with_a_tracking_call_has_no_headline_value(
    analyse_cells: Analyse, last_line: str
) -> None:
    setup = (SETUP[0] + "\nimport nbops\nimport mlflow\nfrom nbops import log_metric", SETUP[1])
    scored = (f"accuracy = knn.score(X_test, y_test)\n{last_line}", ["evaluate"])
    graph = analyse_cells([setup, SPLIT, FIT_KNN, scored])

    assert set(metrics(graph)) == {"accuracy"}
    assert graph.steps[-1].outputs == ["accuracy"]


def test_a_kept_metric_printed_as_a_percentage_stays_the_kept_value(
    analyse_cells: Analyse,
) -> None:
    shown = (
        "acc = accuracy_score(y_test, knn.predict(X_test))\n"
        'print("Test accuracy: {:.2f}%".format(acc * 100))',
        ["evaluate"],
    )
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, shown])

    assert metrics(graph) == {"acc": ("evaluate", "acc")}
    assert "acc * 100" in step_code(graph, "evaluate")  # the print is left as written
    assert graph.diagnostics == []


def test_clock_readings_of_an_evaluate_step_are_not_metrics(analyse_cells: Analyse) -> None:
    timed = (
        "import time\n"
        "start = time.time()\n"
        "accuracy = accuracy_score(y_test, knn.predict(X_test))\n"
        "elapsed_s = time.perf_counter() - start",
        ["evaluate"],
    )
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, timed])

    assert set(metrics(graph)) == {"accuracy"}


def test_a_metric_computed_in_a_cell_that_fits_is_a_metric(analyse_cells: Analyse) -> None:
    train = (
        "logreg = LogisticRegression(max_iter=200)\n"
        "logreg.fit(X_train, y_train)\n"
        "train_acc = logreg.score(X_train, y_train)\n"
        "cv_mean = cross_val_score(logreg, X, y, cv=3).mean()\n"
        "n_iter = logreg.n_iter_[0]\n"
        "n_classes = len(logreg.classes_)",
        ["train"],
    )
    graph = analyse_cells([SETUP, SPLIT, train])

    assert set(metrics(graph)) == {"train_acc", "cv_mean"}


def test_two_evaluate_steps_defining_one_name_both_keep_their_metric(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("accuracy = knn.score(X_test, y_test)", ["evaluate:knn"]),
        ("logreg = LogisticRegression().fit(X_train, y_train)", ["train:logreg"]),
        ("accuracy = logreg.score(X_test, y_test)", ["evaluate:logreg"]),
    ]
    graph = analyse_cells(cells)

    assert metrics(graph) == {
        "knn.accuracy": ("evaluate:knn", "accuracy"),
        "logreg.accuracy": ("evaluate:logreg", "accuracy"),
    }


def test_steps_sharing_a_name_and_a_metric_are_told_apart_by_role(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        ("knn = KNeighborsClassifier().fit(X_train, y_train)\nscore = knn.score(X_train, y_train)",
         ["train:knn"]),
        ("score = knn.score(X_test, y_test)", ["evaluate:knn"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    assert set(metrics(graph)) == {"train_knn.score", "evaluate_knn.score"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acc", True), ("test_accuracy", True), ("f1_macro", True), ("valLoss", True),
        ("r2", True), ("rmse", True), ("best_score_", True),
        ("x_min", False), ("h", False), ("n_neighbors", False), ("across", False),
        ("scaler", False), ("y_pred", False),
    ],
)  # fmt: skip
def test_metric_like_names(name: str, expected: bool) -> None:
    assert looks_like_metric_name(name) is expected


@given(
    st.from_regex(
        r"[A-Za-z_][A-Za-z0-9_]{0,20}(\.[A-Za-z_][A-Za-z0-9_]{0,10}){0,2}", fullmatch=True
    )
)
def test_a_kept_expression_name_is_always_a_valid_identifier(dotted: str) -> None:
    for text in (dotted, f"{dotted}()", f"{dotted}.mean()", f"{dotted}['k']"):
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError:
            continue  # a keyword as a name part
        name = expression_name(node)
        assert name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)


# -- printed, not kept -----------------------------------------------------------------------


DIABETES_SETUP = (
    "from sklearn.datasets import load_diabetes\n"
    "from sklearn.linear_model import LinearRegression\n"
    "from sklearn.metrics import mean_squared_error, r2_score, accuracy_score\n"
    "from sklearn.neighbors import KNeighborsClassifier",
    ["setup"],
)
DIABETES_FIT = (
    "X, y = load_diabetes(return_X_y=True)\n"
    "X_train, X_test, y_train, y_test = X[:-20], X[-20:], y[:-20], y[-20:]\n"
    "regr = LinearRegression()\n"
    "regr.fit(X_train, y_train); y_pred = regr.predict(X_test)",
    ["train"],
)
DIABETES_PRINTS = (
    'print("Mean squared error: %.2f" % mean_squared_error(y_test, y_pred))\n'
    'print("Coefficient of determination: %.2f" % r2_score(y_test, y_pred))',
    ["evaluate"],
)


def test_metrics_an_evaluate_cell_only_prints_are_kept_under_the_names_the_warning_proposed(
    analyse_cells: Analyse,
) -> None:
    cells = [
        DIABETES_SETUP,
        DIABETES_FIT,
        DIABETES_PRINTS,
        ("knn = KNeighborsClassifier().fit(X_train, y_train > 150)\n"
         "pred = knn.predict(X_test)\n"
         'print("{:.2f}".format(knn.score(X_test, y_test > 150)))\n'
         'print(f"accuracy: {accuracy_score(y_test > 150, pred):.3f}")', ["evaluate:knn"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    assert metrics(graph) == {
        "mean_squared_error": ("evaluate", "mean_squared_error_value"),
        "r2": ("evaluate", "r2"),
        "knn_score": ("evaluate:knn", "knn_score"),
        "accuracy": ("evaluate:knn", "accuracy"),
    }
    assert graph.diagnostics == []


def test_a_printed_metric_is_assigned_before_its_print_and_the_print_shows_the_name(
    analyse_cells: Analyse,
) -> None:
    cells = [
        DIABETES_SETUP,
        DIABETES_FIT,
        (DIABETES_PRINTS[0] + '\nprint(f"r2 again: {r2_score(y_test, y_pred):.3f}")', ["evaluate"]),
    ]
    graph = analyse_cells(cells)

    assert step_code(graph, "evaluate") == (
        "mean_squared_error_value = mean_squared_error(y_test, y_pred)\n"
        'print("Mean squared error: %.2f" % mean_squared_error_value)\n'
        "r2 = r2_score(y_test, y_pred)\n"
        'print("Coefficient of determination: %.2f" % r2)\n'
        'print(f"r2 again: {r2_score(y_test, y_pred):.3f}")\n'
    )


def test_two_printed_metrics_of_one_step_with_one_name_are_numbered(
    analyse_cells: Analyse,
) -> None:
    cells = [
        DIABETES_SETUP,
        DIABETES_FIT,
        ('print("train", r2_score(y_train, regr.predict(X_train)))\n'
         'print("test", r2_score(y_test, y_pred))', ["evaluate"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    assert set(metrics(graph)) == {"r2", "r2_2"}


def test_a_printed_metric_of_a_train_cell_is_still_warned_about_and_not_kept(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        ("knn = KNeighborsClassifier().fit(X_train, y_train)\n"
         "print(accuracy_score(y_train, knn.predict(X_train)))", ["train"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    [warning] = graph.diagnostics
    assert "prints accuracy_score(y_train, knn.predict(X_train)) without keeping it" in (
        warning.message
    )
    assert "assign it (accuracy = accuracy_score(y_train, knn.predict(X_train)))" in (
        warning.message
    )
    assert metrics(graph) == {}


def test_prints_that_show_no_metric_are_left_as_they_are(analyse_cells: Analyse) -> None:
    shows = (
        'y_pred = knn.predict(X_test)\nprint("predictions:", y_pred)\n'
        "print(X_test.shape, len(y_test))"
    )
    graph = analyse_cells([SETUP, SPLIT, FIT_KNN, (shows, ["evaluate"])])

    assert step_code(graph, "evaluate") == shows
    assert metrics(graph) == {}


def test_a_printed_metric_whose_inputs_the_cell_changes_after_the_print_is_only_warned_about(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("y_pred = knn.predict(X_test)\nprint(accuracy_score(y_test, y_pred))\n"
         "y_pred = knn.predict(X_train)", ["evaluate"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    [warning] = graph.diagnostics
    assert "prints accuracy_score(y_test, y_pred) without keeping it" in warning.message
    assert metrics(graph) == {}


def test_printing_a_kept_metric_is_not_warned_about(analyse_cells: Analyse) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("acc = knn.score(X_test, y_test)\nprint(f'acc: {acc:.3f}')", ["evaluate"]),
        ("print('test score:', knn.score(X_test, y_test))\nknn.score(X_test, y_test)",
         ["evaluate"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    assert graph.diagnostics == []


def test_printing_a_kept_metric_rounded_is_not_warned_about(analyse_cells: Analyse) -> None:
    cells = [
        SETUP,
        SPLIT,
        ("knn = KNeighborsClassifier().fit(X_train, y_train)\n"
         "train_accuracy = knn.score(X_train, y_train)\n"
         "print('training accuracy:', round(train_accuracy, 3))", ["train"]),
        ("acc = knn.score(X_test, y_test)\nprint(float(round(acc, 2)))", ["evaluate"]),
    ]  # fmt: skip
    graph = analyse_cells(cells)

    assert graph.diagnostics == []


def test_a_printed_metric_rounded_is_kept_without_the_rounding_in_its_name(
    analyse_cells: Analyse,
) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("print(round(knn.score(X_test, y_test), 3))", ["evaluate"]),
    ]
    graph = analyse_cells(cells)

    assert graph.diagnostics == []
    assert metrics(graph) == {"knn_score": ("evaluate", "knn_score")}
    assert step_code(graph, "evaluate") == (
        "knn_score = round(knn.score(X_test, y_test), 3)\nprint(knn_score)"
    )


# -- the model -------------------------------------------------------------------------------


def test_the_model_is_what_the_last_evaluate_step_predicts_with(analyse_cells: Analyse) -> None:
    cells = [
        SETUP,
        SPLIT,
        ("scaler = __import__('sklearn.preprocessing').preprocessing.StandardScaler()\n"
         "scaler.fit(X_train)", ["transform:scale"]),
        FIT_KNN,
        ("y_pred = knn.predict(scaler.transform(X_test))", ["evaluate:knn"]),
        ("logreg = LogisticRegression().fit(X_train, y_train)", ["train:logreg"]),
        ("proba = logreg.predict_proba(scaler.transform(X_test))", ["evaluate:logreg"]),
    ]  # fmt: skip
    model = model_source(analyse_cells(cells))

    assert model is not None and (model.step, model.value) == ("evaluate:logreg", "logreg")


def test_without_predictions_the_model_is_the_only_fitted_estimator(
    analyse_cells: Analyse,
) -> None:
    cells = [SETUP, SPLIT, FIT_KNN, ("print('done')", ["evaluate"])]
    model = model_source(analyse_cells(cells))

    assert model is not None and (model.step, model.value) == ("train", "knn")


def test_two_fitted_estimators_and_no_predictions_give_no_model(analyse_cells: Analyse) -> None:
    cells = [
        SETUP,
        SPLIT,
        FIT_KNN,
        ("logreg = LogisticRegression().fit(X_train, y_train)", ["train:logreg"]),
    ]
    assert model_source(analyse_cells(cells)) is None
