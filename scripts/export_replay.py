"""Export the same notebooks with two nbops source trees and compare every file written.

For changes meant to leave exports byte-identical (performance work on nbops.export): each
notebook is exported once per tree, in a process of its own with that tree first on the path
and an empty export cache, and the SHA-256 of every file of the package (the manifest
included), or the error, is compared.

Notebooks: the benchmark's (bench/bench_export.py: 500 and 1000 cells, and the one-big-step
shape), example_notebooks/, every .ipynb under tests/, and any paths given after the trees::

    .venv/bin/python scripts/export_replay.py OLD/src NEW/src [NOTEBOOK ...]

(an old tree: `git worktree add /tmp/old main`). Exits 1 when any export differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Run in the child process, with one source tree on the path: export each notebook, print
# {key: {"files": {path: sha256}} or {"error": "..."}} as JSON.
_CHILD = r"""
import hashlib, json, os, sys, tempfile
from pathlib import Path
from nbops.errors import NbopsError
from nbops.export.exporter import export_notebook
items, out_root = json.loads(sys.argv[1]), Path(sys.argv[2])
results = {}
for i, item in enumerate(items):
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            result = export_notebook(item["path"], out_root / str(i), name=item["name"])
        except NbopsError as exc:
            results[item["key"]] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[item["key"]] = {"files": {
            p.relative_to(result.package_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(result.package_dir.rglob("*")) if p.is_file()
        }}
print(json.dumps(results))
"""


def _notebooks(extra: list[str], folder: Path) -> list[dict[str, str | None]]:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_export  # the benchmark's notebook builder, found in bench/ (path above)

    items: list[dict[str, str | None]] = []
    for steps in (bench_export.TRANSFORM_STEPS, 1):
        bench_export.TRANSFORM_STEPS = steps
        for n in bench_export.SIZES:
            path = folder / f"bench_{n}_{steps}.ipynb"
            nbformat.write(bench_export.build_notebook(n), path)
            items.append({"key": path.name, "path": str(path), "name": "bench"})
    found = sorted((ROOT / "example_notebooks").glob("*.ipynb"))
    found += sorted((ROOT / "tests").glob("**/*.ipynb"))
    found += [Path(p).resolve() for p in extra]
    items += [{"key": str(p), "path": str(p), "name": None} for p in found]
    return items


def _export_all(src: str, items: list[dict[str, str | None]], out: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(items), str(out)],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    old, new, *extra = argv
    with tempfile.TemporaryDirectory(prefix="nbops-replay-") as tmp:
        folder = Path(tmp)
        items = _notebooks(extra, folder)
        # The same output depth for both trees: the manifest holds the notebook's path
        # relative to the package folder.
        (folder / "a").mkdir()
        (folder / "b").mkdir()
        before = _export_all(old, items, folder / "a" / "out")
        after = _export_all(new, items, folder / "b" / "out")
    different = [key for key in before if before[key] != after.get(key)]
    files = sum(len(r.get("files", {})) for r in before.values() if isinstance(r, dict))
    print(
        f"{len(items)} notebooks exported by both trees ({files} files): "
        f"{len(items) - len(different)} identical, {len(different)} different"
    )
    for key in different:
        print(f"  differs: {key}")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
