#!/usr/bin/env bash
# Quick start, main job: install if needed, then run the default sweep on digits (5 strategies x
# 5 seeds on Ray Tune, no GPU, no internet; a few minutes on 2 CPU cores): progress, AUBC per trial
# and mean ± std per strategy, the report folder and the MLflow UI command. Extra arguments are
# Hydra overrides, e.g. `bash scripts/main.sh sweep=lam` or `bash scripts/main.sh sweep.resume=true`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
exec .venv/bin/autoal sweep "$@"
