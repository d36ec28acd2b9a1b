#!/usr/bin/env bash
# Train one of the paper's Omniglot 1-shot settings on the CPU (issue 20): MAML, ANIL and the
# baselines x 3 seeds, in two lanes, one torch thread each, every run with --resume
# (analysis/lanes.sh), so the script can be stopped and started again with the same command to
# continue. Every trained run keeps the same checkpoints along training (the along-training
# table needs them at the same iterations for every run, baselines included).
#
#   bash analysis/paper_runs.sh [OUT_DIR]                      (SETTING=20way: runs/paper20)
#   SETTING=5way bash analysis/paper_runs.sh                   (runs/paper5)
#   nohup bash analysis/paper_runs.sh > runs/paper20.log 2>&1 &
#
# The settings:
#   20way  --preset paper-omniglot-20way (5 inner steps, meta-batch 16), 10,000 iterations (the
#          paper's first checkpoint), checkpoints at 1,000, 3,000, 5,000, 7,500 and 10,000;
#          MAML with --vmap off (the loop is faster than vmap at 20-way on CPU). Measured: MAML
#          2.2-3.1 s per step, ANIL 0.32 s, with another training on the other core, so
#          about 7 h per MAML seed.
#   5way   --preset paper-omniglot-5way (1 inner step, meta-batch 32), 15,000 iterations,
#          checkpoints at 1,000, 3,000, 5,000, 10,000 and 15,000. Measured: MAML 0.90 s per
#          step.
#
# A run that has no folder under OUT yet but a committed state in RESUME_DIR/<name>/
# (checkpoints/paper20/resume, checkpoints/paper5/resume) starts from that state
# (analysis/lanes.sh; a session's end: python analysis/snapshot_runs.py OUT RESUME_DIR). When
# every run is done, collect them (replacing the setting's folder wholesale):
#   python analysis/collect_checkpoints.py runs/paper20 checkpoints/paper20 --note "..."
#
# The runs, in order (SEEDS default "0 1 2"): the first MAML seed, the ANIL seeds and the
# multiclass baseline, the other MAML seeds (the longest runs), then the baselines multitask,
# NIL-training at temperature 1 and random (untrained), which fill the lanes at the end.
#
# Environment: SETTING (20way), PYTHON (default python), LANES (2), SEEDS, ITERATIONS,
# CHECKPOINTS, EXTRA (more `repsim train` options, after the others: the test passes tiny
# sizes), ONLY (a grep -E pattern on the run names), RESUME_DIR, DRY_RUN=1, NICE (0).
set -euo pipefail
case ${SETTING:-20way} in
  20way) preset=paper-omniglot-20way stem=omniglot_20w1s dir=paper20 maml_opts="--vmap off"
    IT=${ITERATIONS:-10000} AT=${CHECKPOINTS:-1000,3000,5000,7500,10000} ;;
  5way) preset=paper-omniglot-5way stem=omniglot_5w1s dir=paper5 maml_opts=""
    IT=${ITERATIONS:-15000} AT=${CHECKPOINTS:-1000,3000,5000,10000,15000} ;;
  *) echo "SETTING must be 20way or 5way, got ${SETTING}" >&2; exit 2 ;;
esac
OUT=${1:-runs/$dir}
SEEDS=${SEEDS:-0 1 2}
RESUME=${RESUME_DIR:-checkpoints/$dir/resume}

jobs_list() {  # one "name|options" line per run, in order of priority: the first MAML seed
  # and, beside it, ANIL and multiclass (a partial along-training table early); then the other
  # MAML seeds, the longest runs, before the hour-long multitask and NIL runs, so that these
  # fill the lanes at the end (longest first: 20-way MAML is 7.5 h a seed, the critical path)
  local s a first=${SEEDS%% *} common="--preset $preset --iterations $IT"
  common="$common --save-every 250 --checkpoint-at $AT"
  maml() { echo "maml_${stem}_seed$1|$common --algorithm maml --seed $1 $maml_opts"; }
  maml "$first"
  for a in anil multiclass; do for s in $SEEDS; do
    echo "${a}_${stem}_seed$s|$common --algorithm $a --seed $s"
  done; done
  for s in $SEEDS; do if [ "$s" != "$first" ]; then maml "$s"; fi; done
  for a in multitask nil; do for s in $SEEDS; do
    echo "${a}_${stem}_seed$s|$common --algorithm $a --seed $s"
  done; done
  for s in $SEEDS; do  # untrained: the same body at every iteration
    echo "random_${stem}_seed$s|--preset $preset --algorithm random --seed $s --iterations 0"
  done
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
