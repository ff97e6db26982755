#!/usr/bin/env bash
# The main job on the examples: export each example notebook as a pipeline package and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for notebook in example_notebooks/*.ipynb; do
  name=$(basename "$notebook" .ipynb)
  echo "== $notebook"
  .venv/bin/nbops tags "$notebook"
  .venv/bin/nbops export "$notebook" -o pipelines
  echo "-- metrics of the exported pipeline (python -m $name):"
  (cd "pipelines/$name" && ../../.venv/bin/python -m "$name")
done
