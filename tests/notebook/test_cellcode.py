"""A cell as plain Python (`translate`): IPython syntax, display-only lines and imports."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nbops.errors import CellSyntaxError, MagicError
from nbops.notebook.cellcode import translate, without_leading_blank_lines

# -- IPython syntax that only matters interactively: dropped with a diagnostic -------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("%matplotlib inline", "%matplotlib inline"),
        ("%load_ext autoreload", "%load_ext autoreload"),
        ("%autoreload 2", "%autoreload 2"),
        ("!pip install scikit-learn", "!pip install scikit-learn"),
        ("%pip install scikit-learn", "%pip install scikit-learn"),
        ("df?", "df"),
    ],
)
def test_interactive_only_syntax_is_dropped_with_a_diagnostic(line, shown, location):
    code = translate(f"{line}\nx = 1\n", location)
    assert code.body == "x = 1\n"
    assert len(code.diagnostics) == 1
    assert "dropped" in code.diagnostics[0].message
    assert shown in code.diagnostics[0].message


def test_diagnostic_names_the_cell(location):
    (diagnostic,) = translate("%matplotlib inline\n", location).diagnostics
    assert diagnostic.location == location
    assert str(diagnostic).startswith("nb.ipynb, cell 3 (id cell-3): ")


def test_cell_of_only_dropped_magics_has_an_empty_body(location):
    code = translate("%matplotlib inline\n%load_ext autoreload\n", location)
    assert code.body == ""
    assert len(code.diagnostics) == 2


def test_plain_python_has_no_diagnostics(location):
    assert translate("x = 1\n", location).diagnostics == []


# -- magics that wrap Python: unwrapped to their code ----------------------------------------


def test_time_line_magic_is_unwrapped_to_its_statement(location):
    code = translate("%time x = f()\n", location)
    assert code.body == "x = f()\n"
    assert code.diagnostics == []


def test_unwrapped_line_magic_keeps_the_lines_around_it(location):
    assert translate("a = 1\n%time b = g(a)\nc = b\n", location).body == "a = 1\nb = g(a)\nc = b\n"


def test_time_cell_magic_is_unwrapped_to_its_body(location):
    code = translate("%%time\nx = f()\ny = x + 1\n", location)
    assert code.body == "x = f()\ny = x + 1\n"
    assert code.diagnostics == []


def test_capture_cell_magic_is_unwrapped_to_its_body(location):
    code = translate("%%capture\nmodel.fit(X, y)\n", location)
    assert code.body == "model.fit(X, y)\n"
    assert code.diagnostics == []


def test_capture_into_a_variable_warns_that_the_variable_is_not_set(location):
    code = translate("%%capture out\nmodel.fit(X, y)\n", location)
    assert code.body == "model.fit(X, y)\n"
    (diagnostic,) = code.diagnostics
    assert "'%%capture out'" in diagnostic.message


def test_unwrapped_code_is_what_the_syntax_tree_holds(location):
    code = translate("%time x = f()\n", location)
    assert code.source == "x = f()\n"
    assert [type(s).__name__ for s in code.tree.body] == ["Assign"]


# -- IPython syntax with no Python form: MagicError ----------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "!ls",
        "x = !ls",
        "%%bash\nls -l\n",
        "%env DATA=/tmp",
        "%cd data",
        "ip = get_ipython()",
        "for f in files:\n    !echo {f}\n",
    ],
)
def test_ipython_syntax_without_a_python_form_raises_magic_error(source, location):
    with pytest.raises(MagicError) as info:
        translate(source, location)
    assert info.value.location == location


def test_magic_error_quotes_the_shell_command(location):
    with pytest.raises(MagicError, match=r"'!ls -l'"):
        translate("!ls -l\n", location)


def test_magic_error_quotes_the_cell_magic(location):
    with pytest.raises(MagicError, match=r"'%%bash'"):
        translate("%%bash\nls\n", location)


def test_magic_error_suggests_a_fix(location):
    with pytest.raises(MagicError) as info:
        translate("!ls\n", location)
    assert info.value.fix and "subprocess" in info.value.fix


@pytest.mark.parametrize(
    "source",
    [
        "x = 1  # is this right?\n",
        'q = """\n!important\n%notamagic\n"""\n',
        'msg = "100% done!"\n',
        "r = a % b\n",
        "ok = a != b\n",
    ],
)
def test_percent_bang_and_question_marks_in_python_are_left_alone(source, location):
    code = translate(source, location)
    assert code.body == source
    assert code.diagnostics == []


# -- syntax errors ---------------------------------------------------------------------------


def test_syntax_error_raises_cell_syntax_error_with_the_line(location):
    with pytest.raises(CellSyntaxError) as info:
        translate("x = 1\ny = (\n", location)
    assert info.value.location.line == 2


def test_syntax_error_message_names_cell_and_line(location):
    with pytest.raises(CellSyntaxError) as info:
        translate("x = 1\ny = (\n", location)
    assert str(info.value).startswith("nb.ipynb, cell 3 (id cell-3), line 2: syntax error")


def test_syntax_error_after_a_dropped_magic_keeps_the_cell_line(location):
    with pytest.raises(CellSyntaxError) as info:
        translate("%matplotlib inline\nx = (\n", location)
    assert info.value.location.line == 2


def test_syntax_error_inside_a_cell_magic_reports_the_cell_line(location):
    with pytest.raises(CellSyntaxError) as info:
        translate("%%time\nx = 1\ny = (\n", location)
    assert info.value.location.line == 3


def test_syntax_error_in_an_unwrapped_time_after_a_dropped_magic_reports_the_cell_line(location):
    with pytest.raises(CellSyntaxError) as info:
        translate("%matplotlib inline\nimport os\n%time x = (\n", location)
    assert info.value.location.line == 3


# -- display-only statements -----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "df",
        "df.head()",
        "df.describe().T",
        'df["price"]',
        "display(x)",
        "X.shape",
        "X.shape, y.shape",
        "plt.show()",
        "df.plot(kind='bar')",
        '"a note"',
    ],
)
def test_display_only_statement_is_left_out_of_the_body(statement, location):
    code = translate(f"x = load()\n{statement}\n", location)
    assert code.body == "x = load()\n"


@pytest.mark.parametrize(
    "statement",
    [
        "model.fit(X, y)",
        "print(x)",
        "df.to_csv('out.csv')",
        "df[pop(items)]",
        "head = df.head()",
        "plt.savefig('fig.png')",
    ],
)
def test_statement_with_effects_stays_in_the_body(statement, location):
    code = translate(f"{statement}\n", location)
    assert code.body == f"{statement}\n"


def test_display_only_statement_keeps_its_syntax_tree_node(location):
    code = translate("x = 1\nx\n", location)
    assert len(code.tree.body) == 2


def test_multi_line_display_statement_is_left_out_whole(location):
    assert translate("x = 1\ndf.head(\n    10\n)\ny = 2\n", location).body == "x = 1\ny = 2\n"


def test_display_inside_a_block_is_kept(location):
    source = "for d in frames:\n    display(d)\n"
    assert translate(source, location).body == source


# -- comments and layout ---------------------------------------------------------------------


def test_comments_are_kept_in_the_body(location):
    source = "# Load the data\ndf = load()  # raw\n\n# Clean it\ndf = df.dropna()\n"
    assert translate(source, location).body == source


def test_comments_are_kept_when_display_lines_are_left_out(location):
    source = "# Load the data\ndf = load()  # raw\ndf.head()\n# Clean it\ndf = df.dropna()\n"
    expected = "# Load the data\ndf = load()  # raw\n# Clean it\ndf = df.dropna()\n"
    assert translate(source, location).body == expected


def test_decorator_stays_with_its_function_when_lines_are_left_out(location):
    source = "import functools\n@functools.cache\ndef f(x):\n    return x\n"
    assert translate(source, location).body == "@functools.cache\ndef f(x):\n    return x\n"


def test_statement_sharing_a_line_with_an_import_is_kept(location):
    assert translate("import os; x = 1\n", location).body == "x = 1\n"


# -- imports ---------------------------------------------------------------------------------


def _import_statements(source, location):
    return [(b.name, b.statement) for b in translate(source, location).imports]


def test_top_level_imports_are_left_out_of_the_body(location):
    code = translate("import numpy as np\nx = np.zeros(3)\n", location)
    assert code.body == "x = np.zeros(3)\n"


def test_import_as_gives_its_statement_text(location):
    assert _import_statements("import numpy as np\n", location) == [("np", "import numpy as np")]


def test_from_import_as_gives_its_statement_text(location):
    assert _import_statements("from a import b as c\n", location) == [("c", "from a import b as c")]


def test_dotted_import_binds_the_top_package(location):
    assert _import_statements("import os.path\n", location) == [("os", "import os.path")]


def test_import_of_several_names_gives_one_statement_per_name(location):
    assert _import_statements(
        "from sklearn.metrics import f1_score, accuracy_score\n", location
    ) == [
        ("f1_score", "from sklearn.metrics import f1_score"),
        ("accuracy_score", "from sklearn.metrics import accuracy_score"),
    ]


def test_relative_import_keeps_its_dots(location):
    assert _import_statements("from ..utils import helper\n", location) == [
        ("helper", "from ..utils import helper")
    ]


def test_import_binding_records_module_and_line(location):
    (binding,) = translate("x = 1\nfrom pandas import DataFrame\n", location).imports
    assert (binding.module, binding.line) == ("pandas", 2)


def test_star_import_is_flagged_and_binds_no_name(location):
    code = translate("from math import *\n", location)
    assert code.star_import is True
    assert code.imports == []


def test_import_inside_a_block_stays_in_the_body(location):
    source = "try:\n    import ujson as json\nexcept ImportError:\n    import json\n"
    code = translate(source, location)
    assert code.body == source
    assert code.imports == []


# -- property --------------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c", "df", "model"])
assignment = st.builds(lambda t, x, y: f"{t} = {x} + {y}\n", names, names, names)


@given(st.lists(assignment, min_size=1, max_size=10))
def test_plain_assignments_are_exported_unchanged(lines):
    from nbops.errors import CellLocation

    source = "".join(lines)
    code = translate(source, CellLocation("nb.ipynb", 1))
    assert code.body == source
    assert code.imports == []
    assert code.diagnostics == []


@given(st.lists(st.sampled_from([" ", "\t", "\n", "x", "\r", "#"]), max_size=10).map("".join))
def test_leading_blank_lines_go_as_the_regex_removes_them(text: str) -> None:
    assert without_leading_blank_lines(text) == re.sub(r"\A(?:[ \t]*\n)+", "", text)
