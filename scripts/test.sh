#!/usr/bin/env bash
# Set up the environment and run the whole test suite (what CI runs), then lint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# The browser tests (tests/browser) drive Debian's chromium through playwright: install it
# (about 1 min, as root). Never `playwright install`: it downloads a browser of its own.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -m ruff check src tests bench
.venv/bin/python -m ruff format --check src tests bench
.venv/bin/python -m mypy
# Four workers on two cores: much of a test's time is spent waiting on a kernel, a browser, a
# lab or an engine it started. --dist loadfile keeps a file's tests on one worker: its module
# fixtures (a run or bundle built once for the file) run once, and a browser file's tests
# follow each other in one lab, as they do in a serial run. The files go out heaviest first
# (tests/conftest.py orders them by tests/durations.json; --no-loadscope-reorder keeps that
# order), so that no long file runs alone at the end. `-n 0` runs serially.
# The tests' fork server (tests/_clifork.py: run_nbops forks each command from a process with
# the libraries imported) is on; NBOPS_TEST_NO_FORK=1 starts every command as a new process.
export NBOPS_TEST_NO_FORK=${NBOPS_TEST_NO_FORK:-0}
.venv/bin/python -m pytest -n 4 --dist loadfile --no-loadscope-reorder "$@"
