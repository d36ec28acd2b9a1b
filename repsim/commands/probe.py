"""``repsim probe [CKPT]``: how linearly decodable is each layer, before and after the inner loop?

For each of T test tasks (20 by default), adapt the checkpoint's meta-init on the support set,
run support and query in one batch through the meta-init (before) and the fast weights (after),
and per layer fit a linear probe on the support activations: scikit-learn's multinomial
logistic regression (lbfgs, L2, inverse strength ``--C``, default 1.0), on features standardised
with the support set's own statistics (``--no-standardize``: raw). It is scored on the query
activations. Conv maps give one row per image: their channels, averaged over positions
(``--conv-mode channels``, the default) or every value (``--conv-mode flatten``). Beside the
probes, on the same forward passes: the model's own query accuracy and the NIL head's (cosine
similarity to the support features, no head), before and after, and chance (1 / ways).

Prints mean ± 95% CI over tasks, and writes under ``--out``: ``probe.json`` (everything, with
provenance and the probe's settings), ``probe_tasks.csv`` (per task), ``probe_summary.csv`` and
``probe.png`` / ``.pdf``. The probe's only randomness is the task sampling, seeded by ``--seed``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from repsim.commands import _options, _sources

DEFAULT_OUT = "results/probe"
DEFAULT_C = 1.0


def register(subparsers) -> argparse.ArgumentParser:
    parser = _options.add_command(
        subparsers,
        "probe",
        "linear probes per layer before vs after adaptation, beside the model's and NIL's heads",
        __doc__,
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        metavar="CKPT",
        help="checkpoint to probe (default: the shipped MAML Omniglot one)",
    )
    parser.add_argument(
        "--layers",
        default=None,
        help="comma-separated module paths (default: the checkpoint's analysis layers, "
        "conv1..conv4 and head)",
    )
    parser.add_argument(
        "--C",
        dest="C",
        type=float,
        default=DEFAULT_C,
        help=f"inverse L2 regularisation strength of the probe (default {DEFAULT_C})",
    )
    parser.add_argument(
        "--no-standardize",
        action="store_true",
        help="fit on raw features (default: standardised with the support set's statistics)",
    )
    parser.add_argument(
        "--max-iter", type=int, default=1000, help="lbfgs iterations per probe (default 1000)"
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


def parse_layers(text: str | None) -> list[str] | None:
    """``--layers conv3,head`` -> ``["conv3", "head"]``; nothing given -> the learner's own."""
    from repsim.errors import InputError

    if text is None:
        return None
    layers = [name.strip() for name in text.split(",") if name.strip()]
    if not layers:
        raise InputError("--layers is empty: give e.g. --layers conv1,conv4,head")
    return layers


def run(args: argparse.Namespace) -> int:
    import torch

    from repsim import figures, results
    from repsim.progress import shown
    from repsim.representation import linear_probe

    layers = parse_layers(args.layers)
    learner = _sources.load_learner(args.checkpoint, args.format, args.inner_steps, args.inner_lr)
    torch.manual_seed(args.seed)
    source = _sources.build_tasks(args, learner.config, tuple(learner.input_shape))
    probe = linear_probe(
        learner,
        source.tasks,
        layers,
        C=args.C,
        standardize=not args.no_standardize,
        conv_mode=args.conv_mode,
        max_iter=args.max_iter,
        seed=args.seed,
        progress=shown(),  # a terminal only, as every command
    )
    summary = probe.summary()
    not_converged = probe.not_converged()
    label = _sources.checkpoint_label(args.checkpoint)
    loop = learner.inner_loop.to_dict() if learner.inner_loop is not None else None
    steps = loop["inner_steps"] if loop else learner.config.get("adapt", {}).get("inner_steps")
    n = len(source.tasks)
    print(
        f"Linear probes before vs after the inner loop: {label}, {n} tasks "
        f"({source.meta['ways']}-way {source.meta['shots']}-shot, {steps} inner steps), "
        f"query accuracy, mean ± 95% CI; logistic regression C={args.C:g}, "
        f"{'standardised' if not args.no_standardize else 'raw'} features"
    )
    print(summary_table(summary, probe.layers))
    print(f"chance: {probe.chance:.4f}")
    if not_converged:
        print(
            f"note: {not_converged} probe fit(s) stopped at --max-iter {args.max_iter} "
            "before converging: raise --max-iter, or lower --C"
        )

    out = Path(args.out)
    meta = results.provenance(
        command="probe",
        seed=args.seed,
        checkpoint=_sources.checkpoint_identity(args.checkpoint, learner, args.format),
        inner_loop=loop,
        tasks=source.meta,
        probe=probe.settings,
    )
    written = [
        results.write_csv(
            out / "probe_tasks.csv",
            probe.records,
            ["task", "classifier", "layer", "stage", "accuracy", "n_features", "converged"],
        ),
        results.write_csv(out / "probe_summary.csv", summary),
    ]
    written += figures.plot_linear_probe(
        summary,
        probe.layers,
        out / "probe",
        title=f"{label}: linear probes ({n} tasks, C={args.C:g})",
        per_task=probe.records,
    )
    path = results.write_json(
        out / "probe.json",
        {
            "meta": meta,
            "layers": probe.layers,
            "ways": probe.ways,
            "chance": probe.chance,
            "n_tasks": n,
            "not_converged": not_converged,
            "summary": summary,
            "per_task": probe.records,
            "seconds": probe.seconds,
        },
    )
    print()
    print("wrote " + ", ".join(str(p) for p in [path, *written]))
    return 0


def summary_table(summary: list[dict], layers: list[str]) -> str:
    """Rows: the probe of each layer, then the model's own head and the NIL head; columns:
    before and after the inner loop."""
    from repsim.results import format_mean_ci, format_table

    cells = {(r["classifier"], r["layer"], r["stage"]): r for r in summary}
    keys = [("probe", lyr, f"probe on {lyr}") for lyr in layers] + [
        ("model", "head", "model's own head"),
        ("nil", "penultimate", "NIL head"),
    ]
    rows = []
    for classifier, layer, name in keys:
        row = {"name": name}
        for stage in ("before", "after"):
            r = cells.get((classifier, layer, stage))
            row[stage] = format_mean_ci(r["mean"], r["half_width"]) if r else "-"
        rows.append(row)
    columns = [("name", "query accuracy"), ("before", "before (meta-init)")]
    return format_table(rows, columns + [("after", "after (inner loop)")])
