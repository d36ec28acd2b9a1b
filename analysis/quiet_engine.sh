#!/usr/bin/env bash
# The engine's measurements for issue 13, in one command, on an otherwise idle machine
# (about 8 minutes on 2 cores). Writes text and JSON under OUT_DIR:
#
#   engine.txt / engine.json     parity with higher (float64), repsim vs higher with each time's
#                                convolution share, and the profile of a second-order MAML step
#                                by category (analysis/bench_engine.py --only higher,profile)
#   parity_test.txt              tests/test_higher_parity.py
#   similarity_*.json / .txt     repsim similarity on the shipped checkpoint, 20 tasks: seconds per
#                                stage (load, adapt, capture, similarity, write), twice; and the
#                                whole command's wall time with the code of BASE ("before") and
#                                of this tree ("after"), alternated
#   train.txt                    repsim train --preset cpu --iterations N, wall seconds, 1 process
#                                vs torchrun --nproc_per_node=2, 1 thread each
#   threads.txt / threads.json   a MAML step with 1 vs 2 torch threads (wall time)
#   summary.txt                  everything above in one file
#
# Usage: bash analysis/quiet_engine.sh OUT_DIR [TRAIN_ITERATIONS]
#   TRAIN_ITERATIONS defaults to 200 (500 adds about 3 minutes; validation at 250 then counts).
#   Environment: PYTHON (default .venv/bin/python, else python), REPSIM_DATA (default
#   ../shared/data/omniglot beside the repository), BASE (the "before" commit for the similarity
#   wall time, default ad09a84), QUICK=1 (a smoke run of this script: --quick tables, 3 training
#   iterations; its numbers mean nothing).
set -euo pipefail

OUT=${1:?usage: bash analysis/quiet_engine.sh OUT_DIR [TRAIN_ITERATIONS]}
ITERS=${2:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
[ -z "${PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
QUICK_FLAG=()
if [ -n "${QUICK:-}" ]; then QUICK_FLAG=(--quick); ITERS=3; fi
BASE=${BASE:-ad09a84}
if [ -z "${REPSIM_DATA:-}" ] && [ -d "$ROOT/../shared/data/omniglot" ]; then
    REPSIM_DATA=$(cd "$ROOT/../shared/data/omniglot" && pwd)
fi
export REPSIM_DATA OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="$ROOT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"

say() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }
now() { date +%s%N; }
since() {  # seconds since a now(), with 3 decimals
    local ms=$((($(date +%s%N) - $1) / 1000000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

{
    echo "commit $(git rev-parse --short HEAD) (before: $BASE), $(date -u +%FT%TZ)"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (should be near 0), $(getconf _NPROCESSORS_ONLN) cores"
    "$PY" -c "import torch; print('torch', torch.__version__)"
    echo "REPSIM_DATA=${REPSIM_DATA:-unset}"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

say "1/5 engine: parity, repsim vs higher (conv share), profile by category"
"$PY" analysis/bench_engine.py --only higher,profile "${QUICK_FLAG[@]}" --json "$OUT/engine.json" \
    > "$OUT/engine.txt" 2> "$OUT/engine.stderr"
"$PY" -m pytest -q -p no:cacheprovider tests/test_higher_parity.py > "$OUT/parity_test.txt" 2>&1 \
    || echo "parity test FAILED" | tee -a "$OUT/log.txt"

say "2/5 similarity: stage seconds (this tree) and wall time before/after ($BASE), alternated"
mkdir -p "$WORK/before"
git archive "$BASE" repsim | tar -x -C "$WORK/before"
: > "$OUT/similarity_wall.txt"
for i in 1 2; do
    t=$(now)
    PYTHONPATH="$WORK/before" "$PY" -m repsim similarity --tasks 20 --out "$WORK/sim_before" \
        > /dev/null 2>&1
    echo "before run $i: $(since "$t") s wall" >> "$OUT/similarity_wall.txt"
    t=$(now)
    "$PY" -m repsim similarity --tasks 20 --out "$WORK/sim_after" --timings \
        > "$OUT/similarity_$i.txt" 2>/dev/null
    echo "after  run $i: $(since "$t") s wall" >> "$OUT/similarity_wall.txt"
    "$PY" -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))['seconds']))" \
        "$WORK/sim_after/similarity.json" > "$OUT/similarity_seconds_$i.json"
done

say "3/5 train --preset cpu --iterations $ITERS: 1 process, then torchrun 2 processes"
train_args=(train --preset cpu --iterations "$ITERS" --threads 1 --no-progress --seed 0)
t=$(now)
"$PY" -m repsim "${train_args[@]}" --out "$WORK/train1" > "$WORK/train1.log" 2>&1
one=$(since "$t")
t=$(now)
"$PY" -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 \
    --master_port=$((29500 + RANDOM % 1000)) \
    -m repsim "${train_args[@]}" --out "$WORK/train2" > "$WORK/train2.log" 2>&1
two=$(since "$t")
loop_seconds() {  # the training loop's own seconds at the last logged iteration
    "$PY" -c "import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if 'seconds' in l]
print(round(rows[-1]['seconds'], 1))" "$1/metrics.jsonl"
}
{
    echo "repsim train --preset cpu --iterations $ITERS, 1 thread per process"
    echo "1 process:              $one s wall, training loop $(loop_seconds "$WORK/train1") s"
    echo "torchrun 2 processes:   $two s wall, training loop $(loop_seconds "$WORK/train2") s"
    echo "speed-up (wall):        $("$PY" -c "print(f'{$one / $two:.2f}')")x"
} > "$OUT/train.txt"
cat "$OUT/train.txt"

say "4/5 threads: 1 vs 2 torch threads per MAML step (wall time)"
"$PY" analysis/bench_engine.py --only threads "${QUICK_FLAG[@]}" --json "$OUT/threads.json" \
    > "$OUT/threads.txt" 2>> "$OUT/engine.stderr"

say "5/5 summary"
{
    cat "$OUT/machine.txt"
    cat "$OUT/engine.txt"
    echo
    tail -n 3 "$OUT/parity_test.txt"
    echo
    echo "repsim similarity, shipped checkpoint, 20 tasks: seconds per stage (this tree)"
    grep -h "seconds per stage" "$OUT"/similarity_[12].txt
    cat "$OUT/similarity_wall.txt"
    echo
    cat "$OUT/train.txt"
    cat "$OUT/threads.txt"
} > "$OUT/summary.txt"
say "done: $OUT/summary.txt"
