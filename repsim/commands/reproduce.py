"""``repsim reproduce``: regenerate the paper's tables and figures from checkpoints, and test
its claims clause by clause.

From the shipped checkpoint folders (``checkpoints/`` and each sub-folder with a
``manifest.json``: one experimental setting per folder) it writes every analysis as data
(``OUT/results/<setting>/*.json|csv``), figures (``OUT/figures/<setting>/*.png|pdf``), the
claims (``OUT/results/claims.json|csv``) and a report that puts each number beside the paper's,
with the band and a verdict (``OUT/results/report.md``); the clause-by-clause table is also
printed. With ``--along`` (the default) every claim is also evaluated at each iteration that a
folder's runs share (``OUT/results/claims_along.json|csv``, ``OUT/figures/claims_along/``).
Needs the Omniglot test split (``--data-dir`` / ``$REPSIM_DATA``). ``--quick`` trains tiny
checkpoints of its own and runs the whole pipeline at tiny settings in a few minutes.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options


def register(subparsers) -> argparse.ArgumentParser:
    p = _options.add_command(
        subparsers,
        "reproduce",
        "regenerate every table and figure of the paper and test its claims, with a report",
        __doc__,
    )
    p.add_argument(
        "--checkpoints",
        action="append",
        default=None,
        metavar="DIR",
        help="a checkpoint folder with manifest.json; repeat for several settings (default: "
        "the shipped checkpoints/ and its sub-folders that have a manifest)",
    )
    p.add_argument(
        "--rl-checkpoints",
        default=None,
        metavar="DIR",
        help="meta-RL policy checkpoints for Table 2's RL rows (default: the shipped "
        "checkpoints/rl)",
    )
    p.add_argument("--out", default=".", help="writes OUT/results and OUT/figures (default .)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="train tiny checkpoints into OUT/checkpoints and run at tiny settings",
    )
    p.add_argument("--tasks", type=int, default=None, help="test tasks for accuracies (600)")
    p.add_argument(
        "--jobs",
        type=int,
        choices=(1, 2),
        default=1,
        help="processes per setting: 2 runs the similarity and the accuracy analyses side by "
        "side, each with --threads threads; the speed timing runs alone after them; "
        "the meta-RL policies are evaluated two at a time (default 1)",
    )
    p.add_argument(
        "--along",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also evaluate every claim at each iteration that a folder's runs share, at the "
        "reduced sizes (200 accuracy tasks, 20 similarity tasks): the report's second table "
        "and OUT/figures/claims_along/ (default: on)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-evaluate the claims and re-render the report from OUT/results, no analyses",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from repsim.checkpoint import CHECKPOINT_DIR
    from repsim.reproduce import (
        Settings,
        checkpoint_folders,
        evaluate_and_report,
        reproduce,
        train_quick_checkpoints,
    )

    out = Path(args.out)
    if args.report_only:
        print(f"report: {evaluate_and_report(out)}")
        return 0
    if args.quick:
        settings = Settings.quick(args.data_dir)
        folders = [Path(args.checkpoints[0]) if args.checkpoints else out / "checkpoints"]
        print(f"--quick: training tiny checkpoints into {folders[0]}", flush=True)
        train_quick_checkpoints(folders[0], args.data_dir)
        rl_dir = None
    else:
        settings = Settings(data_dir=args.data_dir)
        folders = [Path(c) for c in args.checkpoints or []] or checkpoint_folders(CHECKPOINT_DIR)
        rl_dir = Path(args.rl_checkpoints) if args.rl_checkpoints else CHECKPOINT_DIR / "rl"
    if args.tasks:
        settings.accuracy_tasks = args.tasks
    report = reproduce(folders, out, settings, rl_dir=rl_dir, jobs=args.jobs, along=args.along)
    print(f"report: {report}")
    return 0
