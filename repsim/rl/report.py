"""The RL half of Table 2 of the paper from policy checkpoints, with a learning-curve figure.

:func:`write_rl_results` evaluates every policy checkpoint (default: those shipped under
``checkpoints/rl``) on the fixed test tasks, groups them by (environment, algorithm), gives the
mean ± std over seeds of the average return after one inner step beside the paper's numbers,
judges the paper's claim that ANIL matches MAML (``ANIL >= MAML - 1 std``, with MAML's std
over seeds), and draws the learning curves from each run's ``metrics.jsonl`` (looked up as
``metrics/<checkpoint stem>.jsonl`` beside the checkpoints). It writes ``rl_table2.json``,
``rl_table2.csv`` and ``rl_learning_curves.png`` / ``.pdf`` and returns the JSON's content.
:func:`curves_from_runs` reads the same curves from training run folders (in-batch and
held-out returns, as ``analysis/rl_runs.sh`` leaves them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repsim.checkpoint import CHECKPOINT_DIR

RL_CHECKPOINT_DIR = CHECKPOINT_DIR / "rl"
ENV_NAMES = {"2dnav": "2D-Navigation", "cheetah-dir": "HalfCheetah-Direction"}
ENV_NAMES["cheetah-vel"] = "HalfCheetah-Velocity"
# Table 2 of Raghu et al. (2020): average return after adaptation, mean ± std over 3 seeds.
PAPER_TABLE2 = {
    ("cheetah-dir", "maml"): (170.4, 21.0),
    ("cheetah-dir", "anil"): (363.2, 14.8),
    ("cheetah-vel", "maml"): (-139.0, 18.9),
    ("cheetah-vel", "anil"): (-120.9, 6.3),
    ("2dnav", "maml"): (-20.3, 3.2),
    ("2dnav", "anil"): (-20.1, 2.3),
}
# The reference scale of each environment, which the paper takes from MAML-RL (Finn et al.
# 2017, Appendix A.2; pytorch-maml-rl's configs `2d-navigation.yaml`, `halfcheetah-dir.yaml`,
# `halfcheetah-vel.yaml`): tasks per meta-batch, trajectories per task, iterations. A run below
# it is a reduced-scale run, and a claim tested on it is a proxy.
REFERENCE_SCALE = {
    "2dnav": {"meta_batch": 20, "trajectories": 20, "iterations": 500},
    "cheetah-dir": {"meta_batch": 40, "trajectories": 20, "iterations": 500},
    "cheetah-vel": {"meta_batch": 40, "trajectories": 20, "iterations": 500},
}
POLICY_LAYERS = ("fc1", "fc2", "head")
# The measures of the RL similarity figure: plain mean CCA, the paper's CCA98, linear CKA.
RL_MEASURES = ("cca", "cca98", "cka")


def reduced_scale(env: str, scale: dict) -> bool:
    """Whether a run of ``scale`` ({meta_batch, trajectories, iterations}) falls short of
    :data:`REFERENCE_SCALE` for ``env`` in any of them."""
    ref = REFERENCE_SCALE.get(env)
    return ref is not None and any(scale[k] < ref[k] for k in ref)


def policy_checkpoints(folder: str | Path = RL_CHECKPOINT_DIR) -> list[Path]:
    """The policy checkpoints in ``folder`` (sorted; other files are left out)."""
    from repsim.rl.checkpoint import is_policy_checkpoint

    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.safetensors")) if is_policy_checkpoint(p)]


def anil_matches_maml(maml: tuple[float, float], anil: tuple[float, float]) -> str:
    """The paper's claim on one environment, from ``(mean, std)`` over seeds of each:
    ``"holds"`` when ANIL's mean >= MAML's mean - MAML's std, ``"fails"`` otherwise, and
    ``"undecided (one seed)"`` when MAML's std is unknown."""
    if not math.isfinite(maml[1]):
        return "undecided (one seed)"
    return "holds" if anil[0] >= maml[0] - maml[1] else "fails"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std


def table2_rows(
    checkpoints: Sequence[str | Path],
    tasks: int = 40,
    seed: int = 0,
    steps: int = 3,
    jobs: int = 1,
) -> dict:
    """Evaluate ``checkpoints`` before and after 1..``steps`` inner steps (mean ± 95 % CI over
    the fixed test tasks) and group them into Table 2 rows: per (environment, algorithm) the
    mean ± std over seeds after each number of steps, the paper's number (after one step), the
    scale and whether it is reduced (:func:`reduced_scale`). ``jobs``: evaluate that many
    checkpoints at a time, each in its own process (:func:`repsim.processes.map_jobs`; the
    numbers do not depend on it)."""
    from repsim.processes import map_jobs

    args = [(p, tasks, seed, steps) for p in checkpoints]
    runs = map_jobs(_run_row, args, jobs, "Table 2, RL", "policy")
    rows = _group_rows(runs, steps)
    return {
        "tasks": tasks,
        "task_seed": seed,
        "steps": steps,
        "runs": runs,
        "rows": rows,
        "verdicts": _verdicts(rows),
    }


def _run_row(path, tasks: int, seed: int, steps: int) -> dict:
    """One checkpoint's returns on the fixed test tasks after 0..``steps`` inner steps (mean and
    95 % half-width over tasks), with its environment, algorithm, seed and scale."""
    from repsim.checkpoint import read_record
    from repsim.rl.evaluate import evaluate_policy_checkpoint

    r = evaluate_policy_checkpoint(path, tasks, max_steps=steps, seed=seed)  # validates the file
    record = read_record(path)
    cfg = record["train"]
    return {
        "checkpoint": str(path),
        "env": cfg["env"],
        "algorithm": cfg["algorithm"],
        "seed": cfg["seed"],
        "iteration": record["iteration"],
        "scale": {k: cfg[k] for k in ("meta_batch", "trajectories", "iterations")},
        "return_before": r["steps"][0]["mean"],
        "return_after": r["steps"][1]["mean"],
        "return_after_ci95": r["steps"][1]["half_width"],
        "returns": [
            {"inner_steps": k["inner_steps"], "mean": k["mean"], "ci95": k["half_width"]}
            for k in r["steps"]
        ],
    }


def _group_rows(runs: list[dict], steps: int) -> list[dict]:
    """Table 2's rows: per (environment, algorithm), the mean ± std over seeds after each number
    of inner steps, beside the paper's number and the scale."""
    rows = []
    for env, algorithm in dict.fromkeys((r["env"], r["algorithm"]) for r in runs):
        group = [r for r in runs if (r["env"], r["algorithm"]) == (env, algorithm)]
        by_step = []
        for k in range(steps + 1):
            mean, std = _mean_std([r["returns"][k]["mean"] for r in group])
            by_step.append({"inner_steps": k, "mean": mean, "std": std})
        paper = PAPER_TABLE2.get((env, algorithm), (math.nan, math.nan))
        scale = group[0]["scale"]
        rows.append(
            {
                "env": env,
                "environment": ENV_NAMES.get(env, env),
                "algorithm": algorithm,
                "seeds": sorted(r["seed"] for r in group),
                "return_after_mean": by_step[1]["mean"],
                "return_after_std": by_step[1]["std"],
                "return_before_mean": by_step[0]["mean"],
                "returns_by_step": by_step,
                "paper_mean": paper[0],
                "paper_std": paper[1],
                "scale": scale,
                "reference_scale": REFERENCE_SCALE.get(env),
                "reduced_scale": reduced_scale(env, scale),
            }
        )
    return rows


def _verdicts(rows: list[dict]) -> dict:
    """Per environment with both MAML and ANIL: the claim ANIL >= MAML - 1 std, ours and the
    paper's."""
    verdicts = {}
    by_key = {(r["env"], r["algorithm"]): r for r in rows}
    for env in dict.fromkeys(r["env"] for r in rows):
        if (env, "maml") in by_key and (env, "anil") in by_key:
            m, a = by_key[(env, "maml")], by_key[(env, "anil")]
            verdicts[env] = {
                "claim": "ANIL >= MAML - 1 std (MAML's std over seeds)",
                "ours": anil_matches_maml(
                    (m["return_after_mean"], m["return_after_std"]),
                    (a["return_after_mean"], a["return_after_std"]),
                ),
                "paper": anil_matches_maml(
                    PAPER_TABLE2[(env, "maml")], PAPER_TABLE2[(env, "anil")]
                ),
            }
    return verdicts


def policy_similarity_rows(
    checkpoints: Sequence[str | Path],
    tasks: int = 20,
    chance: int = 3,
    seed: int = 0,
    jobs: int = 1,
) -> dict:
    """The RL version of Figure 2 (new: the paper reports no RL similarity): each policy
    layer's similarity before vs after adaptation (:func:`repsim.rl.similarity.policy_similarity`
    on the states the adapted policy visits), with each measure's chance level, pooled over
    the seeds of every (environment, algorithm); ``jobs`` as in :func:`table2_rows`."""
    from repsim.processes import map_jobs
    from repsim.results import summarise

    records: dict[tuple[str, str], list[dict]] = {}
    args = [(p, tasks, seed, chance) for p in checkpoints]
    for key, recs in map_jobs(_similarity_records, args, jobs, "RL similarity", "policy"):
        records.setdefault(key, []).extend(recs)
    summary = []
    for (env, algorithm), recs in records.items():
        chance_of = (
            {
                (r["layer"], r["measure"]): r["mean"]
                for r in summarise(recs, ("layer", "measure"), "chance")
            }
            if chance
            else {}
        )
        for r in summarise(recs, ("layer", "measure")):
            level = chance_of.get((r["layer"], r["measure"]))
            summary.append({"env": env, "algorithm": algorithm, **r, "chance": level})
    return {
        "tasks": tasks,
        "chance_permutations": chance,
        "measures": list(RL_MEASURES),
        "layers": list(POLICY_LAYERS),
        "states": "visited by the adapted policy",
        "summary": summary,
    }


def _similarity_records(path, tasks: int, seed: int, chance: int) -> tuple[tuple, list[dict]]:
    """One checkpoint's similarity records (each with its seed) and its (env, algorithm)."""
    from repsim.rl.similarity import policy_similarity

    change, meta = policy_similarity(path, tasks, measures=RL_MEASURES, seed=seed, chance=chance)
    seed_of = Path(path).stem.rsplit("seed", 1)[-1]
    return (meta["env"], meta["algorithm"]), [{**r, "seed": seed_of} for r in change.records]


# The rows of the learning-curve figure: (title, {policy: metrics key}).
CURVE_ROWS = (
    ("in-batch (training tasks)", {"after": "return_after", "before": "return_before"}),
    ("held-out tasks", {"after": "heldout_after_1", "before": "heldout_before"}),
)


def _curve_data(runs_by_algorithm: dict[str, list[list[dict]]], keys: dict[str, str]) -> dict:
    """Long-form ``{iteration, return, algorithm, policy}`` of the rows that have ``keys``, up
    to the last iteration every seed of an algorithm reached."""
    data: dict[str, list] = {"iteration": [], "return": [], "algorithm": [], "policy": []}
    for algorithm, runs in runs_by_algorithm.items():
        if not runs:
            continue
        last = min(run[-1]["iteration"] if run else 0 for run in runs)  # the seeds' common length
        for run in runs:
            for row in run:
                if row["iteration"] > last or any(k not in row for k in keys.values()):
                    continue
                for policy, key in keys.items():
                    data["iteration"].append(row["iteration"])
                    data["return"].append(row[key])
                    data["algorithm"].append(algorithm.upper())
                    data["policy"].append(policy)
    return data


def plot_learning_curves(curves: dict[tuple[str, str], list[list[dict]]], stem: str | Path):
    """Return after adaptation (solid) and before (dashed) per meta-iteration, one column per
    environment: in-batch (the meta-batch's own tasks) on top and, when the runs logged them,
    the held-out tasks below (after one inner step); mean over seeds with the seeds' range (min
    to max) as a band. ``curves[(env, algorithm)]`` is a list of runs, each a list of metrics
    rows."""
    from repsim.figures import _save, _seaborn, palette, seed_range_lines

    plt, sns = _seaborn()
    envs = list(dict.fromkeys(env for env, _ in curves))
    by_env = {env: {a: runs for (e, a), runs in curves.items() if e == env} for env in envs}
    rows = [
        (title, keys)
        for title, keys in CURVE_ROWS
        if any(_curve_data(by_env[env], keys)["iteration"] for env in envs)
    ] or list(CURVE_ROWS[:1])
    ncols = max(len(envs), 1)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(4.2 * ncols, 3.4 * len(rows)), squeeze=False
    )
    colours = dict(zip(("MAML", "ANIL"), palette(2)))
    # the legend comes from the top panel with the most algorithms and goes beside the top
    # right one
    legend_ax = max(zip(axes[0], envs), key=lambda a: len(by_env[a[1]]), default=(None, None))[0]
    for r, (title, keys) in enumerate(rows):
        for ax, env in zip(axes[r], envs):
            data = _curve_data(by_env[env], keys)
            if data["iteration"]:
                order = [a for a in colours if a in data["algorithm"]]
                seed_range_lines(
                    ax,
                    sns,
                    data,
                    "return",
                    "algorithm",
                    order,
                    colours,
                    "policy",
                    ["after", "before"],
                    legend=ax is legend_ax,  # one legend, top right
                )
            ax.set_title(f"{ENV_NAMES.get(env, env)}: {title}")
            ax.set_xlabel("meta-iteration")
            ax.set_ylabel("average return")
    if legend_ax is not None and legend_ax.get_legend() is not None:
        legend = legend_ax.get_legend()
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        axes[0, len(envs) - 1].legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            title="mean over seeds,\nband: their range",
        )
    return _save(fig, stem, ("png", "pdf"))


def curves_from_runs(run_dirs: Sequence[str | Path]) -> dict[tuple[str, str], list[list[dict]]]:
    """The learning curves of training run folders (each with ``config.json`` and
    ``metrics.jsonl``), grouped by (environment, algorithm), for :func:`plot_learning_curves`.
    The runs of one group must differ only in their seed and in what does not change training
    (length, threads, monitoring); a group that mixes settings (an ablation among the seeds) is
    refused."""
    import json

    from repsim.errors import InputError
    from repsim.rl.config import RESUME_FREE, as_trained
    from repsim.run_log import read_metrics

    curves: dict[tuple[str, str], list[list[dict]]] = {}
    settings: dict[tuple[str, str], tuple[dict, Path]] = {}
    for folder in map(Path, run_dirs):
        if not (folder / "metrics.jsonl").exists():
            continue
        cfg = as_trained(json.loads((folder / "config.json").read_text()))
        key = (cfg["env"], cfg["algorithm"])
        shared = {k: v for k, v in cfg.items() if k not in RESUME_FREE | {"seed"}}
        if key in settings and settings[key][0] != shared:
            other, where = settings[key]
            diff = {k: (other.get(k), v) for k, v in shared.items() if other.get(k) != v}
            raise InputError(
                f"{folder} and {where} are both {key} but differ in {diff}; draw them apart"
            )
        settings.setdefault(key, (shared, folder))
        curves.setdefault(key, []).append(read_metrics(folder / "metrics.jsonl"))
    return curves


def write_rl_results(
    out_dir: str | Path,
    checkpoints: Sequence[str | Path] | None = None,
    tasks: int = 40,
    seed: int = 0,
    steps: int = 3,
    similarity_tasks: int = 20,
    chance: int = 3,
    ablations: Sequence[str | Path] | None = None,
    jobs: int = 1,
) -> dict:
    """Table 2's RL rows (``rl_table2.json|csv``: after 0..``steps`` inner steps), the learning
    curves (``rl_learning_curves.png|pdf``), the RL version of Figure 2
    (``rl_similarity.json|csv`` on ``similarity_tasks`` tasks, ``rl_similarity_<env>_<algorithm>
    .png|pdf``; none with ``similarity_tasks=0``) and the drift diagnostics of the runs and of
    the ``ablations`` (policy checkpoints of other settings, in no table: ``rl_drift.json|csv|
    png``, :mod:`repsim.rl.drift`) into ``out_dir``. Without ``checkpoints``, those shipped in
    ``checkpoints/rl`` and ``checkpoints/rl/ablations``. ``jobs``: evaluate that many
    policies at a time (:func:`table2_rows`)."""
    from repsim import results
    from repsim.figures import plot_layer_similarity
    from repsim.provenance import portable_path
    from repsim.rl.checkpoint import metrics_path
    from repsim.rl.drift import checkpoint_groups, write_drift
    from repsim.run_log import read_metrics

    if checkpoints is None:
        checkpoints = policy_checkpoints()
        ablations = policy_checkpoints(RL_CHECKPOINT_DIR / "ablations")
    checkpoints = [Path(p) for p in checkpoints]
    out = Path(out_dir)
    table = table2_rows(checkpoints, tasks, seed, steps, jobs)
    curves: dict[tuple[str, str], list[list[dict]]] = {}
    for run in table["runs"]:
        path = Path(run["checkpoint"])
        metrics = metrics_path(path)
        if metrics.exists():
            curves.setdefault((run["env"], run["algorithm"]), []).append(read_metrics(metrics))
    figures = plot_learning_curves(curves, out / "rl_learning_curves") if curves else []
    for run in table["runs"]:  # results hold no machine path
        run["checkpoint"] = portable_path(run["checkpoint"])
    data = {"meta": results.provenance(command="rl-table2"), **table}
    data["figures"] = [Path(p).name for p in figures]
    results.write_json(out / "rl_table2.json", data)
    results.write_csv(out / "rl_table2.csv", [_flat_row(r) for r in table["rows"]])
    if similarity_tasks:
        sim = policy_similarity_rows(checkpoints, similarity_tasks, chance, seed, jobs)
        drawn = []
        for env, algorithm in dict.fromkeys((r["env"], r["algorithm"]) for r in sim["summary"]):
            rows = [r for r in sim["summary"] if (r["env"], r["algorithm"]) == (env, algorithm)]
            drawn += plot_layer_similarity(
                rows,
                POLICY_LAYERS,
                out / f"rl_similarity_{env}_{algorithm}",
                title=f"{algorithm.upper()}, {ENV_NAMES.get(env, env)}: before vs after "
                "the inner loop",
            )
        sim = {"meta": results.provenance(command="rl-similarity"), **sim}
        sim["figures"] = [Path(p).name for p in drawn]
        results.write_json(out / "rl_similarity.json", sim)
        results.write_csv(out / "rl_similarity.csv", sim["summary"])
    groups = checkpoint_groups([*checkpoints, *(ablations or [])])
    if groups:
        write_drift(out, groups)
    return data


def _flat_row(row: dict) -> dict:
    """A Table 2 row for the CSV: its numbers, the returns after each number of steps as
    columns, the scale as ``tasks x trajectories x iterations``."""
    flat = {k: v for k, v in row.items() if not isinstance(v, (dict, list))}
    for k in row["returns_by_step"]:
        flat[f"return_{k['inner_steps']}_steps_mean"] = k["mean"]
        flat[f"return_{k['inner_steps']}_steps_std"] = k["std"]
    sc = row["scale"]
    flat["scale"] = f"{sc['meta_batch']} x {sc['trajectories']} x {sc['iterations']}"
    flat["seeds"] = len(row["seeds"])
    return flat
