#!/usr/bin/env bash
# Set up the environment and run the whole test suite (what CI runs), then lint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check src tests bench
.venv/bin/python -m ruff format --check src tests bench
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
