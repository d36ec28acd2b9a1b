#!/usr/bin/env bash
# Train the paper's Omniglot 20-way 1-shot setting (issue 20) on the CPU, to the paper's first
# checkpoint: two lanes, one torch thread each, every run with --resume (analysis/lanes.sh), so
# the script can be stopped and started again with the same command to continue. Every run
# keeps checkpoints at 1,000, 3,000, 5,000, 7,500 and 10,000 (the along-training table needs
# them at the same iterations for every run, baselines included).
#
#   bash analysis/paper20_runs.sh [OUT_DIR]                    (default runs/paper20)
#   nohup bash analysis/paper20_runs.sh > runs/paper20.log 2>&1 &
#
# A run that has no folder under OUT yet but a committed state in
# checkpoints/paper20/resume/<name>/ (RESUME_DIR) starts from that state (analysis/lanes.sh,
# a session's end: python analysis/snapshot_runs.py OUT checkpoints/paper20/resume). When
# every run is done, collect them (replacing the pre-audit folder wholesale):
#   python analysis/collect_checkpoints.py runs/paper20 checkpoints/paper20 --note "..."
#
# The runs, in order (SEEDS default "0 1 2"): the first MAML seed (second order, --vmap off: the
# loop is faster than vmap at 20-way on CPU), ANIL seeds, the baselines multiclass, multitask,
# NIL-training at temperature 1 and random (untrained), then the other MAML seeds. Measured:
# MAML 2.2-3.1 s per step and ANIL 0.32 s with another training on the other core, so about
# 7 h per MAML seed.
#
# Environment: PYTHON (default python), LANES (2), SEEDS, ITERATIONS (10000), CHECKPOINTS
# (1000,3000,5000,7500,10000), EXTRA (more `repsim train` options, after the others: the test
# passes tiny sizes), ONLY (a grep -E pattern on the run names), DRY_RUN=1, NICE (0).
set -euo pipefail
OUT=${1:-runs/paper20}
SEEDS=${SEEDS:-0 1 2}
IT=${ITERATIONS:-10000}
AT=${CHECKPOINTS:-1000,3000,5000,7500,10000}
RESUME=${RESUME_DIR:-checkpoints/paper20/resume}

jobs_list() {  # one "name|options" line per run, in order of priority: the first MAML seed,
  # then the fast runs (so that one lane finishes them while the other trains MAML), then the
  # other MAML seeds
  local s a first=${SEEDS%% *} common="--preset paper-omniglot-20way --iterations $IT"
  common="$common --save-every 250 --checkpoint-at $AT"
  maml() { echo "maml_omniglot_20w1s_seed$1|$common --algorithm maml --seed $1 --vmap off"; }
  maml "$first"
  for s in $SEEDS; do echo "anil_omniglot_20w1s_seed$s|$common --algorithm anil --seed $s"; done
  for a in multiclass multitask nil; do for s in $SEEDS; do
    echo "${a}_omniglot_20w1s_seed$s|$common --algorithm $a --seed $s"
  done; done
  for s in $SEEDS; do  # untrained: the same body at every iteration
    echo "random_omniglot_20w1s_seed$s|--preset paper-omniglot-20way --algorithm random" \
      "--seed $s --iterations 0"
  done
  for s in $SEEDS; do if [ "$s" != "$first" ]; then maml "$s"; fi; done
}

# shellcheck source=analysis/lanes.sh
. "$(dirname "$0")/lanes.sh"
status=0
campaign "$OUT" "$RESUME" || status=1
if [ -n "${DRY_RUN:-}" ]; then exit 0; fi

"${PYTHON:-python}" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

from repsim.train import read_metrics

print("| run | iteration | s / step | last validation accuracy |")
print("|---|---|---|---|")
for folder in sorted(p.parent for p in Path(sys.argv[1]).glob("*/config.json")):
    rows = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else []
    steps = [r for r in rows if "seconds" in r]
    val = [r["val_accuracy"] for r in rows if "val_accuracy" in r]
    per = ""
    if len(steps) >= 2:
        per = f"{(steps[-1]['seconds'] - steps[0]['seconds']) / (steps[-1]['iteration'] - steps[0]['iteration']):.2f}"
    last = rows[-1]["iteration"] if rows else 0
    print(f"| {folder.name} | {last} | {per} | {val[-1] if val else ''} |")
PY
exit $status
