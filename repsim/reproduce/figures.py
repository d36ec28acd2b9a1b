"""The reproduction's figures, drawn from its results files through :mod:`repsim.figures`."""

from __future__ import annotations

import json
from pathlib import Path

from repsim.reproduce.analyses import LAYERS, VERDICT_MEASURE


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def draw(results_dir: str | Path, figures_dir: str | Path) -> list[Path]:
    """Every figure of one setting's results folder into ``figures_dir``; returns the paths."""
    from repsim import figures as F

    src, dst = Path(results_dir), Path(figures_dir)
    setting = src.name
    paths: list[Path] = []
    fig2 = _load(src / "figure2_similarity.json")
    if fig2:
        for algorithm, summary in fig2["summary"].items():
            paths += F.plot_layer_similarity(
                summary,
                LAYERS,
                dst / f"figure2_{algorithm}",
                title=f"{algorithm.upper()}, {setting}: before vs after the inner loop",
            )
    t1 = _load(src / "table1_freezing.json")
    if t1:
        paths += F.plot_freezing(
            t1["summary"], dst / "table1_freezing", f"Test-time freezing (MAML), {setting}"
        )
    fig3 = _load(src / "figure3_training.json")
    if fig3:
        paths += F.plot_training(
            fig3["rows"], LAYERS, dst / "figure3_training", VERDICT_MEASURE, fig3["run"]
        )
    moves = _load(src / "weight_movement.json")
    if moves:
        paths += F.plot_weight_movement(moves["rows"], LAYERS, dst / "weight_movement")
    t2 = _load(src / "table2_maml_vs_anil.json")
    if t2:
        paths += F.plot_learning_curves(t2["curves"], dst / "figure5_learning_curves")
    return paths
