"""Figures from result data (never from models): seaborn over matplotlib, PNG and PDF.

- :func:`plot_layer_similarity`: the paper's Figure 2, similarity of each layer before vs after
  the inner loop, layers on the x axis, a mean with its 95% CI per measure over the per-task
  values (a strip of dots, when given).
- :func:`plot_similarity_heatmap`: a layer x layer similarity matrix (checkpoint A vs B),
  annotated.
- :func:`plot_seed_similarity`: Table 3, seed pair x layer similarity per measure, annotated.
- :func:`plot_similarity_along_training`: similarity against training iteration, one panel per
  measure, a colour per layer and a line style per run, with 95% CI bands.
- :func:`plot_linear_probe`: linear-probe query accuracy per layer, before and after the inner
  loop, beside the model's own head, the NIL head and chance.
- :func:`plot_freezing`, :func:`plot_training`, :func:`plot_weight_movement`,
  :func:`plot_learning_curves`: the reproduction's Table 1, Figure 3, Appendix B.3 and Figure 5
  from its results files.

seaborn is imported by the functions that draw (:func:`_seaborn`), never with the package: it
brings pandas and ``scipy.stats`` (1.5 s on this project's CPU machine). Figure 2 is drawn
without it, since it is the figure of ``repsim similarity``, the main command; ``_STYLE`` gives
every figure the same look either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FORMATS = ("png", "pdf")


# The "colorblind" palette of seaborn (Waskom 2021), spelled out so that the colours are known
# without importing seaborn.
COLORBLIND = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip

# A light grid on white without tick marks, small paper-sized text: seaborn's "whitegrid" look,
# the same with or without seaborn.
_STYLE = {
    "axes.grid": True,
    "xtick.bottom": False,
    "ytick.left": False,
    "axes.edgecolor": "#cccccc",
    "axes.axisbelow": True,
    "grid.color": "#e6e6e6",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7.5,
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


def _seaborn():
    """pyplot and seaborn, with seaborn's "paper" context and white grid, this module's palette
    and text sizes. Imports seaborn: call it only where a figure is drawn."""
    plt = _pyplot()
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette=list(COLORBLIND), rc=_STYLE)
    return plt, sns


def _band(ax, x, low, high, colour) -> None:
    """A 95% CI band from precomputed bounds (the results' own t-intervals)."""
    ax.fill_between(
        np.asarray(x, float), low, high, color=colour, alpha=0.18, linewidth=0, zorder=1
    )


def _mean_ci(ax, x, mean, low, high, colour, label) -> None:
    """Means with their 95% CI as error bars (bounds precomputed; NaN bounds draw none)."""
    ax.errorbar(
        x,
        mean,
        yerr=np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)]),
        marker="o",
        markersize=4,
        capsize=3,
        linewidth=1.5,
        color=colour,
        label=label,
        zorder=3,
    )


def seed_range_lines(
    ax,
    sns,
    data: dict,
    y: str,
    hue: str,
    hue_order,
    palette,
    style: str,
    style_order,
    alpha: float = 0.2,
    linewidth: float = 1.2,
    legend=True,
) -> None:
    """Long-form ``data`` (columns ``iteration``, ``y``, ``hue``, ``style``, one row per seed)
    drawn as the mean over seeds with the seeds' range shaded: the meta-RL curves."""
    sns.lineplot(
        data=data,
        x="iteration",
        y=y,
        hue=hue,
        hue_order=hue_order,
        palette=palette,
        style=style,
        style_order=style_order,
        errorbar=("pi", 100),  # the seeds' range
        err_kws={"alpha": alpha, "linewidth": 0},
        linewidth=linewidth,
        legend=legend,
        ax=ax,
    )


def _legend_outside(ax, title: str, order) -> None:
    """The axes' legend right of the panel, its entries sorted (stably) by ``order(label)``."""
    handles, labels = ax.get_legend_handles_labels()
    keep = sorted(range(len(labels)), key=lambda i: order(labels[i]))
    ax.legend(
        [handles[i] for i in keep],
        [labels[i] for i in keep],
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )


def _save(fig, stem: str | Path, formats: Sequence[str]) -> list[Path]:
    """Lay ``fig`` out, write ``stem.<fmt>`` for each format, close it; returns the paths."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:  # a constrained layout is kept
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
    per_task: Sequence[dict] | None = None,
) -> list[Path]:
    """Figure 2 of the paper from summary rows ``{layer, measure, mean, ci_low, ci_high}``.

    Each measure is a mean with its 95% CI per layer, side by side within a layer. ``per_task``
    rows ``{layer, measure, value}`` (the per-task values the summary was made from) add a strip
    of dots each, so the spread over tasks is seen. Rows with a ``chance`` value (the measure on
    permuted data) add a dashed line per measure. Writes ``stem.png`` and ``stem.pdf``; returns
    their paths.

    This is the figure of ``repsim similarity``, so it is drawn without seaborn: seaborn's
    import (pandas and ``scipy.stats``, 1.5 s here) would double that command's write stage.
    """
    plt = _pyplot()
    layers = list(layers)
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    colours = dict(zip(measures, palette(len(measures))))
    fig, ax = plt.subplots(figsize=(5.8, 3.6))
    # a layer's width (0.8) split evenly among the measures, as seaborn's dodge does
    width = 0.8 / len(measures)
    offset = {m: width * (i + 0.5) - 0.4 for i, m in enumerate(measures)}
    values = [r["mean"] for r in summary if r.get("mean") is not None]
    points = [
        r
        for r in per_task or ()
        if r["measure"] in colours
        and r["layer"] in layers
        and r.get("value") is not None
        and np.isfinite(r["value"])
    ]
    jitter = np.random.default_rng(0)  # the same strip every time
    for measure in measures:  # a strip of the tasks' values beside each mean
        pts = [r for r in points if r["measure"] == measure]
        x = [layers.index(r["layer"]) + offset[measure] for r in pts]
        x = np.array(x) + jitter.uniform(-0.25, 0.25, len(pts)) * width
        y = [r["value"] for r in pts]
        ax.scatter(x, y, s=5, color=colours[measure], alpha=0.35, linewidths=0, zorder=2)
        values += y
    x = np.arange(len(layers))
    for measure in measures:
        by_layer = {r["layer"]: r for r in summary if r["measure"] == measure}
        mean, low, high, chance = (
            np.array([by_layer.get(lyr, {}).get(k, np.nan) for lyr in layers], dtype=float)
            for k in ("mean", "ci_low", "ci_high", "chance")
        )
        label = measure.upper().replace("_", " ")
        _mean_ci(ax, x + offset[measure], mean, low, high, colours[measure], label)
        if np.isfinite(chance).any():
            ax.plot(x + offset[measure], chance, "--", color=colours[measure], linewidth=1.0)
    if any(r.get("chance") is not None for r in summary):
        ax.plot([], [], "--", color="grey", linewidth=1.0, label="chance (permuted)")
    ax.set_xticks(x, layers)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_ylim(min(0.0, np.nanmin(values, initial=0.0) - 0.05), 1.05)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _legend_outside(  # the measures first, chance last
        ax,
        "measure: mean ± 95% CI" + ("\n(dots: the tasks)" if points else ""),
        lambda label: label.startswith("chance"),
    )
    return _save(fig, stem, formats)


def _annotated_heatmap(sns, ax, matrix, rows, cols, cbar: bool = True) -> None:
    """An annotated similarity heatmap on ``ax``, colour scale fixed to [0, 1]; NaN cells
    (a measure that failed) are left blank."""
    sns.heatmap(
        np.asarray(matrix, dtype=float),
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 7},
        square=True,
        linewidths=0.5,
        linecolor="white",
        xticklabels=list(cols),
        yticklabels=list(rows),
        cbar=cbar,
        cbar_kws={"label": "similarity", "shrink": 0.8},
        ax=ax,
    )
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="both", length=0)


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
    plt, sns = _seaborn()
    side = 0.75 + 0.7 * max(len(row_layers), len(col_layers))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    _annotated_heatmap(sns, ax, matrix, row_layers, col_layers)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    if title:
        ax.set_title(title)
    return _save(fig, stem, formats)


def plot_seed_similarity(
    summary: dict,
    layers: Sequence[str],
    stem: str | Path,
    title: str = "",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Table 3: similarity of meta-inits across seeds, a seed pair x layer heatmap per measure.

    ``summary[pair][measure]`` is ``{body, per_layer: {layer: {mean, ...}}}`` (pairs such as
    ``"MAML-MAML"``); the last column is the body average the table reports. Writes
    ``stem.png`` and ``stem.pdf``; returns their paths.
    """
    plt, sns = _seaborn()
    pairs = list(summary)
    measures = list(dict.fromkeys(m for pair in pairs for m in summary[pair]))
    ncols = min(2, len(measures))
    nrows = -(-len(measures) // ncols)
    cols = [*layers, "body"]
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(0.62 * len(cols) * ncols + 2.0, (0.42 * len(pairs) + 0.9) * nrows),
        squeeze=False,
        layout="constrained",
    )
    for ax, measure in zip(axes.flat, measures):
        grid = [
            [
                summary[pair].get(measure, {}).get("per_layer", {}).get(lyr, {}).get("mean")
                for lyr in layers
            ]
            + [summary[pair].get(measure, {}).get("body")]
            for pair in pairs
        ]
        grid = np.array([[np.nan if v is None else v for v in row] for row in grid], float)
        _annotated_heatmap(sns, ax, grid, pairs, cols, cbar=False)
        ax.axvline(len(layers), color="white", linewidth=3)  # the body average stands apart
        ax.set_title(measure.upper())
    for ax in axes.flat[len(measures) :]:
        ax.set_visible(False)
    fig.colorbar(axes.flat[0].collections[0], ax=axes, shrink=0.8, label="similarity")
    fig.suptitle(title or "Similarity of meta-inits across seeds (mean over seed pairs)")
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
    Each line has its 95% CI over tasks as a band. Writes ``stem.png`` and ``stem.pdf``;
    returns their paths.
    """
    plt, sns = _seaborn()
    measures = list(dict.fromkeys(r["measure"] for r in summary))
    layers = list(dict.fromkeys(r["layer"] for r in summary))
    run_names = list(dict.fromkeys(runs[r["checkpoint"]] for r in summary))
    colours = dict(zip(layers, palette(len(layers))))
    fig, axes = plt.subplots(
        1, len(measures), figsize=(3.8 * len(measures) + 1.4, 3.4), squeeze=False, sharey=True
    )
    for ax, measure in zip(axes[0], measures):
        rows = sorted(
            (r for r in summary if r["measure"] == measure and r.get("mean") is not None),
            key=lambda r: r["iteration"],
        )
        data = {k: [r[k] for r in rows] for k in ("iteration", "mean", "layer")}
        data["run"] = [runs[r["checkpoint"]] for r in rows]
        sns.lineplot(
            data=data,
            x="iteration",
            y="mean",
            hue="layer",
            hue_order=layers,
            palette=colours,
            style="run" if len(run_names) > 1 else None,
            style_order=run_names if len(run_names) > 1 else None,
            markers=True,
            markersize=4,
            errorbar=None,
            legend=ax is axes[0][-1],
            zorder=3,
            ax=ax,
        )
        for layer in layers:
            for run in run_names:
                pts = [r for r in rows if r["layer"] == layer and runs[r["checkpoint"]] == run]
                if pts:
                    _band(
                        ax,
                        [r["iteration"] for r in pts],
                        [r["ci_low"] for r in pts],
                        [r["ci_high"] for r in pts],
                        colours[layer],
                    )
        ax.set_title(measure.upper())
        ax.set_xlabel("training iteration")
        ax.set_ylabel("similarity before vs after adaptation")
        ax.set_ylim(0, 1.05)
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1))
    axes[0][-1].get_legend().set_title("band: 95% CI over tasks")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, stem, formats)


def plot_freezing(summary: dict, stem: str | Path, title: str = "", formats=FORMATS) -> list[Path]:
    """Table 1: accuracy (%) against the layers frozen at test time, from ``{label: {mean,
    half_width}}`` in freezing order, with 95% CI error bars."""
    plt, _ = _seaborn()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    labels = list(summary)
    ax.errorbar(
        range(len(labels)),
        [100 * summary[k]["mean"] for k in labels],
        yerr=[100 * np.nan_to_num(summary[k]["half_width"]) for k in labels],
        marker="o",
        capsize=3,
        color=palette(1)[0],
    )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("layers frozen in the inner loop (test time)")
    ax.set_ylabel("test accuracy (%, mean ± 95% CI)")
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
    """Figure 3: along training, the accuracy with and without the body frozen, with 95% CI
    bands (left), and each layer's similarity before vs after adaptation with its chance level
    dashed (right)."""
    plt, sns = _seaborn()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    _freezing_panel(axes[0], rows, sns)
    _similarity_panel(axes[1], rows, layers, measure, title, sns)
    return _save(fig, stem, formats)


def _freezing_panel(ax, rows: Sequence[dict], sns) -> None:
    """Figure 3, left: accuracy along training with and without the body frozen, 95% CI bands."""
    its = [r["iteration"] for r in rows]
    regimes = {"acc_none": "no freezing", "acc_conv1_4": "conv1-4 frozen"}
    acc_colours = dict(zip(regimes.values(), palette(2)))
    sns.lineplot(
        data={
            "iteration": its * len(regimes),
            "accuracy": [100 * r[key] for key in regimes for r in rows],
            "frozen": [label for label in regimes.values() for _ in rows],
        },
        x="iteration",
        y="accuracy",
        hue="frozen",
        style="frozen",
        palette=acc_colours,
        markers=True,
        dashes=False,
        errorbar=None,
        zorder=3,
        ax=ax,
    )
    for key, label in regimes.items():
        ci = np.array([np.nan_to_num(r[f"{key}_ci"]) for r in rows], dtype=float)
        acc = np.array([r[key] for r in rows], dtype=float)
        _band(ax, its, 100 * (acc - ci), 100 * (acc + ci), acc_colours[label])
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    sns.move_legend(  # below the axes: the curves fill any corner of them
        ax, "upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, title="band: 95% CI"
    )
    ax.set_title("Freezing along training", fontsize=9)


def _similarity_panel(ax, rows: Sequence[dict], layers, measure: str, title: str, sns) -> None:
    """Figure 3, right: each layer's similarity before vs after adaptation along training, its
    chance level dashed."""
    its = [r["iteration"] for r in rows]
    colours = dict(zip(layers, palette(len(layers))))
    sns.lineplot(
        data={
            "iteration": its * len(layers),
            "similarity": [r.get(f"{measure}_{lyr}", np.nan) for lyr in layers for r in rows],
            "layer": [lyr for lyr in layers for _ in rows],
        },
        x="iteration",
        y="similarity",
        hue="layer",
        hue_order=list(layers),
        palette=colours,
        marker="o",
        markersize=4,
        errorbar=None,
        ax=ax,
    )
    for lyr in layers:
        ax.plot(
            its,
            [r.get(f"{measure}_{lyr}_chance", np.nan) for r in rows],
            "--",
            color=colours[lyr],
            linewidth=0.8,
        )
    ax.plot([], [], "--", color="grey", linewidth=0.8, label="chance (permuted)")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"{measure.upper()} before vs after adaptation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="layer (dashed: chance)")
    ax.set_title(title or "Representation change along training", fontsize=9)


def plot_weight_movement(
    moves: Sequence[dict], layers: Sequence[str], stem: str | Path, formats=FORMATS
) -> list[Path]:
    """Appendix B.3: ``||theta - theta'||`` per layer in the inner loop against iteration,
    from rows ``{iteration, layer, abs_mean, abs_ci_low, abs_ci_high}``, with 95% CI bands."""
    from matplotlib.ticker import FuncFormatter

    plt, sns = _seaborn()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    rows = sorted((m for m in moves if m["layer"] in layers), key=lambda m: m["iteration"])
    colours = dict(zip(layers, palette(len(layers))))
    sns.lineplot(
        data={k: [m[k] for m in rows] for k in ("iteration", "abs_mean", "layer")},
        x="iteration",
        y="abs_mean",
        hue="layer",
        hue_order=[lyr for lyr in layers if any(m["layer"] == lyr for m in rows)],
        palette=colours,
        marker="o",
        markersize=4,
        errorbar=None,
        zorder=3,
        ax=ax,
    )
    for lyr in layers:
        pts = [m for m in rows if m["layer"] == lyr and "abs_ci_low" in m]
        if pts:
            low = [max(m["abs_ci_low"], 1e-12) for m in pts]  # a log axis
            high = [m["abs_ci_high"] for m in pts]
            _band(ax, [m["iteration"] for m in pts], low, high, colours[lyr])
    ax.set_yscale("log")
    # 0.3, 1, 3 rather than 3 x 10^-1; between powers of ten only 2, 3 and 5 are named
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
    )
    ax.set_xlabel("training iteration")
    ax.set_ylabel("||θ - θ'|| in the inner loop")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), title="layer\n(band: 95% CI)")
    ax.set_title("Weight movement per layer", fontsize=9)
    return _save(fig, stem, formats)


def plot_learning_curves(curves: dict, stem: str | Path, formats=FORMATS) -> list[Path]:
    """Figure 5: training loss (left) and validation accuracy (right), the mean over each
    algorithm's seeds with their range (min to max) as a band, from ``{run: {algorithm, seed,
    loss: [(it, loss)], val_accuracy: [(it, acc)]}}``."""
    plt, sns = _seaborn()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4))
    algorithms = sorted(  # MAML first, as in the paper
        dict.fromkeys(c["algorithm"] for c in curves.values()),
        key=lambda a: ("maml", "anil").index(a) if a in ("maml", "anil") else 2,
    )
    seeds = {a: sum(c["algorithm"] == a for c in curves.values()) for a in algorithms}
    names = {a: f"{a.upper()} ({seeds[a]} seed{'s' * (seeds[a] > 1)})" for a in algorithms}
    colours = dict(zip(names.values(), palette(len(algorithms))))
    for ax, key, scale in ((axes[0], "loss", 1.0), (axes[1], "val_accuracy", 100.0)):
        points = [(c["algorithm"], c["seed"], it, v) for c in curves.values() for it, v in c[key]]
        if not points:
            continue
        sns.lineplot(
            data={
                "algorithm": [names[p[0]] for p in points],
                "iteration": [p[2] for p in points],
                "value": [scale * p[3] for p in points],
            },
            x="iteration",
            y="value",
            hue="algorithm",
            hue_order=list(names.values()),
            palette=colours,
            errorbar=("pi", 100),  # the seeds' range
            err_kws={"alpha": 0.25, "linewidth": 0},
            linewidth=1.0 if key == "loss" else 1.5,
            marker=None if key == "loss" else "o",
            markersize=3,
            legend=key == "val_accuracy",
            ax=ax,
        )
        ax.set_xlabel("training iteration")
    axes[0].set_ylabel("training loss (query, after adaptation)")
    axes[1].set_ylabel("validation accuracy (%)")
    if axes[1].get_legend() is not None:
        sns.move_legend(axes[1], "lower right", title="mean, band: seeds' range", frameon=True)
    fig.suptitle("MAML vs ANIL learning curves", fontsize=9)
    return _save(fig, stem, formats)


def plot_linear_probe(
    summary: Sequence[dict],
    layers: Sequence[str],
    stem: str | Path,
    title: str = "",
    formats: Sequence[str] = FORMATS,
    per_task: Sequence[dict] | None = None,
) -> list[Path]:
    """Linear-probe query accuracy per layer, before and after the inner loop, with 95% CIs.

    ``summary``: rows ``{classifier, layer, stage, mean, ci_low, ci_high, chance}`` of
    :meth:`repsim.representation.LinearProbe.summary`. The probes are a mean with its 95% CI per
    layer and stage (before: the meta-init; after: the fast weights), side by side within a
    layer; the model's own head after adaptation, the NIL head on the meta-init and chance are
    horizontal lines. ``per_task`` rows ``{classifier, layer, stage, accuracy}`` (the
    ``records``) add a strip of dots each. Writes ``stem.png`` and ``stem.pdf``; returns their
    paths.
    """
    plt, sns = _seaborn()
    layers = list(layers)
    stages = {"before": "before (meta-init)", "after": "after the inner loop"}
    colours = dict(zip(stages, palette(2)))
    cells = {(r["classifier"], r["layer"], r["stage"]): r for r in summary}
    fig, ax = plt.subplots(figsize=(5.8, 3.6))
    offset = {"before": -0.2, "after": 0.2}  # seaborn's dodge of two hues in a width of 0.8
    points = [
        r
        for r in per_task or ()
        if r["classifier"] == "probe"
        and r["layer"] in layers
        and r["stage"] in stages
        and r.get("accuracy") is not None
        and np.isfinite(r["accuracy"])
    ]
    if points:
        sns.stripplot(
            data={k: [r[k] for r in points] for k in ("layer", "stage", "accuracy")},
            x="layer",
            y="accuracy",
            hue="stage",
            order=layers,
            hue_order=list(stages),
            palette=colours,
            dodge=True,
            jitter=0.1,
            size=2.2,
            alpha=0.35,
            legend=False,
            zorder=2,
            ax=ax,
        )
    x = np.arange(len(layers))
    for stage, label in stages.items():
        mean, low, high = (
            np.array([cells.get(("probe", lyr, stage), {}).get(k, np.nan) for lyr in layers], float)
            for k in ("mean", "ci_low", "ci_high")
        )
        _mean_ci(ax, x + offset[stage], mean, low, high, colours[stage], f"probe, {label}")
    others = palette(5)
    for key, label, style, colour in (
        (("model", "head", "after"), "model's own head, after", "-", others[2]),
        (("nil", "penultimate", "before"), "NIL head, meta-init body", "-.", others[4]),
    ):
        r = cells.get(key)
        if r is not None and r.get("mean") is not None and np.isfinite(r["mean"]):
            ax.axhline(r["mean"], linestyle=style, color=colour, linewidth=1.0, label=label)
    chance = next((r["chance"] for r in summary if r.get("chance") is not None), None)
    if chance is not None:
        ax.axhline(chance, linestyle=":", color="grey", linewidth=1.0, label="chance (1 / ways)")
    ax.set_xticks(x, layers)
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("layer")
    ax.set_ylabel("query accuracy of a linear probe")
    if title:
        ax.set_title(title)
    _legend_outside(  # the probes first, chance last
        ax,
        "mean ± 95% CI over tasks" + ("\n(dots: the tasks)" if points else ""),
        lambda label: (not label.startswith("probe"), label.startswith("chance")),
    )
    return _save(fig, stem, formats)


def plot_clauses_along(
    panels: list[dict], stem: str | Path, title: str = "", formats=FORMATS
) -> list[Path]:
    """One claim family along training: a panel per clause, its number against iteration, a
    line per setting (filled markers where the clause holds, open where it fails), the band
    shaded and the paper's number dashed where it has one.

    ``panels``: ``{"clause", "band", "paper", "paper_value", "paper_note", "series": {setting:
    {"x", "y", "holds", "low", "high"}}}``; ``low`` / ``high`` bound the band (None: unbounded).
    """
    plt = _pyplot()
    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    settings = sorted({s for p in panels for s in p["series"]})
    colours = dict(zip(settings, palette(len(settings))))
    for ax, panel in zip(axes.flat, panels):
        # the view: every value, bound and the paper's number, padded; an open side of a band
        # is shaded to the edge of the view
        shown = [v for sr in panel["series"].values() for v in sr["y"] if v is not None]
        shown += [b for sr in panel["series"].values() for b in (sr["low"], sr["high"])]
        shown = [v for v in [*shown, panel.get("paper_value")] if v is not None]
        bottom, top = min(shown), max(shown)
        pad = 0.15 * (top - bottom) or 0.05 * max(abs(top), 1.0)
        bottom, top = bottom - pad, top + pad
        for setting, sr in panel["series"].items():
            c = colours[setting]
            x, y = np.asarray(sr["x"], float), np.asarray(sr["y"], float)
            ax.plot(x, y, color=c, linewidth=1.2, label=setting, zorder=3)
            held = np.asarray(sr["holds"], bool)
            ax.scatter(x[held], y[held], color=c, s=18, zorder=4)
            ax.scatter(x[~held], y[~held], facecolor="white", edgecolor=c, s=18, zorder=4)
            if sr["low"] is not None or sr["high"] is not None:
                lo = bottom if sr["low"] is None else sr["low"]
                hi = top if sr["high"] is None else sr["high"]
                ax.axhspan(lo, hi, color=c, alpha=0.10, linewidth=0, zorder=1)
        ax.set_ylim(bottom, top)
        if panel.get("paper_value") is not None:
            ax.axhline(panel["paper_value"], color="#333333", linestyle="--", linewidth=0.9)
            ax.annotate(
                panel.get("paper_note") or "paper", (1.0, panel["paper_value"]),
                xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=6, color="#333333",
            )  # fmt: skip
        ax.set_title(f"{panel['clause']}\nband: {panel['band']}", fontsize=7)
        ax.set_xlabel("training iteration")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(settings) > 1 or title:
        fig.legend(handles, labels, loc="lower center", ncol=len(settings), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, (0.13 / rows) if len(settings) > 1 or title else 0, 1, 1))
    return _save(fig, stem, formats)
