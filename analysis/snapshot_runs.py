"""Copy the state of every run under a campaign folder, consistently, while the runs train:
what a session commits before it stops so that the next one continues with ``--resume``.

Usage::

    python analysis/snapshot_runs.py RUNS_DIR DEST
    python analysis/snapshot_runs.py runs/paper20 checkpoints/paper20/resume

Every run folder under ``RUNS_DIR`` (a folder with ``config.json`` and a checkpoint) is copied
to ``DEST/<the same relative path>`` by :func:`repsim.run_log.snapshot_run`: a finished run as
its final checkpoint, a run still training as its last checkpoint with the optimiser state of
the same iteration; each with its config, its log up to that iteration and its checkpoints
along training. The campaign scripts (``analysis/lanes.sh``) start a run that has no folder
yet from ``DEST``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from repsim.run_log import snapshot_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    folders = sorted(
        p.parent
        for p in args.runs_dir.rglob("config.json")
        if any((p.parent / f).exists() for f in ("final.safetensors", "last.safetensors"))
    )
    print("| run | state | iteration | MiB |")
    print("|---|---|---|---|")
    for run in folders:
        dst = args.dest / run.relative_to(args.runs_dir)
        iteration = snapshot_run(run, dst)
        state = "finished" if (dst / "final.safetensors").exists() else "training"
        size = sum(f.stat().st_size for f in dst.iterdir()) / 2**20
        print(f"| {run.relative_to(args.runs_dir)} | {state} | {iteration} | {size:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
