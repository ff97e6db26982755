"""The serving path sliced from train/test notebooks, before anything runs.

Each notebook here is written the way Kaggle-style tutorials are: a training and a test
frame, the same cleaning applied to both (in loops, or statement by statement), fill values
and encoders taken from the training data, then `fit` and `predict`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import pytest

from nbops.errors import ServingPathError
from nbops.notebook.analysis import StepGraph
from nbops.notebook.slicing import ServingPath, derive_serving_path

Analyse = Callable[..., StepGraph]

SETUP = (
    "import numpy as np\nimport pandas as pd\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "from sklearn.preprocessing import LabelEncoder\n",
    ["setup"],
)
PARAMS = ('train_path = "train.csv"\ntest_path = "test.csv"\nseed = 0\n', ["parameters"])
LOAD = ("train = pd.read_csv(train_path)\ntest = pd.read_csv(test_path)\n", ["transform:load"])
TRAIN = ("model = RandomForestClassifier(random_state=seed)\nmodel.fit(X_train, y)\n", ["train"])
PREDICT = ("predictions = model.predict(X_test)\n", ["evaluate"])


def served(path: ServingPath) -> list[str]:
    return [ast.unparse(s.node) for s in path.statements]


def frozen(path: ServingPath) -> list[str]:
    return [f.text for f in path.frozen.values()]


def derive(analyse_cells: Analyse, *cells: tuple[str, list[str]]) -> ServingPath:
    path = derive_serving_path(analyse_cells([SETUP, PARAMS, LOAD, *cells, TRAIN, PREDICT]))
    assert path is not None
    return path


def test_a_loop_over_train_and_test_serves_its_test_iteration(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            'for df in (train, test):\n    df["Age"] = df["Age"].fillna(train["Age"].median())\n'
            'X_train = train.drop(columns=["Survived"])\ny = train["Survived"]\n'
            'X_test = test[["Age"]]\n',
            ["transform:clean"],
        ),
    )
    assert path.request == "test"
    assert ast.unparse(path.root.node) == "test = pd.read_csv(test_path)"
    assert served(path) == [
        "df = test",
        "df['Age'] = df['Age'].fillna(train['Age'].median())",
        "X_test = test[['Age']]",
    ]
    assert frozen(path) == ["train['Age'].median()"]


def test_a_loop_over_a_combined_list_is_unrolled(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            "combined = [train, test]\n"
            "for dataset in combined:\n"
            '    dataset["FamilySize"] = dataset["SibSp"] + dataset["Parch"] + 1\n',
            ["transform:features"],
        ),
        (
            'X_train = train[["FamilySize"]]\ny = train["Survived"]\n'
            'X_test = test[["FamilySize"]]\n',
            ["transform:split"],
        ),
    )
    assert served(path) == [
        "dataset = test",
        "dataset['FamilySize'] = dataset['SibSp'] + dataset['Parch'] + 1",
        "X_test = test[['FamilySize']]",
    ]
    assert path.frozen == {}


def test_statements_on_the_training_frame_only_are_left_out(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            'train = train[train["Fare"] < 500]\n'
            'test["Fare"].fillna(train["Fare"].median(), inplace=True)\n'
            'print(test["Fare"].isna().sum())\n'
            'X_train = train[["Fare"]]\ny = train["Survived"]\nX_test = test[["Fare"]]\n',
            ["transform:clean"],
        ),
    )
    assert served(path) == [
        "test['Fare'].fillna(train['Fare'].median(), inplace=True)",
        "X_test = test[['Fare']]",
    ]
    assert frozen(path) == ["train['Fare'].median()"]
    capture = [ast.unparse(s.node) for s in path.capture]
    assert "train = train[train['Fare'] < 500]" in capture  # the median is taken after it


def test_an_encoder_fit_on_train_is_frozen_not_its_bound_method(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            'le = LabelEncoder()\nle.fit(train["Sex"])\n'
            'train["Sex"] = le.transform(train["Sex"])\ntest["Sex"] = le.transform(test["Sex"])\n'
            'X_train = train[["Sex"]]\ny = train["Survived"]\nX_test = test[["Sex"]]\n',
            ["transform:encode"],
        ),
    )
    assert served(path) == [
        "test['Sex'] = le.transform(test['Sex'])",
        "X_test = test[['Sex']]",
    ]
    assert frozen(path) == ["le"]
    capture = [ast.unparse(s.node) for s in path.capture]
    assert capture.index("le.fit(train['Sex'])") < capture.index(
        "test['Sex'] = le.transform(test['Sex'])"
    )


def test_get_dummies_aligned_on_the_training_columns(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            'train = pd.get_dummies(train, columns=["Embarked"])\n'
            'test = pd.get_dummies(test, columns=["Embarked"])\n'
            'X_train = train.drop("Survived", axis=1)\ny = train["Survived"]\n'
            "X_test = test.reindex(columns=X_train.columns, fill_value=0)\n",
            ["transform:features"],
        ),
    )
    assert served(path) == [
        "test = pd.get_dummies(test, columns=['Embarked'])",
        "X_test = test.reindex(columns=X_train.columns, fill_value=0)",
    ]
    assert frozen(path) == ["X_train.columns"]


def test_align_keeps_the_test_frame_on_the_serving_side(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            "train = pd.get_dummies(train)\ntest = pd.get_dummies(test)\n"
            'y = train.pop("Survived")\n'
            'train, test = train.align(test, join="left", axis=1, fill_value=0)\n'
            "X_train, X_test = train, test\n",
            ["transform:features"],
        ),
    )
    assert path.request == "test"
    assert "train, test = train.align(test, join='left', axis=1, fill_value=0)" in served(path)
    assert path.label == "y" and path.label_column == "Survived"


def test_a_value_computed_per_loop_variable_is_keyed_by_it(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            'numeric = ["Age", "Fare"]\n'
            "for col in numeric:\n"
            "    test[col] = test[col].fillna(train[col].median())\n"
            "X_train = train[numeric]\ny = train.Survived\nX_test = test[numeric]\n",
            ["transform:clean"],
        ),
    )
    by_text = {f.text: f.keys for f in path.frozen.values()}
    assert by_text == {"numeric": (), "train[col].median()": ("col",)}


def test_functions_the_test_frame_goes_through_are_kept_as_code(analyse_cells: Analyse) -> None:
    path = derive(
        analyse_cells,
        (
            "title_map = {'Mr': 1, 'Mrs': 2}\n"
            "def add_title(frame):\n"
            '    frame["Title"] = frame["Name"].str.extract(r" (\\w+)\\.", expand=False)\n'
            '    frame["Title"] = frame["Title"].map(title_map).fillna(0)\n'
            "    return frame\n"
            "train = add_title(train)\ntest = add_title(test)\n"
            'X_train = train[["Title"]]\ny = train["Survived"]\nX_test = test[["Title"]]\n',
            ["transform:features"],
        ),
    )
    assert served(path)[0].startswith("def add_title(frame):")
    assert served(path)[1] == "test = add_title(test)"
    assert frozen(path) == ["title_map"]


def test_a_split_frame_is_the_request(analyse_cells: Analyse) -> None:
    graph = analyse_cells(
        [
            SETUP,
            ("from sklearn.model_selection import train_test_split", ["setup"]),
            ("data = pd.read_csv('data.csv')", ["transform:load"]),
            (
                "train_df, test_df = train_test_split(data, random_state=0)\n"
                'X_train = train_df.drop(columns="y")\ny = train_df["y"]\n'
                'X_test = test_df.drop(columns="y")\n',
                ["transform:split"],
            ),
            ("model = RandomForestClassifier()\nmodel.fit(X_train, y)", ["train"]),
            PREDICT,
        ]
    )
    path = derive_serving_path(graph)
    assert path is not None and path.request == "test_df"
    assert served(path) == ["X_test = test_df.drop(columns='y')"]


def test_predicting_on_the_training_rows_is_not_serving(analyse_cells: Analyse) -> None:
    graph = analyse_cells(
        [
            SETUP,
            ("data = pd.read_csv('data.csv')\nX = data[['a']]\ny = data['b']", ["transform"]),
            ("model = RandomForestClassifier().fit(X, y)\nmodel.fit(X, y)", ["train"]),
            ("accuracy = (model.predict(X) == y).mean()", ["evaluate"]),
        ]
    )
    assert derive_serving_path(graph) is None


def test_a_notebook_without_fit_has_no_derived_path(analyse_cells: Analyse) -> None:
    graph = analyse_cells([SETUP, PARAMS, LOAD, ("n = len(test)", ["transform"])])
    assert derive_serving_path(graph) is None


# -- the label -------------------------------------------------------------------------------


def test_the_label_read_in_the_serving_path_is_an_error_naming_the_cell(
    analyse_cells: Analyse,
) -> None:
    with pytest.raises(ServingPathError) as raised:
        analyse_cells(
            [
                SETUP,
                PARAMS,
                LOAD,
                (
                    'y = train["Survived"]\nX_train = train[["Age"]]\n'
                    'test["Age"] = test["Age"].fillna(y.mean())\nX_test = test[["Age"]]\n',
                    ["transform:features"],
                ),
                TRAIN,
                PREDICT,
            ]
        )
    assert raised.value.location is not None
    assert "cell 4" in str(raised.value) and "the label 'y'" in str(raised.value)
    assert raised.value.exit_code == ServingPathError.exit_code


def test_the_label_column_of_the_test_frame_is_an_error(analyse_cells: Analyse) -> None:
    with pytest.raises(ServingPathError, match="label column 'Survived'") as raised:
        analyse_cells(
            [
                SETUP,
                PARAMS,
                LOAD,
                (
                    'y = train["Survived"]\nX_train = train[["Age"]]\n'
                    'test["Age"] = test["Age"] * test["Survived"]\nX_test = test[["Age"]]\n',
                    ["transform:clean"],
                ),
                TRAIN,
                PREDICT,
            ]
        )
    assert "cell 4" in str(raised.value)


def test_labels_used_for_evaluation_or_target_encoding_are_allowed(
    analyse_cells: Analyse,
) -> None:
    graph = analyse_cells(
        [
            SETUP,
            PARAMS,
            LOAD,
            (
                'rate = train.groupby("Sex")["Survived"].mean()\n'
                'test["SexRate"] = test["Sex"].map(train.groupby("Sex")["Survived"].mean())\n'
                'train["SexRate"] = train["Sex"].map(rate)\n'
                'y = train["Survived"]\ny_test = test["Survived"]\n'
                'X_train = train[["SexRate"]]\nX_test = test[["SexRate"]]\n',
                ["transform:features"],
            ),
            TRAIN,
            PREDICT,
        ]
    )
    path = derive_serving_path(graph)
    assert path is not None
    assert frozen(path) == ["train.groupby('Sex')['Survived'].mean()"]


def test_a_single_frame_features_step_reading_the_label_is_an_error(
    analyse_cells: Analyse,
) -> None:
    with pytest.raises(ServingPathError, match="transform:features reads the label 'y'"):
        analyse_cells(
            [
                SETUP,
                ("data = pd.read_csv('d.csv')\ny = data['label']", ["transform:load"]),
                ("feats = data[['a']].assign(b=y * 0)", ["transform:features"]),
                ("model = RandomForestClassifier()\nmodel.fit(feats, y)", ["train"]),
            ]
        )


CLASSIC = """\
train_df = train_df.drop(['Ticket', 'Cabin'], axis=1)
test_df = test_df.drop(['Ticket', 'Cabin'], axis=1)
combine = [train_df, test_df]
for dataset in combine:
    dataset['Title'] = dataset.Name.str.extract(' ([A-Za-z]+)\\\\.', expand=False)
title_mapping = {"Mr": 1, "Miss": 2, "Mrs": 3, "Master": 4, "Rare": 5}
for dataset in combine:
    dataset['Title'] = dataset['Title'].map(title_mapping)
    dataset['Title'] = dataset['Title'].fillna(0)
train_df = train_df.drop(['Name', 'PassengerId'], axis=1)
test_df = test_df.drop(['Name'], axis=1)
combine = [train_df, test_df]
freq_port = train_df.Embarked.dropna().mode()[0]
for dataset in combine:
    dataset['Embarked'] = dataset['Embarked'].fillna(freq_port)
test_df['Fare'].fillna(test_df['Fare'].dropna().median(), inplace=True)
"""


def test_the_classic_titanic_tutorial_shape(analyse_cells: Analyse) -> None:
    """`combine` rebound after each drop, maps and modes from the training frame, a fill
    the notebook computes from the test frame itself (served as written)."""
    graph = analyse_cells(
        [
            SETUP,
            (
                "train_df = pd.read_csv('../input/train.csv')\n"
                "test_df = pd.read_csv('../input/test.csv')\ncombine = [train_df, test_df]",
                ["transform:load"],
            ),
            ("train_df.describe()", []),
            (CLASSIC, ["transform:features"]),
            (
                'X_train = train_df.drop("Survived", axis=1)\nY_train = train_df["Survived"]\n'
                'X_test  = test_df.drop("PassengerId", axis=1).copy()\n'
                "X_train.shape, Y_train.shape, X_test.shape",
                ["transform:split"],
            ),
            (
                "random_forest = RandomForestClassifier(n_estimators=100)\n"
                "random_forest.fit(X_train, Y_train)\nY_pred = random_forest.predict(X_test)\n"
                "acc_random_forest = round(random_forest.score(X_train, Y_train) * 100, 2)",
                ["train"],
            ),
        ]
    )
    path = derive_serving_path(graph)
    assert path is not None and path.request == "test_df"
    code = "\n".join(served(path))
    assert "train_df" not in code and "combine" not in code
    assert code.count("dataset = test_df") == 3
    assert "test_df['Fare'].fillna(test_df['Fare'].dropna().median(), inplace=True)" in code
    assert frozen(path) == ["title_mapping", "freq_port"]
    assert (path.label, path.label_column) == ("Y_train", "Survived")


def test_the_label_column_is_followed_through_train_test_split(analyse_cells: Analyse) -> None:
    graph = analyse_cells(
        [
            (
                "import pandas as pd\nfrom sklearn.model_selection import train_test_split\n"
                "from sklearn.linear_model import LogisticRegression\n",
                ["setup"],
            ),
            ('data_path = "churn.csv"\nseed = 0\n', ["parameters"]),
            ("customers = pd.read_csv(data_path)\n", ["transform:load"]),
            (
                'X = customers[["tenure", "plan"]]\ny = customers["churned"]\n'
                "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=seed)\n",
                ["transform:split"],
            ),
            ("model = LogisticRegression()\nmodel.fit(X_train, y_train)\n", ["train"]),
            ("predictions = model.predict(X_test)\n", ["evaluate"]),
        ]
    )
    path = derive_serving_path(graph)
    assert path is not None
    assert (path.label, path.label_column) == ("y_train", "churned")


def test_a_label_column_named_by_a_constant_is_the_label_column(analyse_cells: Analyse) -> None:
    graph = analyse_cells(
        [
            (
                "import pandas as pd\nfrom sklearn.model_selection import train_test_split\n"
                "from sklearn.linear_model import LogisticRegression\n"
                'TARGET = "species"\n',
                ["setup"],
            ),
            ('data_path = "penguins.csv"\n', ["parameters"]),
            ("penguins = pd.read_csv(data_path)\n", ["transform:load"]),
            (
                'features = penguins[["bill_length_mm"]]\n'
                "X_train, X_test, y_train, y_test = train_test_split(\n"
                "    features, penguins[TARGET], test_size=0.25\n)\n",
                ["transform:split"],
            ),
            ("model = LogisticRegression()\nmodel.fit(X_train, y_train)\n", ["train"]),
            ("predictions = model.predict(X_test)\n", ["evaluate"]),
        ]
    )
    path = derive_serving_path(graph)
    assert path is not None
    assert (path.label, path.label_column) == ("y_train", "species")


def test_a_split_that_does_not_pair_arrays_with_outputs_names_no_column(
    analyse_cells: Analyse,
) -> None:
    graph = analyse_cells(
        [
            (
                "import pandas as pd\nfrom sklearn.model_selection import train_test_split\n"
                "from sklearn.linear_model import LogisticRegression\n",
                ["setup"],
            ),
            ('data_path = "churn.csv"\n', ["parameters"]),
            ("customers = pd.read_csv(data_path)\n", ["transform:load"]),
            (
                'X = customers[["tenure"]]\ny = customers["churned"]\n'
                "X_train, X_test, y_train, y_test = train_test_split(X, random_state=0)\n",
                ["transform:split"],
            ),
            ("model = LogisticRegression()\nmodel.fit(X_train, y_train)\n", ["train"]),
            ("predictions = model.predict(X_test)\n", ["evaluate"]),
        ]
    )
    path = derive_serving_path(graph)
    assert path is None or path.label_column is None
