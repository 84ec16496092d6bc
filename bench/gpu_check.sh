#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine (torch, numpy, scikit-learn, pytest; no
# Ray, MLflow or Hydra there): the CUDA tests of the core, then bench/gpu.py. Logs and the JSON
# go to ${OUT:-bench/results}.
set -o pipefail
export PYTHONUNBUFFERED=1
out="${OUT:-bench/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu_smi.txt"
python3 -m pytest --noconftest -q -p no:cacheprovider -rs tests/test_kmeans.py tests/test_models.py \
    tests/test_scores.py 2>&1 | tee "$out/gpu_pytest.log"
python3 -m pytest --noconftest -q -p no:cacheprovider -rs tests/test_autoal_search.py -k cuda 2>&1 | tee -a "$out/gpu_pytest.log"
python3 bench/gpu.py --out "$out/gpu.json" 2>&1 | tee "$out/gpu.log"
