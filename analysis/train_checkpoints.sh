#!/usr/bin/env bash
# Trains the Omniglot 5-way checkpoints shipped in checkpoints/ (the paper's Omniglot experiments
# at CPU scale), every meta-learner to the same length.
# Settings: `repsim train --preset cpu` = Omniglot (MAML split), 5-way 1-shot, 5 queries per
# class, meta-batch 16, inner lr 2.0 on the mean cross-entropy (= the paper's alpha 0.4 x 5
# ways), 2 inner steps in training / 10 at test, Adam 2e-3, transductive batch norm, 1 thread.
# MAML and ANIL x 3 seeds, ITERATIONS each (default 4000); seed 0 keeps checkpoints along
# training for Figure 3, seeds 1-2 at 1/4 and 1/2 of training. Then MAML 5-shot (1 seed, kept at
# 1/4 and 1/2 of training; its own setting, shipped in checkpoints/5shot/) and the Table 5
# baselines at the same length: multiclass and random x 3 seeds (cheap), multitask and
# NIL-training at softmax scale 1 and 10 x 1 seed.
# Two lanes run side by side (2 cores); every run saves its state every 250 iterations, so the
# script can be rerun after an interruption and each run continues with --resume.
# Usage: bash analysis/train_checkpoints.sh RUNS_DIR [ITERATIONS]
set -euo pipefail
RUNS="${1:-runs}"
N="${2:-4000}"
mkdir -p "$RUNS"
common=(--preset cpu --threads 1 --no-progress --save-every 250 --iterations "$N")
along="$((N / 40)),$((N / 16)),$((N / 8)),$((N / 4)),$((N / 2)),$((3 * N / 4))"
run() { # name, then repsim train options
  local out="$RUNS/$1"
  shift
  if [ -f "$out/final.safetensors" ]; then return; fi
  local resume=()
  if [ -f "$out/last.safetensors" ]; then resume=(--resume); fi
  echo "$(date -u +%FT%TZ) start $out"
  repsim train "${common[@]}" "$@" --out "$out" "${resume[@]}"
}
lane_a() {
  run maml_cpu_seed0 --algorithm maml --seed 0 --checkpoint-at "$along"
  run maml_cpu_seed1 --algorithm maml --seed 1 --checkpoint-at "$((N / 4)),$((N / 2))"
  run anil_cpu_seed2 --algorithm anil --seed 2 --checkpoint-at "$((N / 4)),$((N / 2))"
  run multiclass_cpu_seed0 --algorithm multiclass --seed 0
  run nil_cpu_seed0 --algorithm nil --seed 0 --nil-train-scale 1
  run multiclass_cpu_seed1 --algorithm multiclass --seed 1
  run multiclass_cpu_seed2 --algorithm multiclass --seed 2
  run maml_cpu_5shot_seed0 --algorithm maml --shots 5 --seed 0 --checkpoint-at "$((N / 4)),$((N / 2))"
}
lane_b() {
  run anil_cpu_seed0 --algorithm anil --seed 0 --checkpoint-at "$along"
  run maml_cpu_seed2 --algorithm maml --seed 2 --checkpoint-at "$((N / 4)),$((N / 2))"
  run anil_cpu_seed1 --algorithm anil --seed 1 --checkpoint-at "$((N / 4)),$((N / 2))"
  run multitask_cpu_seed0 --algorithm multitask --seed 0
  run nil10_cpu_seed0 --algorithm nil --seed 0 --nil-train-scale 10
  for seed in 0 1 2; do
    run "random_cpu_seed$seed" --algorithm random --seed "$seed" --iterations 0
  done
}
lane_a > "$RUNS/lane_a.log" 2>&1 &
lane_b > "$RUNS/lane_b.log" 2>&1 &
wait
