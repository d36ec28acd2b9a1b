#!/usr/bin/env bash
# A session's start and end for a long campaign on this CPU machine (the runs outlive no
# session: runs/ is not committed, so each session continues from the committed states).
#
#   bash analysis/session.sh start      the virtual environment if missing, the campaign's
#                                       lanes (nohup, logging to runs/<campaign>.log) and a
#                                       loop that snapshots the runs into the tracked resume
#                                       folder every SNAPSHOT_EVERY seconds (1200), so that a
#                                       session cut short loses at most that much
#   bash analysis/session.sh stop       the loop, then the lanes (each training saves the
#                                       iteration it is in: analysis/lanes.sh), then a last
#                                       snapshot, staged for the commit
#
# CAMPAIGN: paper20 (default: analysis/paper_runs.sh), paper5 (the same with SETTING=5way) or
# rl (analysis/rl_runs.sh); the runs go to runs/<campaign>, the states to
# checkpoints/<campaign>/resume. REPSIM_DATA defaults to ../shared/data/omniglot.
set -euo pipefail
cd "$(dirname "$0")/.."
campaign=${CAMPAIGN:-paper20}
case $campaign in
  paper20) script=analysis/paper_runs.sh setting=20way ;;
  paper5) script=analysis/paper_runs.sh setting=5way ;;
  rl) script=analysis/rl_runs.sh setting= ;;
  *) echo "CAMPAIGN must be paper20, paper5 or rl, got $campaign" >&2; exit 2 ;;
esac
runs=runs/$campaign resume=checkpoints/$campaign/resume
loop_pid=runs/.snapshot-$campaign.pid

snapshot() { nice -n "${1:-0}" python analysis/snapshot_runs.py "$runs" "$resume"; }
lanes="bash $script $runs"  # as start runs them: the campaign's own lanes, not another's

case ${1:-} in
  start)
    if [ ! -x .venv/bin/python ]; then
      python3 -m venv .venv
      .venv/bin/python -m pip install --quiet torch==2.13.0
      .venv/bin/python -m pip install --quiet -e ".[test,docs]"
    fi
    . .venv/bin/activate
    export REPSIM_DATA=${REPSIM_DATA:-$(cd .. && pwd)/shared/data/omniglot}
    mkdir -p runs
    if pgrep -fx "$lanes" >/dev/null; then
      echo "a campaign of $script is already running" >&2
    else
      SETTING=$setting nohup bash "$script" "$runs" >>"runs/$campaign.log" 2>&1 &
      echo "lanes started: $script -> $runs (log runs/$campaign.log)"
    fi
    if [ -e "$loop_pid" ] && kill -0 "$(cat "$loop_pid")" 2>/dev/null; then
      echo "the snapshot loop is already running" >&2
    else
      (
        while sleep "${SNAPSHOT_EVERY:-1200}"; do snapshot 5 >/dev/null 2>&1 || true; done
      ) >/dev/null 2>&1 &
      echo $! >"$loop_pid"
      echo "snapshot loop: every ${SNAPSHOT_EVERY:-1200} s into $resume"
    fi
    ;;
  stop)
    . .venv/bin/activate
    if [ -e "$loop_pid" ]; then kill "$(cat "$loop_pid")" 2>/dev/null || true; rm -f "$loop_pid"; fi
    pkill -fx "$lanes" || true  # the lanes' trap stops the trainings and waits for them
    while pgrep -f "repsim train .*--out $runs/" >/dev/null; do sleep 2; done
    snapshot
    git add -A "$resume"
    echo "staged $resume: commit it"
    ;;
  *) echo "usage: bash analysis/session.sh start|stop  (CAMPAIGN=$campaign)" >&2; exit 2 ;;
esac
