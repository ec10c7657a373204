#!/usr/bin/env bash
# From a fresh clone: set everything up, then run the whole pipeline on a generated offline dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/signwrite demo "$@"
