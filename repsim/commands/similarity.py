"""``repsim similarity [CKPT ...]``: how much does each layer change in the inner loop?

For each of T test tasks, adapt the checkpoint's meta-init on the support set with the algorithm
and hyper-parameters it records, and compare each layer's activations on the support + query
images before and after (CCA and CKA by default). Prints mean ± 95% CI per layer and measure,
and writes under ``--out``: ``similarity.json`` (everything, with provenance),
``similarity_tasks.csv`` (per task), ``similarity_summary.csv``, ``weight_movement.csv``, and
``similarity.png`` / ``.pdf`` (the paper's Figure 2). ``similarity.json`` also records the wall
seconds of each stage (load, adapt, capture, similarity, write); ``--timings`` prints them.

Several checkpoints, or a folder of them (``repsim similarity runs/maml_s0/ --out DIR``), are
analysed on one and the same task set, each checkpoint's inner loop set up once. The CSVs then
hold every checkpoint (a ``checkpoint`` and an ``iteration`` column: one combined table of
checkpoint x layer x measure with CIs), and ``similarity_vs_iteration.png`` / ``.pdf`` plots
similarity against the training iteration the checkpoints record.

On a policy checkpoint (meta-RL): per test task, the states visited by the adapted policy go
through the meta-policy and the adapted policy, and fc1, fc2 and head (the mean action) are
compared (``repsim.rl.similarity``); ``--trajectories`` per task, ``--freeze K`` keeps
fc1..fcK fixed. The same files are written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from repsim.commands import _options, _sources

DEFAULT_OUT = "results/similarity"


def register(subparsers) -> argparse.ArgumentParser:
    parser = _options.add_command(
        subparsers,
        "similarity",
        "per-layer similarity before vs after adaptation (feature reuse or rapid learning)",
        __doc__,
    )
    parser.add_argument(
        "checkpoints",
        nargs="*",
        metavar="CKPT",
        help="checkpoints to analyse, or folders of *.safetensors checkpoints (default: the "
        "shipped MAML Omniglot one)",
    )
    parser.add_argument(
        "--inner-steps",
        type=int,
        default=None,
        help="inner-loop steps at test time (default: the checkpoint's test steps, 10)",
    )
    parser.add_argument(
        "--chance",
        type=int,
        default=0,
        metavar="K",
        help="also give each measure's chance level: its value with one side's datapoints "
        "permuted, mean of K permutations (shown in brackets; default 0: off)",
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="print the wall seconds of each stage: load, adapt, capture, similarity, write "
        "(always recorded in similarity.json)",
    )
    _sources.add_analysis_args(parser, DEFAULT_OUT)
    rl = parser.add_argument_group("policy checkpoints (meta-RL)")
    rl.add_argument("--trajectories", type=int, default=None, help="per task (recorded)")
    rl.add_argument("--freeze", type=int, default=0, metavar="K", help="keep fc1..fcK fixed")
    parser.set_defaults(func=run)
    return parser


def expand_checkpoints(paths: list[str]) -> list[str | None]:
    """Checkpoint files from the command line: a folder stands for its ``*.safetensors`` files
    (optimiser states left out), in name order; nothing given is the default checkpoint."""
    from repsim.errors import InputError

    if not paths:
        return [None]
    found: list[str | None] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(
                f
                for f in path.glob("*.safetensors")
                if f.is_file() and not f.name.endswith(".optim.safetensors")
            )
            if not files:
                raise InputError(
                    f"folder {path} holds no *.safetensors checkpoint: give checkpoint files, "
                    "or the folder a training run wrote them to"
                )
            found += [str(f) for f in files]
        else:
            found.append(p)
    return found


STAGES = ("load", "adapt", "capture", "similarity", "write")
"""The stages timed in ``similarity.json`` (``seconds``): reading the checkpoints and building
the tasks; the inner loop; the forward passes that capture activations; the measures, weight
movement and their means and intervals; the CSVs and figures."""


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    paths = expand_checkpoints(args.checkpoints)
    if len(paths) == 1 and paths[0] and args.format in ("repsim", "auto") and _is_policy(paths[0]):
        return _run_policy(args, paths[0], _sources.parse_measures(args.measures))
    analysis = _sources.open_analysis(args, [(p, args.format) for p in paths], args.inner_steps)
    seconds = dict.fromkeys(STAGES, 0.0)
    seconds["load"] = time.perf_counter() - start
    runs = [
        _analyse(path, learner, analysis, args) for path, learner in zip(paths, analysis.learners)
    ]
    for r in runs:
        for stage, s in r["seconds"].items():
            seconds[stage] += s
    write = _write_one if len(runs) == 1 else _write_many
    return write(runs[0] if len(runs) == 1 else runs, analysis, args, seconds)


def _report_seconds(seconds: dict, args) -> None:
    if args.timings:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
        print(f"seconds per stage: {stages} (total {sum(seconds.values()):.2f})")


def _analyse(path, learner, analysis, args) -> dict:
    """One checkpoint's change on the shared tasks, with what identifies it."""
    from repsim.progress import shown
    from repsim.representation import representation_change

    change = representation_change(
        learner,
        analysis.source.tasks,
        measures=analysis.measures,
        conv_mode=args.conv_mode,
        progress=shown(),  # on a terminal only
        chance=args.chance,
    )
    t0 = time.perf_counter()
    summary, movement = change.summary(), change.movement_summary()
    seconds = dict(change.seconds)
    seconds["similarity"] += time.perf_counter() - t0
    return {
        "label": _sources.checkpoint_label(path),
        "identity": _sources.checkpoint_identity(path, learner, args.format),
        "iteration": learner.config.get("iteration"),
        "inner_steps": learner.config.get("adapt", {}).get("inner_steps", args.inner_steps),
        "change": change,
        "summary": summary,
        "movement": movement,
        "seconds": seconds,
    }


def _write_one(r: dict, analysis, args, seconds: dict) -> int:
    from repsim import figures, results

    t0 = time.perf_counter()

    source, measures, change = analysis.source, analysis.measures, r["change"]
    print(
        f"Similarity before vs after the inner loop: {r['label']}, {len(source.tasks)} tasks "
        f"({source.meta['ways']}-way {source.meta['shots']}-shot, "
        f"{r['inner_steps']} inner steps), mean ± 95% CI"
        + (f" [chance level, {args.chance} permutations]" if args.chance else "")
    )
    print(_similarity_table(r["summary"], change.layers, measures))
    print()
    print(
        "Weight movement ||theta_l - theta_l'|| (absolute and relative to ||theta_l||), mean "
        "± 95% CI"
    )
    print(_movement_table(r["movement"]))

    out = Path(args.out)
    meta = _meta(args, analysis, checkpoint=r["identity"], inner_steps=r["inner_steps"])
    written = [
        results.write_csv(
            out / "similarity_tasks.csv",
            change.records,
            ["task", "layer", "measure", "value", "note"],
        ),
        results.write_csv(out / "similarity_summary.csv", r["summary"]),
        results.write_csv(out / "weight_movement.csv", r["movement"]),
        results.write_csv(out / "weight_movement_tasks.csv", change.movement),
    ]
    written += figures.plot_layer_similarity(
        r["summary"],
        change.layers,
        out / "similarity",
        title=f"{r['label']}: before vs after adaptation ({len(source.tasks)} tasks)",
        per_task=change.records,
    )
    seconds["write"] = time.perf_counter() - t0  # similarity.json, written last, excluded
    path = results.write_json(
        out / "similarity.json",
        {
            "meta": meta,
            "layers": change.layers,
            "summary": r["summary"],
            "per_task": change.records,
            "weight_movement": {"summary": r["movement"], "per_task": change.movement},
            "seconds": seconds,
        },
    )
    print()
    print("wrote " + ", ".join(str(p) for p in [path, *written]))
    _report_seconds(seconds, args)
    return 0


def _is_policy(path: str) -> bool:
    """A repsim policy checkpoint (anything else, or an unreadable file, goes the usual way)."""
    from repsim.errors import CheckpointError
    from repsim.rl.checkpoint import is_policy_checkpoint

    try:
        return is_policy_checkpoint(path)
    except CheckpointError:
        return False


def _run_policy(args: argparse.Namespace, path: str, measures: list[str]) -> int:
    """A policy checkpoint: fc1, fc2 and head on the states its adapted policy visits."""
    from repsim import figures, results
    from repsim.progress import shown
    from repsim.rl.similarity import policy_similarity

    change, described = policy_similarity(
        path,
        args.tasks,
        args.trajectories,
        measures,
        args.freeze,
        args.inner_steps,
        args.seed,
        progress=shown(),
    )
    summary, movement = change.summary(), change.movement_summary()
    print(
        f"Similarity before vs after the inner loop: {path} ({described['algorithm']} "
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
        per_task=change.records,
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _print_combined(runs: list[dict], summary: list[dict], source, measures) -> None:
    """The combined table on the terminal: checkpoint x layer, one mean ± 95% CI per measure."""
    from repsim import results

    print(
        f"Similarity before vs after the inner loop: {len(runs)} checkpoints on the same "
        f"{len(source.tasks)} tasks ({source.meta['ways']}-way {source.meta['shots']}-shot), "
        "mean ± 95% CI"
    )
    cells = {(r["checkpoint"], r["layer"], r["measure"]): r for r in summary}
    table = []
    for r in runs:
        for layer in r["change"].layers:
            row = {"checkpoint": r["label"], "layer": layer}
            for m in measures:
                c = cells.get((r["label"], layer, m))
                row[m] = results.format_mean_ci(c["mean"], c["half_width"]) if c else "-"
            table.append(row)
    columns = [("checkpoint", "checkpoint"), ("layer", "layer")]
    print(results.format_table(table, columns + [(m, m.upper()) for m in measures]))


def _write_many(runs: list[dict], analysis, args, seconds: dict) -> int:
    """One combined table (checkpoint x layer x measure, with CIs) and, when every checkpoint
    records its training iteration, similarity against iteration."""
    from repsim import figures, results
    from repsim.provenance import portable_path

    t0 = time.perf_counter()

    source, measures = analysis.source, analysis.measures
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # same file names in different folders
        for r in runs:
            r["label"] = portable_path(r["identity"]["path"])

    def rows(of) -> list[dict]:  # every run's rows, each led by its checkpoint and iteration
        return [
            {"checkpoint": r["label"], "iteration": r["iteration"], **row}
            for r in runs
            for row in of(r)
        ]

    summary = rows(lambda r: r["summary"])
    _print_combined(runs, summary, source, measures)

    out = Path(args.out)
    meta = _meta(
        args,
        analysis,
        checkpoints=[
            {**r["identity"], "label": r["label"], "inner_steps": r["inner_steps"]} for r in runs
        ],
    )
    per_task = rows(lambda r: r["change"].records)
    written = [
        results.write_csv(
            out / "similarity_tasks.csv",
            per_task,
            ["checkpoint", "iteration", "task", "layer", "measure", "value", "note"],
        ),
        results.write_csv(out / "similarity_summary.csv", summary),
        results.write_csv(out / "weight_movement.csv", rows(lambda r: r["movement"])),
        results.write_csv(out / "weight_movement_tasks.csv", rows(lambda r: r["change"].movement)),
    ]
    if all(r["iteration"] is not None for r in runs):
        written += figures.plot_similarity_along_training(
            summary,
            {r["label"]: _run_name(r) for r in runs},
            out / "similarity_vs_iteration",
            title=f"Before vs after adaptation along training ({len(source.tasks)} tasks)",
        )
    else:
        print("note: not every checkpoint records its iteration; no plot against iteration")
    seconds["write"] = time.perf_counter() - t0  # similarity.json, written last, excluded
    path = results.write_json(
        out / "similarity.json",
        {
            "meta": meta,
            "checkpoints": [
                {
                    "checkpoint": r["label"],
                    "iteration": r["iteration"],
                    "layers": r["change"].layers,
                    "summary": r["summary"],
                    "weight_movement": r["movement"],
                }
                for r in runs
            ],
            "per_task": per_task,
            "seconds": seconds,
        },
    )
    print()
    print("wrote " + ", ".join(str(p) for p in [path, *written]))
    _report_seconds(seconds, args)
    return 0


def _run_name(r: dict) -> str:
    """The training run a checkpoint belongs to, for the legend: algorithm and seed."""
    train = r["identity"]["config"].get("train") or {}
    algorithm, seed = train.get("algorithm"), train.get("seed")
    if algorithm is None:
        return r["label"]
    return f"{algorithm} seed {seed}" if seed is not None else str(algorithm)


def _meta(args, analysis, **extra) -> dict:
    from repsim import results

    return results.provenance(
        command="similarity",
        seed=args.seed,
        measures=analysis.measures,
        conv_mode=args.conv_mode,
        tasks=analysis.source.meta,
        **extra,
    )


def _movement_table(movement: list[dict]) -> str:
    from repsim import results

    return results.format_table(
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


def _similarity_table(summary: list[dict], layers: list[str], measures: list[str]) -> str:
    from repsim.results import format_mean_ci, format_table

    cells = {(r["layer"], r["measure"]): r for r in summary}
    rows = []
    for layer in layers:
        row = {"layer": layer}
        for m in measures:
            r = cells.get((layer, m))
            text = format_mean_ci(r["mean"], r["half_width"]) if r else "-"
            if r and r.get("chance") is not None:
                text += f" [{r['chance']:.2f}]"
            if r and r["n_failed"]:
                text += f" ({r['n_failed']} failed)"
            row[m] = text
        rows.append(row)
    return format_table(rows, [("layer", "layer"), *((m, m.upper()) for m in measures)])
