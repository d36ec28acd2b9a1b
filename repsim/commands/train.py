"""``repsim train``: meta-train MAML, first-order MAML, ANIL or a baseline regime.

Presets give the paper's settings (``omniglot-5way``, ``omniglot-20way``,
``miniimagenet-5way``) and a ``cpu`` preset (Omniglot 5-way 1-shot) that trains on 2 cores;
every option overrides its preset. Inner learning rates apply to the mean cross-entropy:
``--inner-lr`` = N x the paper's alpha (Omniglot 5-way alpha 0.4 -> 2.0).

The training options are made from the fields of ``repsim.train.TrainConfig``: a new field is a
new option, ``--field-name``.

Meta-RL presets (``rl-2dnav``, ``rl-cheetah-dir``, ``rl-cheetah-vel`` at the paper's scale, and
their ``-cpu`` variants sized for 2 cores) train MAML / ANIL policies with TRPO
(``repsim.rl.train``); ``--meta-batch``, ``--inner-lr``, ``--iterations``, ``--seed`` and the
RL options below override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from repsim.commands import _options

# Help text per TrainConfig field; a field not listed here gets a generic line.
HELP = {
    "algorithm": "training regime",
    "dataset": "dataset to train on",
    "split": "class split",
    "rotations": "add 90/180/270-degree rotations as extra training classes",
    "task_rotations": "turn each class of a task by k x 90 degrees (at training and at test)",
    "head_init": "head init: xavier, or normal (N(0, 1), as the original Omniglot code)",
    "norm_affine": "norm parameters: full (scale and shift), or beta (shift only, original)",
    "norm_eps": "norm epsilon (PyTorch's 1e-5; the original code's TensorFlow batch_norm: 1e-3)",
    "padding": "conv padding: symmetric (1 pixel each side) or tf-same (TensorFlow's 'SAME', "
    "0 before / 1 after at stride 2, as the original code)",
    "image_mode": "Omniglot images: grey (Lanczos grey levels) or binary (the original code's "
    "resize of the mode-1 image: nearest-neighbour strokes)",
    "ways": "classes per task (N)",
    "shots": "support examples per class (K)",
    "queries": "query examples per class (training tasks)",
    "test_queries": "query examples per class (validation and evaluation tasks)",
    "inner_lr": "inner-loop learning rate on the mean cross-entropy (N x the paper's alpha)",
    "inner_steps": "inner-loop steps in training",
    "test_inner_steps": "inner-loop steps at validation and test time",
    "meta_batch": "tasks per meta-update",
    "outer_lr": "Adam learning rate of the meta-update",
    "iterations": "meta-updates",
    "seed": "seed of the initialisation and of the training tasks",
    "norm": "normalisation statistics: of the batch itself, or running averages",
    "nil_train_scale": "softmax temperature of NIL training (the paper states none: default 1)",
    "multiclass_batch": "images per step of the multiclass regime",
    "val_every": "validate every this many iterations",
    "val_tasks": "validation tasks",
    "log_every": "log the training loss every this many iterations",
    "save_every": "save last.safetensors (for --resume) every this many iterations",
    "checkpoint_at": "also keep checkpoints at these iterations",
    "device": "auto (CUDA when present), cpu or cuda[:k]",
    "vmap": "batch tasks with torch.func.vmap (auto: MAML/FOMAML/BOIL on Omniglot; on CPU only "
    "when ways x shots <= 10)",
}
# Fields declared once for every command (repsim.commands._options.shared_options).
SHARED = {"threads", "data_dir"}


def _choices() -> dict[str, tuple]:
    from repsim.data import DATASETS
    from repsim.data.omniglot import IMAGE_MODES
    from repsim.models import HEAD_INITS, NORM_AFFINE, NORM_MODES, PADDINGS
    from repsim.train import ALGORITHMS

    return {
        "algorithm": ALGORITHMS,
        "head_init": HEAD_INITS,
        "norm_affine": NORM_AFFINE,
        "dataset": DATASETS,
        "norm": NORM_MODES,
        "padding": PADDINGS,
        "image_mode": IMAGE_MODES,
        "vmap": ("auto", "on", "off"),
    }


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 100,250,500"
        ) from None


def _option_kwargs(field: dataclasses.Field, hint, choices: dict, preset_keys: set) -> dict:
    """argparse settings of one TrainConfig field, from its type and default. Every default is
    ``None`` (unset), so the preset, then TrainConfig, decides."""
    default = field.default_factory() if callable(field.default_factory) else field.default
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is not None and type(None) in args and origin is not list:  # X | None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    where = "the preset's, else " if field.name in preset_keys else ""
    text = HELP.get(field.name, f"TrainConfig.{field.name}")
    kw: dict = {"default": None, "help": f"{text} (default: {where}{default})"}
    if hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif origin is list and args and args[0] is int:
        kw.update(type=_int_list, metavar="I,J,...")
    elif hint in (int, float, str):
        kw["type"] = hint
    else:
        import json

        kw.update(type=json.loads, metavar="JSON")
    if field.name in choices:
        kw["choices"] = choices[field.name]
    return kw


def add_config_options(parser: argparse.ArgumentParser) -> list[str]:
    """One ``--field-name`` option per TrainConfig field (but the shared ones); returns the
    field names, in declaration order."""
    from repsim.train import PRESETS, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    choices = _choices()
    preset_keys = {k for preset in PRESETS.values() for k in preset}
    group = parser.add_argument_group("training settings (repsim.train.TrainConfig)")
    names = []
    for field in dataclasses.fields(TrainConfig):
        names.append(field.name)
        if field.name in SHARED:
            continue
        flag = "--" + field.name.replace("_", "-")
        group.add_argument(flag, **_option_kwargs(field, hints[field.name], choices, preset_keys))
    return names


def register(subparsers) -> argparse.ArgumentParser:
    from repsim.rl.train import PRESETS as RL_PRESETS
    from repsim.train import PRESETS

    p = _options.add_command(
        subparsers,
        "train",
        "meta-train MAML / FOMAML / ANIL or a baseline regime; writes checkpoints",
        __doc__,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS) + sorted(RL_PRESETS),
        default="cpu",
        help="starting settings (default cpu)",
    )
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
        choices=("head", "meta", "fixed"),
        default=None,
        help="head (default): the inner loop adapts the log-std with the head; "
        "meta: only the outer loop trains it; fixed: nothing trains it (it stays at 0, "
        "a diagnostic, not MAML-RL's protocol)",
    )
    rl.add_argument(
        "--inner-loss",
        choices=("reinforce", "lvc"),
        default=None,
        help="reinforce (default, MAML-RL's); lvc: ProMP's low-variance curvature loss, the "
        "same inner step with the pre-update sampling term in the meta-gradient",
    )
    rl.add_argument(
        "--goal-tolerance",
        type=float,
        default=None,
        help="2D-Navigation: end an episode within this of the goal in x and y (preset 0.01, "
        "as MAML-RL; 0: run every episode to the horizon)",
    )
    rl.add_argument("--hidden", type=int, default=None, help="policy units per layer (100)")
    rl.add_argument("--nonlinearity", choices=("relu", "tanh"), default=None, help="(relu)")
    rl.add_argument(
        "--heldout-every",
        type=int,
        default=None,
        help="evaluate on fixed held-out tasks every this many iterations (10; 0: never)",
    )
    rl.add_argument("--heldout-tasks", type=int, default=None, help="held-out tasks (20)")
    rl.add_argument("--heldout-trajectories", type=int, default=None, help="per held-out task (10)")
    rl.add_argument(
        "--step-check-every",
        type=int,
        default=None,
        help="re-measure the TRPO step's gain on a fresh meta-batch every this many "
        "iterations (10; 0: never)",
    )
    p.set_defaults(func=run, config_fields=add_config_options(p))
    return p


def run(args: argparse.Namespace) -> int:
    import shutil

    from repsim.train import config_from_preset, train

    if args.preset.startswith("rl-"):
        return _run_rl(args)
    _refuse(args, RL_ONLY, "only meta-RL presets (rl-*) use")
    settings = {name: getattr(args, name) for name in args.config_fields}
    cfg = config_from_preset(args.preset, **settings)
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

    classification_only = tuple(
        k for k in args.config_fields if k not in RL_SHARED and k not in SHARED
    )
    _refuse(args, classification_only, "meta-RL presets do not use")
    adapt, trained = {"head": (True, True), "meta": (False, True), "fixed": (False, False)}.get(
        args.log_std, (None, None)
    )
    keys = ("algorithm", "meta_batch", "trajectories", "horizon", "inner_lr", "inner_steps")
    keys += ("test_inner_steps", "max_kl", "iterations", "seed", "workers", "save_every")
    keys += ("threads",)  # the shared option, applied once in cli.main
    keys += ("goal_tolerance", "hidden", "nonlinearity", "heldout_every", "heldout_tasks")
    keys += ("heldout_trajectories", "step_check_every", "inner_loss")
    cfg = config_from_preset(
        args.preset,
        adapt_log_std=adapt,
        train_log_std=trained,
        **{k: getattr(args, k) for k in keys},
    )
    final = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if args.save_as:
        shutil.copyfile(final, args.save_as)
        final = args.save_as
    print(f"final checkpoint: {final}")
    return 0


RL_ONLY = ("trajectories", "horizon", "max_kl", "workers", "log_std", "goal_tolerance")
RL_ONLY += ("hidden", "nonlinearity", "heldout_every", "heldout_tasks", "heldout_trajectories")
RL_ONLY += ("step_check_every", "inner_loss")
# The TrainConfig options a meta-RL preset also takes; every other one is classification only.
RL_SHARED = (
    "algorithm",
    "meta_batch",
    "inner_lr",
    "inner_steps",
    "test_inner_steps",
    "iterations",
    "seed",
    "save_every",
)


def _refuse(args: argparse.Namespace, keys: tuple[str, ...], what: str) -> None:
    given = [k for k in keys if getattr(args, k) is not None]
    if given:
        from repsim.errors import InputError

        options = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InputError(f"{what} {options} (preset {args.preset}); drop them or change --preset")
