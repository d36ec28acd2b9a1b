#!/usr/bin/env bash
# Trains every checkpoint shipped in checkpoints/ (the paper's Omniglot experiments at CPU scale).
# Settings: `repsim train --preset cpu` = Omniglot (MAML split), 5-way 1-shot, 5 queries per
# class, meta-batch 16, inner lr 2.0 on the mean cross-entropy (= the paper's alpha 0.4 x 5
# ways), 2 inner steps in training / 10 at test, Adam 2e-3, transductive batch norm, 1 thread.
# Seed 0 of ANIL runs 3000 iterations and of MAML 4000 (it was run to 3000, evaluated at
# 94.7 %, then extended with --resume --iterations 4000, which continues exactly as one run);
# seeds 1 and 2 run 1000, which equals seed 0's checkpoint at iteration 1000 (no learning-rate
# schedule), so seeds compare at 1000.
# Two lanes run side by side (2 cores). Usage: bash analysis/train_checkpoints.sh RUNS_DIR
set -euo pipefail
RUNS="${1:-runs}"
mkdir -p "$RUNS"
common=(--preset cpu --threads 1 --no-progress)
lane_a() {
  repsim train "${common[@]}" --algorithm maml --seed 0 --iterations 4000 \
    --checkpoint-at 100,250,500,1000,2000,3000 --out "$RUNS/maml_cpu_seed0"
  for s in 1 2; do
    repsim train "${common[@]}" --algorithm maml --seed $s --iterations 1000 \
      --checkpoint-at 100,250,500 --out "$RUNS/maml_cpu_seed$s"
  done
}
lane_b() {
  repsim train "${common[@]}" --algorithm anil --seed 0 --iterations 3000 \
    --checkpoint-at 100,250,500,1000,2000 --out "$RUNS/anil_cpu_seed0"
  for s in 1 2; do
    repsim train "${common[@]}" --algorithm anil --seed $s --iterations 1000 \
      --checkpoint-at 100,250,500 --out "$RUNS/anil_cpu_seed$s"
  done
  for regime in multiclass multitask nil random; do
    repsim train "${common[@]}" --algorithm $regime --seed 0 --iterations "$([ $regime = random ] && echo 0 || echo 1000)" \
      --out "$RUNS/${regime}_cpu_seed0"
  done
}
lane_a > "$RUNS/lane_a.log" 2>&1 &
lane_b > "$RUNS/lane_b.log" 2>&1 &
wait
