"""``repsim train``: meta-train MAML, first-order MAML, ANIL or a baseline regime.

Presets give the paper's settings (``omniglot-5way``, ``omniglot-20way``,
``miniimagenet-5way``) and a ``cpu`` preset (Omniglot 5-way 1-shot) that trains on 2 cores;
every option overrides its preset. Inner learning rates apply to the mean cross-entropy:
``--inner-lr`` = N x the paper's alpha (Omniglot 5-way alpha 0.4 -> 2.0).

Meta-RL presets (``rl-2dnav``, ``rl-cheetah-dir``, ``rl-cheetah-vel`` at the paper's scale, and
their ``-cpu`` variants sized for 2 cores) train MAML / ANIL policies with TRPO
(``repsim.rl.train``); ``--meta-batch``, ``--inner-lr``, ``--iterations``, ``--seed`` and the
RL options below override them.
"""

from __future__ import annotations

import argparse


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def register(subparsers) -> argparse.ArgumentParser:
    from repsim.rl.train import PRESETS as RL_PRESETS
    from repsim.train import ALGORITHMS, PRESETS

    p = subparsers.add_parser(
        "train",
        help="meta-train MAML / FOMAML / ANIL or a baseline regime; writes checkpoints",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS) + sorted(RL_PRESETS),
        default="cpu",
        help="starting settings (default cpu)",
    )
    p.add_argument("--algorithm", choices=ALGORITHMS, default=None, help="default maml")
    p.add_argument("--dataset", choices=("omniglot", "miniimagenet"), default=None)
    p.add_argument("--split", default=None, help="class split (default maml)")
    p.add_argument(
        "--rotations",
        action="store_true",
        default=None,
        help="add 90/180/270-degree rotations as extra training classes",
    )
    p.add_argument(
        "--task-rotations",
        action="store_true",
        default=None,
        help="turn each class of a task by a random multiple of 90 degrees (train and test)",
    )
    p.add_argument(
        "--head-init",
        choices=("xavier", "normal"),
        default=None,
        help="head init: xavier (default) or normal, N(0, 1) as the original Omniglot code",
    )
    p.add_argument(
        "--norm-affine",
        choices=("full", "beta"),
        default=None,
        help="norm parameters: full (scale and shift, default) or beta (shift only, original)",
    )
    p.add_argument(
        "--nil-train-scale",
        type=float,
        default=None,
        help="softmax temperature of NIL training (default 1; the paper states none)",
    )
    p.add_argument("--ways", type=int, default=None)
    p.add_argument("--shots", type=int, default=None)
    p.add_argument("--queries", type=int, default=None, help="query examples per class (training)")
    p.add_argument("--test-queries", type=int, default=None)
    p.add_argument("--inner-lr", type=float, default=None, help="on the mean cross-entropy")
    p.add_argument("--inner-steps", type=int, default=None, help="training inner steps")
    p.add_argument("--test-inner-steps", type=int, default=None)
    p.add_argument("--meta-batch", type=int, default=None, help="tasks per meta-update")
    p.add_argument("--outer-lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--norm", choices=("transductive", "running"), default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--val-tasks", type=int, default=None)
    p.add_argument("--save-every", type=int, default=None)
    p.add_argument(
        "--checkpoint-at",
        type=_int_list,
        default=None,
        metavar="I,J,...",
        help="also keep checkpoints at these iterations",
    )
    p.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda[:k]")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1: fastest on a shared 2-core machine)",
    )
    p.add_argument(
        "--vmap",
        choices=("auto", "on", "off"),
        default=None,
        help="batch tasks with torch.func.vmap (auto: for MAML/FOMAML/BOIL)",
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (default $REPSIM_DATA)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl)")
    p.add_argument("--save-as", default=None, help="also copy the final checkpoint here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")
    rl = p.add_argument_group("meta-RL presets (rl-*)")
    rl.add_argument("--trajectories", type=int, default=None, help="per task (default 20)")
    rl.add_argument("--horizon", type=int, default=None, help="default: the benchmark's")
    rl.add_argument("--max-kl", type=float, default=None, help="TRPO trust region (0.01)")
    rl.add_argument("--workers", type=int, default=None, help="HalfCheetah sampling processes")
    rl.add_argument(
        "--log-std",
        choices=("head", "meta"),
        default=None,
        help="head (default): the inner loop adapts the log-std with the head; "
        "meta: only the outer loop trains it",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import shutil

    from repsim.train import config_from_preset, train

    if args.preset.startswith("rl-"):
        return _run_rl(args)
    _refuse(args, RL_ONLY, "only meta-RL presets (rl-*) use")

    keys = (
        "algorithm",
        "dataset",
        "split",
        "rotations",
        "task_rotations",
        "head_init",
        "norm_affine",
        "nil_train_scale",
        "ways",
        "shots",
        "queries",
        "test_queries",
        "inner_lr",
        "inner_steps",
        "test_inner_steps",
        "meta_batch",
        "outer_lr",
        "iterations",
        "seed",
        "norm",
        "val_every",
        "val_tasks",
        "save_every",
        "checkpoint_at",
        "device",
        "threads",
        "vmap",
        "data_dir",
    )
    cfg = config_from_preset(args.preset, **{k: getattr(args, k) for k in keys})
    from repsim.distributed import is_main, shutdown

    final = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    main = is_main()  # under torchrun only rank 0 copies and reports
    shutdown()
    if not main:
        return 0
    if args.save_as:
        shutil.copyfile(final, args.save_as)
        final = args.save_as
    print(f"final checkpoint: {final}")
    return 0


def _run_rl(args: argparse.Namespace) -> int:
    import shutil

    from repsim.rl.train import config_from_preset, train

    _refuse(args, CLASSIFICATION_ONLY, "meta-RL presets do not use")
    log_std = {"head": True, "meta": False, None: None}[args.log_std]
    keys = ("algorithm", "meta_batch", "trajectories", "horizon", "inner_lr", "inner_steps")
    keys += ("test_inner_steps", "max_kl", "iterations", "seed", "workers", "save_every")
    keys += ("threads",)
    cfg = config_from_preset(
        args.preset, adapt_log_std=log_std, **{k: getattr(args, k) for k in keys}
    )
    final = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if args.save_as:
        shutil.copyfile(final, args.save_as)
        final = args.save_as
    print(f"final checkpoint: {final}")
    return 0


RL_ONLY = ("trajectories", "horizon", "max_kl", "workers", "log_std")
CLASSIFICATION_ONLY = (
    "dataset",
    "split",
    "rotations",
    "task_rotations",
    "head_init",
    "norm_affine",
    "nil_train_scale",
    "ways",
    "shots",
    "queries",
    "test_queries",
    "outer_lr",
    "norm",
    "val_every",
    "val_tasks",
    "checkpoint_at",
    "device",
    "vmap",
    "data_dir",
)


def _refuse(args: argparse.Namespace, keys: tuple[str, ...], what: str) -> None:
    given = [k for k in keys if getattr(args, k) is not None]
    if given:
        from repsim.errors import InputError

        options = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InputError(f"{what} {options} (preset {args.preset}); drop them or change --preset")
