#!/usr/bin/env bash
# The Gaussian-mixture experiments behind results/gmm/README.md, run one after another on
# one thread. Each sweep skips runs whose metrics.csv exists, so rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
COMMON="--evals 12 --samples 1000 --sampler em --sampler-steps 200 --monitor-every 500 --fmem-level 0.02"

# 1. tau_gen and tau_mem against n (W = 128, constant rate), budget 20,000 steps × n/128.
genwindow gmm sweep --n 128,256 --seeds 0 --steps 20000 $COMMON --out results/gmm/main
# 2. Schedules at n = 128 with the same budget of 20,000 steps.
genwindow gmm sweep --n 128 --seeds 0 --steps 20000 $COMMON --out results/gmm/schedules \
  --schedules "cosine;gap-threshold:decay_level=0.15,decay=0.1,smoothing=0.5,patience=2;threshold:metric=score_error,decay_level=0.03,decay=0.1,smoothing=0.5,patience=2"
# 3. Width W = 256 against the W = 128 runs of step 1 (half the budget).
genwindow gmm sweep --n 128 --seeds 0 --widths 256 --steps 10000 $COMMON --out results/gmm/main
# 4. n = 512, capped at 40,000 steps.
genwindow gmm sweep --n 512 --seeds 0 --steps 20000 --max-steps 40000 $COMMON --out results/gmm/main
