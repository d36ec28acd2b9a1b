"""``repsim similarity [CKPT]``: how much does each layer change in the inner loop?

For each of T test tasks, adapt the checkpoint's meta-init on the support set with the algorithm
and hyper-parameters it records, and compare each layer's activations on the support + query
images before and after (CCA and CKA by default). Prints mean ± 95% CI per layer and measure,
and writes under ``--out``: ``similarity.json`` (everything, with provenance),
``similarity_tasks.csv`` (per task), ``similarity_summary.csv``, ``weight_movement.csv``, and
``similarity.png`` / ``.pdf`` (the paper's Figure 2).
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
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from repsim import figures, results
    from repsim.representation import representation_change

    measures = _sources.parse_measures(args.measures)
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
