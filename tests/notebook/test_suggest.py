"""Suggested roles: what `suggest_roles` proposes for notebooks written as tutorials are.

Notebooks are real files built with nbformat's constructors, in the styles real tutorials
have: no cell ids (nbformat 4.4), imports mixed with loading, constants scattered over cells,
plots and prints between the work, a model fitted again after `X_train` is redefined,
cross-validation, grid search, fit and score in one cell, `!pip install` cells.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.errors import NbopsError
from nbops.notebook.analysis import analyse
from nbops.notebook.read import read_notebook
from nbops.notebook.suggest import Suggestion, suggest_roles

from .conftest import MakeNotebook, build_notebook, without_ids

IMPORTS = (
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.model_selection import train_test_split, cross_val_score, GridSearchCV\n"
    "from sklearn.neighbors import KNeighborsClassifier\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.decomposition import PCA\nfrom sklearn.svm import SVC\n"
    "from sklearn.metrics import accuracy_score"
)
LOAD = "iris = load_iris()\nX, y = iris.data, iris.target"
SPLIT = "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)"


def suggest(make_notebook: MakeNotebook, sources: list[str], **kwargs: bool) -> Suggestion:
    path = make_notebook([(s, []) for s in sources])
    return suggest_roles(read_notebook(path), **kwargs)


def tags_of(s: Suggestion) -> list[str | None]:
    return [str(c.tag.step_tag) if c.tag else None for c in s.cells]


# -- roles from the code ------------------------------------------------------------------


def test_imports_and_definitions_are_setup(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "def ratio(a, b):\n    return a / b", LOAD, "r = ratio(X[:, 0], X[:, 1])\nr"],
    )
    assert tags_of(s)[:2] == ["setup", "setup"]
    assert "defines ratio" in s.cells[1].reason


def test_a_cell_of_imports_and_loading_is_judged_by_its_loading(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [
            "import pandas as pd\nfrom sklearn.datasets import load_wine\n"
            "wine = load_wine(as_frame=True)\ndf = wine.frame",
            "from sklearn.linear_model import LogisticRegression\n"
            "model = LogisticRegression(max_iter=5000)\n"
            "model.fit(df.drop(columns='target'), df['target'])",
        ],
    )
    assert tags_of(s) == ["transform:load", "train:logistic_regression"]
    assert s.cells[0].reason.startswith("reads the data (load_wine)")
    assert s.exports


def test_constants_passed_as_hyper_parameters_form_the_parameters_cell(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [
            IMPORTS,
            "TEST_SIZE = 0.25\nSEED = 3\nN_NEIGHBORS = 7",
            LOAD,
            "X_train, X_test, y_train, y_test = train_test_split("
            "X, y, test_size=TEST_SIZE, random_state=SEED)",
            "knn = KNeighborsClassifier(n_neighbors=N_NEIGHBORS)\nknn.fit(X_train, y_train)",
            "accuracy = knn.score(X_test, y_test)",
        ],
    )
    assert tags_of(s)[1] == "parameters"
    assert s.parameters_cell == 1
    assert "TEST_SIZE as test_size=" in s.cells[1].reason
    assert [p.name for p in analyse(s.applied()).parameters] == ["TEST_SIZE", "SEED", "N_NEIGHBORS"]
    assert s.gather == ()


def test_scattered_constants_are_reported_as_lines_to_gather_not_rewritten(
    make_notebook: MakeNotebook,
) -> None:
    knn_cell = "N_NEIGHBORS = 5\nknn = KNeighborsClassifier(n_neighbors=N_NEIGHBORS)"
    s = suggest(
        make_notebook,
        [IMPORTS, "TEST_SIZE = 0.3", LOAD, SPLIT.replace("0.3", "TEST_SIZE"), knn_cell,
         "knn.fit(X_train, y_train)\nacc = knn.score(X_test, y_test)"],
    )  # fmt: skip
    assert s.parameters_cell == 1
    [line] = s.gather
    assert (line.number, line.line, line.name, line.source, line.use) == (
        5, 1, "N_NEIGHBORS", "N_NEIGHBORS = 5", "n_neighbors=",
    )  # fmt: skip
    assert s.notebook.cells[4].source == knn_cell
    assert s.exports


def test_without_a_constants_only_cell_no_parameters_cell_is_proposed(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, "SIZE = 0.2\n" + SPLIT.replace("0.3", "SIZE"),
         "knn = KNeighborsClassifier()\nknn.fit(X_train, y_train)\nknn.score(X_test, y_test)"],
    )  # fmt: skip
    assert s.parameters_cell is None
    assert "parameters" not in tags_of(s)
    assert [g.name for g in s.gather] == ["SIZE"]


def test_constants_no_code_passes_on_are_not_parameters(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "TITLE = 'Iris'\nCOLOURS = ['r', 'g', 'b']", LOAD, "plt.title(TITLE)"],
    )
    assert tags_of(s)[1] is None
    assert s.parameters_cell is None


def test_display_plot_and_print_cells_stay_untagged(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, "X.shape", "print(X[:5])", "plt.scatter(X[:, 0], X[:, 1], c=y)\nplt.show()",
         "pd.DataFrame(X).describe()", SPLIT,
         "model = LogisticRegression(max_iter=500).fit(X_train, y_train)",
         "accuracy = accuracy_score(y_test, model.predict(X_test))"],
    )  # fmt: skip
    assert tags_of(s)[2:6] == [None, None, None, None]
    assert all("only shows, prints or plots" in c.reason for c in s.cells[2:6])
    assert s.exports


def test_shell_and_install_cells_are_skipped(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        ["!pip install scikit-learn", "%pip install -q pandas", "%%bash\nls -l\necho done",
         "!wget https://example.org/data.csv", IMPORTS, LOAD],
    )  # fmt: skip
    assert tags_of(s)[:4] == ["skip", "skip", "skip", "skip"]
    assert "installs packages" in s.cells[0].reason
    assert "bash" in s.cells[2].reason


def test_plot_bounds_that_no_step_reads_stay_exploration(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, "min_pt = X.min()\nmax_pt = X.max()\nplt.plot([min_pt, max_pt])", SPLIT,
         "knn = KNeighborsClassifier().fit(X_train, y_train)\nscore = knn.score(X_test, y_test)"],
    )  # fmt: skip
    assert tags_of(s)[2] is None
    assert "no exported cell reads what it defines (min_pt, max_pt)" in s.cells[2].reason
    assert "min_pt" not in analyse(s.applied()).steps[-1].outputs


# -- fitting and scoring ------------------------------------------------------------------


def test_a_refit_after_redefining_x_train_is_its_own_step_in_order(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [
            IMPORTS, LOAD, SPLIT,
            "knn = KNeighborsClassifier(n_neighbors=3)\nknn.fit(X_train, y_train)",
            "knn.score(X_test, y_test)",
            "pca = PCA(n_components=2)\nX_train = pca.fit_transform(X_train)\n"
            "X_test = pca.transform(X_test)",
            "pca_logreg = LogisticRegression()\npca_logreg.fit(X_train, y_train)",
            "pca_logreg.score(X_test, y_test)",
        ],
    )  # fmt: skip
    assert tags_of(s)[3:] == [
        "train:knn", "evaluate:knn", "transform:reduce", "train:pca_logreg", "evaluate:pca_logreg",
    ]  # fmt: skip
    graph = analyse(s.applied())
    reduce_step = next(st for st in graph.steps if st.key == "transform:reduce")
    assert {i.name: i.step for i in reduce_step.inputs}["X_train"] == "transform:split"
    second = next(st for st in graph.steps if st.key == "train:pca_logreg")
    assert {i.name: i.step for i in second.inputs}["X_train"] == "transform:reduce"


def test_the_same_model_fitted_twice_far_apart_gets_two_steps(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT, "knn = KNeighborsClassifier()\nknn.fit(X_train, y_train)",
         "first = knn.score(X_test, y_test)", "X_train = X_train[:, :2]\nX_test = X_test[:, :2]",
         "knn.fit(X_train, y_train)", "second = knn.score(X_test, y_test)"],
    )  # fmt: skip
    assert tags_of(s)[3:] == [
        "train:knn", "evaluate:knn", "transform:features", "train:knn_2", "evaluate:knn_2",
    ]  # fmt: skip
    assert s.exports


def test_cross_val_score_is_an_evaluate_step_named_after_its_model(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, "rf = LogisticRegression(max_iter=500)",
         "scores = cross_val_score(rf, X, y, cv=5)\nscores.mean()"],
    )  # fmt: skip
    assert tags_of(s)[2:] == ["train:rf", "evaluate:rf"]
    assert "headline score" in s.cells[3].reason
    assert s.exports


def test_grid_search_fit_is_train_named_after_the_searched_model(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT,
         "grid = GridSearchCV(SVC(), {'C': [0.1, 1, 10]}, cv=3)\ngrid.fit(X_train, y_train)",
         "grid.best_params_", "grid.best_score_", "test_score = grid.score(X_test, y_test)"],
    )  # fmt: skip
    assert tags_of(s)[3:] == [
        "train:svc_search", None, "evaluate:svc_search", "evaluate:svc_search",
    ]  # fmt: skip
    assert s.exports


def test_a_cell_that_fits_then_scores_is_tagged_evaluate_so_the_score_is_reported(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT,
         "clf = LogisticRegression(max_iter=500)\nclf.fit(X_train, y_train)\n"
         "acc = accuracy_score(y_test, clf.predict(X_test))\nprint(acc)"],
    )  # fmt: skip
    assert tags_of(s)[3] == "evaluate:logistic_regression"
    assert "tagged by its last statements" in s.cells[3].reason
    graph = analyse(s.applied())
    assert "acc" in graph.steps[-1].outputs


def test_a_score_before_the_last_fit_is_named_as_not_reported(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT,
         "knn = KNeighborsClassifier().fit(X_train, y_train)\nold = knn.score(X_test, y_test)\n"
         "knn.fit(X, y)"],
    )  # fmt: skip
    assert tags_of(s)[3] == "train:knn"
    assert "a train step does not report it" in s.cells[3].reason


def test_a_metric_that_is_only_printed_says_how_to_keep_it(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT, "m = LogisticRegression(max_iter=500).fit(X_train, y_train)",
         "print('accuracy', accuracy_score(y_test, m.predict(X_test)))"],
    )  # fmt: skip
    assert tags_of(s)[4] == "evaluate:logistic_regression"
    assert "assign it to a name to keep it" in s.cells[4].reason


def test_a_cell_that_only_draws_a_confusion_matrix_stays_exploration(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT, "m = LogisticRegression(max_iter=500).fit(X_train, y_train)",
         "from sklearn.metrics import confusion_matrix\n"
         "cm = confusion_matrix(y_test, m.predict(X_test))\nplt.imshow(cm)",
         "acc = accuracy_score(y_test, m.predict(X_test))"],
    )  # fmt: skip
    assert tags_of(s)[4:] == [None, "evaluate:logistic_regression"]
    assert "plots a report (confusion_matrix)" in s.cells[4].reason


# -- resolving what the analysis reports ----------------------------------------------------


def test_a_name_only_an_exploration_cell_defines_pulls_that_cell_in(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "df = pd.DataFrame({'a': np.arange(100.0), 'b': np.arange(100) % 2})",
         "counts, bins, _ = plt.hist(df['a'])", "df['bucket'] = pd.cut(df['a'], bins)",
         "model = LogisticRegression().fit(pd.get_dummies(df[['a', 'bucket']]), df['b'])",
         "score = model.score(pd.get_dummies(df[['a', 'bucket']]), df['b'])"],
    )  # fmt: skip
    assert tags_of(s)[2] == "transform:features"
    assert "tagged because cell 4 reads 'bins'" in s.cells[2].reason
    assert s.exports


def test_setup_code_reading_a_parameter_becomes_a_transform_step(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "SEED = 4",
         "def make_model():\n    return LogisticRegression(random_state=SEED, max_iter=500)",
         LOAD, "model = make_model()\nmodel.fit(X, y)", "score = model.score(X, y)"],
    )  # fmt: skip
    assert tags_of(s)[1:3] == ["parameters", "transform:helpers"]
    assert "reads a parameter or a step's value" in s.cells[2].reason
    assert s.exports


def test_what_cannot_be_resolved_is_reported_by_cell_number(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "model = LogisticRegression()\nmodel.fit(features, labels)", "model.score(features, labels)"],
    )  # fmt: skip
    assert not s.exports
    [problem] = s.problems
    assert problem.number == 2
    assert problem.kind == "UndefinedNameError"
    assert "'features'" in problem.message
    assert str(problem).startswith("cell 2: ")


def test_a_notebook_with_no_work_reports_that_nothing_exports(make_notebook: MakeNotebook) -> None:
    s = suggest(make_notebook, ["x = 1\nx", "print('hello')"])
    assert tags_of(s) == [None, None]
    [problem] = s.problems
    assert "no cell does work nbops can export" in problem.message


def test_cells_without_ids_are_named_by_number(tmp_path: Path) -> None:
    import json

    nb = build_notebook(
        [(IMPORTS, []), (LOAD, []), ("model = KNeighborsClassifier()\nmodel.fit(X, labels)", [])]
    )
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(without_ids(nb)), "utf-8")
    s = suggest_roles(read_notebook(path))
    assert [c.number for c in s.cells] == [1, 2, 3]
    assert s.problems[0].number == 3
    assert s.to_json()["problems"][0]["index"] == 2


# -- partly tagged notebooks --------------------------------------------------------------


def test_existing_tags_are_kept_and_only_untagged_cells_get_proposals(
    make_notebook: MakeNotebook,
) -> None:
    path = make_notebook(
        [(IMPORTS, ["setup"]), (LOAD, ["transform:data"]), (SPLIT, []),
         ("knn = KNeighborsClassifier().fit(X_train, y_train)", ["train", "hide-input"]),
         ("acc = knn.score(X_test, y_test)", [])]
    )  # fmt: skip
    s = suggest_roles(read_notebook(path))
    assert tags_of(s) == ["setup", "transform:data", "transform:split", "train", "evaluate:knn"]
    assert [c.kept for c in s.cells] == [True, True, False, True, False]
    assert s.tags().keys() == {2, 4}
    assert "hide-input" in s.applied().cells[3].tags
    assert s.exports


def test_force_proposes_for_tagged_cells_too(make_notebook: MakeNotebook) -> None:
    path = make_notebook([(IMPORTS, []), (LOAD, ["train"]), ("print(X)", ["evaluate"])])
    s = suggest_roles(read_notebook(path), force=True)
    assert tags_of(s) == ["setup", None, None]
    assert s.tags() == {0: s.cells[0].tag, 1: None, 2: None}


# -- any notebook: a proposal that analyses, or the problem, never an exception ---------------

SNIPPETS = [
    IMPORTS, LOAD, SPLIT, "TEST = 0.2", "SEED = 1\nK = 3", "X.shape", "plt.plot(X[:, 0])",
    "!pip install numpy", "%%bash\necho hi", "%matplotlib inline", "x = (1,", "!ls",
    "knn = KNeighborsClassifier(n_neighbors=K)", "knn.fit(X_train, y_train)",
    "knn.score(X_test, y_test)", "scores = cross_val_score(knn, X, y, cv=3)\nscores.mean()",
    "X_train = PCA(2).fit_transform(X_train)", "y_pred = knn.predict(X_test)",
    "acc = accuracy_score(y_test, y_pred)", "def f(a):\n    return a + SEED",
    "z = f(X)", "df = pd.DataFrame(X)\ndf = df.dropna()", "print(undefined_name)",
    "X = X[:, :2]", "for k in range(1, 4):\n    knn = KNeighborsClassifier(k).fit(X_train, y_train)",
    "", "# a comment only", "grid = GridSearchCV(SVC(), {'C': [1]})\ngrid.fit(X, y)",
]  # fmt: skip
TAGS = [[], [], [], ["setup"], ["transform"], ["train:x"], ["evaluate"], ["skip"], ["hide-input"]]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.tuples(st.sampled_from(SNIPPETS), st.sampled_from(TAGS)), min_size=1, max_size=9
    ),
    force=st.booleans(),
)
def test_any_notebook_gets_a_proposal_that_exports_or_names_its_problem(
    make_notebook: MakeNotebook, cells: list[tuple[str, list[str]]], force: bool
) -> None:
    s = suggest_roles(read_notebook(make_notebook(cells)), force=force)
    assert len(s.cells) == len(cells)
    try:
        graph = analyse(s.applied())
    except NbopsError:
        assert s.problems and not s.exports
    else:
        assert s.exports and not s.problems
        assert list(s.steps) == [step.key for step in graph.steps]
    for c in s.cells:
        if c.tag is not None and c.tag.name is not None and not c.kept:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", c.tag.name)
        assert c.reason


@pytest.mark.parametrize("minor", [0, 4])
def test_old_minor_versions_without_ids_export_as_suggested(tmp_path: Path, minor: int) -> None:
    import json

    nb = build_notebook([(IMPORTS, []), (LOAD, []), (SPLIT, []),
                         ("m = LogisticRegression(max_iter=500).fit(X_train, y_train)", []),
                         ("acc = m.score(X_test, y_test)", [])])  # fmt: skip
    path = tmp_path / "tutorial.ipynb"
    path.write_text(json.dumps(without_ids(nb, minor=minor)), "utf-8")
    s = suggest_roles(read_notebook(path))
    assert s.exports
    assert s.steps == (
        "transform:load", "transform:split", "train:logistic_regression",
        "evaluate:logistic_regression",
    )  # fmt: skip


# -- real habits: frames changed through a loop, metrics collected in a list ---------------

TITANIC_STYLE = [
    "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression",
    "train = pd.DataFrame({'Sex': ['male', 'female'] * 20, 'Age': [20.0, None] * 20,"
    " 'Survived': [0, 1] * 20})\ntest = train.copy()\ncombine = [train, test]",
    "for dataset in combine:\n    dataset['Sex'] = dataset['Sex'].map({'female': 1, 'male': 0})",
    "train = train.dropna(subset=['Sex'])",
    "for df in (train, test):\n    df['Age'] = df['Age'].fillna(30.0)",
    "X = train[['Sex', 'Age']]\ny = train['Survived']",
    "model = LogisticRegression().fit(X, y)\nacc = model.score(test[['Sex', 'Age']], test['Survived'])",
]


def test_frames_changed_through_a_loop_variable_are_exported(make_notebook: MakeNotebook) -> None:
    s = suggest(make_notebook, TITANIC_STYLE)
    assert tags_of(s)[2] is not None and tags_of(s)[4] is not None
    assert "later steps read" in s.cells[2].reason and "train" in s.cells[2].reason
    assert s.exports


def test_alternating_cleaning_and_feature_cells_form_one_step(make_notebook: MakeNotebook) -> None:
    s = suggest(make_notebook, TITANIC_STYLE)
    assert tags_of(s)[2:6] == ["transform:features"] * 4


def test_clean_then_features_stay_two_steps(make_notebook: MakeNotebook) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, "df = pd.DataFrame(load_iris().data)", "df = df.dropna()",
         "df['ratio'] = df[0] / df[1]", "m = LogisticRegression().fit(df, load_iris().target)",
         "acc = m.score(df, load_iris().target)"],
    )  # fmt: skip
    assert tags_of(s)[1:4] == ["transform:load", "transform:clean", "transform:features"]


def test_metrics_collected_in_a_list_make_the_summary_cells_evaluate(
    make_notebook: MakeNotebook,
) -> None:
    s = suggest(
        make_notebook,
        [IMPORTS, LOAD, SPLIT,
         "rows = []\nfor k in (1, 3, 5):\n    knn = KNeighborsClassifier(n_neighbors=k).fit(X_train, y_train)\n"
         "    rows.append({'k': k, 'accuracy': accuracy_score(y_test, knn.predict(X_test))})",
         "results = pd.DataFrame(rows).set_index('k')\nresults",
         "results['accuracy'].plot()",
         "best_accuracy = results['accuracy'].max()\nprint(best_accuracy)"],
    )  # fmt: skip
    assert [t and t.split(":")[0] for t in tags_of(s)[3:]] == [
        "evaluate", "evaluate", None, "evaluate",
    ]  # fmt: skip
    assert "best_accuracy" in analyse(s.applied()).steps[-1].outputs


def test_hyper_constants_are_the_constants_later_code_passes_as_hyper_parameters(
    make_notebook: MakeNotebook,
) -> None:
    from nbops.notebook.cellwork import read_work
    from nbops.notebook.suggest import hyper_constants

    path = make_notebook(
        [
            ("k = 5\nlabel = 'knn'\nrounds = 1\nrounds = 2", []),
            ("model = KNeighborsClassifier(n_neighbors=k)\nprint(label)", []),
            ("fit(rounds=rounds)", []),
        ]
    )
    works = read_work(read_notebook(path).code_cells)
    found = [(i, c.name, c.line, use) for i, c, use in hyper_constants(works)]
    # `label` is only printed; `rounds` is set twice, so which value is the parameter is unclear.
    assert found == [(0, "k", 1, "n_neighbors=")]
