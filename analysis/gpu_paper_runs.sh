#!/usr/bin/env bash
# Train the paper's Omniglot 20-way 1-shot MAML and ANIL runs (then 5-way, if time is left) on
# a CUDA machine for as many iterations as fit in MINUTES, writing checkpoints, metrics and step
# times to OUT_DIR. `repsim reproduce` uses OUT_DIR's runs where they exist; every checkpoint
# records the device it was trained on.
#
#   bash analysis/gpu_paper_runs.sh OUT_DIR [MINUTES]      (default 8 minutes)
#
# Environment: REPSIM_DATA (Omniglot), PYTHON (default python), DEVICE (default cuda),
# PRESET_20 / PRESET_5 (default paper-omniglot-20way / paper-omniglot-5way), EXTRA (more
# `repsim train` options; the CPU test passes a tiny setting here). Each run is capped at
# ITERATIONS (default 60000) and stopped at its time share; `--resume` continues it later.
set -euo pipefail
OUT=${1:?usage: gpu_paper_runs.sh OUT_DIR [MINUTES]}
MINUTES=${2:-8}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
ITERATIONS=${ITERATIONS:-60000}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
start=$(date +%s)
budget=${BUDGET_SECONDS:-$((MINUTES * 60))}  # BUDGET_SECONDS overrides (the CPU test)

run() {  # run NAME PRESET ALGORITHM SECONDS
  local name=$1 preset=$2 algorithm=$3 seconds=$4
  if [ "$seconds" -le 5 ]; then echo "$name: no time left" >&2; return 0; fi
  echo "== $name ($preset, $algorithm) for ${seconds}s on $DEVICE" >&2
  # timeout ends the run at its share; the last saved checkpoint (every 100 iterations) stays
  # resumable. Exit 124 (time up) is the expected way to stop.
  set +e
  timeout --signal=INT "$seconds" "$PY" -m repsim train --preset "$preset" \
    --algorithm "$algorithm" --device "$DEVICE" --iterations "$ITERATIONS" --save-every 100 \
    --checkpoint-at 500,1000,2000,5000,10000,20000,30000 --out "$OUT/$name" --resume \
    --no-progress $EXTRA >"$OUT/$name.log" 2>&1
  local rc=$?
  set -e
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 130 ]; then
    echo "$name failed (exit $rc):" >&2; tail -20 "$OUT/$name.log" >&2; return $rc
  fi
  "$PY" - "$OUT/$name" <<'PY'
import json, sys
from pathlib import Path
rows = [json.loads(l) for l in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()
        if l.strip()]
steps = [r for r in rows if "seconds" in r]
if len(steps) >= 2:
    a, b = steps[0], steps[-1]
    per = (b["seconds"] - a["seconds"]) / max(b["iteration"] - a["iteration"], 1)
    print(f"{Path(sys.argv[1]).name}: iteration {b['iteration']}, {per:.4f} s per step, "
          f"loss {b['loss']:.3f}")
else:
    print(f"{Path(sys.argv[1]).name}: fewer than two logged steps")
PY
}

left() { echo $((budget - ($(date +%s) - start))); }
# MAML takes most of the time (second order); ANIL a quarter of it; 5-way gets what is left.
run maml_omniglot_20w1s_seed0 "${PRESET_20:-paper-omniglot-20way}" maml $(($(left) * 55 / 100))
run anil_omniglot_20w1s_seed0 "${PRESET_20:-paper-omniglot-20way}" anil $(($(left) * 50 / 100))
run maml_omniglot_5w1s_seed0 "${PRESET_5:-paper-omniglot-5way}" maml $(($(left) - 10))
echo "done in $(( $(date +%s) - start ))s; checkpoints in $OUT" >&2
