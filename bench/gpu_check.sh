#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine (torch, numpy, scikit-learn, pytest; no
# Ray, MLflow or Hydra there): the CUDA tests of the core, then bench/gpu.py. Logs and the JSON
# go to ${OUT:-bench/results}.
set -o pipefail
export PYTHONUNBUFFERED=1
out="${OUT:-bench/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu_smi.txt"
python3 -m pytest --noconftest -q -p no:cacheprovider -rs tests/test_kmeans.py tests/models/test_backbones.py \
    tests/strategies/test_scores.py 2>&1 | tee "$out/gpu_pytest.log"
python3 -m pytest --noconftest -q -p no:cacheprovider -rs tests/strategies/test_autoal_paper.py -k cuda 2>&1 | tee -a "$out/gpu_pytest.log"
python3 bench/gpu.py --out "$out/gpu.json" 2>&1 | tee "$out/gpu.log"
# the quality matrix's GPU setting (ResNet-18 on the full MNIST pool, budgets of hundreds), when the
# IDX files were carried in data/ (python bench/export_mnist_idx.py data); QUALITY_SEEDS to change
if ls data/train-images-idx3-ubyte* >/dev/null 2>&1; then
  python3 bench/gpu_quality.py --settings gpu_mnist_resnet --seeds "${QUALITY_SEEDS:-3}" --jobs 1 --threads 8 \
      --strategies random entropy margin kmeans typiclust autoal --out "$out/quality_gpu.json" 2>&1 | tee "$out/quality_gpu.log"
fi
