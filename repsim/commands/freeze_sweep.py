"""``repsim freeze-sweep CKPT``: accuracy when conv1..convK are frozen at test time (Table 1).

Adapts with none, conv1, conv1-2, conv1-3 and conv1-4 frozen on the same fixed test tasks and
writes ``freeze_sweep.json`` / ``.csv`` and a plot (PNG and PDF) under ``--out``.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options


def register(subparsers) -> argparse.ArgumentParser:
    p = _options.add_command(
        subparsers,
        "freeze-sweep",
        "accuracy with conv1..convK frozen in the inner loop (Table 1)",
        __doc__,
    )
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--tasks", type=int, default=600)
    p.add_argument("--inner-steps", type=int, default=None, help="default: recorded (10)")
    p.add_argument(
        "--inner-lr",
        type=float,
        default=None,
        help="default: recorded; e.g. a smaller rate for a frozen body's head-only adaptation",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/freeze_sweep")
    p.set_defaults(func=run)
    return p


FREEZE_LABELS = ["none", "conv1", "conv1-2", "conv1-3", "conv1-4"]


def run(args: argparse.Namespace) -> int:
    import csv
    import json
    from pathlib import Path

    from repsim.evaluate import freeze_sweep
    from repsim.progress import shown
    from repsim.provenance import code_version, portable_path

    rows = freeze_sweep(
        args.checkpoint,
        args.tasks,
        args.data_dir,
        args.seed,
        args.inner_steps,
        progress=shown(),
        inner_lr=args.inner_lr,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"Test-time freezing, {args.checkpoint}, {args.tasks} tasks, {rows[0]['inner_steps']} "
        f"inner steps at rate {rows[0]['inner_lr']:g}, mean ± 95% CI"
    )
    print("| frozen | accuracy (%) |\n|---|---|")
    for label, r in zip(FREEZE_LABELS, rows):
        print(f"| {label} | {100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f} |")
    record = {
        "checkpoint": portable_path(args.checkpoint),
        "tasks": args.tasks,
        "seed": args.seed,
        "code_version": code_version(),
        "rows": [
            {"frozen": lab, **{k: v for k, v in r.items() if k != "per_task"}}
            for lab, r in zip(FREEZE_LABELS, rows)
        ],
    }
    (out / "freeze_sweep.json").write_text(json.dumps(record, indent=2))
    with open(out / "freeze_sweep.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frozen", "accuracy", "ci95", "tasks"])
        for lab, r in zip(FREEZE_LABELS, rows):
            w.writerow([lab, r["accuracy"], r["ci95"], r["tasks"]])
    plot_freeze_sweep(record, out / "freeze_sweep")
    print(f"wrote {out}/freeze_sweep.{{json,csv,png,pdf}}")
    return 0


def plot_freeze_sweep(record: dict, stem) -> None:
    """Accuracy vs frozen layers with 95 % CI error bars, as PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["rows"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.errorbar(
        range(len(rows)),
        [100 * r["accuracy"] for r in rows],
        yerr=[100 * r["ci95"] for r in rows],
        marker="o",
        capsize=3,
    )
    ax.set_xticks(range(len(rows)), [r["frozen"] for r in rows])
    ax.set_xlabel("layers frozen in the inner loop")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test-time freezing", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"{stem}.{ext}", dpi=150)
    plt.close(fig)
