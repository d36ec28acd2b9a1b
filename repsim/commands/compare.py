"""``repsim compare CKPT_A CKPT_B``: how similar are two meta-inits, layer by layer?

Runs the same inputs (T tasks' support + query images, or ``--probe`` images) through the two
checkpoints' meta-initialisations, without adaptation, and compares every layer of A with every
layer of B (e.g. MAML vs ANIL, or seed vs seed: the paper's Table 3). Prints the per-layer
(diagonal) table, and writes under ``--out``: ``compare.json`` (with provenance),
``compare_layers.csv`` (diagonal), ``compare_matrix.csv`` (every layer pair) and one heatmap per
measure, ``heatmap_<measure>.png`` / ``.pdf``.

Off the diagonal, layers of different spatial size are pooled to the coarser grid, and a conv
layer against the head is compared on the N examples alone: CCA with few datapoints per feature
is biased towards 1 there (``per_task`` rows in the JSON give n_datapoints and features), so
read CKA for the off-diagonal cells.
"""

from __future__ import annotations

import argparse

from repsim.commands import _options, _sources

DEFAULT_OUT = "results/compare"


def register(subparsers) -> argparse.ArgumentParser:
    parser = _options.add_command(
        subparsers,
        "compare",
        "layer x layer similarity between two checkpoints' meta-inits (no adaptation)",
        __doc__,
    )
    parser.add_argument("checkpoint_a", metavar="CKPT_A")
    parser.add_argument("checkpoint_b", metavar="CKPT_B")
    parser.add_argument(
        "--format-b", default=None, help="format of CKPT_B when it differs from --format"
    )
    _sources.add_analysis_args(parser, DEFAULT_OUT)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from repsim import results
    from repsim.progress import shown
    from repsim.representation import cross_layer_similarity, task_inputs

    analysis = _sources.open_analysis(
        args,
        [(args.checkpoint_a, args.format), (args.checkpoint_b, args.format_b or args.format)],
    )
    measures, source = analysis.measures, analysis.source
    learner_a, learner_b = analysis.learners
    records = cross_layer_similarity(
        learner_a.module,
        learner_b.module,
        [task_inputs(t) for t in source.tasks],
        measures=measures,
        layers_a=learner_a.analysis_layers,
        layers_b=learner_b.analysis_layers,
        conv_mode=args.conv_mode,
        progress=shown(),  # on a terminal only
    )
    matrix = results.summarise(records, ("layer_a", "layer_b", "measure"))
    layers_a, layers_b = list(learner_a.analysis_layers), list(learner_b.analysis_layers)
    diagonal = [r for r in matrix if r["layer_a"] == r["layer_b"]]
    name_a = _sources.checkpoint_label(args.checkpoint_a)
    name_b = _sources.checkpoint_label(args.checkpoint_b)

    print(
        f"Similarity of meta-inits, {name_a} vs {name_b}, per layer on "
        f"{len(source.tasks)} tasks' support + query images, mean ± 95% CI"
    )
    _print_diagonal(diagonal, [layer for layer in layers_a if layer in layers_b], measures)

    out = Path(args.out)
    meta = results.provenance(
        command="compare",
        checkpoint_a=_sources.checkpoint_identity(args.checkpoint_a, learner_a, args.format),
        checkpoint_b=_sources.checkpoint_identity(
            args.checkpoint_b, learner_b, args.format_b or args.format
        ),
        seed=args.seed,
        measures=measures,
        conv_mode=args.conv_mode,
        tasks=source.meta,
    )
    written = [
        results.write_json(
            out / "compare.json",
            {
                "meta": meta,
                "layers_a": layers_a,
                "layers_b": layers_b,
                "diagonal": diagonal,
                "matrix": matrix,
                "per_task": records,
            },
        ),
        results.write_csv(out / "compare_layers.csv", diagonal),
        results.write_csv(out / "compare_matrix.csv", matrix),
    ]
    written += _heatmaps(matrix, layers_a, layers_b, measures, (name_a, name_b), out)
    print()
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _print_diagonal(diagonal: list[dict], layers: list[str], measures) -> None:
    """The same-layer similarities on the terminal: one mean ± 95% CI per measure."""
    from repsim import results

    cells = {(r["layer_a"], r["measure"]): r for r in diagonal}
    rows = [
        {
            "layer": layer,
            **{
                m: results.format_mean_ci(cells[layer, m]["mean"], cells[layer, m]["half_width"])
                for m in measures
            },
        }
        for layer in layers
    ]
    print(results.format_table(rows, [("layer", "layer"), *((m, m.upper()) for m in measures)]))


def _heatmaps(matrix, layers_a, layers_b, measures, names, out) -> list:
    """One layer x layer heatmap per measure (PNG and PDF), drawn from the summary matrix."""
    import numpy as np

    from repsim import figures

    name_a, name_b = names
    lookup = {(r["layer_a"], r["layer_b"], r["measure"]): r["mean"] for r in matrix}
    written = []
    for m in measures:
        grid = np.array([[lookup[a, b, m] for b in layers_b] for a in layers_a], dtype=float)
        written += figures.plot_similarity_heatmap(
            grid,
            layers_a,
            layers_b,
            out / f"heatmap_{m}",
            title=f"{m.upper()}: {name_a} vs {name_b}",
            row_label=name_a,
            col_label=name_b,
        )
    return written
