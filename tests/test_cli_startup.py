"""The command line starts light: `import nbops.cli` (every `nbops` invocation, `--help`
included) loads no heavy library, and the bundle commands refuse a path that holds no bundle
(or a data file that is not there) before they import the machinery that loads bundles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops import errors

# What a bundle command imports to load, verify or serve a bundle, or to read data (typer
# itself imports pydantic when a command runs, so pydantic is not among them).
HEAVY = [
    "pandas", "numpy", "sklearn", "fastapi", "uvicorn", "cryptography",
    "nbops.config", "nbops.bundle.load", "nbops.bundle.signing", "nbops.bundle.serve",
    "nbops.quality",
]  # fmt: skip

_PROBE = """
import json, sys
from nbops.cli import main
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["nbops", *args]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = [m for m in watched if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], result["heavy"], done.stderr


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    code, heavy, stderr = _probe(["--version"], tmp_path)
    assert code == 0, stderr
    assert heavy == []


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "gone", "data.csv"],
        ["serve", "gone"],
        ["monitor", "gone", "--data", "data.csv"],
        ["bundle", "verify", "gone"],
        ["bundle", "sign", "gone", "--key", "ops.key"],
        ["bundle", "compare", "gone", "here"],
        ["bundle", "compare", "here", "gone"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_missing_bundle_is_refused_before_any_heavy_import(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "here").mkdir()
    code, heavy, stderr = _probe(args, tmp_path)
    assert code == errors.BundleError.exit_code
    assert stderr.strip() == (
        "nbops: error: no bundle at gone; give a bundle folder or its .tar.gz (nbops bundle)"
    )
    assert heavy == []


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "here", "gone.csv"],
        ["monitor", "here", "--data", "gone.csv"],
        ["monitor", "here", "--log", "gone.csv"],
    ],
    ids=lambda args: " ".join(args[:3:2]),
)
def test_a_missing_data_file_is_refused_before_any_heavy_import(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "here").mkdir()
    code, heavy, stderr = _probe(args, tmp_path)
    assert code == errors.QualityInputError.exit_code
    assert "gone.csv" in stderr and "no such file" in stderr and len(stderr.splitlines()) == 1
    assert heavy == []
