"""From tagged cells to steps (`analyse`): order, inputs, outputs, imports and errors."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_markdown_cell

from nbops.errors import (
    CellSyntaxError,
    DependencyError,
    LaterStepError,
    MagicError,
    NbopsError,
    NoTaggedCellsError,
    ParameterError,
    TagError,
    UndefinedNameError,
    UntaggedDefinitionError,
)
from nbops.notebook.analysis import StepInput, analyse
from nbops.notebook.read import read_notebook
from nbops.notebook.tags import Role


def step(graph, key):
    (found,) = [s for s in graph.steps if s.key == key]
    return found


# -- steps -----------------------------------------------------------------------------------


def test_steps_run_in_the_order_of_their_first_cell(analyse_cells):
    graph = analyse_cells(
        [
            ("b = 1", ["transform:second"]),
            ("a = 1", ["transform:first"]),
            ("m = a + b", ["train"]),
        ]
    )
    assert [s.key for s in graph.steps] == ["transform:second", "transform:first", "train"]


def test_cells_with_the_same_tag_form_one_step(analyse_cells):
    graph = analyse_cells(
        [
            ("a = 1", ["transform:load"]),
            ("b = 2", ["transform:other"]),
            ("c = a", ["transform:load"]),
        ]
    )
    assert [s.key for s in graph.steps] == ["transform:load", "transform:other"]
    assert [a.cell.number for a in step(graph, "transform:load").cells] == [1, 3]


def test_unnamed_step_is_keyed_and_named_by_its_role(analyse_cells):
    (only,) = analyse_cells([("m = 1", ["train"])]).steps
    assert (only.key, only.name, only.role) == ("train", "train", Role.TRAIN)


def test_named_step_is_keyed_by_its_tag_and_named_by_its_name(analyse_cells):
    (only,) = analyse_cells([("df = 1", ["transform:load_data"])]).steps
    assert (only.key, only.name, only.role) == ("transform:load_data", "load_data", Role.TRANSFORM)


def test_setup_parameters_skip_and_untagged_cells_are_not_steps(analyse_cells):
    graph = analyse_cells(
        [
            ("import math", ["setup"]),
            ("n = 1", ["parameters"]),
            ("junk = 1", ["skip"]),
            ("peek = 1", []),
            new_markdown_cell("# Notes"),
            ("x = n", ["transform"]),
        ]
    )
    assert [s.key for s in graph.steps] == ["transform"]
    assert [a.cell.number for a in graph.setup] == [1]


def test_step_defines_every_name_its_cells_bind(analyse_cells):
    graph = analyse_cells([("a = 1", ["transform"]), ("def f():\n    pass", ["transform"])])
    assert graph.steps[0].defines() == {"a": "value", "f": "function"}


# -- inputs ----------------------------------------------------------------------------------


def test_parameter_read_by_a_step_is_a_parameter_input(analyse_cells):
    graph = analyse_cells([("n = 3", ["parameters"]), ("x = n * 2", ["transform"])])
    assert graph.steps[0].inputs == [StepInput("n", "parameter")]


def test_name_defined_by_an_earlier_step_is_a_step_input(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform:load"]), ("m = df", ["train"])])
    assert step(graph, "train").inputs == [StepInput("df", "step", "transform:load")]


def test_latest_earlier_producer_wins(analyse_cells):
    graph = analyse_cells(
        [
            ("df = 1", ["transform:load"]),
            ("df = df + 1", ["transform:clean"]),
            ("m = df", ["train"]),
        ]
    )
    assert step(graph, "transform:clean").inputs == [StepInput("df", "step", "transform:load")]
    assert step(graph, "train").inputs == [StepInput("df", "step", "transform:clean")]


def test_step_redefining_a_parameter_provides_it_to_later_steps(analyse_cells):
    graph = analyse_cells(
        [("n = 3", ["parameters"]), ("n = n + 1", ["transform"]), ("m = n", ["train"])]
    )
    assert step(graph, "train").inputs == [StepInput("n", "step", "transform")]


def test_inputs_are_listed_in_the_order_the_step_reads_them(analyse_cells):
    graph = analyse_cells(
        [
            ("a = 1", ["parameters"]),
            ("b = 1\nc = 1", ["transform:load"]),
            ("m = (c, a, b)", ["train"]),
        ]
    )
    assert [i.name for i in step(graph, "train").inputs] == ["c", "a", "b"]


def test_name_bound_by_an_earlier_cell_of_the_same_step_is_not_an_input(analyse_cells):
    graph = analyse_cells(
        [
            ("df = 1", ["transform:load"]),
            ("df = 2", ["transform:clean"]),
            ("x = df", ["transform:clean"]),
        ]
    )
    assert step(graph, "transform:clean").inputs == []


def test_name_read_twice_is_one_input(analyse_cells):
    graph = analyse_cells([("n = 1", ["parameters"]), ("a = n", ["train"]), ("b = n", ["train"])])
    assert step(graph, "train").inputs == [StepInput("n", "parameter")]


def test_in_place_update_reads_the_earlier_value(analyse_cells):
    graph = analyse_cells(
        [
            ("def load():\n    return {}", ["setup"]),
            ("df = load()", ["transform:load"]),
            ('df["x"] = 1', ["transform:clean"]),
        ]
    )
    assert step(graph, "transform:clean").inputs == [StepInput("df", "step", "transform:load")]


def test_builtins_are_not_inputs(analyse_cells):
    graph = analyse_cells([("x = len(range(3))\nprint(x)\ndisplay(x)", ["transform"])])
    assert graph.steps[0].inputs == []


def test_setup_names_are_used_not_passed_as_inputs(analyse_cells):
    graph = analyse_cells(
        [("def helper(v):\n    return v\nK = 2", ["setup"]), ("x = helper(K)", ["transform"])]
    )
    assert graph.steps[0].inputs == []
    assert graph.steps[0].uses_setup == ["helper", "K"]


def test_setup_name_rebound_by_a_step_is_passed_as_an_input(analyse_cells):
    graph = analyse_cells([("K = 2", ["setup"]), ("K = K + 1", ["transform"])])
    assert graph.steps[0].inputs == [StepInput("K", "setup")]


def test_setup_names_exclude_its_imports(analyse_cells):
    graph = analyse_cells([("import math\nK = 2\ndef f():\n    pass", ["setup"])])
    assert graph.setup_names == {"K": "value", "f": "function"}


# -- outputs ---------------------------------------------------------------------------------


def test_outputs_are_the_names_later_steps_read(analyse_cells):
    graph = analyse_cells(
        [
            ("raw = 1\ntmp = 2\ndf = raw + tmp", ["transform:load"]),
            ("m = df", ["train"]),
        ]
    )
    assert step(graph, "transform:load").outputs == ["df"]


def test_transform_output_nobody_reads_is_not_returned(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform"])])
    assert graph.steps[0].outputs == []


def test_output_goes_to_the_latest_producer_only(analyse_cells):
    graph = analyse_cells(
        [
            ("df = 1", ["transform:load"]),
            ("df = 2", ["transform:clean"]),
            ("m = df", ["train"]),
        ]
    )
    assert step(graph, "transform:load").outputs == []
    assert step(graph, "transform:clean").outputs == ["df"]


def test_outputs_are_in_definition_order(analyse_cells):
    graph = analyse_cells(
        [("a = 1\nb = 2\nc = 3", ["transform:load"]), ("m = (c, b, a)", ["train"])]
    )
    assert step(graph, "transform:load").outputs == ["a", "b", "c"]


@pytest.mark.parametrize("role", ["train", "evaluate"])
def test_train_and_evaluate_return_every_value_they_define(analyse_cells, role):
    graph = analyse_cells([("model = 1\nscore = 0.9", [role])])
    assert graph.steps[0].outputs == ["model", "score"]


@pytest.mark.parametrize("role", ["train", "evaluate"])
def test_train_and_evaluate_do_not_return_private_names_loop_variables_or_functions(
    analyse_cells, role
):
    source = "_tmp = 1\nfor i in range(3):\n    last = i\ndef f():\n    pass\nscore = 1"
    graph = analyse_cells([(source, [role])])
    assert graph.steps[0].outputs == ["last", "score"]


def test_train_output_read_by_evaluate_is_returned_once(analyse_cells):
    graph = analyse_cells([("model = 1", ["train"]), ("acc = model", ["evaluate"])])
    assert step(graph, "train").outputs == ["model"]
    assert step(graph, "evaluate").inputs == [StepInput("model", "step", "train")]


def test_outputs_of_lists_every_step_output(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform"]), ("m = df", ["train"])])
    pairs = [(s.key, name) for s, name in graph.outputs_of()]
    assert pairs == [("transform", "df"), ("train", "m")]


def test_outputs_of_filters_by_role(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform"]), ("m = df", ["train"])])
    assert [(s.key, name) for s, name in graph.outputs_of({Role.TRAIN})] == [("train", "m")]


# -- parameters ------------------------------------------------------------------------------


def test_parameters_are_read_with_their_defaults_types_and_comments(analyse_cells):
    source = "n_trees = 100  # trees in the forest\ntest_size: float = 0.2\nname = 'x'"
    graph = analyse_cells([(source, ["parameters"]), ("m = (n_trees, test_size, name)", ["train"])])
    assert [(p.name, p.default, p.type_source, p.description) for p in graph.parameters] == [
        ("n_trees", 100, "int", "trees in the forest"),
        ("test_size", 0.2, "float", ""),
        ("name", "x", "str", ""),
    ]


def test_notebook_without_parameters_cell_has_no_parameters(analyse_cells):
    graph = analyse_cells([("x = 1", ["transform"])])
    assert (graph.parameters, graph.parameters_cell) == ([], None)


def test_parameter_comment_is_found_after_an_import_line(analyse_cells):
    graph = analyse_cells([("import math\nn = 3  # trees", ["parameters"])])
    assert graph.parameters[0].description == "trees"


# -- imports ---------------------------------------------------------------------------------


def test_import_in_a_tagged_cell_is_used_by_the_step(analyse_cells):
    graph = analyse_cells([("import numpy as np\nx = np.zeros(3)", ["transform"])])
    assert graph.steps[0].uses_imports == ["np"]
    assert graph.imports["np"].statement == "import numpy as np"


def test_import_from_an_untagged_cell_is_carried(analyse_cells):
    graph = analyse_cells([("import pandas as pd", []), ("df = pd.DataFrame()", ["transform"])])
    assert graph.steps[0].uses_imports == ["pd"]
    assert graph.imports["pd"].statement == "import pandas as pd"


def test_import_from_a_later_cell_is_carried(analyse_cells):
    graph = analyse_cells([("x = sqrt(2)", ["transform"]), ("from math import sqrt", [])])
    assert graph.steps[0].uses_imports == ["sqrt"]


def test_later_import_of_the_same_name_wins(analyse_cells):
    graph = analyse_cells(
        [("import json as j", []), ("import ujson as j", []), ("x = j.dumps(1)", ["transform"])]
    )
    assert graph.imports["j"].statement == "import ujson as j"


def test_setup_imports_are_the_imports_setup_code_reads(analyse_cells):
    graph = analyse_cells(
        [("import math\nimport os\ndef f(x):\n    return math.sqrt(x)", ["setup"])]
    )
    assert graph.setup_imports() == ["math"]


def test_star_import_is_collected(analyse_cells):
    graph = analyse_cells([("from math import *", []), ("x = 1", ["transform"])])
    assert graph.star_imports == ["from math import *"]


def test_star_import_lets_an_unknown_name_through_as_an_import(analyse_cells):
    graph = analyse_cells([("from math import *", []), ("x = sqrt(2)", ["transform"])])
    assert graph.steps[0].uses_imports == ["sqrt"]


# -- untagged cells --------------------------------------------------------------------------


def test_untagged_cell_with_broken_code_does_not_stop_the_analysis(analyse_cells):
    graph = analyse_cells([("!ls\nx = (", []), ("y = 1", ["transform"])])
    assert [s.key for s in graph.steps] == ["transform"]


def test_skip_cell_with_broken_code_does_not_stop_the_analysis(analyse_cells):
    graph = analyse_cells([("%%bash\nls", ["skip"]), ("y = 1", ["transform"])])
    assert [s.key for s in graph.steps] == ["transform"]


def test_diagnostics_of_tagged_cells_are_collected(analyse_cells):
    graph = analyse_cells([("%matplotlib inline\nx = 1", ["transform"])])
    assert [d.location.number for d in graph.diagnostics] == [1]
    assert "%matplotlib inline" in graph.diagnostics[0].message


def test_diagnostics_of_untagged_cells_are_not_collected(analyse_cells):
    graph = analyse_cells([("%matplotlib inline", []), ("x = 1", ["transform"])])
    assert graph.diagnostics == []


def test_untagged_cell_changing_a_value_a_later_step_reads_is_warned_about(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform:load"]), ("df = 2", []), ("m = df", ["train"])])
    (warning,) = graph.diagnostics
    assert warning.location.number == 2
    assert "'df'" in warning.message and "'train'" in warning.message


def test_untagged_cell_after_the_reading_step_is_not_warned_about(analyse_cells):
    graph = analyse_cells([("df = 1", ["transform:load"]), ("m = df", ["train"]), ("df = 2", [])])
    assert graph.diagnostics == []


# -- errors ----------------------------------------------------------------------------------


def test_notebook_without_tagged_cells_raises_no_tagged_cells_error(make_notebook):
    path = make_notebook([new_markdown_cell("# Notes"), ("x = 1", ["hide-input"])])
    with pytest.raises(NoTaggedCellsError):
        analyse(read_notebook(path))


def test_no_tagged_cells_error_is_a_tag_error(make_notebook):
    with pytest.raises(TagError):
        analyse(read_notebook(make_notebook([("x = 1", [])])))


def test_two_parameters_cells_raise_tag_error_at_the_second(analyse_cells):
    with pytest.raises(TagError, match="cells 1 and 3") as info:
        analyse_cells([("a = 1", ["parameters"]), ("x = a", []), ("b = 2", ["parameters"])])
    assert info.value.location.number == 3


def test_two_role_tags_on_a_cell_raise_tag_error(make_notebook):
    with pytest.raises(TagError, match="more than one nbops tag"):
        analyse(read_notebook(make_notebook([("x = 1", ["transform", "train"])])))


def test_syntax_error_in_a_tagged_cell_raises_cell_syntax_error(analyse_cells):
    with pytest.raises(CellSyntaxError) as info:
        analyse_cells([("x = 1", ["transform"]), ("y = 1\nz = (", ["train"])])
    assert (info.value.location.number, info.value.location.line) == (2, 2)


def test_shell_command_in_a_tagged_cell_raises_magic_error(analyse_cells):
    with pytest.raises(MagicError):
        analyse_cells([("files = !ls", ["transform"])])


def test_name_defined_only_in_an_untagged_cell_raises_untagged_definition_error(analyse_cells):
    with pytest.raises(UntaggedDefinitionError, match="untagged cell: cell 2 ") as info:
        analyse_cells([("n = 1", ["parameters"]), ("df = load()", []), ("m = df", ["train"])])
    assert info.value.location.number == 3


def test_untagged_definition_error_carries_the_name_and_its_defining_cell(analyse_cells):
    # The panel's one-click fix tags that cell (labserver/fixes.py).
    with pytest.raises(UntaggedDefinitionError) as info:
        analyse_cells([("n = 1", ["parameters"]), ("df = load()", []), ("m = df", ["train"])])
    assert info.value.name == "df"
    assert info.value.defined_in is not None
    assert info.value.defined_in.number == 2


def test_untagged_definition_error_names_the_cell_id(make_notebook):
    path = make_notebook([("df = 1", []), ("m = df", ["train"])])
    model = read_notebook(path)
    with pytest.raises(UntaggedDefinitionError, match=f"id {model.cells[0].cell_id}"):
        analyse(model)


def test_errors_on_a_notebook_without_ids_name_cells_by_number_only(write_v44):
    path = write_v44([new_markdown_cell("# Titanic"), ("df = 1", []), ("m = df", ["train"])])
    with pytest.raises(UntaggedDefinitionError) as info:
        analyse(read_notebook(path))
    message = str(info.value)
    assert message.startswith(f"{path}, cell 3: ")
    assert "untagged cell: cell 2;" in message
    assert "id " not in message


def test_later_step_error_without_ids_names_the_defining_cell_by_number(write_v44):
    path = write_v44([("x = y", ["transform:a"]), ("y = 1", ["transform:b"])])
    with pytest.raises(LaterStepError, match=r"later step 'transform:b' \(cell 2\);"):
        analyse(read_notebook(path))


def test_name_defined_only_in_a_skip_cell_raises_untagged_definition_error(analyse_cells):
    with pytest.raises(UntaggedDefinitionError, match="a cell tagged skip: cell 1 "):
        analyse_cells([("df = 1", ["skip"]), ("m = df", ["train"])])


def test_in_place_update_of_an_untagged_definition_raises_untagged_definition_error(
    analyse_cells,
):
    with pytest.raises(UntaggedDefinitionError):
        analyse_cells([("df = load()", []), ("df = df.dropna()", ["transform"])])


def test_name_first_defined_by_a_later_step_raises_later_step_error(analyse_cells):
    with pytest.raises(LaterStepError, match=r"later step 'transform:b' \(cell 2 \(id ") as info:
        analyse_cells([("x = y", ["transform:a"]), ("y = 1", ["transform:b"])])
    assert info.value.location.number == 1


def test_later_step_wins_over_an_untagged_definition_in_the_error(analyse_cells):
    with pytest.raises(LaterStepError):
        analyse_cells([("y = 0", []), ("x = y", ["transform:a"]), ("y = 1", ["transform:b"])])


def test_name_used_before_its_own_step_defines_it_raises_later_step_error(analyse_cells):
    with pytest.raises(LaterStepError, match="before it defines it"):
        analyse_cells([("total += 1", ["transform"])])


def test_name_defined_nowhere_raises_undefined_name_error(analyse_cells):
    with pytest.raises(UndefinedNameError, match="'missing'") as info:
        analyse_cells([("x = 1", ["transform"]), ("m = missing + x", ["train"])])
    assert info.value.location.number == 2


def test_non_literal_parameter_default_raises_parameter_error(analyse_cells):
    with pytest.raises(ParameterError, match="not a literal") as info:
        analyse_cells([("n = 1\nsize = compute()", ["parameters"]), ("x = n", ["transform"])])
    assert (info.value.location.number, info.value.location.line) == (1, 2)


def test_parameters_cell_with_other_code_raises_parameter_error(analyse_cells):
    with pytest.raises(ParameterError, match="only assign values"):
        analyse_cells([("print('hi')", ["parameters"])])


def test_setup_reading_a_parameter_raises_dependency_error(analyse_cells):
    with pytest.raises(DependencyError, match="setup code uses 'n'"):
        analyse_cells([("n = 1", ["parameters"]), ("K = n * 2", ["setup"])])


def test_setup_reading_a_step_value_raises_dependency_error(analyse_cells):
    with pytest.raises(DependencyError, match="defined by a step"):
        analyse_cells([("def f():\n    return df", ["setup"]), ("df = 1", ["transform"])])


# -- every error is one line naming the file and the cell ------------------------------------

ERROR_CASES = {
    "two-role-tags": ([("x = 1", ["setup", "transform"])], 1),
    "two-parameters-cells": ([("a = 1", ["parameters"]), ("b = 1", ["parameters"])], 2),
    "syntax-error": ([("x = (\n", ["transform"])], 1),
    "magic-in-a-loop": ([("for f in files:\n    !echo {f}\n", ["transform"])], 1),
    "untagged-definition": ([("df = 1", []), ("m = df", ["train"])], 2),
    "later-step": ([("x = y", ["transform:a"]), ("y = 1", ["transform:b"])], 1),
    "undefined-name": ([new_markdown_cell("# T"), ("m = nope", ["train"])], 2),
    "parameter-default": ([("n = f(\n    1\n)", ["parameters"])], 1),
    "setup-dependency": ([("n = 1", ["parameters"]), ("K = n", ["setup"])], 2),
}


@pytest.mark.parametrize(("cells", "number"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_is_one_line_naming_the_file_and_cell(make_notebook, cells, number):
    path = make_notebook(cells)
    with pytest.raises(NbopsError) as info:
        analyse(read_notebook(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, cell {number} ")


def test_no_tagged_cells_error_is_one_line_naming_the_file(make_notebook):
    path = make_notebook([("x = 1", [])])
    with pytest.raises(NoTaggedCellsError) as info:
        analyse(read_notebook(path))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: ")
