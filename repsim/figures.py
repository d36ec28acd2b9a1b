"""Figures from result data (never from models): matplotlib + seaborn, PNG and PDF.

- :func:`plot_layer_similarity`: the paper's Figure 2, similarity of each layer before vs after
  the inner loop, layers on the x axis, one line per measure with 95% CI error bars.
- :func:`plot_similarity_heatmap`: a layer x layer similarity matrix (checkpoint A vs B).
- :func:`plot_similarity_along_training`: similarity against training iteration, one panel per
  measure, a colour per layer and a line style per run, with 95% CI bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FORMATS = ("png", "pdf")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _save(fig, stem: str | Path, formats: Sequence[str]) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=160, bbox_inches="tight")
        paths.append(path)
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

    Writes ``stem.png`` and ``stem.pdf``; returns their paths. The y axis is [0, 1.05].
    """
    plt, sns = _pyplot()
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    palette = sns.color_palette("colorblind", max(len(measures), 1))
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
            color=palette[i],
            label=measure.upper().replace("_", " "),
        )
    ax.set_xticks(x, list(layers))
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(title="measure", loc="lower left", frameon=True)
    fig.tight_layout()
    paths = _save(fig, stem, formats)
    plt.close(fig)
    return paths


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
    plt, sns = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    side = 0.75 + 0.7 * max(len(row_layers), len(col_layers))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    sns.heatmap(
        matrix,
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
        annot=True,
        fmt=".2f",
        square=True,
        xticklabels=list(col_layers),
        yticklabels=list(row_layers),
        cbar_kws={"label": "similarity"},
        ax=ax,
    )
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    paths = _save(fig, stem, formats)
    plt.close(fig)
    return paths


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
    plt, sns = _pyplot()
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    layers = list(dict.fromkeys(r["layer"] for r in summary))
    run_names = list(dict.fromkeys(runs[r["checkpoint"]] for r in summary))
    palette = sns.color_palette("colorblind", max(len(layers), 1))
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
                    color=palette[i],
                    label=label,
                )
                ax.fill_between(it, low, high, color=palette[i], alpha=0.15, linewidth=0)
        ax.set_title(measure.upper())
        ax.set_xlabel("training iteration")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("similarity before vs after adaptation")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    paths = _save(fig, stem, formats)
    plt.close(fig)
    return paths
