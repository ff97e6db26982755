"""Kale-tagged notebooks read as they are, and converted once with `--from-kale`.

The notebooks are written the way Kale's own examples are: nbformat 4.4 files whose cells have
no ids, `imports`/`functions`/`pipeline-parameters` cells, `step:NAME` (or the older
`block:NAME`) cells with `prev:` tags, untagged cells continuing a step, `skip` cells for
exploration and installs, a `pipeline-metrics` cell of `print(name)` lines at the end, and
per-step settings such as `limit:nvidia.com/gpu:1`.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nbformat.v4 import new_markdown_cell

from nbops.config import StepResources
from nbops.errors import CellLocation, NoStepsError, TagError
from nbops.export.render import metric_names
from nbops.notebook.analysis import StepGraph, analyse, require_steps
from nbops.notebook.kale import (
    apply_kale,
    convert_kale,
    metric_names_in,
    step_name,
    step_resources,
    write_conversion,
)
from nbops.notebook.read import Cell, read_notebook
from nbops.notebook.tags import CellTag, Role, cell_tag, vocabulary
from tests.notebook.conftest import CellSpec, MakeNotebook

# Kale's iris example (kubeflow/kale examples/iris/sklearn), in Kale 2's `step:` tags.
IRIS: list[CellSpec] = [
    new_markdown_cell("# Install necessary packages"),
    ("!pip3 install --user -r requirements.txt", ["skip"]),
    (
        "import numpy as np\n\n"
        "from sklearn import datasets\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.metrics import precision_score, recall_score, f1_score, accuracy_score",
        ["imports"],
    ),
    ("N_ESTIMATORS = 500\nMAX_DEPTH = 2", ["pipeline-parameters"]),
    new_markdown_cell("# Load and preprocess data"),
    ("x, y = datasets.load_iris(return_X_y=True)", ["step:load_transform_data", "report:disabled"]),
    ("x_trn, x_tst, y_trn, y_tst = train_test_split(x, y, test_size=.2)", []),
    (
        "model = RandomForestClassifier(n_estimators=int(N_ESTIMATORS),\n"
        "                               max_depth=int(MAX_DEPTH))",
        ["prev:load_transform_data", "step:train_model", "limit:nvidia.com/gpu:1"],
    ),
    ("model.fit(x_trn, y_trn)", []),
    (
        "preds = model.predict(x_tst)",
        ["step:evaluate_model", "prev:load_transform_data", "prev:train_model"],
    ),
    (
        "precision = precision_score(y_tst, preds, average='macro')\n"
        "recall = recall_score(y_tst, preds, average='macro')\n"
        "f1 = f1_score(y_tst, preds, average='macro')\n"
        "accuracy = accuracy_score(y_tst, preds)",
        [],
    ),
    new_markdown_cell("# Pipeline metrics"),
    ("print(precision)\nprint(recall)\nprint(f1)\nprint(accuracy)", ["pipeline-metrics"]),
]

# Kale's titanic example, in the older `block:` tags: exploration in skip cells, a block per
# model that fits and scores, a results block.
TITANIC: list[CellSpec] = [
    (
        "import numpy as np\nimport pandas as pd\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.linear_model import LogisticRegression",
        ["imports"],
    ),
    (
        "path = \"data/\"\n\nPREDICTION_LABEL = 'Survived'\n\n"
        'test_df = pd.read_csv(path + "test.csv")\ntrain_df = pd.read_csv(path + "train.csv")',
        ["block:loaddata"],
    ),
    ("train_df.info()", ["skip"]),
    ("train_df.describe()", ["skip"]),
    (
        "data = [train_df, test_df]\nfor dataset in data:\n    dataset['Fare'] = dataset['Fare'].fillna(0)",
        ["block:datapreprocessing", "prev:loaddata"],
    ),
    ("train_df['Fare'].hist()", ["skip"]),
    ("for dataset in data:\n    dataset['Fare'] = dataset['Fare'].astype(int)", []),
    (
        "train_labels = train_df[PREDICTION_LABEL]\n"
        "train_df = train_df.drop(PREDICTION_LABEL, axis=1)",
        ["block:featureengineering", "prev:datapreprocessing"],
    ),
    (
        "random_forest = RandomForestClassifier(n_estimators=100)\n"
        "random_forest.fit(train_df, train_labels)\n"
        "acc_random_forest = round(random_forest.score(train_df, train_labels) * 100, 2)",
        ["block:randomforest", "prev:featureengineering"],
    ),
    (
        "logreg = LogisticRegression(solver='lbfgs', max_iter=110)\n"
        "logreg.fit(train_df, train_labels)\n"
        "acc_log = round(logreg.score(train_df, train_labels) * 100, 2)",
        ["block:logisticregression", "prev:featureengineering"],
    ),
    (
        "results = pd.DataFrame({\n"
        "    'Model': ['Random Forest', 'Logistic Regression'],\n"
        "    'Score': [acc_random_forest, acc_log]})\n"
        "result_df = results.sort_values(by='Score', ascending=False)\n"
        "print(result_df)",
        ["block:results", "prev:randomforest", "prev:logisticregression"],
    ),
]


@pytest.fixture
def read_kale(write_v44: MakeNotebook):
    """`read_kale(cells)`: write a v4.4 notebook without cell ids and analyse it."""

    def read(cells: list[CellSpec]) -> StepGraph:
        return analyse(read_notebook(write_v44(cells)))

    return read


def _steps(graph: StepGraph) -> list[str]:
    return [s.tag for s in graph.steps]


def _cells(graph: StepGraph, tag: str) -> list[int]:
    return [a.cell.number for s in graph.steps if s.tag == tag for a in s.cells]


# -- steps, roles and blocks -----------------------------------------------------------------


def test_kale_steps_become_named_steps_in_notebook_order_with_roles_from_their_code(read_kale):
    graph = read_kale(IRIS)
    assert graph.notebook.kale
    assert _steps(graph) == [
        "transform:load_transform_data",
        "train:train_model",
        "evaluate:evaluate_model",
        "evaluate:pipeline_metrics",
    ]


def test_an_untagged_cell_continues_the_step_above_it(read_kale):
    graph = read_kale(IRIS)
    assert _cells(graph, "transform:load_transform_data") == [6, 7]
    assert _cells(graph, "train:train_model") == [8, 9]


def test_imports_become_setup_and_pipeline_parameters_the_parameters(read_kale):
    graph = read_kale(IRIS)
    assert [a.cell.number for a in graph.setup] == [3]
    assert [p.name for p in graph.parameters] == ["N_ESTIMATORS", "MAX_DEPTH"]


def test_a_skip_cell_is_left_out_and_the_cell_after_it_continues_the_block_before_it(read_kale):
    graph = read_kale(TITANIC)
    assert _cells(graph, "transform:datapreprocessing") == [5, 7]
    assert all(c.role is not None for c in graph.notebook.code_cells)
    assert [c.number for c in graph.notebook.code_cells if c.role and c.role.value == "skip"] == [
        3,
        4,
        6,
    ]


def test_older_block_tags_read_like_step_tags(read_kale):
    graph = read_kale(TITANIC)
    assert _steps(graph) == [
        "transform:loaddata",
        "transform:datapreprocessing",
        "transform:featureengineering",
        "train:randomforest",
        "train:logisticregression",
        "transform:results",
    ]


def test_a_block_that_fits_a_model_and_scores_it_is_a_train_step_returning_the_score(read_kale):
    step = next(s for s in read_kale(TITANIC).steps if s.name == "randomforest")
    assert step.role.value == "train"
    assert step.outputs == ["random_forest", "acc_random_forest"]


def test_fitting_a_scaler_is_not_training(read_kale):
    graph = read_kale(
        [
            ("from sklearn.preprocessing import StandardScaler\nimport numpy as np", ["imports"]),
            ("X = np.arange(12.0).reshape(6, 2)\nscaler = StandardScaler()", ["step:prepare"]),
            ("scaler.fit(X)\nX_scaled = scaler.transform(X)", []),
            ("total = X_scaled.sum()", ["step:summarise", "prev:prepare"]),
        ]
    )
    assert _steps(graph) == ["transform:prepare", "transform:summarise"]


def test_a_step_calling_a_helper_that_fits_is_train_and_one_calling_a_scorer_is_evaluate(
    read_kale,
):
    graph = read_kale(
        [
            ("from sklearn.linear_model import Ridge\nfrom sklearn import metrics", ["imports"]),
            (
                "def train(X, y):\n    model = Ridge()\n    model.fit(X, y)\n    return model\n\n\n"
                "def rmse(model, X, y):\n"
                "    return metrics.mean_squared_error(y, model.predict(X)) ** 0.5",
                ["functions"],
            ),
            ("X = [[0.0], [1.0], [2.0]]\ny = [0.0, 1.0, 2.1]", ["step:data"]),
            ("model = train(X, y)", ["step:fit", "prev:data"]),
            ("error = rmse(model, X, y)", ["step:score", "prev:fit"]),
        ]
    )
    assert _steps(graph) == ["transform:data", "train:fit", "evaluate:score"]
    assert [a.cell.number for a in graph.setup] == [1, 2]


def test_cells_before_the_first_kale_tag_stay_untagged(read_kale):
    graph = read_kale(
        [
            ("import math", []),
            ("values = [1, 4, 9]", ["step:load"]),
            ("roots = [math.sqrt(v) for v in values]", []),
        ]
    )
    assert graph.notebook.code_cells[0].role is None
    assert _cells(graph, "transform:load") == [2, 3]


def test_an_untagged_cell_after_the_parameters_is_not_a_second_parameters_cell(read_kale):
    graph = read_kale(
        [
            ("SIZE = 3", ["pipeline-parameters"]),
            ("print(SIZE)", []),
            ("values = list(range(SIZE))", ["step:load"]),
        ]
    )
    assert graph.notebook.code_cells[1].role is None
    assert [p.name for p in graph.parameters] == ["SIZE"]


def test_untagged_cells_after_imports_are_setup_too(read_kale):
    graph = read_kale(
        [
            ("import math", ["imports"]),
            ("def half(x):\n    return x / 2", []),
            ("value = half(math.pi)", ["step:compute"]),
        ]
    )
    assert [a.cell.number for a in graph.setup] == [1, 2]


@given(st.text(max_size=30))
def test_any_kale_step_name_becomes_an_nbops_step_name(name: str):
    made = step_name(name)
    assert re.fullmatch(vocabulary()["step_name_pattern"], made)
    assert not keyword.iskeyword(made)


@given(st.from_regex(r"[a-z][a-z0-9]{0,8}(_[a-z0-9]{1,5}){0,2}", fullmatch=True))
def test_a_kale_step_name_that_is_already_an_identifier_is_kept(name: str):
    assert step_name(name) == (f"{name}_step" if keyword.iskeyword(name) else name)


_KALE_TAGS = st.sampled_from(
    [
        "imports",
        "functions",
        "pipeline-parameters",
        "pipeline-metrics",
        "skip",
        "step:load",
        "step:train",
        "block:score",
        "block:",
        "prev:load",
        "prev:later",
        "limit:cpu:1",
        "limit:nvidia.com/gpu:2",
        "cache:disabled",
        "image:python:3.12",
    ]
)


@given(st.lists(st.lists(_KALE_TAGS, max_size=3), min_size=1, max_size=8))
def test_any_kale_tagging_gives_each_step_cell_its_named_step(tag_lists: list[list[str]]):
    cells = []
    for i, tags in enumerate(tag_lists):
        tag = cell_tag(tags, CellLocation("nb.ipynb", i + 1))
        cells.append(Cell(i, f"c{i}", "code", "x = 1", tuple(tags), tag, "nb.ipynb"))
    read, kale, _ = apply_kale(cells)
    for cell in read:
        special = next((t for t in cell.tags if ":" not in t), None)
        named = next((t.split(":")[1] for t in cell.tags if re.match(r"(step|block):.", t)), None)
        if kale and special is None and named is not None:
            assert cell.tag is not None and cell.tag.name == named
        if special == "skip":
            assert cell.tag == CellTag(Role.SKIP)


def test_two_kale_names_that_read_alike_get_distinct_steps(read_kale):
    graph = read_kale([("a = 1", ["step:load-data"]), ("b = a + 1", ["step:load_data"])])
    assert _steps(graph) == ["transform:load_data", "transform:load_data_2"]


def test_a_prev_tag_naming_no_earlier_step_is_a_warning_naming_the_cell(read_kale):
    graph = read_kale(
        [("a = 1", ["step:first", "prev:second"]), ("b = a + 1", ["step:second", "prev:first"])]
    )
    warnings = [str(d) for d in graph.diagnostics]
    assert len(warnings) == 1
    assert "cell 1" in warnings[0] and "'prev:second'" in warnings[0]


def test_a_step_reading_a_value_its_prev_tags_do_not_lead_to_is_a_warning(read_kale):
    graph = read_kale(
        [
            ("rows = [1, 2, 3]", ["step:load"]),
            ("total = sum(rows)", ["step:add", "prev:load"]),
            ("mean = total / len(rows)", ["step:mean", "prev:add"]),
            ("spread = max(rows) - mean", ["step:spread"]),
        ]
    )
    warnings = [str(d) for d in graph.diagnostics]
    assert len(warnings) == 2 and all("cell 4" in w for w in warnings)
    assert "'transform:spread' reads 'rows' from step 'transform:load'" in warnings[0]
    assert "'transform:spread' reads 'mean' from step 'transform:mean'" in warnings[1]


def test_prev_tags_of_every_cell_of_a_step_count(read_kale):
    graph = read_kale(
        [
            ("rows = [1, 2, 3]", ["step:load"]),
            ("n = 3", ["step:count"]),
            ("total = sum(rows)", ["step:count", "prev:load"]),
            ("mean = total / n / len(rows)", ["step:mean", "prev:count"]),
        ]
    )
    assert graph.diagnostics == []  # mean reads rows from load, reached through count


def test_prev_tags_that_match_the_values_passed_give_no_warning(read_kale):
    assert read_kale(IRIS).diagnostics == []
    assert read_kale(TITANIC).diagnostics == []


def test_a_notebook_with_nbops_tags_is_read_by_them_not_by_its_kale_tags(read_kale):
    graph = read_kale(
        [
            ("import math", ["imports", "setup"]),
            ("values = [1, 4]", ["step:load", "transform:values"]),
            ("roots = [math.sqrt(v) for v in values]", []),
        ]
    )
    assert not graph.notebook.kale
    assert _steps(graph) == ["transform:values"]
    assert _cells(graph, "transform:values") == [2]


# -- pipeline-metrics ------------------------------------------------------------------------


def test_pipeline_metrics_is_an_evaluate_step_returning_the_names_it_prints(read_kale):
    graph = read_kale(IRIS)
    step = graph.steps[-1]
    assert step.key == "evaluate:pipeline_metrics"
    assert [i.name for i in step.inputs] == ["precision", "recall", "f1", "accuracy"]
    assert step.outputs == ["precision", "recall", "f1", "accuracy"]


def test_the_names_pipeline_metrics_prints_from_a_train_step_become_metrics(read_kale):
    graph = read_kale(
        [*TITANIC, ("print(acc_random_forest)\nprint(acc_log)", ["pipeline-metrics"])]
    )
    assert "acc_random_forest" in metric_names(graph)
    assert "acc_log" in metric_names(graph)


def test_pipeline_metrics_reads_print_lines_and_bare_names_and_nothing_else():
    source = "print(accuracy)\nf1\n# a comment\nprint('done')\nprint(loss, end='')\nx = 1"
    assert metric_names_in(source) == ["accuracy", "f1"]


# -- resources -------------------------------------------------------------------------------


def test_limit_and_cache_tags_become_the_steps_resources(write_v44: MakeNotebook):
    nb = read_notebook(
        write_v44(
            [
                ("rows = list(range(10))", ["step:load", "limit:cpu:2", "limit:memory:4Gi"]),
                ("total = sum(rows)", ["step:train", "prev:load", "limit:nvidia.com/gpu:1"]),
                ("mean = total / len(rows)", ["step:report", "prev:train", "cache:disabled"]),
            ]
        )
    )
    assert step_resources(nb) == {
        "transform:load": StepResources(cpu_limit="2", memory_limit="4Gi"),
        "transform:train": StepResources(accelerator_type="nvidia.com/gpu", accelerator_limit=1),
        "transform:report": StepResources(caching=False),
    }


def test_a_gpu_limit_that_is_not_a_whole_number_is_a_tag_error(write_v44: MakeNotebook):
    path = write_v44([("rows = [1]", ["step:load", "limit:nvidia.com/gpu:half"])])
    with pytest.raises(TagError, match=r"cell 1.*limit:nvidia.com/gpu:half"):
        read_notebook(path)


def test_kale_settings_nbops_does_not_carry_are_named_in_a_warning(read_kale):
    graph = read_kale(
        [("rows = [1]", ["step:load", "image:python:3.12", "limit:ephemeral-storage:1Gi"])]
    )
    (warning,) = [str(d) for d in graph.diagnostics]
    assert "limit:ephemeral-storage:1Gi" in warning and "image:python:3.12" in warning


# -- an export with no step ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        ([("import math", ["setup"]), ("n = 3", ["parameters"])], "setup, parameters"),
        ([("import math", ["imports"]), ("N = 3", ["pipeline-parameters"])], "imports"),
        ([("x = 1", ["hide-input", "skip"])], "hide-input, skip"),
    ],
    ids=["setup-and-parameters", "kale-imports-and-parameters", "skip-and-other-tools-tags"],
)
def test_a_notebook_with_no_step_is_refused_naming_the_tags_it_has(
    write_v44: MakeNotebook, cells: list[CellSpec], found: str
):
    graph = analyse(read_notebook(write_v44(cells)))
    with pytest.raises(NoStepsError, match=f"tags found: {found}"):
        require_steps(graph)


# -- converting once ---------------------------------------------------------------------------


def test_from_kale_gives_each_cell_of_a_step_the_nbops_tag_and_lists_its_kale_tags(
    write_v44: MakeNotebook,
):
    conversions = convert_kale(read_notebook(write_v44(IRIS)))
    got = {c.number: (c.kale_tags, c.nbops_tag) for c in conversions}
    assert got[3] == (("imports",), "setup")
    assert got[4] == (("pipeline-parameters",), "parameters")
    assert got[7] == ((), "transform:load_transform_data")
    assert got[8][1] == "train:train_model"
    assert 2 not in got  # skip is the same tag in both


def test_written_conversion_keeps_kale_tags_and_exports_the_same_steps(write_v44: MakeNotebook):
    path = write_v44(IRIS)
    before = analyse(read_notebook(path))
    write_conversion(path, convert_kale(read_notebook(path)))
    cells = json.loads(path.read_text("utf-8"))["cells"]
    assert cells[7]["metadata"]["tags"] == [
        "prev:load_transform_data",
        "step:train_model",
        "limit:nvidia.com/gpu:1",
        "train:train_model",
    ]
    assert all("id" not in c for c in cells)
    after = analyse(read_notebook(path))
    assert not after.notebook.kale
    assert [(s.tag, s.outputs) for s in after.steps] == [(s.tag, s.outputs) for s in before.steps]
    assert step_resources(after.notebook) == step_resources(before.notebook)


def test_converting_again_has_nothing_to_do(write_v44: MakeNotebook):
    path = write_v44(IRIS)
    write_conversion(path, convert_kale(read_notebook(path)))
    assert convert_kale(read_notebook(path)) == []


def test_from_kale_on_a_notebook_without_kale_tags_says_so(write_v44: MakeNotebook):
    with pytest.raises(TagError, match="no cell has a Kale tag"):
        convert_kale(read_notebook(write_v44([("x = 1", ["transform"])])))


def test_from_kale_on_a_notebook_tagged_for_nbops_differently_is_refused(write_v44: MakeNotebook):
    path = write_v44([("x = 1", ["step:load", "train:fit"])])
    with pytest.raises(TagError, match="already has nbops tags"):
        convert_kale(read_notebook(path))


def test_writing_a_conversion_into_a_percent_script_is_refused(tmp_path: Path):
    from nbops.errors import ExportError

    script = tmp_path / "nb.py"
    script.write_text("# %%\nx = 1\n")
    with pytest.raises(ExportError, match=r"\.ipynb notebooks only"):
        write_conversion(script, [])
    assert script.read_text() == "# %%\nx = 1\n"


def test_writing_the_conversion_keeps_the_notebooks_permissions(write_v44: MakeNotebook):
    path = write_v44(IRIS)
    path.chmod(0o644)
    write_conversion(path, convert_kale(read_notebook(path)))
    assert path.stat().st_mode & 0o777 == 0o644
