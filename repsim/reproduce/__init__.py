"""Regenerate the paper's tables and figures from folders of checkpoints, and test its claims.

One job per module:

- :mod:`~repsim.reproduce.paper`: the paper's numbers;
- :mod:`~repsim.reproduce.runs`: the runs, their manifest and their setting;
- :mod:`~repsim.reproduce.analyses`: the analyses, which compute and write results JSON/CSV;
- :mod:`~repsim.reproduce.claims`: the claims as clauses (data) and one evaluator;
- :mod:`~repsim.reproduce.report`: the report, rendered from the results files;
- :mod:`~repsim.reproduce.figures`: the figures, drawn from the results files.

Runs are compared at their common iteration: the latest at which every MAML and ANIL run of a
folder has a checkpoint (so runs still training, or of different lengths, compare like with
like); the report states it beside the training length of every run.

Input: checkpoint folders, each with a ``manifest.json`` listing its runs (one setting per
folder, e.g. ``checkpoints/`` for Omniglot 5-way 1-shot and ``checkpoints/paper20/`` for the
paper's Omniglot 20-way protocol). Output under ``OUT``: ``results/<setting>/*.json|csv``,
``results/claims.json|csv``, ``figures/<setting>/*.png|pdf`` and ``results/report.md``.
"""

from __future__ import annotations

from pathlib import Path

from repsim.reproduce.runs import (
    Run,
    Settings,
    checkpoint_folders,
    read_manifest,
    setting_of,
    train_quick_checkpoints,
    write_manifest,
)

__all__ = [
    "Run",
    "Settings",
    "checkpoint_folders",
    "evaluate_and_report",
    "read_manifest",
    "reproduce",
    "setting_of",
    "train_quick_checkpoints",
    "write_manifest",
]


def reproduce(
    ckpt_dirs: str | Path | list,
    out: str | Path,
    settings: Settings | None = None,
    progress: bool = True,
    rl_dir: str | Path | None = None,
    jobs: int = 1,
) -> Path:
    """Run every analysis on every checkpoint folder and draw its figures, evaluate the meta-RL
    policies in ``rl_dir`` (Table 2's RL rows, into ``OUT/results/rl``), then evaluate the
    claims and render the report over every setting under ``OUT/results`` (so a setting can be
    redone alone: ``ckpt_dirs=[]`` only re-evaluates and re-renders); returns the report's
    path. ``jobs=2`` runs a setting's analyses in two processes
    (:func:`repsim.reproduce.analyses.run_setting`)."""
    from repsim.reproduce import analyses, figures

    settings = settings or Settings()
    folders = [ckpt_dirs] if isinstance(ckpt_dirs, (str, Path)) else list(ckpt_dirs)
    out = Path(out)
    for folder in folders:
        results = analyses.run_setting(folder, out, settings, progress, jobs)
        figures.draw(results, out / "figures" / results.name)
    if rl_dir is not None:
        from repsim.rl.report import policy_checkpoints, write_rl_results

        policies = policy_checkpoints(rl_dir)
        if policies:
            if progress:
                print(f"Table 2, RL: {len(policies)} policies in {Path(rl_dir).name}/", flush=True)
            write_rl_results(out / "results" / "rl", policies, tasks=settings.rl_tasks)
    return evaluate_and_report(out, progress)


def evaluate_and_report(out: str | Path, progress: bool = True) -> Path:
    """The claims (``OUT/results/claims.json|csv``) and the report, from the results files of
    every setting under ``OUT/results``."""
    import json

    from repsim.errors import InputError
    from repsim.reproduce import claims, report
    from repsim.results import provenance, write_csv, write_json

    out = Path(out)
    root = out / "results"
    read = {name for claim in claims.CLAIMS for name in claim.needs}
    # a setting is a folder holding results that a claim reads (results/bench is not one)
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    done = sorted(p.name for p in folders if any((p / f"{n}.json").exists() for n in read))
    if not done:
        raise InputError(f"no results under {root}: run the analyses first (repsim reproduce)")
    results, contexts = {}, {}
    for setting in done:
        folder = out / "results" / setting
        results[setting] = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
        anchor = next(iter(results[setting].values()))
        contexts[setting] = {"train": anchor.get("train", {})}
    rows = claims.evaluate(results, contexts)
    write_json(out / "results" / "claims.json", {"claims": rows, "provenance": provenance()})
    write_csv(out / "results" / "claims.csv", rows)
    if progress:
        print(claims.format_table(rows), flush=True)
    return report.render(out, rows, done)
