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
                per_task=fig2.get("per_task", {}).get(algorithm),  # when the results hold them
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
    t3 = _load(src / "table3_seed_similarity.json")
    if t3:
        paths += F.plot_seed_similarity(
            t3["summary"],
            LAYERS,
            dst / "table3_seed_similarity",
            title=f"Similarity of meta-inits across seeds, {setting} (mean over seed pairs)",
        )
    probes = _load(src / "supplementary_linear_probe.json")
    if probes:
        for algorithm, summary in probes["summary"].items():
            paths += F.plot_linear_probe(
                summary,
                LAYERS,
                dst / f"supplementary_linear_probe_{algorithm}",
                title=f"Linear probes (supplementary), {algorithm.upper()}, {setting}",
            )
    return paths


def draw_claims_along(claims_along: str | Path, figures_dir: str | Path) -> list[Path]:
    """One figure per claim family from ``results/claims_along.json``: each clause that has a
    number, against iteration, per setting; returns the paths."""
    from repsim import figures as F
    from repsim.reproduce.claims import CLAIMS, HOLDS

    data = json.loads(Path(claims_along).read_text())
    paper = {(c.key, cl.text): (cl.paper_value, cl.paper_note) for c in CLAIMS for cl in c.clauses}
    families: dict[str, dict[str, dict]] = {}
    for r in data["rows"]:
        if r["value"] is None:
            continue
        panel = families.setdefault(r["key"], {}).setdefault(
            r["clause"],
            {
                "clause": r["clause"],
                "band": r["band"],
                "paper": r["paper"],
                "paper_value": paper.get((r["key"], r["clause"]), (None, ""))[0],
                "paper_note": paper.get((r["key"], r["clause"]), (None, ""))[1],
                "series": {},
                "title": f"{r['claim']} ({r['source']})",
            },
        )
        sr = panel["series"].setdefault(
            r["setting"], {"x": [], "y": [], "holds": [], "low": None, "high": None}
        )
        sr["x"].append(r["iteration"])
        sr["y"].append(r["value"])
        sr["holds"].append(r["verdict"] == HOLDS)
        sr["low"], sr["high"] = r["band_low"], r["band_high"]
    paths: list[Path] = []
    for key, panels in families.items():
        title = next(iter(panels.values()))["title"]
        paths += F.plot_clauses_along(list(panels.values()), Path(figures_dir) / key, title)
    return paths
