"""The RL half of Table 2 of the paper from policy checkpoints, with a learning-curve figure.

:func:`write_rl_results` evaluates every policy checkpoint (default: those shipped under
``checkpoints/rl``) on the fixed test tasks, groups them by (environment, algorithm), gives the
mean ± std over seeds of the average return after one inner step beside the paper's numbers,
judges the paper's claim that ANIL matches MAML (``ANIL >= MAML - 1 std``, with MAML's std
over seeds), and draws the learning curves from each run's ``metrics.jsonl`` (looked up as
``metrics/<checkpoint stem>.jsonl`` beside the checkpoints). It writes ``rl_table2.json``,
``rl_table2.csv`` and ``rl_learning_curves.png`` / ``.pdf`` and returns the JSON's content.
"""

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


def table2_rows(checkpoints: Sequence[str | Path], tasks: int = 40, seed: int = 0) -> dict:
    """Evaluate ``checkpoints`` (after 0 and 1 inner steps) and group them into Table 2 rows."""
    from repsim.rl.checkpoint import load_policy
    from repsim.rl.evaluate import evaluate_policy_checkpoint

    runs = []
    for path in checkpoints:
        r = evaluate_policy_checkpoint(path, tasks, max_steps=1, seed=seed)
        _, record = load_policy(path)
        cfg = record["train"]
        runs.append(
            {
                "checkpoint": str(path),
                "env": cfg["env"],
                "algorithm": cfg["algorithm"],
                "seed": cfg["seed"],
                "iteration": record["iteration"],
                "scale": {k: cfg[k] for k in ("meta_batch", "trajectories", "iterations")},
                "return_before": r["steps"][0]["mean"],
                "return_after": r["steps"][1]["mean"],
                "return_after_ci95": r["steps"][1]["half_width"],
            }
        )
    rows = []
    for env, algorithm in dict.fromkeys((r["env"], r["algorithm"]) for r in runs):
        group = [r for r in runs if (r["env"], r["algorithm"]) == (env, algorithm)]
        mean, std = _mean_std([r["return_after"] for r in group])
        before, _ = _mean_std([r["return_before"] for r in group])
        paper = PAPER_TABLE2.get((env, algorithm), (math.nan, math.nan))
        rows.append(
            {
                "env": env,
                "environment": ENV_NAMES.get(env, env),
                "algorithm": algorithm,
                "seeds": sorted(r["seed"] for r in group),
                "return_after_mean": mean,
                "return_after_std": std,
                "return_before_mean": before,
                "paper_mean": paper[0],
                "paper_std": paper[1],
                "scale": group[0]["scale"],
            }
        )
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
    return {"tasks": tasks, "task_seed": seed, "runs": runs, "rows": rows, "verdicts": verdicts}


def plot_learning_curves(curves: dict[tuple[str, str], list[list[dict]]], stem: str | Path):
    """Return after adaptation (solid) and before (dashed) per meta-iteration, one panel per
    environment, mean over seeds with the min-max band. ``curves[(env, algorithm)]`` is a list
    of runs, each a list of metrics rows."""
    from repsim.figures import _pyplot, _save, palette

    plt = _pyplot()
    envs = list(dict.fromkeys(env for env, _ in curves))
    fig, axes = plt.subplots(1, max(len(envs), 1), figsize=(4.2 * max(len(envs), 1), 3.2))
    axes = np.atleast_1d(axes)
    colours = dict(zip(("maml", "anil"), palette(2)))
    for ax, env in zip(axes, envs):
        for (e, algorithm), runs in curves.items():
            if e != env or not runs:
                continue
            n = min(len(run) for run in runs)
            x = [row["iteration"] for row in runs[0][:n]]
            for key, style in (("return_after", "-"), ("return_before", "--")):
                y = np.array([[row[key] for row in run[:n]] for run in runs])
                label = f"{algorithm.upper()} {'after' if key == 'return_after' else 'before'}"
                ax.plot(x, y.mean(0), style, color=colours.get(algorithm), label=label)
                if len(runs) > 1:
                    ax.fill_between(x, y.min(0), y.max(0), color=colours.get(algorithm), alpha=0.2)
        ax.set_title(ENV_NAMES.get(env, env))
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel("average return")
        ax.legend(fontsize=7)
    return _save(fig, stem, ("png", "pdf"))


def write_rl_results(
    out_dir: str | Path,
    checkpoints: Sequence[str | Path] | None = None,
    tasks: int = 40,
    seed: int = 0,
) -> dict:
    """Table 2's RL rows (JSON + CSV) and the learning curves (PNG + PDF) into ``out_dir``."""
    from repsim import results
    from repsim.provenance import portable_path
    from repsim.train import read_metrics

    checkpoints = policy_checkpoints() if checkpoints is None else [Path(p) for p in checkpoints]
    out = Path(out_dir)
    table = table2_rows(checkpoints, tasks, seed)
    curves: dict[tuple[str, str], list[list[dict]]] = {}
    for run in table["runs"]:
        path = Path(run["checkpoint"])
        metrics = path.parent / "metrics" / f"{path.stem}.jsonl"
        if metrics.exists():
            curves.setdefault((run["env"], run["algorithm"]), []).append(read_metrics(metrics))
    figures = plot_learning_curves(curves, out / "rl_learning_curves") if curves else []
    for run in table["runs"]:  # results hold no machine path
        run["checkpoint"] = portable_path(run["checkpoint"])
    data = {"meta": results.provenance(command="rl-table2"), **table}
    data["figures"] = [Path(p).name for p in figures]
    results.write_json(out / "rl_table2.json", data)
    results.write_csv(
        out / "rl_table2.csv",
        [{k: v for k, v in r.items() if k not in ("scale", "seeds")} for r in table["rows"]],
    )
    return data
