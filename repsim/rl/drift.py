"""Why a meta-RL learning curve rises and then falls: the numbers that tell the readings apart.

MAML-RL's logged return is measured on the meta-batch that also chose the TRPO step, so a
decline of that curve can be (a) the steps fitting the batch's sampling noise, (b) a real
decline of the meta-policy, or (c) the policy's standard deviation shrinking until one inner
step at a fixed rate adapts less. Each reading predicts something another does not:

- (a): the step's surrogate gain re-measured on a fresh batch (``check_gain``) falls towards 0
  while the in-batch gain (``surrogate_gain``) stays positive, and the held-out return, which
  no step ever saw, does not fall with the in-batch one;
- (b): the held-out return after adaptation falls too, beyond its own 95 % interval;
- (c): ``log_std`` falls, the held-out gain of the first inner step (after 1 - before) shrinks
  and a second inner step still gains (after 2 - after 1 > 0).

:func:`run_diagnostics` computes these numbers for one run's ``metrics.jsonl`` rows
(:mod:`repsim.rl.train` logs them), :func:`drift_rows` summarises them over the seeds of each
group (mean ± std), :func:`checkpoint_groups` groups policy checkpoints by setting (an ablation
is a group of its own, labelled by what it changes) and :func:`plot_drift` draws the three
diagnostics against the iteration. A number a run did not log (older runs have no held-out
monitoring) is ``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "QUANTITIES",
    "checkpoint_groups",
    "drift_rows",
    "plot_drift",
    "run_diagnostics",
    "write_drift",
]

WINDOW = 10  # iterations of the in-batch rolling mean
# (quantity, what it is), in the order of the table
QUANTITIES = {
    "iterations": "iterations trained",
    "in_batch_peak": f"in-batch return after adaptation: highest {WINDOW}-iteration mean",
    "in_batch_peak_iteration": "iteration at the end of that window",
    "in_batch_final": f"in-batch return after adaptation: mean of the last {WINDOW} iterations",
    "heldout_peak": "held-out return after 1 step: highest",
    "heldout_peak_iteration": "iteration of the held-out peak",
    "heldout_final": "held-out return after 1 step: last",
    "heldout_final_ci95": "its 95 % half-width over the held-out tasks",
    "heldout_late_mean": "held-out return after 1 step: mean over the second half",
    "heldout_first_step_gain": "held-out after 1 step - before, last",
    "heldout_second_step_gain": "held-out after 2 steps - after 1, last",
    "log_std_first": "log-std (mean over action dimensions), first iteration",
    "log_std_final": "log-std, last iteration",
    "gain_in_batch_late": "surrogate gain of the accepted step on its own batch, second half",
    "gain_fresh_late": "the same step's gain on a fresh batch, second half",
    "gain_fresh_early": "the same step's gain on a fresh batch, first half",
}


def _rolling(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return np.array([values.mean()]) if len(values) else values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _training_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows of finite training iterations, each with ``surrogate_gain`` (older logs have
    only TRPO's ``loss_before`` and ``loss_after``)."""
    out = []
    for r in rows:
        if "return_after" in r and math.isfinite(r["return_after"]):
            if "surrogate_gain" not in r and "loss_after" in r:
                r = {**r, "surrogate_gain": r["loss_before"] - r["loss_after"]}
            out.append(r)
    return out


def run_diagnostics(rows: Sequence[dict], window: int = WINDOW) -> dict:
    """The :data:`QUANTITIES` of one run from its metrics rows (training rows carry
    ``return_after``; every ``heldout_every`` iterations they also carry the held-out returns,
    every ``step_check_every`` the fresh-batch check)."""
    train = _training_rows(rows)
    if not train:
        return dict.fromkeys(QUANTITIES)
    its = np.array([r["iteration"] for r in train])
    after = np.array([r["return_after"] for r in train], dtype=float)
    rolling = _rolling(after, window)
    peak = int(rolling.argmax())
    last = int(its[-1])
    out = dict.fromkeys(QUANTITIES)
    out.update(
        iterations=last,
        in_batch_peak=float(rolling[peak]),
        in_batch_peak_iteration=int(its[min(peak + window - 1, len(its) - 1)]),
        in_batch_final=float(after[-window:].mean()),
    )
    held = [r for r in train if r.get("heldout_after_1") is not None]
    if held:
        best = max(held, key=lambda r: r["heldout_after_1"])
        final = held[-1]
        out.update(
            heldout_peak=best["heldout_after_1"],
            heldout_peak_iteration=best["iteration"],
            heldout_final=final["heldout_after_1"],
            heldout_final_ci95=final["heldout_ci95"][1],
            heldout_first_step_gain=final["heldout_after_1"] - final["heldout_before"],
        )
        late_held = [r["heldout_after_1"] for r in held if r["iteration"] > last / 2]
        if late_held:
            out["heldout_late_mean"] = float(np.mean(late_held))
        if final.get("heldout_after_2") is not None:
            out["heldout_second_step_gain"] = final["heldout_after_2"] - final["heldout_after_1"]
    if train[0].get("log_std") is not None:
        out.update(log_std_first=train[0]["log_std"], log_std_final=train[-1]["log_std"])
    early = [r for r in train if r["iteration"] <= last / 2]
    late = [r for r in train if r["iteration"] > last / 2]
    checked = [r for r in late if r.get("check_gain") is not None]
    out.update(
        gain_in_batch_late=_mean(checked or late, "surrogate_gain"),
        gain_fresh_late=_mean(checked, "check_gain"),
        gain_fresh_early=_mean(early, "check_gain"),
    )
    return out


def drift_rows(groups: dict[tuple[str, str], list[list[dict]]], window: int = WINDOW) -> list:
    """One row per (group, quantity): ``env``, ``group``, ``quantity``, ``meaning``, the
    ``mean`` and ``std`` over the group's runs that have it, ``runs`` and ``per_run``.
    ``groups[(env, label)]`` is a list of runs, each a list of metrics rows."""
    rows = []
    for (env, label), runs in groups.items():
        per_run = [run_diagnostics(run, window) for run in runs]
        for quantity, meaning in QUANTITIES.items():
            values = [d[quantity] for d in per_run if d[quantity] is not None]
            arr = np.asarray(values, dtype=float)
            rows.append(
                {
                    "env": env,
                    "group": label,
                    "quantity": quantity,
                    "meaning": meaning,
                    "mean": float(arr.mean()) if arr.size else None,
                    "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
                    "runs": len(values),
                    "per_run": [d[quantity] for d in per_run],
                }
            )
    return rows


def checkpoint_groups(checkpoints: Sequence[str | Path]) -> dict[tuple[str, str], list]:
    """The learning curves of policy checkpoints (``metrics/<stem>.jsonl`` beside each),
    grouped by setting: ``(env, label)`` where the label is the algorithm and, for a setting
    that differs from the first one seen for that (env, algorithm), what it changes
    (``"MAML (meta_batch 40)"``). Seeds, length and where a run ran do not split a group;
    checkpoints without a metrics file are left out."""
    from repsim.checkpoint import read_record
    from repsim.rl.checkpoint import metrics_path
    from repsim.rl.config import RESUME_FREE, as_trained
    from repsim.run_log import read_metrics

    first: dict[tuple[str, str], dict] = {}
    groups: dict[tuple[str, str], list] = {}
    for path in map(Path, checkpoints):
        metrics = metrics_path(path)
        if not metrics.exists():
            continue
        cfg = as_trained(read_record(path)["train"])
        shared = {k: v for k, v in cfg.items() if k not in RESUME_FREE | {"seed"}}
        base = first.setdefault((cfg["env"], cfg["algorithm"]), shared)
        diff = ", ".join(f"{k} {v}" for k, v in shared.items() if base.get(k) != v)
        label = cfg["algorithm"].upper() + (f" ({diff})" if diff else "")
        groups.setdefault((cfg["env"], label), []).append(read_metrics(metrics))
    return groups


# The panels of the figure: (title, y label, {line: metrics key}).
PANELS = (
    ("policy std", "log-std (mean over dimensions)", {"log-std": "log_std"}),
    (
        "gain of the accepted step",
        "surrogate gain",
        {"own batch": "surrogate_gain", "fresh batch": "check_gain"},
    ),
    (
        "held-out tasks",
        "average return",
        {"before": "heldout_before", "after 1": "heldout_after_1", "after 2": "heldout_after_2"},
    ),
)


def _long_form(runs: list[list[dict]], keys: dict[str, str], label: str, smooth: int) -> dict:
    data: dict[str, list] = {"iteration": [], "value": [], "group": [], "line": []}
    for run in map(_training_rows, runs):
        for line, key in keys.items():
            points = [(r["iteration"], r[key]) for r in run if r.get(key) is not None]
            if not points:
                continue
            its, values = map(np.asarray, zip(*points))
            if key in ("surrogate_gain", "check_gain") and len(values) >= smooth:
                values, its = _rolling(values.astype(float), smooth), its[smooth - 1 :]
            data["iteration"] += its.tolist()
            data["value"] += values.tolist()
            data["group"] += [label] * len(its)
            data["line"] += [line] * len(its)
    return data


def plot_drift(groups: dict[tuple[str, str], list[list[dict]]], stem: str | Path) -> list[Path]:
    """One row of three panels per environment: the policy's log-std, the accepted step's
    surrogate gain on its own batch and on a fresh one (rolling mean of 5 checks), and the
    held-out returns before and after 1 and 2 inner steps; mean over a group's seeds with
    their range as a band, one colour per group. Panels without data stay empty."""
    from repsim.figures import _save, _seaborn, palette, seed_range_lines

    plt, sns = _seaborn()
    envs = list(dict.fromkeys(env for env, _ in groups))
    labels = list(dict.fromkeys(label for _, label in groups))
    colours = dict(zip(labels, palette(len(labels))))
    fig, axes = plt.subplots(len(envs), 3, figsize=(13.5, 3.4 * len(envs)), squeeze=False)
    for row, env in zip(axes, envs):
        for ax, (title, ylabel, keys) in zip(row, PANELS):
            data: dict[str, list] = {"iteration": [], "value": [], "group": [], "line": []}
            for (e, label), runs in groups.items():
                if e == env:
                    for k, v in _long_form(runs, keys, label, smooth=5).items():
                        data[k] += v
            if data["iteration"]:
                order = [g for g in labels if g in data["group"]]
                seed_range_lines(
                    ax, sns, data, "value", "group", order, colours, "line", list(keys), 0.15, 1.1
                )
                ax.legend(fontsize=7)
            ax.set_title(f"{env}: {title}")
            ax.set_xlabel("meta-iteration")
            ax.set_ylabel(ylabel)
    return _save(fig, stem, ("png", "pdf"))


def write_drift(out_dir: str | Path, groups: dict[tuple[str, str], list[list[dict]]]) -> dict:
    """``rl_drift.json`` / ``.csv`` (:func:`drift_rows`) and ``rl_drift.png`` / ``.pdf``
    (:func:`plot_drift`) in ``out_dir``; returns the JSON's content."""
    from repsim import results

    out = Path(out_dir)
    rows = drift_rows(groups)
    figures = plot_drift(groups, out / "rl_drift") if groups else []
    data = {
        "meta": results.provenance(command="rl-drift"),
        "window": WINDOW,
        "quantities": QUANTITIES,
        "rows": rows,
        "figures": [Path(p).name for p in figures],
    }
    results.write_json(out / "rl_drift.json", data)
    flat = [{**r, "per_run": json.dumps(r["per_run"])} for r in rows]
    results.write_csv(out / "rl_drift.csv", flat)
    return data
