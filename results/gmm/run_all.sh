#!/usr/bin/env bash
# The Gaussian-mixture experiments behind results/gmm/README.md, run one after another on
# one thread. Each sweep skips runs whose metrics.csv exists, so rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
COMMON="--evals 12 --samples 1000 --sampler em --sampler-steps 200 --monitor-every 500 --fmem-level 0.02"

# 1. tau_gen and tau_mem against n (W = 128, constant rate): 20,000 steps at n = 128 and
#    30,000 at n = 256.
genwindow gmm sweep --n 128 --seeds 0 --steps 20000 $COMMON --out results/gmm/main
genwindow gmm sweep --n 256 --seeds 0 --steps 15000 $COMMON --out results/gmm/main
# 2. Width W = 256 against W = 128 at n = 128 (half the budget).
genwindow gmm sweep --n 128 --seeds 0 --widths 256 --steps 10000 $COMMON --out results/gmm/main
# 3. Seeds 1 and 2 at n = 128 (W = 128, constant rate).
genwindow gmm sweep --n 128 --seeds 1,2 --steps 20000 $COMMON --out results/gmm/main
# 4. Controllers at n = 128 with the budget of the constant runs (20,000 steps): the
#    realistic signal (relative loss gap crossing 15%) and the oracle (the exact score error
#    stops improving). Both decay the rate tenfold and never stop, so the budget is spent
#    in full. A level threshold on score_error would fire at step 0, where the untrained
#    network's score error is largest, so the oracle uses the plateau controller.
CONTROLLERS="gap-threshold:decay_level=0.15,stop_level=inf,decay=0.1,smoothing=0.5,patience=2;plateau:metric=score_error,factor=0.1,patience=2,threshold=0.02,min_factor=0.01"
genwindow gmm sweep --n 128 --seeds 0 --steps 20000 $COMMON --out results/gmm/schedules \
  --schedules "$CONTROLLERS"
# 5. n = 512 (W = 128, constant rate), 40,000 steps.
genwindow gmm sweep --n 512 --seeds 0 --steps 10000 --max-steps 40000 $COMMON --out results/gmm/main
# 6. Seeds 1 and 2 at n = 256 and n = 512.
genwindow gmm sweep --n 256 --seeds 1,2 --steps 15000 $COMMON --out results/gmm/main
genwindow gmm sweep --n 512 --seeds 1,2 --steps 10000 --max-steps 40000 $COMMON --out results/gmm/main
# 7. n = 1024 (W = 128, constant rate), 80,000 steps, 18 evaluations of f_mem and KL.
genwindow gmm sweep --n 1024 --seeds 0,1,2 --steps 10000 --max-steps 80000 --evals 18 \
  --samples 1000 --sampler em --sampler-steps 200 --monitor-every 500 --fmem-level 0.02 \
  --out results/gmm/main
# 8. Widths: W = 64 at n = 128 (30,000 steps), W = 256 at n = 128 (seeds 1, 2, 10,000 steps)
#    and at n = 256 (20,000 steps).
genwindow gmm sweep --n 128 --seeds 0,1,2 --widths 64 --steps 30000 $COMMON --out results/gmm/main
genwindow gmm sweep --n 128 --seeds 1,2 --widths 256 --steps 10000 $COMMON --out results/gmm/main
genwindow gmm sweep --n 256 --seeds 0 --widths 256 --steps 10000 $COMMON --out results/gmm/main
# 9. Controllers at n = 128 (seeds 1, 2) and n = 256 (seed 0, 20,000 steps), and two
#    schedules that read no monitor: cosine decay over the budget, and size-aware decay at
#    half of tau_mem(n) = 92.67 n^0.918, the fit of steps 1, 3, 5 and 6.
genwindow gmm sweep --n 128 --seeds 1,2 --steps 20000 $COMMON --out results/gmm/schedules --schedules "$CONTROLLERS"
genwindow gmm sweep --n 256 --seeds 0 --steps 10000 $COMMON --out results/gmm/schedules --schedules "$CONTROLLERS"
FIXED="cosine;size-aware:c=92.67,alpha=0.918,kappa=0.5,decay=0.1"
genwindow gmm sweep --n 128 --seeds 0 --steps 20000 $COMMON --out results/gmm/schedules --schedules "$FIXED"
genwindow gmm sweep --n 256 --seeds 0 --steps 10000 $COMMON --out results/gmm/schedules --schedules "$FIXED"

genwindow gmm summary results/gmm/main
genwindow gmm summary results/gmm/schedules --reference results/gmm/main --budget 20000
