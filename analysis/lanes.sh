# Two (or LANES) lanes of `repsim train` runs, one torch thread each, every run with --resume:
# sourced by the campaign scripts (analysis/rl_runs.sh, analysis/paper_runs.sh).
#
#   campaign OUT RESUME     the runs of the script's jobs_list (one "name|options" line per
#                           run, in order of priority) that match ONLY (a grep -E pattern on the
#                           names): printed (DRY_RUN=1), or seeded from RESUME and trained
#   run_lanes OUT JOBS      the lanes themselves
#
# A run with no folder under OUT yet but a committed state in RESUME/<name>/ (a session's last
# checkpoint with its optimiser state, or a finished run) starts from that state; a finished
# run is not trained again (`repsim train --resume` returns its final checkpoint).
# Each lane takes the next unclaimed run (mkdir is atomic) until none is left; a run logs to
# OUT/logs/<name>.log and trains into OUT/<name>. Stopping the script (Ctrl-C, kill) stops its
# trainings, each after saving the iteration it is in, and returns when they have; the same
# call continues every unfinished run from there.
# Environment: PYTHON (default python), LANES (2), NICE (0), EXTRA (more `repsim train`
# options for every run, after the others), DRY_RUN=1 (print the commands, run nothing).

campaign() {  # campaign OUT RESUME (calls the script's jobs_list)
  local out=$1 resume=$2 jobs name _
  jobs=$(jobs_list | grep -E -- "^[^|]*(${ONLY:-.})" || true)
  if [ -n "${DRY_RUN:-}" ]; then
    lanes_dry_run "$out" "$jobs"
    return 0
  fi
  while IFS='|' read -r name _; do
    [ -n "$name" ] && [ ! -e "$out/$name" ] || continue
    if [ -e "$resume/$name/last.safetensors" ] || [ -e "$resume/$name/final.safetensors" ]; then
      mkdir -p "$(dirname "$out/$name")"
      cp -r "$resume/$name" "$out/$name"
      echo "$name: from the state in $resume/$name" >&2
    fi
  done <<<"$jobs"
  run_lanes "$out" "$jobs"
}

lanes_dry_run() {  # lanes_dry_run OUT JOBS: the commands, one per line
  local out=$1 name opts
  while IFS='|' read -r name opts; do
    [ -n "$name" ] || continue
    echo "${PYTHON:-python} -m repsim train $opts --threads 1 --resume ${EXTRA:-} --out $out/$name"
  done <<<"$2"
}

run_lanes() {
  local out=$1 jobs=$2 claims i p status=0
  mkdir -p "$out/logs"
  claims="$out/.claims"
  rm -rf "$claims"  # claims of an earlier, interrupted call: every unfinished run resumes
  mkdir -p "$claims"
  _lane() {
    local lane_id=$1 name opts slug rc t0
    while IFS='|' read -r name opts; do
      [ -n "$name" ] || continue
      slug=${name//\//__}
      mkdir "$claims/$slug" 2>/dev/null || continue
      t0=$(date +%s)
      echo "[lane $lane_id] start $name" >&2
      set +e
      # shellcheck disable=SC2086  # options are words
      OMP_NUM_THREADS=1 nice -n "${NICE:-0}" "${PYTHON:-python}" -m repsim train $opts \
        --threads 1 --resume ${EXTRA:-} --out "$out/$name" >>"$out/logs/$slug.log" 2>&1 &
      echo $! >"$claims/$slug/pid"
      wait $!
      rc=$?
      set -e
      echo "[lane $lane_id] $name: exit $rc after $(( $(date +%s) - t0 ))s" >&2
      if [ $rc -ne 0 ]; then tail -5 "$out/logs/$slug.log" >&2; fi
    done <<<"$jobs"
  }
  _lane_pids=()
  _stop_lanes() {  # the lanes, then their trainings (background jobs ignore Ctrl-C): on
    # SIGTERM each finishes its iteration and saves it (repsim.run_log.graceful_stop); wait
    # for that, so that what the script leaves is every run's state at its stop
    local f pid waited
    kill "${_lane_pids[@]}" 2>/dev/null || true
    for f in "$claims"/*/pid; do
      if [ -e "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
    done
    for f in "$claims"/*/pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f")
      for waited in $(seq 1 1200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
      done
      [ "$waited" -lt 1200 ] || echo "training $pid did not stop within 600 s" >&2
    done
    exit 130
  }
  trap _stop_lanes INT TERM
  for i in $(seq 1 "${LANES:-2}"); do _lane "$i" & _lane_pids+=($!); done
  for p in "${_lane_pids[@]}"; do wait "$p" || status=1; done
  trap - INT TERM
  return $status
}
