"""``repsim reproduce``: regenerate the paper's tables and figures from checkpoints.

From the shipped checkpoints (``checkpoints/manifest.json``) it writes every table and figure
as data (``OUT/results/*.json|csv``), figures (``OUT/figures/*.png|pdf``) and a report that
puts each number beside the paper's with a verdict (``OUT/results/report.md``). Needs the
Omniglot test split (``--data-dir`` / ``$REPSIM_DATA``). ``--quick`` trains tiny checkpoints of
its own and runs the whole pipeline at tiny settings in a few minutes.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options


def register(subparsers) -> argparse.ArgumentParser:
    p = _options.add_command(
        subparsers,
        "reproduce",
        "regenerate every table and figure of the paper, with a report",
        __doc__,
    )
    p.add_argument(
        "--checkpoints",
        default=None,
        help="checkpoint folder with manifest.json (default: the shipped checkpoints/)",
    )
    p.add_argument("--out", default=".", help="writes OUT/results and OUT/figures (default .)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="train tiny checkpoints into OUT/checkpoints and run at tiny settings",
    )
    p.add_argument("--tasks", type=int, default=None, help="test tasks for accuracies (600)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from repsim.checkpoint import CHECKPOINT_DIR
    from repsim.reproduce import Settings, reproduce, train_quick_checkpoints

    out = Path(args.out)
    if args.quick:
        settings = Settings.quick(args.data_dir)
        ckpt_dir = Path(args.checkpoints) if args.checkpoints else out / "checkpoints"
        print(f"--quick: training tiny checkpoints into {ckpt_dir}", flush=True)
        train_quick_checkpoints(ckpt_dir, args.data_dir)
    else:
        settings = Settings(data_dir=args.data_dir)
        ckpt_dir = Path(args.checkpoints) if args.checkpoints else CHECKPOINT_DIR
    if args.tasks:
        settings.accuracy_tasks = args.tasks
    report = reproduce(ckpt_dir, out, settings)
    print(report.read_text().split("## Table 1")[0])
    return 0
