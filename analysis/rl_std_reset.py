"""Does the shrunken policy std weaken one-step adaptation? Evaluate shipped policies with their
log-std as trained and reset to other values before adapting.

Usage::

    python analysis/rl_std_reset.py [CHECKPOINT ...] [--log-std 0 -0.5 -1] [--out results/rl]

For each policy checkpoint (default: the shipped 2D-Navigation policies) and each log-std
(``as trained`` first), the return on the 40 fixed test tasks before adaptation and after 1 and
2 inner steps (``repsim.rl.evaluate.evaluate_policy_checkpoint``, what ``repsim evaluate``
runs, with the recorded inner loop and its rate). Only ``head.log_std`` changes: the mean
network is the trained one. A reset that raises the return after adaptation well above the
trained std's says the shrunken std is what limits the adaptation (reading (c) of
``repsim.rl.drift``); writes ``OUT/rl_std_reset.json|csv`` and prints a table of the mean ± std
over each algorithm's seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from repsim.results import provenance, write_csv, write_json
from repsim.rl.checkpoint import load_policy
from repsim.rl.evaluate import evaluate_policy_checkpoint
from repsim.rl.report import policy_checkpoints

STEPS = 2


def reset_returns(path: Path, log_std: float | None, tasks: int) -> list[float]:
    """Mean return over ``tasks`` test tasks before and after 1..STEPS inner steps."""
    result = evaluate_policy_checkpoint(path, tasks, max_steps=STEPS, log_std=log_std)
    return [step["mean"] for step in result["steps"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--log-std", nargs="+", type=float, default=[0.0, -0.5, -1.0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("results/rl"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `repsim evaluate` runs: the same numbers as it gives
    paths = args.checkpoints or [p for p in policy_checkpoints() if "_2dnav_" in p.name]
    rows = []
    for path in paths:
        model, record = load_policy(path)
        trained = float(model.head.log_std.detach().mean())
        for value in [None, *args.log_std]:
            returns = reset_returns(path, value, args.tasks)
            rows.append(
                {
                    "checkpoint": path.name,
                    "algorithm": record["train"]["algorithm"],
                    "seed": record["train"]["seed"],
                    "iteration": record["iteration"],
                    "trained_log_std": trained,
                    "log_std": "as trained" if value is None else value,
                    **{f"after_{k}": r for k, r in enumerate(returns)},
                }
            )
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"provenance": provenance(tasks=args.tasks, steps=STEPS, log_std=args.log_std)}
    write_json(args.out / "rl_std_reset.json", {"rows": rows, **meta})
    write_csv(args.out / "rl_std_reset.csv", rows)
    print(f"{args.tasks} test tasks\n| algorithm | log-std | before | after 1 | after 2 | seeds |")
    print("|---|---|---|---|---|---|")
    for algorithm in sorted({r["algorithm"] for r in rows}):
        for value in ["as trained", *args.log_std]:
            group = [r for r in rows if r["algorithm"] == algorithm and r["log_std"] == value]
            cells = []
            for k in range(STEPS + 1):
                v = np.array([r[f"after_{k}"] for r in group])
                cells.append(f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f}")
            label = value if isinstance(value, str) else f"{value:g}"
            if value == "as trained":
                trained = ", ".join(f"{r['trained_log_std']:.2f}" for r in group)
                label = f"as trained ({trained})"
            print(f"| {algorithm} | {label} | {' | '.join(cells)} | {len(group)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
