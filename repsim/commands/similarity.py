"""``repsim similarity [CKPT]``: how much does each layer change in the inner loop?

For each of T test tasks, adapt the checkpoint's meta-init on the support set with the algorithm
and hyper-parameters it records, and compare each layer's activations on the support + query
images before and after (CCA and CKA by default). Prints mean ± 95% CI per layer and measure,
and writes under ``--out``: ``similarity.json`` (everything, with provenance),
``similarity_tasks.csv`` (per task), ``similarity_summary.csv``, ``weight_movement.csv``, and
``similarity.png`` / ``.pdf`` (the paper's Figure 2).

On a policy checkpoint (meta-RL): per test task, the states visited by the adapted policy go
through the meta-policy and the adapted policy, and fc1, fc2 and head (the mean action) are
compared (``repsim.rl.similarity``); ``--trajectories`` per task, ``--freeze K`` keeps
fc1..fcK fixed. The same files are written.
"""

from __future__ import annotations

import argparse

from repsim.commands import _sources

DEFAULT_OUT = "results/similarity"


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "similarity",
        help="per-layer similarity before vs after adaptation (feature reuse or rapid learning)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        metavar="CKPT",
        help="checkpoint to analyse (default: the shipped MAML Omniglot one)",
    )
    parser.add_argument(
        "--measures",
        default="cca,cka",
        help="comma-separated: cca, svcca, pwcca, cka, cka_debiased, rbf_cka (default cca,cka)",
    )
    parser.add_argument(
        "--inner-steps",
        type=int,
        default=None,
        help="inner-loop steps at test time (default: the checkpoint's test steps, 10)",
    )
    _sources.add_task_args(parser, DEFAULT_OUT)
    _sources.add_checkpoint_args(parser)
    rl = parser.add_argument_group("policy checkpoints (meta-RL)")
    rl.add_argument("--trajectories", type=int, default=None, help="per task (recorded)")
    rl.add_argument("--freeze", type=int, default=0, metavar="K", help="keep fc1..fcK fixed")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from repsim import figures, results
    from repsim.representation import representation_change

    measures = _sources.parse_measures(args.measures)
    if args.checkpoint and args.format == "repsim":
        from repsim.rl.checkpoint import is_policy_checkpoint

        if is_policy_checkpoint(args.checkpoint):
            return _run_policy(args, measures)
    learner = _sources.load_learner(
        args.checkpoint, args.format, args.inner_steps, getattr(args, "inner_lr", None)
    )
    torch.manual_seed(args.seed)
    source = _sources.build_tasks(args, learner.config, tuple(learner.input_shape))
    change = representation_change(
        learner, source.tasks, measures=measures, conv_mode=args.conv_mode, progress=True
    )
    steps = learner.config.get("adapt", {}).get("inner_steps", args.inner_steps)
    summary = change.summary()
    movement = change.movement_summary()
    label = _sources.checkpoint_label(args.checkpoint)
    ckpt_path = args.checkpoint or str(_default_checkpoint())

    print(
        f"Similarity before vs after the inner loop: {label}, {len(source.tasks)} tasks "
        f"({source.meta['ways']}-way {source.meta['shots']}-shot, "
        f"{steps} inner steps), mean ± 95% CI"
    )
    print(_similarity_table(summary, change.layers, measures))
    print()
    print(
        "Weight movement ||theta_l - theta_l'|| (absolute and relative to ||theta_l||), mean "
        "± 95% CI"
    )
    print(
        results.format_table(
            [
                {
                    "layer": r["layer"],
                    "abs": results.format_mean_ci(r["abs_mean"], r["abs_mean"] - r["abs_ci_low"]),
                    "rel": results.format_mean_ci(r["rel_mean"], r["rel_mean"] - r["rel_ci_low"]),
                }
                for r in movement
            ],
            [("layer", "layer"), ("abs", "absolute"), ("rel", "relative")],
        )
    )

    out = Path(args.out)
    meta = results.provenance(
        command="similarity",
        checkpoint={"path": str(ckpt_path), "format": args.format, "config": learner.config},
        seed=args.seed,
        inner_steps=steps,
        measures=measures,
        conv_mode=args.conv_mode,
        tasks=source.meta,
    )
    written = [
        results.write_json(
            out / "similarity.json",
            {
                "meta": meta,
                "layers": change.layers,
                "summary": summary,
                "per_task": change.records,
                "weight_movement": {"summary": movement, "per_task": change.movement},
            },
        ),
        results.write_csv(
            out / "similarity_tasks.csv",
            change.records,
            ["task", "layer", "measure", "value", "note"],
        ),
        results.write_csv(out / "similarity_summary.csv", summary),
        results.write_csv(out / "weight_movement.csv", movement),
        results.write_csv(out / "weight_movement_tasks.csv", change.movement),
    ]
    written += figures.plot_layer_similarity(
        summary,
        change.layers,
        out / "similarity",
        title=f"{label}: before vs after adaptation ({len(source.tasks)} tasks)",
    )
    print()
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_policy(args: argparse.Namespace, measures: list[str]) -> int:
    from pathlib import Path

    from repsim import figures, results
    from repsim.rl.similarity import policy_similarity

    change, described = policy_similarity(
        args.checkpoint,
        args.tasks,
        args.trajectories,
        measures,
        args.freeze,
        args.inner_steps,
        args.seed,
        progress=True,
    )
    summary, movement = change.summary(), change.movement_summary()
    print(
        f"Similarity before vs after the inner loop: {args.checkpoint} ({described['algorithm']} "
        f"on {described['env']}), {args.tasks} tasks, {described['states_per_task']} states "
        "visited by the adapted policy per task, mean ± 95% CI"
    )
    print(_similarity_table(summary, change.layers, measures))
    print("Weight movement ||theta_l - theta_l'||, mean ± 95% CI")
    for r in movement:
        absolute = results.format_mean_ci(r["abs_mean"], r["abs_mean"] - r["abs_ci_low"])
        relative = results.format_mean_ci(r["rel_mean"], r["rel_mean"] - r["rel_ci_low"])
        print(f"  {r['layer']}: {absolute} (relative {relative})")
    out = Path(args.out)
    meta = results.provenance(command="similarity", measures=measures, **described)
    written = [
        results.write_json(
            out / "similarity.json",
            {
                "meta": meta,
                "layers": change.layers,
                "summary": summary,
                "per_task": change.records,
                "weight_movement": {"summary": movement, "per_task": change.movement},
            },
        ),
        results.write_csv(
            out / "similarity_tasks.csv",
            change.records,
            ["task", "layer", "measure", "value", "note"],
        ),
        results.write_csv(out / "similarity_summary.csv", summary),
        results.write_csv(out / "weight_movement.csv", movement),
    ]
    written += figures.plot_layer_similarity(
        summary,
        change.layers,
        out / "similarity",
        title=f"{described['algorithm']} policy, {described['env']}: before vs after adaptation",
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _default_checkpoint():
    from repsim import checkpoint

    return checkpoint.DEFAULT_CHECKPOINT


def _similarity_table(summary: list[dict], layers: list[str], measures: list[str]) -> str:
    from repsim.results import format_mean_ci, format_table

    cells = {(r["layer"], r["measure"]): r for r in summary}
    rows = []
    for layer in layers:
        row = {"layer": layer}
        for m in measures:
            r = cells.get((layer, m))
            text = format_mean_ci(r["mean"], r["half_width"]) if r else "-"
            if r and r["n_failed"]:
                text += f" ({r['n_failed']} failed)"
            row[m] = text
        rows.append(row)
    return format_table(rows, [("layer", "layer"), *((m, m.upper()) for m in measures)])
