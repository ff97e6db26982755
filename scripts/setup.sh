#!/usr/bin/env bash
# Create .venv (if missing) and install nbops with its development and example extras.
# Safe to run again: an up-to-date environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.nbops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
# The JupyterLab extension: the package build above builds it into src/nbops/labextension
# (hatch-jupyter-builder); rebuild it here when its sources or the vocabulary changed since.
labext=src/nbops/labextension/package.json
if [ ! -f "$labext" ] || [ -n "$(find jupyter_extension/src jupyter_extension/style \
    jupyter_extension/schema jupyter_extension/package.json jupyter_extension/yarn.lock \
    src/nbops/notebook/vocabulary.json -newer "$labext" -print -quit)" ]; then
  (cd jupyter_extension && export PATH="$PWD/../.venv/bin:$PATH" && jlpm install && jlpm build:prod)
fi
