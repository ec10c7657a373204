#!/usr/bin/env bash
# From a fresh clone: set everything up, then run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# the same Hypothesis examples on every run, so a failure in CI replays (tests/conftest.py)
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# One worker per core (pytest-xdist); each test module runs whole on one worker, so a
# module's shared fixtures (a trained run) are made once, and modules are handed out in
# the order tests/conftest.py puts them, longest first. -n 0 runs in this process.
exec .venv/bin/python -m pytest -n auto --dist loadscope --no-loadscope-reorder "$@"
