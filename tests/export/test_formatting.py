"""nbops.export.formatting runs ruff's two steps (sort imports, then format) at the same time
instead of one after the other: `format` on the files as rendered, `check --fix` on a copy,
and `format` again only on the files the import step changed. That must give exactly what
the two steps in a row over one folder give (the reference below): for any mix of files
the import step changes or not, first-party packages, relative imports and paths ruff
excludes by default, and for a ruff failure (one line, as before)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from nbops.errors import ExportError
from nbops.export import formatting
from nbops.export.render import render_package
from nbops.notebook.analysis import analyse
from nbops.notebook.read import read_notebook


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _in_a_row(files: dict[str, str]) -> dict[str, str] | str:
    """The reference: both steps, one after the other, over one folder (the error's first
    line when one fails)."""
    ruff = formatting._ruff()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        for step in formatting._STEPS:
            proc = subprocess.run([ruff, *step], cwd=root, capture_output=True, text=True)
            if proc.returncode != 0:
                return (proc.stderr or proc.stdout).strip().splitlines()[0]
        return {rel: (root / rel).read_text(encoding="utf-8") for rel in files}


def _at_once(files: dict[str, str], *, ahead: bool = False) -> dict[str, str] | str:
    """Both steps at once; `ahead`: started before the files were written (RuffReady)."""
    ruff = formatting._ruff()
    run = formatting._RuffRun(ruff, files, formatting.RuffReady(ruff, ahead=ahead))
    try:
        return run.result()
    except ExportError as exc:
        message = str(exc).split("; ")[0]  # without the fix hint
        assert "\n" not in message
        return message.removeprefix("the generated code could not be formatted: ")
    finally:
        run.close()


IMPORTS = [
    "import os",
    "import sys",
    "import json, re",
    "from collections import OrderedDict, defaultdict",
    "from collections import Counter",
    "import numpy as np",
    "import pandas",
    "import pkg",
    "from pkg import mod",
    "from pkg.mod import x",
    "import other",
    "from . import b, a",
    "from . import mod",
    "from .mod import x as y",
    "from __future__ import annotations",
]
CODE = [
    "x = {'a':1}",
    "y = [1,2,\n 3]",
    "def f(a,b): return a+b",
    "class C:\n  pass",
    "z = 1",
    "value = dict(alpha=1, beta=2, gamma=3, delta=4, epsilon=5, zeta=6, eta=7, theta=8, iota=9)",
    "if True:\n    import os as _os\n    import abc\n    w = 1",
]
PATHS = [
    "pkg/__init__.py",
    "pkg/mod.py",
    "pkg/sub/deep.py",
    "test_pkg.py",
    "other.py",
    "build/generated.py",  # a folder ruff excludes when it walks a tree
    "pkg/__main__.py",
]


@st.composite
def sources(draw: st.DrawFn) -> str:
    imports = draw(st.lists(st.sampled_from(IMPORTS), max_size=6))
    if "from __future__ import annotations" in imports:  # it must come first to be valid
        imports.remove("from __future__ import annotations")
        imports.insert(0, "from __future__ import annotations")
    code = draw(st.lists(st.sampled_from(CODE), max_size=4))
    return "\n".join([*imports, "", *code]) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(PATHS), sources(), min_size=1, max_size=len(PATHS)),
)
def test_both_steps_at_once_equal_both_in_a_row(files: dict[str, str]) -> None:
    expected = _in_a_row(files)
    assert _at_once(files) == expected
    assert _at_once(files, ahead=True) == expected


def test_files_the_import_step_changes_are_formatted_from_their_sorted_text() -> None:
    files = {
        "pkg/__init__.py": "from .mod import x\n",
        "pkg/mod.py": "import sys\nimport os\nimport pkg\nimport numpy\nx = {'a':1}\n",
        "pkg/done.py": "import os\n\nx = 1\n",
    }
    out = _at_once(files)
    assert out == _in_a_row(files)
    assert isinstance(out, dict)
    assert out["pkg/mod.py"] == (
        'import os\nimport sys\n\nimport numpy\n\nimport pkg\n\nx = {"a": 1}\n'
    )


def test_a_file_ruff_cannot_parse_is_one_line_as_before() -> None:
    files = {"pkg/__init__.py": "", "pkg/bad.py": "def f(:\n    pass\n", "ok.py": "x=1\n"}
    message = _at_once(files)
    assert isinstance(message, str)
    assert message == _in_a_row(files) == _at_once(files, ahead=True)
    with pytest.raises(ExportError, match=r"^the generated code could not be formatted: "):
        formatting.format_files(files)


def test_a_failed_run_leaves_no_process_or_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[str]] = []
    real_start = formatting._start

    def recording_start(*args: object) -> subprocess.Popen[str]:
        proc = real_start(*args)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    monkeypatch.setattr(formatting, "_start", recording_start)
    pending = formatting.start_formatting({"bad.py": "def f(:\n"})
    assert pending._run is not None
    folder = pending._run._ready.root
    with pytest.raises(ExportError):
        pending.result()
    assert len(started) == 2 and all(proc.poll() is not None for proc in started)
    assert not folder.exists()


def test_the_format_step_failing_on_unsorted_text_falls_back_to_the_steps_in_a_row(
    tmp_path: Path,
) -> None:
    """A ruff (here a stand-in) whose `format` fails on the text as rendered but not on the
    sorted text: the result is what the two steps in a row give."""
    fake = tmp_path / "fake-ruff"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "files = sorted(pathlib.Path('.').rglob('*.py'))\n"
        "if sys.argv[1] == 'check':\n"
        "    for f in files: f.write_text(f.read_text().replace('UNSORTED', 'SORTED'))\n"
        "    sys.exit(0)\n"
        "if any('UNSORTED' in f.read_text() for f in files):\n"
        "    print('error: cannot format unsorted text', file=sys.stderr); sys.exit(2)\n"
        "for f in files: f.write_text(f.read_text().upper())\n"
    )
    fake.chmod(0o755)
    files = {"a.py": "x = 'UNSORTED'\n", "b.py": "y = 1\n"}
    run = formatting._RuffRun(str(fake), files)
    try:
        assert run.result() == {"a.py": "X = 'SORTED'\n", "b.py": "Y = 1\n"}
    finally:
        run.close()


def test_the_packages_own_imports_are_rendered_as_the_import_step_leaves_them(
    tmp_path: Path,
) -> None:
    """So that step usually changes nothing and no third ruff process runs."""
    sources = {
        "setup": "import math\nimport random\nrandom.seed(0)",
        "parameters": "scale = 2.0",
        "transform": "value = scale * 3",
        "train": "model = value + 1",
        "evaluate": "score = math.sqrt(model)",
    }
    cells = [
        new_code_cell(source, metadata={"tags": [tag]}, id=f"c{i}")
        for i, (tag, source) in enumerate(sources.items())
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    files = render_package(analyse(read_notebook(path)), "pkg").files
    pipeline = files["pkg/pipeline.py"]
    assert "from . import common, evaluate, train, transform\n" in pipeline
    for rel, text in files.items():
        (tmp_path / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / rel).write_text(text)
    proc = subprocess.run(
        [formatting._ruff(), *formatting._STEPS[0][:-1], "--diff", "pkg/pipeline.py"],
        cwd=tmp_path / "tree",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _children() -> set[int]:
    """This process's child processes (Linux: /proc)."""
    me = Path(f"/proc/{__import__('os').getpid()}/task")
    return {int(pid) for task in me.iterdir() for pid in (task / "children").read_text().split()}


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")


@needs_proc
def test_steps_started_ahead_wait_for_their_files_and_end_unrun_when_closed() -> None:
    ruff = formatting._ruff()
    before = _children()
    ready = formatting.RuffReady(ruff, ahead=True)
    started = _children() - before
    assert len(started) == 2  # the two waiting shells
    # Nothing runs before go(): at the end of its input a shell exits (1) without ruff.
    waiting = list(ready._waiting)
    (ready.formatted / "m.py").write_text("x = {'a':1}\n")
    ready.close()
    assert [proc.returncode for proc in waiting] == [1, 1]
    assert not ready.root.exists()
    assert not (_children() & started)


def test_a_ready_run_is_closed_when_the_result_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"pkg/__init__.py": "x = {'a':1}\n"}
    first = formatting.format_files(files)  # kept in the cache
    ready = formatting.ruff_ready()
    pending = formatting.start_formatting(files, ready)
    assert pending._run is None
    assert not ready.root.exists()
    assert pending.result() == first


def test_a_missing_ruff_started_ahead_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-ruff")
    run = formatting._RuffRun(missing, {"a.py": "x=1\n"}, formatting.RuffReady(missing, ahead=True))
    try:
        with pytest.raises(
            ExportError, match=r"^the generated code could not be formatted: "
        ) as exc:
            run.result()
        assert "\n" not in str(exc.value)
    finally:
        run.close()
    assert not run._ready.root.exists()


@needs_proc
def test_an_export_that_fails_while_rendering_leaves_no_waiting_ruff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.export import exporter

    made: list[formatting.RuffReady] = []
    real_ready = formatting.ruff_ready

    def recording_ready() -> formatting.RuffReady:
        made.append(real_ready())
        return made[-1]

    def broken_render(*args: object, **kwargs: object) -> None:
        raise ExportError("rendering failed")

    monkeypatch.setattr(exporter, "ruff_ready", recording_ready)
    monkeypatch.setattr(exporter, "render_package", broken_render)
    cells = [
        new_code_cell("x = 1", metadata={"tags": ["train"]}, id="a"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    before = _children()
    with pytest.raises(ExportError, match="rendering failed"):
        exporter.export_notebook(path, tmp_path / "out")
    assert len(made) == 1 and not made[0].root.exists()
    assert _children() <= before
    assert not (tmp_path / "out").exists()


def test_a_waiting_step_killed_before_its_files_came_is_one_line_not_a_broken_pipe() -> None:
    ruff = formatting._ruff()
    ready = formatting.RuffReady(ruff, ahead=True)
    for proc in ready._waiting:
        proc.kill()
        proc.wait()
    run = formatting._RuffRun(ruff, {"a.py": "x=1\n"}, ready)
    try:
        with pytest.raises(ExportError, match=r"^the generated code could not be formatted: "):
            run.result()
    finally:
        run.close()
    assert not ready.root.exists()
