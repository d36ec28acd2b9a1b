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
    along: bool = True,
) -> Path:
    """Run every analysis on every checkpoint folder and draw its figures, evaluate the meta-RL
    policies in ``rl_dir`` (Table 2's RL rows, into ``OUT/results/rl``), then evaluate the
    claims and render the report over every setting under ``OUT/results`` (so a setting can be
    redone alone: ``ckpt_dirs=[]`` only re-evaluates and re-renders); returns the report's
    path. ``jobs=2`` runs a setting's analyses in two processes
    (:func:`repsim.reproduce.analyses.run_setting`) and evaluates two policies at a time
    (:func:`repsim.rl.report.write_rl_results`). ``along``: also repeat the analyses that
    the claims read at every iteration a folder's runs share, at the reduced sizes of
    :meth:`Settings.along` (:func:`repsim.reproduce.analyses.run_along`), so that the report
    traces every clause along training."""
    from repsim.reproduce import analyses, figures

    settings = settings or Settings()
    folders = [ckpt_dirs] if isinstance(ckpt_dirs, (str, Path)) else list(ckpt_dirs)
    out = Path(out)
    for folder in folders:
        results = analyses.run_setting(folder, out, settings, progress, jobs)
        figures.draw(results, out / "figures" / results.name)
        if along:
            analyses.run_along(folder, out, Settings.along(settings), progress, jobs)
    if rl_dir is not None:
        from repsim.rl.report import policy_checkpoints, write_rl_results

        policies = policy_checkpoints(rl_dir)
        if policies:
            if progress:
                print(f"Table 2, RL: {len(policies)} policies in {Path(rl_dir).name}/", flush=True)
            write_rl_results(
                out / "results" / "rl",
                policies,
                tasks=settings.rl_tasks,
                similarity_tasks=settings.similarity_tasks,
                chance=settings.chance_permutations,
                ablations=policy_checkpoints(Path(rl_dir) / "ablations"),
                jobs=jobs,
            )
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
    along = _claims_along(out, done, contexts)
    return report.render(out, rows, done, along)


def _claims_along(out: Path, settings: list[str], contexts: dict) -> dict | None:
    """Every clause at every along-training iteration of the settings that have
    ``results/<setting>/along/<iteration>/`` (``OUT/results/claims_along.json|csv``) and its
    figures (``OUT/figures/claims_along/``); None when no setting has any."""
    import json

    from repsim.reproduce import claims, figures
    from repsim.results import provenance, write_csv, write_json

    results, sizes = {}, {}
    for setting in settings:
        base = out / "results" / setting / "along"
        main = json.loads(next((out / "results" / setting).glob("*.json")).read_text())
        along = {
            int(p.name): {q.stem: json.loads(q.read_text()) for q in p.glob("*.json")}
            for p in (sorted(base.glob("[0-9]*")) if base.is_dir() else [])
            if p.is_dir()
        }
        # only iterations of the runs that the main tables describe (an earlier reproduction of
        # the same setting from other runs may have left its own)
        along = {
            it: files
            for it, files in along.items()
            if files and all(f.get("runs") == main.get("runs") for f in files.values())
        }
        if not along:
            continue
        results[setting] = along
        first = next(iter(next(iter(along.values())).values()))
        used = first.get("provenance", {}).get("settings", {})
        sizes[setting] = {k: used.get(k) for k in ("accuracy_tasks", "similarity_tasks")}
    path = out / "results" / "claims_along.json"
    if not results:
        for stale in (path, path.with_suffix(".csv")):
            stale.unlink(missing_ok=True)
        return None
    rows = claims.evaluate_along(results, contexts)
    data = {"rows": rows, "summary": claims.held_from(rows), "sizes": sizes}
    write_json(path, {**data, "provenance": provenance()})
    write_csv(path.with_suffix(".csv"), rows)
    figures.draw_claims_along(path, out / "figures" / "claims_along")
    return data
