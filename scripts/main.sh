#!/usr/bin/env bash
# Quick start, main job: install if needed, then run the default experiment on digits
# (no GPU, no internet), print the results table and the MLflow UI command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
exec .venv/bin/python pipelines/run.py "$@"
