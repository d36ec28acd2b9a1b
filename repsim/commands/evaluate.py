"""``repsim evaluate CKPT``: few-shot accuracy on fixed test tasks, mean ± 95 % CI.

``--freeze K`` keeps conv1..convK fixed in the inner loop (the paper's Table 1);
``--head nil`` removes the head and classifies queries by cosine similarity to the support
features (NIL, the paper's Section 5). The tasks are ``0..tasks-1`` of the checkpoint's test
split with ``--seed`` (default 0), identical for every checkpoint.

On a policy checkpoint (meta-RL): the average return over ``--tasks`` fixed test tasks (default
40), ± 95 % CI, before adaptation and after 1..``--inner-steps`` (default 3) inner steps, each
on fresh trajectories; ``--freeze K`` keeps fc1..fcK fixed.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options


def register(subparsers) -> argparse.ArgumentParser:
    p = _options.add_command(
        subparsers,
        "evaluate",
        "test accuracy of a checkpoint (freezing, NIL head), mean ± 95%% CI",
        __doc__,
    )
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--tasks", type=int, default=None, help="test tasks (default 600; RL 40)")
    p.add_argument(
        "--freeze",
        type=int,
        default=0,
        choices=range(5),
        metavar="K",
        help="freeze conv1..convK during adaptation (0-4)",
    )
    p.add_argument("--head", choices=("adapt", "nil"), default="adapt")
    p.add_argument("--inner-steps", type=int, default=None, help="default: recorded (10)")
    p.add_argument("--inner-lr", type=float, default=None, help="default: recorded")
    p.add_argument("--shots", type=int, default=None, help="default: the checkpoint's")
    p.add_argument("--part", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print machine-readable results")
    p.add_argument("--trajectories", type=int, default=None, help="RL: per task (recorded)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from repsim.evaluate import evaluate_checkpoint
    from repsim.progress import shown
    from repsim.rl.checkpoint import is_policy_checkpoint

    if is_policy_checkpoint(args.checkpoint):
        return _run_rl(args)
    r = evaluate_checkpoint(
        args.checkpoint,
        args.tasks or 600,
        args.freeze,
        args.head,
        args.inner_steps,
        args.data_dir,
        args.seed,
        args.part,
        args.shots,
        progress=shown(not args.json),  # a bar on a terminal, none in a log
        inner_lr=args.inner_lr,
    )
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k != "per_task"}, indent=2))
    else:
        s = r["sampler"]
        frozen = f"conv1-{args.freeze}" if args.freeze else "none"
        print(
            f"{args.checkpoint}: {100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f} % "
            f"({r['tasks']} tasks, {s['ways']}-way {s['shots']}-shot, head={r['head']}, "
            f"frozen={frozen}, {r['inner_steps']} inner steps at rate {r['inner_lr']:g})"
        )
    return 0


def _run_rl(args: argparse.Namespace) -> int:
    import json

    from repsim.progress import shown
    from repsim.results import format_mean_ci
    from repsim.rl.evaluate import evaluate_policy_checkpoint

    r = evaluate_policy_checkpoint(
        args.checkpoint,
        args.tasks or 40,
        args.trajectories,
        3 if args.inner_steps is None else args.inner_steps,
        args.freeze,
        args.seed,
        progress=shown(not args.json),
        inner_lr=args.inner_lr,
    )
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k != "per_task"}, indent=2))
        return 0
    frozen = f"fc1-{args.freeze}" if args.freeze else "none"
    print(
        f"{args.checkpoint}: {r['algorithm']} on {r['env']}, average return ± 95% CI "
        f"({r['tasks']} tasks x {r['trajectories']} trajectories, frozen={frozen})"
    )
    for s in r["steps"]:
        print(
            f"  after {s['inner_steps']} inner steps: {format_mean_ci(s['mean'], s['half_width'])}"
        )
    return 0
