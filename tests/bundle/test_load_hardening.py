"""Loading a bundle someone else may have written: the allow-list decides from names before
importing anything, archives are refused as soon as they expand past their limits (and their
temporary folder goes on SIGTERM too), and a malformed manifest or serving entry is one line
on the command line, never a traceback.

The bundle is the session fixture's (tests/bundle/conftest.py), copied and rewritten the way
an attacker who can edit both the files and the manifest's hashes would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbops.bundle.allowlist import is_allowed, vetted_module
from nbops.bundle.archive import check_members, unpack
from nbops.bundle.load import load_bundle
from nbops.bundle.manifest import json_depth
from nbops.errors import BundleIntegrityError
from tests.helpers import run_nbops


def _rewrite(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the manifest, then recompute every hash as an attacker would."""
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    for rel in data["files"]:
        data["files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    data["model"]["sha256"] = data["files"]["model.skops"]
    (folder / "manifest.json").write_text(json.dumps(data))


def _predict(bundle: Path, tmp_path: Path) -> Any:
    """`nbops predict BUNDLE records.csv`, as a user runs it."""
    records = tmp_path / "records.csv"
    records.write_text("a,b,c\n1.0,1.5,x\n")
    return run_nbops("predict", str(bundle), str(records), "-o", "out.csv", cwd=tmp_path)


def _one_line_error(result: Any, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    # the error line, after any warning (an unsigned bundle's, printed once it is loaded)
    lines = [x for x in result.stderr.strip().splitlines() if not x.startswith("nbops: warning:")]
    assert len(lines) == 1 and lines[0].startswith("nbops: error: "), result.stderr
    return lines[0]


# -- the allow-list decides from names -----------------------------------------------------------

PROBE = """\
from pathlib import Path

Path({marker!r}).write_text("imported")


class Probe:
    pass
"""


@pytest.fixture
def probe_in_sklearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module with an import-time side effect (it writes a marker file) that Python finds as
    `sklearn.nbops_probe`, as a module dropped into scikit-learn's folder would be. Returns
    the marker's path."""
    import sklearn

    marker = tmp_path / "IMPORTED"
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "nbops_probe.py").write_text(PROBE.format(marker=str(marker)))
    monkeypatch.setattr(sklearn, "__path__", [*sklearn.__path__, str(folder)])
    monkeypatch.syspath_prepend(str(folder))  # also importable as a top-level module
    yield marker
    for name in ("sklearn.nbops_probe", "nbops_probe"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", ["sklearn.nbops_probe.Probe", "nbops_probe.Probe"])
def test_a_manifest_naming_a_module_with_an_import_side_effect_never_imports_it(
    bundle_copy: Path, probe_in_sklearn: Path, name: str
) -> None:
    _rewrite(bundle_copy, lambda d: d["model"]["types"].append(name))
    with pytest.raises(BundleIntegrityError, match=name.replace(".", r"\.")):
        load_bundle(bundle_copy)
    assert not probe_in_sklearn.exists()
    assert "sklearn.nbops_probe" not in sys.modules and "nbops_probe" not in sys.modules


def test_a_manifest_naming_numpy_f2py_main_is_refused_without_running_it(
    bundle_copy: Path, tmp_path: Path
) -> None:
    name = "numpy.f2py.__main__.X"
    _rewrite(bundle_copy, lambda d: d["model"]["types"].append(name))
    line = _one_line_error(_predict(bundle_copy, tmp_path), 29)
    assert name in line and "never loads" in line
    assert not (tmp_path / "out.csv").exists()


# Segments an attacker would use, real module names of trusted packages among them.
_SEGMENTS = st.sampled_from(
    [
        "sklearn",
        "numpy",
        "f2py",
        "__main__",
        "__init__",
        "tests",
        "test_base",
        "conftest",
        "experimental",
        "enable_iterative_imputer",
        "utils",
        "_testing",
        "linear_model",
        "_logistic",
        "LogisticRegression",
        "dtypes",
        "nbops_probe",
        "Probe",
        "this",
        "antigravity",
        "os",
        "system",
    ]
)
_IDENTIFIERS = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    first=st.sampled_from(["sklearn", "numpy", "nbops_probe", "this", "antigravity"]),
    rest=st.lists(st.one_of(_SEGMENTS, _IDENTIFIERS), min_size=1, max_size=5),
)
def test_deciding_trust_imports_only_vetted_modules(
    probe_in_sklearn: Path, first: str, rest: list[str]
) -> None:
    name = ".".join([first, *rest])
    before = set(sys.modules)
    allowed = is_allowed(name)
    imported = set(sys.modules) - before
    vetted = vetted_module(name)
    if vetted is None:  # refused from the name alone: nothing was imported
        assert imported == set(), (name, imported)
    # a vetted module (and what it imports) is scikit-learn's or numpy's own, never a test,
    # a `__main__` or the probe
    assert not any(
        part in ("__main__", "tests", "conftest", "nbops_probe")
        for module in imported
        for part in module.split(".")
    ), (name, imported)
    assert not probe_in_sklearn.exists()
    if allowed:
        assert vetted is not None
        assert not any(p.startswith("__") or p in ("tests", "conftest") for p in name.split("."))


def test_every_scikit_learn_estimator_is_still_allowed_by_name() -> None:
    from sklearn.utils import all_estimators

    refused = [
        f"{cls.__module__}.{cls.__qualname__}"
        for _, cls in all_estimators()
        if not is_allowed(f"{cls.__module__}.{cls.__qualname__}")
    ]
    assert refused == []
    # compiled classes a fitted model holds (KNeighbors' trees and metric)
    assert is_allowed("sklearn.neighbors._kd_tree.KDTree")
    assert is_allowed("sklearn.metrics._dist_metrics.EuclideanDistance64")
    # a name that re-exports, a test helper, a switch module: refused
    assert not is_allowed("sklearn.utils.Bunch")
    assert not is_allowed("sklearn.utils._testing.TempMemmap")
    assert not is_allowed("sklearn.experimental.enable_iterative_imputer.IterativeImputer")


# -- archives: limits while extracting, SIGTERM ---------------------------------------------------


class _Zeros:
    """`size` zero bytes, read in pieces: a member written without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def _stream_archive(path: Path, members: list[tuple[str, int | bytes]]) -> Path:
    """A .tar.gz whose members are zeros of the given size, or the given bytes."""
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, int):
                info.size = content
                tar.addfile(info, _Zeros(content))
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


_MB = 1024**2
_BOMB = 150 * _MB  # zeros: about 150 KB once compressed


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archives")
    noise = np.random.default_rng(0).bytes(2 * _MB)  # does not compress
    return {
        # every byte declared in the headers: 1000 times the archive's size
        "bomb": _stream_archive(root / "bomb.tar.gz", [("b/manifest.json", b"{}"), ("b/z", _BOMB)]),
        # 2 MB of noise first: declared 152 MB for 2.2 MB, under 100x overall, but the zeros
        # member alone expands 1000 times: only the copy can see it
        "hidden": _stream_archive(
            root / "hidden.tar.gz", [("b/manifest.json", b"{}"), ("b/noise", noise), ("b/z", _BOMB)]
        ),
        "noise": _stream_archive(root / "noise.tar.gz", [("b/noise", noise)]),
    }


def test_an_archive_declaring_a_hundred_times_its_size_is_refused_before_writing(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(BundleIntegrityError, match=r"more than 100 times .*decompression bomb"):
        unpack(archives["bomb"], dest)
    assert _files_under(tmp_path) == []


def test_a_member_expanding_past_the_ratio_stops_the_copy_mid_member(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(
        BundleIntegrityError, match=r"member 'b/z' expands more than 100 times"
    ) as e:
        unpack(archives["hidden"], dest)
    written = re.search(r"stopped after writing ([\d.]+) MiB", str(e.value))
    assert written is not None and float(written.group(1)) < 8  # of 150 MiB
    assert _files_under(tmp_path) == []  # the scratch folder is gone


def _limited_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE")
@pytest.mark.parametrize("which", ["bomb", "hidden"])
def test_predict_refuses_a_decompression_bomb_in_one_line_writing_little(
    archives: dict[str, Path], tmp_path: Path, which: str
) -> None:
    """The command runs with no file allowed past 32 MiB (RLIMIT_FSIZE): were nbops to write
    more of the 150 MiB member, its write would fail with EFBIG ("File too large") instead of
    the one-line ratio refusal."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "records.csv").write_text("a\n1\n")
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "predict", str(archives[which]), "records.csv"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited_file_size(32 * _MB),
        check=False,
    )
    line = _one_line_error(result, 29)
    assert "more than 100 times" in line
    assert list(scratch.iterdir()) == []


def test_the_size_limit_comes_from_the_environment(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_BUNDLE_MAX_BYTES", "1M")
    with pytest.raises(BundleIntegrityError, match=r"more than 1048576 bytes.*NBOPS_BUNDLE_MAX"):
        unpack(archives["noise"], tmp_path / "dest")
    monkeypatch.setenv("NBOPS_BUNDLE_MAX_BYTES", "3M")
    assert unpack(archives["noise"], tmp_path / "dest") == tmp_path / "dest" / "b"


def test_the_default_size_limit_is_far_below_four_gib(archives: dict[str, Path]) -> None:
    info = tarfile.TarInfo("b/big")
    info.size = 2 * 1024**3  # 2 GiB: under the former 4 GiB limit
    with pytest.raises(BundleIntegrityError, match="more than 1073741824 bytes"):
        check_members(archives["noise"], [info])


@pytest.mark.parametrize(
    ("variable", "value"),
    [("NBOPS_BUNDLE_MAX_BYTES", "lots"), ("NBOPS_BUNDLE_MAX_RATIO", "0.5")],
)
def test_a_bad_limit_in_the_environment_is_one_line(
    archives: dict[str, Path], tmp_path: Path, variable: str, value: str
) -> None:
    (tmp_path / "records.csv").write_text("a\n1\n")
    result = subprocess.run(
        [sys.executable, "-m", "nbops", "predict", str(archives["noise"]), "records.csv"],
        cwd=tmp_path,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert variable in _one_line_error(result, 28)


def test_a_sparse_member_is_refused_before_extracting(tmp_path: Path) -> None:
    """A GNU sparse member declares one size and holds another: nbops never writes one."""
    archive = tmp_path / "sparse.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("b/manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        sparse = tarfile.TarInfo("b/holes")
        sparse.type = tarfile.GNUTYPE_SPARSE
        tar.addfile(sparse)
    with pytest.raises(BundleIntegrityError, match="'b/holes' is a sparse file"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or _files_under(tmp_path / "dest") == []


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_sigterm_while_extracting_removes_the_temporary_folder(tmp_path: Path) -> None:
    """SIGTERM reaches `nbops predict` while it writes the members of a large archive (many
    small files): the command ends with 143 and no traceback, and its temporary folder is gone.
    The test waits for files to appear in the folder being extracted, never on a clock."""
    archive = _stream_archive(
        tmp_path / "many.tar.gz", [(f"b/f{i:05d}", b"x") for i in range(20_000)]
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "records.csv").write_text("a\n1\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "nbops", "predict", str(archive), "records.csv"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(scratch.glob("nbops-bundle-*/.b.*.tmp/f00000")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "extraction never started"
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert list(scratch.iterdir()) == []


# -- malformed manifests and serving entries: one line ---------------------------------------------

DEEP = 100_000


def _deep_manifest(folder: Path) -> None:
    text = (folder / "manifest.json").read_text().rstrip()
    assert text.endswith("}")
    (folder / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * DEEP + "]" * DEEP + "}")


@pytest.mark.parametrize("command", ["predict", "serve", "bundle verify"])
def test_a_manifest_nested_a_hundred_thousand_levels_is_one_line(
    bundle_copy: Path, tmp_path: Path, command: str
) -> None:
    _deep_manifest(bundle_copy)
    if command == "predict":
        result = _predict(bundle_copy, tmp_path)
    elif command == "serve":  # refused before the server binds its port
        result = run_nbops("serve", str(bundle_copy), "--port", "9", cwd=tmp_path)
    else:
        result = run_nbops("bundle", "verify", str(bundle_copy), cwd=tmp_path)
    line = _one_line_error(result, 29)
    assert "manifest" in line and "more than 64 levels deep" in line


def test_a_schema_nested_a_hundred_thousand_levels_is_one_line(
    bundle_copy: Path, tmp_path: Path
) -> None:
    def deepen(data: dict[str, Any]) -> None:
        (bundle_copy / "schema.json").write_text("[" * DEEP + "]" * DEEP)

    _rewrite(bundle_copy, deepen)
    line = _one_line_error(_predict(bundle_copy, tmp_path), 29)
    assert "schema.json" in line and "levels deep" in line


def _append(rel: str, code: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        with open(folder / rel, "a", encoding="utf-8") as handle:
            handle.write(code)

    return change


def _nothing(folder: Path) -> None:
    return None


def _both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        for one in changes:
            one(folder)

    return change


# (serving.function or {field: value}, the bundle's code changed first, what the line says)
NOT_SERVING: list[Any] = [
    pytest.param("np", _nothing, "it is a module", id="a-module"),
    pytest.param("Any", _nothing, "it is a class", id="a-class-from-typing"),
    pytest.param(
        "Features",
        _append(
            "code/tiny/transform.py",
            "\n\nclass Features:\n    def __init__(self, *, raw):\n        self.raw = raw\n",
        ),
        "it is a class",
        id="a-class-of-the-bundle",
    ),
    pytest.param("load", _nothing, "does not take raw", id="wrong-signature"),
    pytest.param(
        "helper",
        _both(
            _append("code/tiny/common.py", "\n\ndef helper(*, raw):\n    return raw\n"),
            _append("code/tiny/transform.py", "\nfrom .common import helper\n"),
        ),
        "it is tiny.common.helper, from another module",
        id="defined-in-another-module",
    ),
    pytest.param(
        "helper",
        _append("code/tiny/transform.py", "\nfrom json import dumps as helper\n"),
        "it is json.dumps, from another module",
        id="imported-from-the-standard-library",
    ),
    pytest.param(
        "rows",
        _append("code/tiny/transform.py", "\n\ndef rows(*, raw):\n    yield raw\n"),
        "generator",
        id="a-generator",
    ),
    pytest.param(
        "lazy",
        _append(
            "code/tiny/transform.py",
            "\n\ndef __getattr__(name):\n    raise SystemExit('module __getattr__ ran')\n",
        ),
        "defines no such name",
        id="resolved-by-module-getattr",
    ),
    pytest.param("nope", _nothing, "defines no such name", id="missing"),
    pytest.param({"module": "os"}, _nothing, "serving.module 'os'", id="module-outside-the-bundle"),
    pytest.param({"module": "__init__"}, _nothing, "serving.module '__init__'", id="init-module"),
    pytest.param({"function": "os.system"}, _nothing, "not a Python name", id="dotted-name"),
]


def _serving_entry(folder: Path, entry: Any, change: Callable[[Path], None]) -> None:
    change(folder)
    fields = {"function": entry} if isinstance(entry, str) else entry
    _rewrite(folder, lambda d: d["serving"].update(fields))


@pytest.mark.parametrize(("entry", "change", "says"), NOT_SERVING)
def test_a_serving_function_that_is_not_one_is_refused_at_load(
    bundle_copy: Path, entry: Any, change: Callable[[Path], None], says: str
) -> None:
    _serving_entry(bundle_copy, entry, change)
    with pytest.raises(BundleIntegrityError) as refused:
        load_bundle(bundle_copy)
    assert says in str(refused.value) and "\n" not in str(refused.value)


# The same refusals through the command line: exit 29, one line, nothing written. The command
# line turns whichever refusal load_bundle raises into that line (the test above checks each
# refusal's words), so two cases cover it: an object that is no function, and a function of
# the right shape defined in another module of the bundle.
_CLI_CASES = {"a-module", "defined-in-another-module"}


@pytest.mark.parametrize(
    ("entry", "change", "says"), [p for p in NOT_SERVING if p.id in _CLI_CASES]
)
def test_predict_with_a_serving_function_that_is_not_one_is_one_line(
    bundle_copy: Path, tmp_path: Path, entry: Any, change: Callable[[Path], None], says: str
) -> None:
    _serving_entry(bundle_copy, entry, change)
    line = _one_line_error(_predict(bundle_copy, tmp_path), 29)
    assert says in line
    assert not (tmp_path / "out.csv").exists()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:\u00e9'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_JSON, ensure_ascii=st.booleans(), as_bytes=st.booleans())
def test_json_depth_counts_brackets_outside_strings_only(
    value: Any, ensure_ascii: bool, as_bytes: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert json_depth(text.encode() if as_bytes else text) == _depth(value)


def test_predict_with_a_serving_function_whose_output_the_model_refuses_is_one_line(
    bundle_copy: Path, tmp_path: Path
) -> None:
    """A serving function of the right shape that hands the model the raw request (a text
    column it cannot read) loads, but every prediction is a one-line BundleError (exit 28),
    not the model's traceback."""
    change = _append("code/tiny/transform.py", "\n\ndef passthrough(*, raw):\n    return raw\n")
    _serving_entry(bundle_copy, "passthrough", change)
    line = _one_line_error(_predict(bundle_copy, tmp_path), 28)
    assert "the model refuses the request's features" in line
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("attack", ["f2py-type", "deep-schema"])
def test_bundle_verify_refuses_what_loading_would_refuse_without_running_it(
    bundle_copy: Path, tmp_path: Path, attack: str
) -> None:
    """`nbops bundle verify` (which runs nothing) does not call a bundle fine that every
    `predict` would refuse: a manifest trusting a module nbops never loads, a schema nested
    100,000 levels."""
    if attack == "f2py-type":
        _rewrite(bundle_copy, lambda d: d["model"]["types"].append("numpy.f2py.__main__.X"))
        says = "never loads"
    else:
        (bundle_copy / "schema.json").write_text("[" * DEEP + "]" * DEEP)
        _rewrite(bundle_copy, _nothing_to_manifest)
        says = "levels deep"
    result = run_nbops("bundle", "verify", str(bundle_copy), cwd=tmp_path)
    assert says in _one_line_error(result, 29)


def _nothing_to_manifest(data: dict[str, Any]) -> None:
    return None


# -- the model's types: read once when it loads, each refusal said as before ----------------------


def test_a_good_model_is_read_once(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skops import io as sio

    reads: list[str] = []
    real_untrusted, real_loads = sio.get_untrusted_types, sio.loads
    monkeypatch.setattr(
        sio, "get_untrusted_types", lambda **k: reads.append("audit") or real_untrusted(**k)
    )
    monkeypatch.setattr(
        sio, "loads", lambda data, **k: reads.append("load") or real_loads(data, **k)
    )
    bundle = load_bundle(bundle_copy)
    assert reads == ["load"]
    assert bundle.model is not None


def _forest() -> bytes:
    """A skops file holding types beyond skops's defaults (a random forest's trees)."""
    from sklearn.ensemble import RandomForestClassifier
    from skops import io as sio

    return sio.dumps(RandomForestClassifier(n_estimators=2, random_state=0).fit([[0], [1]], [0, 1]))


def _no_change(data: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize(
    ("change", "replace_model", "says"),
    [
        (_no_change, _forest(), "which the manifest does not list"),
        (
            lambda d: d["model"]["types"].append("posix.system"),
            None,
            "'posix.system', which nbops never loads",
        ),
        (
            lambda d: None,
            b"not a zip file",
            "model.skops is not a readable skops file (BadZipFile)",
        ),
        # both wrong: the unreadable file is said first, as the file is read before the types
        (
            lambda d: d["model"]["types"].append("posix.system"),
            b"junk",
            "not a readable skops file",
        ),
    ],
    ids=[
        "a type the manifest does not list",
        "a listed type nbops never loads",
        "not a zip",
        "both",
    ],
)
def test_a_refused_model_is_refused_with_the_first_reason(
    bundle_copy: Path,
    change: Callable[[dict[str, Any]], None],
    replace_model: bytes | None,
    says: str,
) -> None:
    if replace_model is not None:
        (bundle_copy / "model.skops").write_bytes(replace_model)
    _rewrite(bundle_copy, change)
    with pytest.raises(BundleIntegrityError) as raised:
        load_bundle(bundle_copy)
    assert says in str(raised.value)
