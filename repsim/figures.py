"""Figures from result data (never from models): matplotlib + seaborn, PNG and PDF.

- :func:`plot_layer_similarity`: the paper's Figure 2, similarity of each layer before vs after
  the inner loop, layers on the x axis, one line per measure with 95% CI error bars.
- :func:`plot_similarity_heatmap`: a layer x layer similarity matrix (checkpoint A vs B).
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
