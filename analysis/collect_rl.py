"""Copy the finished meta-RL runs of ``analysis/rl_runs.sh`` into the shipped policy folder.

Usage::

    python analysis/collect_rl.py [RUNS_DIR] [CHECKPOINT_DIR]      (runs/rl, checkpoints/rl)

Every finished run (``RUNS_DIR/<group>/<run>/final.safetensors``) is shipped as
``<algorithm>_<env>_seed<k>.safetensors`` with its learning curve as
``metrics/<the same name>.jsonl`` (what ``repsim reproduce`` reads: Table 2, the learning
curves, the drift diagnostics). The runs under ``RUNS_DIR/ablations/`` go to
``CHECKPOINT_DIR/ablations/`` instead, named with what their folder says they change
(``2dnav_logstd-meta_maml_s0`` becomes ``maml_2dnav_seed0_logstd-meta``), so that Table 2
never mixes them with the seeds. A shipped checkpoint of the same name is replaced; runs still
training are listed and left (a session's state goes to ``CHECKPOINT_DIR/resume`` with
``analysis/snapshot_runs.py``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from repsim.rl.checkpoint import load_policy, metrics_path


def shipped_name(run: Path, record: dict) -> str:
    """``<algorithm>_<env>_seed<k>``, plus the ablation's change for a run of ``ablations/``."""
    cfg = record["train"]
    name = f"{cfg['algorithm']}_{cfg['env']}_seed{cfg['seed']}"
    if run.parent.name == "ablations":
        words = run.name.split("_")  # <env>_<change>_<algorithm>_s<seed>
        name += "_" + "_".join(words[1:-2])
    return name


def collect(runs_dir: Path, out: Path) -> list[tuple[str, str, int]]:
    """Ship every finished run; returns ``(run, shipped as, iteration)`` per run, iteration
    -1 for a run that is still training (not shipped)."""
    shipped = []
    for config in sorted(runs_dir.glob("*/*/config.json")):
        run = config.parent
        final = run / "final.safetensors"
        if not final.exists():
            shipped.append((str(run.relative_to(runs_dir)), "", -1))
            continue
        _, record = load_policy(final)
        dest = out / "ablations" if run.parent.name == "ablations" else out
        name = shipped_name(run, record)
        shipped_as = dest / f"{name}.safetensors"
        metrics_path(shipped_as).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, shipped_as)
        shutil.copyfile(run / "metrics.jsonl", metrics_path(shipped_as))
        rel = (dest / name).relative_to(out)
        shipped.append((str(run.relative_to(runs_dir)), str(rel), int(record["iteration"])))
    return shipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=Path, nargs="?", default=Path("runs/rl"))
    parser.add_argument("out", type=Path, nargs="?", default=Path("checkpoints/rl"))
    args = parser.parse_args()
    print("| run | shipped as | iteration |")
    print("|---|---|---|")
    for run, name, iteration in collect(args.runs_dir, args.out):
        print(f"| {run} | {name or '(still training: not shipped)'} | {iteration} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
