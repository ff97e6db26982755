"""Adoption benchmark: untagged notebooks to exported packages that reproduce their metrics.

What it measures
----------------
Issue 11's acceptance: a real, untagged notebook goes from the file its author left to an
exported package whose metrics equal the notebook's, with no manual edit, using nbops's own
suggestions. For each notebook in a folder (default `tests/fixtures/tutorials/`: `.ipynb`
files, and `.py` files with `# %%` cell markers), in a fresh temporary folder holding a copy
of the notebook and its neighbours (the files beside it and the folders that hold no
notebook: data, helper modules), it runs the real command line, as a user would:

1. tag:     `nbops tag NB --suggest --write --json` — skipped for a Kale notebook (one with
            Kale's `block:`/`step:`/`pipeline-*`/`imports` tags), which is exported as it is
            (nbops reads Kale's tags); `--kale-convert` runs `nbops tag NB --from-kale --write`
            on it instead;
2. export:  `nbops export NB` (the package folder is read from its "Run it:" line);
3. run:     `nbops run NB`, then `nbops runs show ID --json` for the run's recorded metrics;
4. package: `python -m NAME` from the package folder (it prints the metrics as JSON);
5. compare: success when the package's metrics are not empty and equal the run's — the same
            names, each value equal within a relative 1e-9.

A stage that fails (a command missing, a non-zero exit, output that cannot be read) stops
that notebook; the line names the stage and the error's last line. Independently of
success, `headline` says whether one of the package's metrics equals the number the tutorial
itself presents as its result (`headlines.json` beside the notebooks: the expression and its
value, measured once on the original notebook).

It prints one line per notebook and the adoption figure (fraction and percentage), or with
`--json` one JSON document. It is a report, not a test: it always exits 0.

Run it from the repository root::

    PYTHONPATH=$PWD/src .venv/bin/python bench/adoption.py [FOLDER] [--only NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO / "tests" / "fixtures" / "tutorials"
REL_TOL = 1e-9
STAGE_TIMEOUT_S = 600
KALE_TAG = re.compile(
    r"^(block:|step:|prev:|limit:|pipeline-parameters$|pipeline-metrics$|imports$|functions$)"
)
RUN_LINE = re.compile(r"^Run (\S+) (\w+) in ")
RUN_IT = re.compile(r"^Run it: cd (.+) && python -m (\S+)\s*$")
BOX = " \u2500\u2502\u256d\u256e\u256f\u2570"
SKIP_DIRS = {".nbops", "pipelines", "bundles", ".ipynb_checkpoints", "__pycache__", "nbops-runs"}


@dataclass
class Outcome:
    """What happened to one notebook."""

    notebook: str
    kale: bool = False
    ok: bool = False
    stage: str = ""  # the stage that failed, when not ok
    error: str = ""
    tagging: Any = None  # the suggester's --json answer (or its text)
    package: str = ""
    run_id: str = ""
    run_metrics: dict[str, Any] = field(default_factory=dict)
    package_metrics: dict[str, Any] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    headline: dict[str, Any] | None = None
    headline_ok: bool | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class StageFailed(Exception):
    def __init__(self, stage: str, error: str) -> None:
        super().__init__(f"{stage}: {error}")
        self.stage = stage
        self.error = error


def find_notebooks(folder: Path) -> list[Path]:
    """The notebooks under `folder`: .ipynb files and percent-format .py files."""
    found = []
    for path in sorted(folder.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(folder).parts):
            continue
        if not path.is_file():
            continue
        if path.suffix == ".ipynb" or (path.suffix == ".py" and _is_percent_script(path)):
            found.append(path)
    return found


def _is_percent_script(path: Path) -> bool:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^# %%", text, flags=re.MULTILINE) is not None


def is_kale(path: Path) -> bool:
    """Whether the notebook carries Kale's cell tags."""
    if path.suffix != ".ipynb":
        return False
    try:
        nb = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    cells = nb.get("cells") or [c for ws in nb.get("worksheets", []) for c in ws.get("cells", [])]
    return any(
        KALE_TAG.match(str(tag))
        for cell in cells
        for tag in (cell.get("metadata", {}).get("tags") or [])
    )


def copy_with_neighbours(notebook: Path, into: Path) -> Path:
    """Copy the notebook, the files beside it, and the folders there that hold no notebook."""
    source = notebook.parent
    for item in source.iterdir():
        if item.name in SKIP_DIRS:
            continue
        if item.is_dir():
            if not find_notebooks(item):
                shutil.copytree(item, into / item.name, ignore=shutil.ignore_patterns(*SKIP_DIRS))
        elif item.suffix != ".ipynb" or item == notebook:
            shutil.copy2(item, into / item.name)
    (into / ".nbops").mkdir(exist_ok=True)  # the run store lives here, not in a parent folder
    return into / notebook.name


def _last_line(text: str) -> str:
    """The line that says what went wrong (rich's box drawing around it removed)."""
    lines = [
        line.strip(BOX).strip()
        for line in text.splitlines()
        if not line.lstrip().startswith(("\u256d", "\u2570"))  # a box's top or bottom edge
    ]
    lines = [line for line in lines if line and not line.startswith(("Usage:", "Try '"))]
    if not lines:
        return ""
    for line in reversed(lines):  # prefer nbops's one-line error over trailing noise
        if line.startswith(("nbops: error", "Error", "error:")):
            return line
    return lines[-1]


def _command(args: list[str], cwd: Path, stage: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=STAGE_TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise StageFailed(stage, f"timed out after {STAGE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        message = _last_line(done.stderr) or _last_line(done.stdout)
        raise StageFailed(stage, f"exit {done.returncode}: {message}")
    return done


def _nbops(*args: str, cwd: Path, stage: str) -> subprocess.CompletedProcess[str]:
    return _command([sys.executable, "-m", "nbops", *args], cwd, stage)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts of metrics as `name.key` entries."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return bool(a == b)


def compare(run: dict[str, Any], package: dict[str, Any]) -> list[str]:
    """The differences between the run's metrics and the package's, one line each."""
    problems = []
    for name in sorted(set(run) | set(package)):
        if name not in package:
            problems.append(f"{name}: recorded by the run, not computed by the package")
        elif name not in run:
            problems.append(f"{name}: computed by the package, not recorded by the run")
        elif not same_value(run[name], package[name]):
            problems.append(f"{name}: run {run[name]!r} != package {package[name]!r}")
    return problems


def _json_tail(text: str) -> Any:
    """The JSON document a command printed (the last line that parses, or the whole text)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON in the output")


def measure(
    notebook: Path, folder: Path, headlines: dict[str, Any], *, kale_convert: bool, keep: bool
) -> Outcome:
    """Take one notebook through the stages in a temporary copy of its folder."""
    outcome = Outcome(notebook=str(notebook.relative_to(folder)), kale=is_kale(notebook))
    outcome.headline = headlines.get(outcome.notebook)
    work = Path(tempfile.mkdtemp(prefix="nbops-adoption-"))
    try:
        nb = copy_with_neighbours(notebook, work)
        _stages(nb, work, outcome, kale_convert=kale_convert)
    except StageFailed as failed:
        outcome.stage, outcome.error = failed.stage, failed.error
    finally:
        if keep:
            print(f"  (kept {work})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return outcome


def _timed(outcome: Outcome, stage: str, start: float) -> None:
    outcome.seconds[stage] = round(time.perf_counter() - start, 2)


def _stages(nb: Path, work: Path, outcome: Outcome, *, kale_convert: bool) -> None:
    name = nb.name
    start = time.perf_counter()
    if outcome.kale:
        if kale_convert:
            done = _nbops("tag", name, "--from-kale", "--write", cwd=work, stage="tag")
            outcome.tagging = done.stdout[-4000:]
        else:
            outcome.tagging = "Kale tags, exported as they are"
    else:
        done = _nbops("tag", name, "--suggest", "--write", "--json", cwd=work, stage="tag")
        try:
            outcome.tagging = _json_tail(done.stdout)
        except ValueError:
            outcome.tagging = done.stdout[-4000:]
    _timed(outcome, "tag", start)

    start = time.perf_counter()
    done = _nbops("export", name, cwd=work, stage="export")
    found = [m for line in done.stdout.splitlines() if (m := RUN_IT.match(line.strip()))]
    if not found:
        raise StageFailed("export", f"no 'Run it:' line in its output: {_last_line(done.stdout)}")
    package_dir = Path(found[-1].group(1))
    package_dir = package_dir if package_dir.is_absolute() else work / package_dir
    package = found[-1].group(2)
    outcome.package = package
    _timed(outcome, "export", start)

    start = time.perf_counter()
    done = _nbops("run", name, cwd=work, stage="run")
    runs = [m for line in done.stdout.splitlines() if (m := RUN_LINE.match(line.strip()))]
    if not runs:
        raise StageFailed("run", f"no 'Run ID ...' line in its output: {_last_line(done.stdout)}")
    outcome.run_id, status = runs[-1].group(1), runs[-1].group(2)
    if status != "completed":
        raise StageFailed("run", f"the run is {status}: {_last_line(done.stderr)}")
    shown = _nbops("runs", "show", outcome.run_id, "--json", cwd=work, stage="run")
    try:
        record = _json_tail(shown.stdout)
    except ValueError as exc:
        raise StageFailed("run", f"runs show --json: {exc}") from None
    outcome.run_metrics = {
        key: points[-1]["value"] if isinstance(points, list) and points else points
        for key, points in (record.get("metrics") or {}).items()
    }
    _timed(outcome, "run", start)

    start = time.perf_counter()
    done = _command([sys.executable, "-m", package], package_dir, "package")
    try:
        printed = _json_tail(done.stdout)
    except ValueError:
        raise StageFailed(
            "package", f"no metrics JSON on stdout: {_last_line(done.stdout)}"
        ) from None
    outcome.package_metrics = flatten(printed) if isinstance(printed, dict) else {}
    _timed(outcome, "package", start)

    value = (outcome.headline or {}).get("value")
    if value is not None:  # None: the tutorial's own number changes from run to run
        outcome.headline_ok = any(
            same_value(v, value) for v in outcome.package_metrics.values() if _is_number(v)
        )
    if not outcome.package_metrics:
        raise StageFailed("compare", "the package computes no metrics")
    outcome.mismatches = compare(outcome.run_metrics, outcome.package_metrics)
    if outcome.mismatches:
        raise StageFailed(
            "compare", f"{len(outcome.mismatches)} differences, first: {outcome.mismatches[0]}"
        )
    outcome.ok = True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _line(o: Outcome) -> str:
    head = ""
    if o.headline is not None and o.headline_ok is not None:
        head = f"  headline {o.headline['expression']} {'found' if o.headline_ok else 'MISSING'}"
    if o.ok:
        shown = ", ".join(
            f"{k}={v:.6g}" if _is_number(v) else f"{k}={v}"
            for k, v in list(o.package_metrics.items())[:4]
        )
        more = " ..." if len(o.package_metrics) > 4 else ""
        return f"ok      {o.notebook}: {len(o.package_metrics)} metrics equal ({shown}{more}){head}"
    return f"FAILED  {o.notebook}: at {o.stage}: {o.error}{head}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument(
        "--only", action="append", default=[], help="a notebook's name (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--kale-convert", action="store_true", help="tag Kale notebooks with --from-kale first"
    )
    parser.add_argument("--keep", action="store_true", help="keep each temporary folder")
    args = parser.parse_args(argv)

    folder = args.folder.resolve()
    headlines_file = folder / "headlines.json"
    headlines = json.loads(headlines_file.read_text("utf-8")) if headlines_file.is_file() else {}
    notebooks = find_notebooks(folder)
    if args.only:
        notebooks = [p for p in notebooks if p.name in args.only or p.stem in args.only]
    outcomes = []
    for notebook in notebooks:
        outcome = measure(
            notebook, folder, headlines, kale_convert=args.kale_convert, keep=args.keep
        )
        outcomes.append(outcome)
        print(_line(outcome), file=sys.stderr if args.json else sys.stdout, flush=True)

    total = len(outcomes)
    passed = sum(o.ok for o in outcomes)
    with_headline = sum(bool(o.ok and o.headline_ok) for o in outcomes)
    percent = 100.0 * passed / total if total else 0.0
    by_stage: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            by_stage[o.stage] = by_stage.get(o.stage, 0) + 1
    if args.json:
        summary = {
            "folder": str(folder),
            "adoption": {"passed": passed, "total": total, "percent": round(percent, 1)},
            "with_headline": with_headline,
            "failed_at": by_stage,
            "notebooks": [asdict(o) for o in outcomes],
        }
        print(json.dumps(summary, indent=2, default=str))
    else:
        stages = ", ".join(f"{k} {v}" for k, v in sorted(by_stage.items())) or "none"
        print(
            f"adoption: {passed}/{total} ({percent:.0f}%) reach a package whose metrics equal the run's"
        )
        print(f"  of which {with_headline} also compute the tutorial's headline number")
        print(f"  failed at: {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
