"""The report, rendered from the results files alone: the clause-by-clause claims table, then
each setting's tables beside the paper's numbers, with the training length beside every one."""

from __future__ import annotations

import json
import math
from pathlib import Path

from repsim.reproduce.analyses import LAYERS, MEASURES
from repsim.reproduce.claims import format_table
from repsim.reproduce.paper import PAPER, SUBMISSION


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pct(s: dict) -> str:
    hw = s.get("half_width")
    return f"{100 * s['mean']:.1f} ± {100 * hw:.1f}" if hw is not None else f"{100 * s['mean']:.1f}"


def _f(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _setting_section(folder: Path, link: str) -> list[str]:
    """One setting's part of the report: its header, then each table whose results file is
    there, in the paper's order, then the supplementary linear probes."""
    lines = _setting_header(folder)
    for table in SETTING_TABLES:
        lines += table(folder, link)
    return lines + _probe_section(folder, link)


def _setting_header(folder: Path) -> list[str]:
    """The setting's shape (from Figure 2's results, else Table 2's) and every run's length."""
    anchor = _load(folder, "figure2_similarity") or _load(folder, "table2_maml_vs_anil") or {}
    tr = anchor.get("train", {})
    runs = {}  # every run any results file of this setting read (a table may be redone alone)
    for path in sorted(folder.glob("*.json")):
        runs.update(_load(folder, path.stem).get("runs", {}))
    lengths = ", ".join(
        f"{name} {r['iterations']}" + (f" ({r['device']})" if r.get("device") != "cpu" else "")
        for name, r in sorted(runs.items())
    )
    return [
        f"## Setting `{folder.name}`",
        "",
        f"{tr.get('dataset')} {tr.get('ways')}-way {tr.get('shots')}-shot; inner lr "
        f"{tr.get('inner_lr')} on the mean loss, {tr.get('inner_steps')} / "
        f"{tr.get('test_inner_steps')} inner steps (train / test), meta-batch "
        f"{tr.get('meta_batch')}; head init {tr.get('head_init') or 'xavier'}, norm "
        f"{tr.get('norm_affine') or 'full'}, rotated tasks {bool(tr.get('task_rotations'))}.",
        "",
        f"Training length per run (iterations): {lengths}. Compared at iteration "
        f"{anchor.get('iteration', '—')}.",
        "",
    ]


def _table1(folder: Path, link: str) -> list[str]:
    """Table 1: accuracy with layers frozen at test time (MAML)."""
    t1 = _load(folder, "table1_freezing")
    if not t1:
        return []
    paper = PAPER["table1_freezing"]["miniimagenet-5w1s"]
    return [
        "### Table 1: test-time freezing (MAML)",
        "",
        "| frozen | ours (%) | paper, MiniImageNet 5w1s (%)¹ |",
        "|---|---|---|",
        *[f"| {k} | {_pct(v)} | {paper[k]} |" for k, v in t1["summary"].items()],
        "",
        f"![Table 1]({link}/{folder.name}/table1_freezing.png)",
        "",
    ]


def _figure2(folder: Path, link: str) -> list[str]:
    """Figure 2: each layer's similarity before vs after the inner loop, chance in brackets."""
    fig2 = _load(folder, "figure2_similarity")
    if not fig2:
        return []
    lines = [
        "### Figure 2: similarity before vs after the inner loop (dashed / bracketed: chance)",
        "",
        "| algorithm | layer | " + " | ".join(m.upper() for m in MEASURES) + " |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    for algorithm, rows in fig2["summary"].items():
        get = {(r["layer"], r["measure"]): r for r in rows}
        for lyr in LAYERS:
            cells = []
            for m in MEASURES:
                r = get.get((lyr, m))
                cells.append(f"{_f(r['mean'])} ({_f(r.get('chance'))})" if r else "—")
            lines.append(f"| {algorithm.upper()} | {lyr} | " + " | ".join(cells) + " |")
    return lines + ["", f"![Figure 2]({link}/{folder.name}/figure2_maml.png)", ""]


def _figure3(folder: Path, link: str) -> list[str]:
    """Figure 3: accuracy (all layers adapted, conv1-4 frozen) and CCA along training."""
    fig3 = _load(folder, "figure3_training")
    if not fig3:
        return []
    lines = [
        f"### Figure 3: along training ({fig3['run']}, {fig3['iterations']} iterations)",
        "",
        "| iteration | acc (%) | acc, conv1-4 frozen (%) | "
        + " | ".join(f"CCA98 {lyr}" for lyr in LAYERS)
        + " |",
        "|---|---|---|" + "---|" * len(LAYERS),
    ]
    for r in fig3["rows"]:
        lines.append(
            f"| {r['iteration']} | {100 * r['acc_none']:.1f} | {100 * r['acc_conv1_4']:.1f} | "
            + " | ".join(_f(r.get(f"cca98_{lyr}")) for lyr in LAYERS)
            + " |"
        )
    return lines + [
        "",
        f"![Figure 3]({link}/{folder.name}/figure3_training.png) "
        f"![Weight movement]({link}/{folder.name}/weight_movement.png)",
        "",
    ]


def _table2(folder: Path, link: str) -> list[str]:
    """Table 2: MAML vs ANIL accuracy, seeds pooled, and any run's latest iteration."""
    t2 = _load(folder, "table2_maml_vs_anil")
    if not (t2 and "maml" in t2["summary"]):
        return []
    s = t2["summary"]
    lines = [
        "### Table 2: MAML vs ANIL (seeds pooled; seed std in brackets)",
        "",
        "| algorithm | ours (%) | paper, Omniglot 20w1s (%) |",
        "|---|---|---|",
    ]
    for a in ("maml", "anil"):
        if a in s:
            p = PAPER["table2"]["omniglot-20w1s"][a]
            lines.append(
                f"| {a.upper()} | {_pct(s[a])} ({100 * s[f'{a}_seed_std']:.1f}) | {p[0]} ± {p[1]} |"
            )
    for k, v in s.items():
        if k.endswith("_latest"):
            lines.append(
                f"| {k[: -len('_latest')]} at its iteration {v['iteration']} | {_pct(v)} | |"
            )
    return (
        lines
        + _fit_lines(t2)
        + ["", f"![Figure 5]({link}/{folder.name}/figure5_learning_curves.png)", ""]
    )


def _fit_lines(t2: dict) -> list[str]:
    """Each run's query accuracy on its training tasks beside its validation accuracy: a gap
    near zero says a run underfits its meta-training objective rather than overfits."""
    fit = [f for f in t2.get("fit", []) if f["gap"] is not None]
    if not fit:
        return []
    lines = [
        "",
        f"Underfitting or overfitting, up to iteration {t2['iteration']:,}: the query accuracy "
        "on the training tasks (the mean over the last 10 % of the iterations, with the "
        "training inner loop and queries) beside the last validation accuracy (fixed "
        "validation tasks, with the test inner loop and queries). The two differ in inner "
        "steps and queries, so the gap is a guide, not a measure of a few points.",
        "",
        "| run | training query accuracy (%) | validation accuracy (%), at | gap (points) |",
        "|---|---|---|---|",
    ]
    for f in fit:
        lines.append(
            f"| {f['algorithm'].upper()} seed {f['seed']} | {100 * f['train_query_accuracy']:.1f} "
            f"| {100 * f['val_accuracy']:.1f}, {f['val_iteration']:,} | {100 * f['gap']:+.1f} |"
        )
    return lines


def _table3(folder: Path, link: str) -> list[str]:
    """Table 3: body-averaged similarity between seeds, chance in brackets."""
    t3 = _load(folder, "table3_seed_similarity")
    if not (t3 and t3["summary"]):
        return []
    lines = [
        f"### Table 3: body-averaged similarity across seeds (activations pooled over "
        f"{t3['tasks']} tasks; chance in brackets)",
        "",
        "| pair | " + " | ".join(m.upper() for m in MEASURES) + " | paper CCA | paper CKA |",
        "|---|" + "---|" * (len(MEASURES) + 2),
    ]
    for pair, v in t3["summary"].items():
        p = PAPER["table3"][pair]
        cells = [f"{_f(v[m]['body'])} ({_f(v[m]['body_chance'])})" for m in MEASURES]
        lines.append(f"| {pair} | " + " | ".join(cells) + f" | {p['cca']} | {p['cka']} |")
    return lines + ["", f"![Table 3]({link}/{folder.name}/table3_seed_similarity.png)", ""]


def _table4(folder: Path, link: str) -> list[str]:
    """Table 4 and Appendix D.1: each body with its own head vs the NIL head."""
    t4 = _load(folder, "table4_nil")
    if not (t4 and t4["summary"]):
        return []
    return [
        "### Table 4 and Appendix D.1: the NIL head",
        "",
        "| body | own head (%) | NIL head (%) |",
        "|---|---|---|",
        *[
            f"| {b.upper()} | {_pct(v['own'])} | {_pct(v['nil'])} |"
            for b, v in t4["summary"].items()
        ],
        "",
    ]


def _table5(folder: Path, link: str) -> list[str]:
    """Table 5: NIL-head and adapted-head accuracy per training regime, seeds pooled."""
    t5 = _load(folder, "table5_regimes")
    if not (t5 and t5["summary"]):
        return []
    lines = [
        "### Table 5: training regimes (seeds pooled; seed std in brackets)",
        "",
        "| regime | seeds | iterations | NIL head (%) | adapted head (%) | paper, NIL head, "
        "MiniImageNet 5w1s |",
        "|---|---|---|---|---|---|",
    ]
    for regime, v in t5["summary"].items():
        paper = PAPER["table5_nil_head"].get(regime.split("@")[0], "")
        seeds = len(v.get("seeds", [None]))  # results from before seeds were pooled: one
        cells = [
            _pct(v[h]) + (f" ({100 * v['seed_std'][h]:.1f})" if seeds > 1 else "")
            for h in ("nil", "adapt")
        ]
        lines.append(
            f"| {regime} | {seeds} | {v['iterations']} | {cells[0]} | {cells[1]} | {paper} |"
        )
    return lines + [""]


def _speed(folder: Path, link: str) -> list[str]:
    """Section 4.2's timing: a training iteration and a test-time adaptation, ANIL vs MAML."""
    sp = _load(folder, "speed")
    if not sp:
        return []
    s = sp["summary"]
    return [
        f"### Speed: ANIL vs MAML (1 CPU thread, {s['shape']['inner_steps']} / "
        f"{s['shape']['test_inner_steps']} inner steps)",
        "",
        "| | MAML (s) | ANIL (s) | speed-up | paper |",
        "|---|---|---|---|---|",
        f"| training iteration | {s['maml']['train_step_s']:.3f} | "
        f"{s['anil']['train_step_s']:.3f} | {s['speedup_train']:.1f}x | 1.7x |",
        f"| test-time adaptation | {s['maml']['test_adapt_s']:.4f} | "
        f"{s['anil']['test_adapt_s']:.4f} | {s['speedup_test']:.1f}x | 4.1x |",
        "",
    ]


# One setting's tables in the report's order; each writer takes (folder, link) and returns its
# Markdown lines, none when its results file is missing or empty.
SETTING_TABLES = (_table1, _figure2, _figure3, _table2, _table3, _table4, _table5, _speed)


PROBE_ROWS = {"model": "model's own head", "nil": "NIL head"}
STAGES = ("before", "after")


def _probe_section(folder: Path, link: str) -> list[str]:
    """The supplementary linear probes (``supplementary_linear_probe.json``), labelled as such:
    no claim reads them."""
    data = _load(folder, "supplementary_linear_probe")
    if not data or not data["summary"]:
        return []
    pr = data["probe"] or {}
    features = "standardised on the support set" if pr.get("standardize") else "raw"
    pooling = "averaged over positions" if pr.get("conv_mode") == "channels" else "flattened"
    lines = [
        "### Linear probes per layer (supplementary: not one of the paper's claims)",
        "",
        "No clause reads these numbers and they add no row to the claims table. Per task, a "
        f"multinomial logistic regression (scikit-learn, lbfgs, C = {pr.get('C')}, features "
        f"{features}, conv maps {pooling}) is fit on each layer's support activations and "
        f"scored on the query, before and after the inner loop; {data['tasks']} tasks, seeds "
        f"pooled, iteration {data['iteration']}; chance {100 * data['chance']:.0f} %.",
        "",
        "| algorithm | query accuracy of | before, meta-init (%) | after the inner loop (%) |",
        "|---|---|---|---|",
    ]
    for algorithm, rows in data["summary"].items():
        cells = {(r["classifier"], r["layer"], r["stage"]): r for r in rows}
        keys = list(dict.fromkeys((r["classifier"], r["layer"]) for r in rows))
        for classifier, layer in keys:
            name = f"probe on {layer}" if classifier == "probe" else PROBE_ROWS[classifier]
            before, after = (_pct_or_dash(cells.get((classifier, layer, s))) for s in STAGES)
            lines.append(f"| {algorithm.upper()} | {name} | {before} | {after} |")
    stem = f"{link}/{folder.name}/supplementary_linear_probe"
    figures = " ".join(f"![Linear probes, {a.upper()}]({stem}_{a}.png)" for a in data["summary"])
    return lines + ["", figures, ""]


def _pct_or_dash(s: dict | None) -> str:
    return "—" if s is None or s.get("mean") is None else _pct(s)


def _rl_section(folder: Path) -> list[str]:
    data = _load(folder, "rl_table2")
    if not data:
        return []
    steps = data.get("steps", 1)
    after = " | ".join(f"after {k}" for k in range(1, steps + 1))
    lines = [
        "## Meta-RL: Table 2's RL rows (return, mean ± std over seeds)",
        "",
        f"{data['tasks']} fixed test tasks per policy; the paper's number is after one inner "
        "step. A scale below the paper's (tasks x trajectories, iterations: MAML-RL's) is "
        "marked **reduced**, and the claims tested on it are proxies.",
        "",
        f"| environment | algorithm | seeds | scale | before adaptation | {after} | paper |",
        "|---|---|---|---|---|" + "---|" * steps + "---|",
    ]

    def cell(k: dict) -> str:
        std = k.get("std")
        known = std is not None and not (isinstance(std, float) and math.isnan(std))
        return f"{k['mean']:.1f}" + (f" ± {std:.1f}" if known else "")

    for r in sorted(data["rows"], key=lambda r: (r["env"], r["algorithm"])):
        by_step = r.get("returns_by_step") or [
            {"mean": r["return_before_mean"], "std": None},
            {"mean": r["return_after_mean"], "std": r["return_after_std"]},
        ]
        sc = r.get("scale", {})
        scale = f"{sc.get('meta_batch')} x {sc.get('trajectories')}, {sc.get('iterations')}"
        if r.get("reduced_scale"):
            scale += " (**reduced**)"
        lines.append(
            f"| {r['environment']} | {r['algorithm'].upper()} | {len(r['seeds'])} | {scale} | "
            + " | ".join(cell(k) for k in by_step)
            + f" | {r['paper_mean']} ± {r['paper_std']} |"
        )
    lines += ["", "![RL learning curves](rl/rl_learning_curves.png)", ""]
    sim = _load(folder, "rl_similarity")
    if sim:
        lines += [
            "### Policy similarity before vs after adaptation (the RL version of Figure 2)",
            "",
            "New here: the paper reports no RL similarity. Each layer's representation of the "
            f"states the adapted policy visits, before vs after adaptation, on {sim['tasks']} "
            "test tasks per policy, pooled over seeds; the dashed line is the measure's chance "
            "level.",
            "",
        ]
        lines += [f"![{name}](rl/{name})" for name in sim["figures"] if name.endswith(".png")]
        lines.append("")
    return lines + _rl_drift_lines(folder)


def _rl_drift_lines(folder: Path) -> list[str]:
    """The drift diagnostics (:mod:`repsim.rl.drift`): per environment and group, the means
    over its runs."""
    data = _load(folder, "rl_drift")
    if not data:
        return []
    cells: dict[tuple[str, str], dict] = {}
    for r in data["rows"]:
        cells.setdefault((r["env"], r["group"]), {})[r["quantity"]] = r

    def num(cell: dict, key: str, fmt: str = ".1f") -> str:
        value = cell.get(key, {}).get("mean")  # an older rl_drift.json lacks a quantity
        return "—" if value is None else format(value, fmt)

    lines = [
        "### Rise and fall of the learning curves: the diagnostics",
        "",
        "Means over each group's runs (an ablation is a group of its own). The in-batch return "
        f"is a {data['window']}-iteration mean on the meta-batch that chose each step; the "
        "held-out return is on tasks training never sees; a step's gain on a fresh batch is "
        "the out-of-sample check of the step. What each reading predicts: "
        "`repsim.rl.drift`.",
        "",
        "| environment | group | runs | in-batch: peak (iteration) → last | held-out after 1 "
        "step: peak (iteration) → last ± 95 % | held-out after 1 step: second-half mean "
        "| log-std: first → last | step gain, second half: own batch / fresh batch "
        "| held-out gain of step 2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (env, group), c in cells.items():
        lines.append(
            f"| {env} | {group} | {c['iterations']['runs']} "
            f"| {num(c, 'in_batch_peak')} ({num(c, 'in_batch_peak_iteration', '.0f')}) → "
            f"{num(c, 'in_batch_final')} "
            f"| {num(c, 'heldout_peak')} ({num(c, 'heldout_peak_iteration', '.0f')}) → "
            f"{num(c, 'heldout_final')} ± {num(c, 'heldout_final_ci95')} "
            f"| {num(c, 'heldout_late_mean')} "
            f"| {num(c, 'log_std_first', '.2f')} → {num(c, 'log_std_final', '.2f')} "
            f"| {num(c, 'gain_in_batch_late', '.4f')} / {num(c, 'gain_fresh_late', '.4f')} "
            f"| {num(c, 'heldout_second_step_gain')} |"
        )
    figures = [f"![RL drift diagnostics](rl/{n})" for n in data["figures"] if n.endswith(".png")]
    return [*lines, "", *figures, ""]


def _along_section(along: dict) -> list[str]:
    """The second table: every clause at each along-training iteration, and since when it
    holds."""
    from repsim.reproduce.claims import format_along_table

    sizes = "; ".join(
        f"`{s}`: {v['accuracy_tasks']} accuracy tasks, {v['similarity_tasks']} similarity tasks"
        for s, v in along["sizes"].items()
    )
    # the families that have a figure: a clause with a number at some iteration
    keys = sorted({r["key"] for r in along["summary"] if any(v is not None for v in r["values"])})
    return [
        "## Claims along training",
        "",
        "Each clause at every iteration that all of a setting's MAML and ANIL runs (and, for "
        "Table 5, its baselines) share, every run at that same iteration, evaluated at the "
        f"reduced sizes of the bands ({sizes}). The claims table above keeps the final "
        "checkpoints at the full sizes. A cell is the clause's number (or our text where it "
        "has none) and ✓ holds, ✗ fails, – not tested; the last column gives the first "
        "iteration from which the clause holds at every later one, and for a clause that "
        "fails at the end where it is heading: *closing* when its distance to the band at the "
        "last iteration is below both the one before and the first (what undertraining looks "
        "like), *widening* when above both, *mixed* otherwise (a direction, not a test: each "
        "number carries the noise of its evaluation). Figure 3, weight movement "
        "and the speed timing are about training itself and are not repeated here.",
        "",
        format_along_table(along["summary"]),
        "",
        "Figures (the clause's number against iteration, band shaded, the paper's number "
        "marked where it has one): "
        + ", ".join(f"[{k}](../figures/claims_along/{k}.png)" for k in keys)
        + ".",
        "",
    ]


def render(
    out: str | Path, claims: list[dict], settings: list[str], along: dict | None = None
) -> Path:
    """Write ``OUT/results/report.md`` from ``OUT/results/<setting>/*.json`` and the evaluated
    claims (and, when given, the claims along training); returns its path."""
    from repsim.provenance import code_version

    results = Path(out) / "results"
    version = code_version()
    counts = {v: sum(r["verdict"] == v for r in claims) for v in ("holds", "fails")}
    untested = sum(r["verdict"] == "not tested here" for r in claims)
    lines = [
        "# Rapid learning or feature reuse? The paper's claims, tested clause by clause",
        "",
        f"Settings: {', '.join(f'`{s}`' for s in settings)}. Each clause states the band it is "
        "tested against (fixed before any result was read) and the paper's own number; verdicts "
        "are computed from our numbers. A clause tested on another dataset or shape than the "
        "paper's is marked **proxy**. CCA verdicts use the paper's convention (google/svcca's "
        "mean truncated at 98 % of the coefficients' sum, `cca98`); plain mean CCA, SVCCA and "
        "linear CKA are reported beside it, each with its chance level (the same measure with one "
        "side's datapoints permuted).",
        "",
        f"**{counts['holds']} clauses hold, {counts['fails']} fail, {untested} not tested here.**",
        "",
        "## Claims",
        "",
        format_table(claims),
        "",
        "MiniImageNet could not be tested here: it is not redistributable and not on this "
        "machine. Its reader and presets are ready for a machine that has it.",
        "",
    ]
    if along:
        lines += _along_section(along)
    for setting in settings:
        if setting == "rl":
            lines += _rl_section(results / "rl")
        else:
            lines += _setting_section(results / setting, "../figures")
    sub = SUBMISSION["table1_freezing"]["miniimagenet-5w1s"]
    lines += [
        "---",
        "",
        "¹ Camera-ready values. The ICLR submission's Table 1 had "
        + ", ".join(f"{k} {v}" for k, v in sub.items())
        + ".",
        "",
        f"Generated by `repsim reproduce` (repsim {version['repsim']}, commit "
        f"{(version.get('git_commit') or 'unknown')[:12]}, torch {version['torch']}) from the "
        "results files beside this report.",
        "",
    ]
    path = results / "report.md"
    path.write_text("\n".join(lines))
    return path
