"""Figures from result data (never from models): matplotlib, PNG and PDF.

- :func:`plot_layer_similarity`: the paper's Figure 2, similarity of each layer before vs after
  the inner loop, layers on the x axis, one line per measure with 95% CI error bars.
- :func:`plot_similarity_heatmap`: a layer x layer similarity matrix (checkpoint A vs B).
- :func:`plot_similarity_along_training`: similarity against training iteration, one panel per
  measure, a colour per layer and a line style per run, with 95% CI bands.
- :func:`plot_freezing`, :func:`plot_training`, :func:`plot_weight_movement`,
  :func:`plot_learning_curves`: the reproduction's Table 1, Figure 3, Appendix B.3 and Figure 5
  from its results files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FORMATS = ("png", "pdf")


# The "colorblind" palette of seaborn (Waskom 2021), which these figures used until seaborn's
# import (0.9-1.8 s, most of `repsim similarity`'s write stage) was dropped for two calls.
COLORBLIND = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip

# A light grid on white, small paper-sized text.
_STYLE = {
    "axes.grid": True,
    "axes.edgecolor": "#cccccc",
    "axes.axisbelow": True,
    "grid.color": "#e6e6e6",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
}


def palette(k: int) -> list[str]:
    """``k`` colours of the colourblind-safe palette (cycled beyond ten)."""
    return [COLORBLIND[i % len(COLORBLIND)] for i in range(max(k, 1))]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _save(fig, stem: str | Path, formats: Sequence[str]) -> list[Path]:
    """Lay ``fig`` out, write ``stem.<fmt>`` for each format, close it; returns the paths."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=160, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def plot_layer_similarity(
    summary: Sequence[dict],
    layers: Sequence[str],
    stem: str | Path,
    title: str = "",
    ylabel: str = "similarity before vs after adaptation",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Figure 2 of the paper from summary rows ``{layer, measure, mean, ci_low, ci_high}``.

    Writes ``stem.png`` and ``stem.pdf``; returns their paths. The y axis is [0, 1.05]. Rows
    with a ``chance`` value (the measure on permuted data) add a dashed line per measure.
    """
    plt = _pyplot()
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    colours = palette(len(measures))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    x = np.arange(len(layers))
    for i, measure in enumerate(measures):
        by_layer = {r["layer"]: r for r in summary if r["measure"] == measure}
        mean = np.array([by_layer.get(lyr, {}).get("mean", np.nan) for lyr in layers], float)
        low = np.array([by_layer.get(lyr, {}).get("ci_low", np.nan) for lyr in layers], float)
        high = np.array([by_layer.get(lyr, {}).get("ci_high", np.nan) for lyr in layers], float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        ax.errorbar(
            x,
            mean,
            yerr=err,
            marker="o",
            capsize=4,
            linewidth=1.8,
            color=colours[i],
            label=measure.upper().replace("_", " "),
        )
        chance = np.array(
            [by_layer.get(lyr, {}).get("chance", np.nan) for lyr in layers], dtype=float
        )
        if np.isfinite(chance).any():
            ax.plot(x, chance, "--", color=colours[i], linewidth=1.0, alpha=0.8)
    if any(r.get("chance") is not None for r in summary):
        ax.plot([], [], "--", color="grey", linewidth=1.0, label="chance (permuted)")
    ax.set_xticks(x, list(layers))
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(title="measure", loc="lower left", frameon=True)
    return _save(fig, stem, formats)


def plot_similarity_heatmap(
    matrix: np.ndarray,
    row_layers: Sequence[str],
    col_layers: Sequence[str],
    stem: str | Path,
    title: str = "",
    row_label: str = "A",
    col_label: str = "B",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """A ``[len(row_layers), len(col_layers)]`` similarity matrix as an annotated heatmap
    (colour scale fixed to [0, 1]). Writes ``stem.png`` and ``stem.pdf``."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    side = 0.75 + 0.7 * max(len(row_layers), len(col_layers))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    for (i, j), v in np.ndenumerate(matrix):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="k" if v > 0.6 else "w")
    ax.set_xticks(range(len(col_layers)), labels=list(col_layers))
    ax.set_yticks(range(len(row_layers)), labels=list(row_layers))
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="similarity")
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title)
    return _save(fig, stem, formats)


def plot_similarity_along_training(
    summary: Sequence[dict],
    runs: dict[str, str],
    stem: str | Path,
    title: str = "",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Similarity before vs after adaptation against the training iteration.

    ``summary``: rows ``{checkpoint, iteration, layer, measure, mean, ci_low, ci_high}``;
    ``runs``: checkpoint -> the run it belongs to (``"maml seed 0"``), one line style each.
    Writes ``stem.png`` and ``stem.pdf``; returns their paths.
    """
    plt = _pyplot()
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    layers = list(dict.fromkeys(r["layer"] for r in summary))
    run_names = list(dict.fromkeys(runs[r["checkpoint"]] for r in summary))
    colours = palette(len(layers))
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(
        1, len(measures), figsize=(4.6 * len(measures), 3.6), squeeze=False, sharey=True
    )
    for ax, measure in zip(axes[0], measures):
        for j, run in enumerate(run_names):
            for i, layer in enumerate(layers):
                pts = sorted(
                    (r["iteration"], r["mean"], r["ci_low"], r["ci_high"])
                    for r in summary
                    if r["measure"] == measure
                    and r["layer"] == layer
                    and runs[r["checkpoint"]] == run
                )
                if not pts:
                    continue
                it, mean, low, high = (np.array(v, dtype=float) for v in zip(*pts))
                label = f"{layer} ({run})" if len(run_names) > 1 else layer
                ax.plot(
                    it,
                    mean,
                    styles[j % len(styles)],
                    marker="o",
                    ms=3,
                    color=colours[i],
                    label=label,
                )
                ax.fill_between(it, low, high, color=colours[i], alpha=0.15, linewidth=0)
        ax.set_title(measure.upper())
        ax.set_xlabel("training iteration")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("similarity before vs after adaptation")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, stem, formats)


def plot_freezing(summary: dict, stem: str | Path, title: str = "", formats=FORMATS) -> list[Path]:
    """Table 1: accuracy (%) against the layers frozen at test time, from ``{label: {mean,
    half_width}}`` in freezing order."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    labels = list(summary)
    ax.errorbar(
        range(len(labels)),
        [100 * summary[k]["mean"] for k in labels],
        yerr=[100 * np.nan_to_num(summary[k]["half_width"]) for k in labels],
        marker="o",
        capsize=3,
    )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("layers frozen in the inner loop (test time)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Freezing layers at test time (MAML)", fontsize=9)
    return _save(fig, stem, formats)


def plot_training(
    rows: Sequence[dict],
    layers: Sequence[str],
    stem: str | Path,
    measure: str = "cca98",
    title: str = "",
    formats=FORMATS,
) -> list[Path]:
    """Figure 3: along training, the accuracy with and without the body frozen (left) and each
    layer's similarity before vs after adaptation with its chance level dashed (right)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    its = [r["iteration"] for r in rows]
    ax = axes[0]
    for key, label in (("acc_none", "no freezing"), ("acc_conv1_4", "conv1-4 frozen")):
        ax.errorbar(
            its,
            [100 * r[key] for r in rows],
            yerr=[100 * np.nan_to_num(r[f"{key}_ci"]) for r in rows],
            marker="o",
            capsize=3,
            label=label,
        )
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    ax.set_title("Freezing along training", fontsize=9)
    ax = axes[1]
    colours = palette(len(layers))
    for i, lyr in enumerate(layers):
        ax.plot(
            its,
            [r.get(f"{measure}_{lyr}", np.nan) for r in rows],
            marker="o",
            color=colours[i],
            label=lyr,
        )
        ax.plot(
            its,
            [r.get(f"{measure}_{lyr}_chance", np.nan) for r in rows],
            "--",
            color=colours[i],
            linewidth=0.8,
        )
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"{measure.upper()} before vs after (dashed: chance)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Representation change along training", fontsize=9)
    return _save(fig, stem, formats)


def plot_weight_movement(
    moves: Sequence[dict], layers: Sequence[str], stem: str | Path, formats=FORMATS
) -> list[Path]:
    """Appendix B.3: ``||theta - theta'||`` per layer in the inner loop against iteration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for lyr in layers:
        pts = [(m["iteration"], m["abs_mean"]) for m in moves if m["layer"] == lyr]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=lyr)
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("||θ - θ'|| in the inner loop")
    ax.legend(fontsize=7)
    ax.set_title("Weight movement per layer", fontsize=9)
    return _save(fig, stem, formats)


def plot_learning_curves(curves: dict, stem: str | Path, formats=FORMATS) -> list[Path]:
    """Figure 5: training loss (left) and validation accuracy (right) of each run, from
    ``{run: {algorithm, seed, loss: [(it, loss)], val_accuracy: [(it, acc)]}}``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    colours = {"maml": "tab:blue", "anil": "tab:orange"}
    for c in curves.values():
        colour = colours.get(c["algorithm"], "grey")
        label = f"{c['algorithm'].upper()} seed {c['seed']}"
        if c["loss"]:
            axes[0].plot(*zip(*c["loss"]), color=colour, alpha=0.7, linewidth=0.8, label=label)
        if c["val_accuracy"]:
            its, acc = zip(*c["val_accuracy"])
            axes[1].plot(
                its, [100 * a for a in acc], marker=".", color=colour, alpha=0.8, label=label
            )
    axes[0].set_xlabel("training iteration")
    axes[0].set_ylabel("training loss (query, after adaptation)")
    axes[1].set_xlabel("training iteration")
    axes[1].set_ylabel("validation accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.suptitle("MAML vs ANIL learning curves", fontsize=9)
    return _save(fig, stem, formats)
