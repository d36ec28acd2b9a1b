"""The paper's claims as data, and one evaluator.

Each :class:`Claim` is a list of :class:`Clause`\\ s. A clause states a band (e.g. "drop <= 1.5
points"), the paper's own number, and a check that reads our results of one setting and
returns our number and whether it lies in the band. :func:`evaluate` runs every clause on every
setting that has the results it needs, and says ``holds``, ``fails`` or ``not tested here``
(with the reason). A claim tested on another dataset or shape than the paper's is a **proxy**.

The verdicts use the paper's CCA convention (``cca98``: google/svcca's mean truncated at 98 %
of the coefficients' sum), which is what the paper's code computes. The bands are fixed here,
before any result is read; nothing is tuned to pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from repsim.reproduce.paper import FREEZE_LABELS, PAPER

BODY = ("conv1", "conv2", "conv3", "conv4")
M = "cca98"  # the verdicts' CCA

HOLDS, FAILS, NOT_TESTED = "holds", "fails", "not tested here"


class NotTested(Exception):
    """Raised by a check when the results cannot decide it; the message says why."""


@dataclass(frozen=True)
class Clause:
    text: str
    band: str
    paper: str
    # (results, context) -> (ours, in band), or (ours, in band, value, (low, high)): the
    # clause's number and its band as numbers (None: unbounded), which the along-training
    # figures plot
    check: Callable[[dict, dict], tuple]
    dataset: str | None = None  # only settings of this dataset test it (None: any)
    untested: str = ""  # why it is not tested when no setting of ``dataset`` has results
    paper_value: float | None = None  # the paper's number on the scale of ``value``, if one
    paper_note: str = "paper"  # what ``paper_value`` is, as the figures label it
    # results -> whether the setting's results are below the paper's scale (a reduced-scale
    # run): the clause is then a proxy too
    reduced: Callable[[dict], bool] | None = None


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    source: str
    paper_settings: tuple[str, ...]  # dataset-NwKs of the paper's own test
    needs: tuple[str, ...]  # results files
    clauses: tuple[Clause, ...]


# --- helpers for checks -----------------------------------------------------------------------


def _get(results: dict, name: str) -> dict:
    if name not in results:
        raise NotTested(f"no {name} results for this setting")
    return results[name]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _valued(ours: str, ok: bool, value: float, low=None, high=None) -> tuple:
    """A check's answer with its number and numeric band (``low <= value <= high``)."""
    return ours, ok, float(value), (low, high)


def _sim(results: dict, algorithm: str, layer: str, measure: str) -> float:
    rows = _get(results, "figure2_similarity")["summary"].get(algorithm)
    if not rows:
        raise NotTested(f"no {algorithm.upper()} runs")
    for r in rows:
        if r["layer"] == layer and r["measure"] == measure:
            if r["mean"] is None or math.isnan(r["mean"]):
                raise NotTested(f"{measure} on {layer} is undefined here (too few datapoints)")
            return r["mean"]
    raise NotTested(f"no {measure} for {layer}")


def _chance(results: dict, algorithm: str, layer: str, measure: str) -> float | None:
    for r in _get(results, "figure2_similarity")["summary"].get(algorithm, []):
        if r["layer"] == layer and r["measure"] == measure:
            return r.get("chance")
    return None


def _shots(ctx: dict) -> int:
    return int(ctx["train"].get("shots", 1))


# --- 1. freezing ------------------------------------------------------------------------------


def _freeze_band(ctx: dict) -> float:
    return 1.5 if _shots(ctx) == 1 else 3.0


def _freeze_acc(results: dict) -> dict:
    return {k: v["mean"] for k, v in _get(results, "table1_freezing")["summary"].items()}


def _freeze_drop(results, ctx):
    acc = _freeze_acc(results)
    drop = 100 * (acc["none"] - acc["conv1-4"])
    band = _freeze_band(ctx)
    ours = f"{_pct(acc['none'])} → {_pct(acc['conv1-4'])} (drop {drop:.1f})"
    return _valued(ours, drop <= band, drop, None, band)


def _freeze_intermediate(results, ctx):
    acc = _freeze_acc(results)
    drops = {k: 100 * (acc["none"] - acc[k]) for k in FREEZE_LABELS[1:4]}
    ours = ", ".join(f"{k} {d:+.1f}" for k, d in drops.items())
    worst, band = max(drops.values()), _freeze_band(ctx)
    return _valued(f"drops {ours}", worst <= band, worst, None, band)


def _freeze_monotone(results, ctx):
    acc = [100 * _freeze_acc(results)[k] for k in FREEZE_LABELS]
    rises = [b - a for a, b in zip(acc, acc[1:])]
    return _valued(" → ".join(f"{a:.1f}" for a in acc), max(rises) <= 0.5, max(rises), None, 0.5)


# --- 2. before vs after -----------------------------------------------------------------------


def _layer_at_least(layer: str, bound: float):
    def check(results, ctx):
        v = _sim(results, "maml", layer, M)
        c = _chance(results, "maml", layer, M)
        ours = f"{v:.3f}" + (f" (chance {c:.2f})" if c is not None else "")
        return _valued(ours, v >= bound, v, bound, None)

    return check


def _head_at_most(results, ctx):
    v = _sim(results, "maml", "head", M)
    c = _chance(results, "maml", "head", M)
    return _valued(
        f"{v:.3f}" + (f" (chance {c:.2f})" if c is not None else ""), v <= 0.6, v, None, 0.6
    )


def _layer_order(results, ctx):
    vals = [_sim(results, "maml", lyr, M) for lyr in (*BODY, "head")]
    convs_ok = all(b <= a + 0.03 for a, b in zip(vals[:4], vals[1:4]))
    return " ≥ ".join(f"{v:.3f}" for v in vals), convs_ok and vals[3] > vals[4]


def _cka_body(results, ctx):
    vals = {lyr: _sim(results, "maml", lyr, "cka") for lyr in BODY}
    low = min(vals.values())
    return _valued(", ".join(f"{k} {v:.3f}" for k, v in vals.items()), low >= 0.9, low, 0.9)


def _cka_head_gap(results, ctx):
    head, conv4 = _sim(results, "maml", "head", "cka"), _sim(results, "maml", "conv4", "cka")
    gap = conv4 - head
    return _valued(f"head {head:.3f}, conv4 {conv4:.3f} (gap {gap:.3f})", gap >= 0.15, gap, 0.15)


# --- 3. feature reuse early -------------------------------------------------------------------


def _early_rows(results: dict) -> list[dict]:
    rows = [r for r in _get(results, "figure3_training")["rows"] if 1 / 6 <= r["fraction"] <= 0.5]
    if not rows:
        raise NotTested("no checkpoint between 1/6 and 1/2 of training")
    return rows


def _early_body(results, ctx):
    rows = _early_rows(results)
    vals = {r["iteration"]: sum(r[f"{M}_{lyr}"] for lyr in BODY) / 4 for r in rows}
    return ", ".join(f"it {k}: {v:.3f}" for k, v in vals.items()), min(vals.values()) >= 0.85


def _early_head(results, ctx):
    vals = {r["iteration"]: r[f"{M}_head"] for r in _early_rows(results)}
    return ", ".join(f"it {k}: {v:.3f}" for k, v in vals.items()), max(vals.values()) <= 0.65


def _early_freeze(results, ctx):
    band = 2.0 if _shots(ctx) == 1 else 3.5
    drops = {r["iteration"]: 100 * (r["acc_none"] - r["acc_conv1_4"]) for r in _early_rows(results)}
    return ", ".join(f"it {k}: {v:.1f}" for k, v in drops.items()), max(drops.values()) <= band


# --- 4. ANIL vs MAML --------------------------------------------------------------------------


def _t2(results: dict) -> dict:
    s = _get(results, "table2_maml_vs_anil")["summary"]
    if "maml" not in s or "anil" not in s:
        raise NotTested("needs both MAML and ANIL runs")
    return s


def _anil_not_below(results, ctx):
    s = _t2(results)
    gap = 100 * (s["anil"]["mean"] - s["maml"]["mean"])
    ours = f"MAML {_pct(s['maml']['mean'])}, ANIL {_pct(s['anil']['mean'])} ({gap:+.1f})"
    return _valued(ours, gap >= -1.0, gap, -1.0)


def _losses_close(results, ctx):
    losses = _get(results, "table2_maml_vs_anil")["final_training_loss"]
    vals = {a: [v for v in losses.get(a, []) if v is not None] for a in ("maml", "anil")}
    if not vals["maml"] or not vals["anil"]:
        raise NotTested("no learning curves")
    m, a = (sum(v) / len(v) for v in (vals["maml"], vals["anil"]))
    rel = abs(a - m) / m
    return _valued(
        f"MAML {m:.3f}, ANIL {a:.3f} ({100 * rel:.0f} % apart)", rel <= 0.15, rel, 0, 0.15
    )


def _anil_close(results, ctx):
    s = _t2(results)
    gap = 100 * (s["anil"]["mean"] - s["maml"]["mean"])
    band = 2.0 if _shots(ctx) == 1 else 2.5
    ours = f"MAML {_pct(s['maml']['mean'])}, ANIL {_pct(s['anil']['mean'])} ({gap:+.1f})"
    return _valued(ours, abs(gap) <= band, gap, -band, band)


NO_MINIIMAGENET = (
    "MiniImageNet is not redistributable and not on this machine; its reader and the "
    "miniimagenet-5way preset are ready for a machine that has it"
)


# --- 5. Table 3 -------------------------------------------------------------------------------


def _cross_close(measure: str):
    def check(results, ctx):
        s = _get(results, "table3_seed_similarity")["summary"]
        if "ANIL-MAML" not in s or not ({"MAML-MAML", "ANIL-ANIL"} & set(s)):
            raise NotTested("needs at least two seeds of one algorithm and one of the other")
        cross = s["ANIL-MAML"][measure]["body"]
        within = {k: s[k][measure]["body"] for k in ("MAML-MAML", "ANIL-ANIL") if k in s}
        chance = s["ANIL-MAML"][measure]["body_chance"]
        ours = f"ANIL-MAML {cross:.3f} vs " + ", ".join(f"{k} {v:.3f}" for k, v in within.items())
        apart = max(abs(cross - v) for v in within.values())
        return _valued(ours + f" (chance {chance:.2f})", apart <= 0.05, apart, 0, 0.05)

    return check


# --- 6 and 8. NIL head ------------------------------------------------------------------------


def _nil(results: dict, body: str) -> dict:
    s = _get(results, "table4_nil")["summary"]
    if body not in s:
        raise NotTested(f"no {body.upper()} runs")
    return s[body]


def _nil_vs_anil(results, ctx):
    s = _nil(results, "anil")
    gap = 100 * (s["nil"]["mean"] - s["own"]["mean"])
    ours = f"ANIL {_pct(s['own']['mean'])}, NIL {_pct(s['nil']['mean'])} ({gap:+.1f})"
    return _valued(ours, abs(gap) <= 2.5, gap, -2.5, 2.5)


def _head_swap(body: str):
    def check(results, ctx):
        s = _nil(results, body)
        gap = 100 * (s["own"]["mean"] - s["nil"]["mean"])
        ours = f"own {_pct(s['own']['mean'])}, NIL {_pct(s['nil']['mean'])} ({gap:+.1f})"
        return _valued(ours, abs(gap) <= 2.5, gap, -2.5, 2.5)

    return check


# --- 7. Table 5 -------------------------------------------------------------------------------


def _regime(results: dict, name: str) -> float:
    s = _get(results, "table5_regimes")["summary"]
    if name not in s:
        raise NotTested(f"no {name} run")
    return 100 * s[name]["nil"]["mean"]


def _gap_at_least(high: tuple[str, ...], low: str, bound: float):
    def check(results, ctx):
        h = min(_regime(results, r) for r in high)
        lo = _regime(results, low)
        ours = f"{'/'.join(high)} {h:.1f}, {low} {lo:.1f} ({h - lo:+.1f})"
        return _valued(ours, h - lo >= bound, h - lo, bound)

    return check


def _maml_anil_close(results, ctx):
    m, a = _regime(results, "maml"), _regime(results, "anil")
    return _valued(f"MAML {m:.1f}, ANIL {a:.1f}", abs(m - a) <= 2.0, a - m, -2.0, 2.0)


def _multitask_worst(results, ctx):
    s = _get(results, "table5_regimes")["summary"]
    vals = {k: 100 * v["nil"]["mean"] for k, v in s.items()}
    if "multitask" not in vals:
        raise NotTested("no multitask run")
    worst = min(vals, key=vals.get)
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(vals.items(), key=lambda kv: -kv[1])), (
        worst == "multitask"
    )


# --- 9. compute -------------------------------------------------------------------------------


def _speedup(which: str, bound: float):
    key = "train_step_s" if which == "train" else "test_adapt_s"

    def check(results, ctx):
        s = _get(results, "speed")["summary"]
        v = s[f"speedup_{which}"]
        return f"{v:.2f}x (MAML {s['maml'][key]:.3f} s, ANIL {s['anil'][key]:.3f} s)", v >= bound

    return check


# --- 10. weight movement ----------------------------------------------------------------------


def _movement(results, ctx):
    data = _get(results, "weight_movement")
    total = data["iterations"]
    late = [r for r in data["rows"] if r["iteration"] >= 0.1 * total]
    if not late:
        raise NotTested("no checkpoint after the first 10 % of training")
    ratios = {}
    for it in sorted({r["iteration"] for r in late}):
        by = {r["layer"]: r["abs_mean"] for r in late if r["iteration"] == it}
        ratios[it] = by["head"] / max(by[lyr] for lyr in BODY)
    return ", ".join(f"it {k}: {v:.1f}x" for k, v in ratios.items()), min(ratios.values()) >= 5


# --- meta-RL ----------------------------------------------------------------------------------


def _rl_anil_matches_maml(env: str):
    def check(results, ctx):
        rows = {r["algorithm"]: r for r in _get(results, "rl_table2")["rows"] if r["env"] == env}
        if "maml" not in rows or "anil" not in rows:
            raise NotTested(f"no MAML and ANIL policies for {env}")
        m, a = rows["maml"], rows["anil"]
        std = m["return_after_std"]
        if std is None or (isinstance(std, float) and math.isnan(std)):
            raise NotTested(f"one MAML seed on {env}: no std over seeds to compare against")
        scale, ref = m.get("scale", {}), m.get("reference_scale") or {}
        reduced = ""
        if m.get("reduced_scale") and ref:
            reduced = (
                f"; reduced scale, the paper's: {ref['meta_batch']} x {ref['trajectories']}, "
                f"{ref['iterations']} iterations"
            )
        ours = (
            f"MAML {m['return_after_mean']:.1f} ± {std:.1f}, ANIL {a['return_after_mean']:.1f}"
            f" ({len(m['seeds'])} seeds; {scale.get('meta_batch')} tasks x "
            f"{scale.get('trajectories')} trajectories, {scale.get('iterations')} iterations"
            f"{reduced})"
        )
        return ours, a["return_after_mean"] >= m["return_after_mean"] - std

    return check


def _rl_reduced(env: str):
    """Whether the MAML or ANIL policies of ``env`` were trained below the paper's scale."""

    def reduced(results: dict) -> bool:
        rows = results.get("rl_table2", {}).get("rows", [])
        return any(r.get("reduced_scale") for r in rows if r["env"] == env)

    return reduced


# --- the claims -------------------------------------------------------------------------------

P1 = PAPER["table1_freezing"]
_P1 = [P1["miniimagenet-5w1s"][k] for k in FREEZE_LABELS]  # the paper's 1-shot row, in points

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "freezing",
        "Freezing the body at test time costs little (MAML)",
        "Table 1",
        ("miniimagenet-5w1s", "miniimagenet-5w5s"),
        ("table1_freezing",),
        (
            Clause(
                "acc(none) − acc(conv1–4 frozen)",
                "≤ 1.5 pt (1-shot), ≤ 3.0 pt (5-shot)",
                f"1-shot {P1['miniimagenet-5w1s']['none']} → {P1['miniimagenet-5w1s']['conv1-4']}"
                f" (0.6); 5-shot {P1['miniimagenet-5w5s']['none']} → "
                f"{P1['miniimagenet-5w5s']['conv1-4']} (2.1)",
                _freeze_drop,
                paper_value=round(_P1[0] - _P1[4], 2),
                paper_note="paper, MiniImageNet 1-shot",
            ),
            Clause(
                "each intermediate setting (conv1, conv1–2, conv1–3) within the same band",
                "same band",
                "drops 0.4, 0.5, 0.6 (1-shot)",
                _freeze_intermediate,
                paper_value=round(max(_P1[0] - a for a in _P1[1:4]), 2),
                paper_note="paper, MiniImageNet 1-shot",
            ),
            Clause(
                "accuracy non-increasing as more layers freeze",
                "each rise ≤ 0.5 pt",
                "46.9 → 46.5 → 46.4 → 46.3 → 46.3",
                _freeze_monotone,
                paper_value=round(max(b - a for a, b in zip(_P1, _P1[1:])), 2),
                paper_note="paper, MiniImageNet 1-shot",
            ),
        ),
    ),
    Claim(
        "before_after",
        "The body barely changes in the inner loop; the head does (MAML)",
        "Figure 2",
        ("miniimagenet-5w1s", "miniimagenet-5w5s"),
        ("figure2_similarity",),
        (
            Clause("CCA conv1", "≥ 0.95", "> 0.9", _layer_at_least("conv1", 0.95)),
            Clause("CCA conv2", "≥ 0.95", "> 0.9", _layer_at_least("conv2", 0.95)),
            Clause("CCA conv3", "≥ 0.92", "> 0.9", _layer_at_least("conv3", 0.92)),
            Clause("CCA conv4", "≥ 0.85", "> 0.9", _layer_at_least("conv4", 0.85)),
            Clause("CCA head", "≤ 0.6", "< 0.5", _head_at_most),
            Clause(
                "order conv1 ≥ conv2 ≥ conv3 ≥ conv4 > head",
                "0.03 slack on the conv order",
                "body > 0.9 > 0.5 > head",
                _layer_order,
            ),
            Clause("linear CKA of every conv layer", "≥ 0.9", "—", _cka_body),
            Clause("linear CKA of the head below conv4", "by ≥ 0.15", "—", _cka_head_gap),
        ),
    ),
    Claim(
        "reuse_early",
        "Feature reuse already early in training",
        "Figure 3",
        ("miniimagenet-5w1s", "miniimagenet-5w5s"),
        ("figure3_training",),
        (
            Clause(
                "body-average CCA at 1/6–1/2 of training",
                "≥ 0.85",
                "> 0.9 from early on",
                _early_body,
            ),
            Clause("head CCA at 1/6–1/2 of training", "≤ 0.65", "< 0.5", _early_head),
            Clause(
                "freeze-all drop at 1/6–1/2 of training",
                "≤ 2 pt (1-shot), ≤ 3.5 pt (5-shot)",
                "curves overlap from early on",
                _early_freeze,
            ),
        ),
    ),
    Claim(
        "anil_vs_maml",
        "ANIL matches MAML",
        "Table 2",
        ("omniglot-20w1s", "omniglot-20w5s", "miniimagenet-5w1s", "miniimagenet-5w5s"),
        ("table2_maml_vs_anil",),
        (
            Clause(
                "Omniglot: ANIL ≥ MAML − 1.0 pt",
                "ANIL − MAML ≥ −1.0",
                "20w1s 93.7 vs 96.2 (+2.5); 20w5s 96.4 vs 98.0 (+1.6)",
                _anil_not_below,
                dataset="omniglot",
            ),
            Clause(
                "MiniImageNet: |ANIL − MAML|",
                "≤ 2.0 pt (1-shot), ≤ 2.5 (5-shot)",
                "46.9 vs 46.7; 63.1 vs 61.5",
                _anil_close,
                dataset="miniimagenet",
                untested=NO_MINIIMAGENET,
            ),
            Clause(
                "learning curves: final training losses",
                "within 15 %",
                "curves overlap (Figure 5)",
                _losses_close,
            ),
        ),
    ),
    Claim(
        "anil_vs_maml_rl",
        "ANIL matches MAML in meta-RL (return after adaptation)",
        "Table 2, RL",
        ("rl",),
        ("rl_table2",),
        (
            Clause(
                "2D-Navigation: ANIL ≥ MAML − 1 std (MAML's std over seeds)",
                "ANIL − MAML ≥ −std",
                "−20.3 ± 3.2 vs −20.1 ± 2.3",
                _rl_anil_matches_maml("2dnav"),
                reduced=_rl_reduced("2dnav"),
            ),
            Clause(
                "HalfCheetah-Direction: ANIL ≥ MAML − 1 std",
                "ANIL − MAML ≥ −std",
                "170.4 ± 21.0 vs 363.2 ± 14.8",
                _rl_anil_matches_maml("cheetah-dir"),
                reduced=_rl_reduced("cheetah-dir"),
            ),
            Clause(
                "HalfCheetah-Velocity: ANIL ≥ MAML − 1 std",
                "ANIL − MAML ≥ −std",
                "−139.0 ± 18.9 vs −120.9 ± 6.3",
                _rl_anil_matches_maml("cheetah-vel"),
                reduced=_rl_reduced("cheetah-vel"),
            ),
        ),
    ),
    Claim(
        "seed_similarity",
        "MAML and ANIL learn equally similar features",
        "Table 3",
        ("miniimagenet-5w1s",),
        ("table3_seed_similarity",),
        (
            Clause(
                "body CCA: ANIL-MAML vs within-algorithm",
                "within ±0.05",
                "0.50 vs 0.51 / 0.51",
                _cross_close(M),
            ),
            Clause(
                "body CKA: ANIL-MAML vs within-algorithm",
                "within ±0.05",
                "0.83 vs 0.83 / 0.86",
                _cross_close("cka"),
            ),
        ),
    ),
    Claim(
        "nil",
        "NIL (no head at test time) matches ANIL",
        "Table 4",
        ("omniglot-20w1s", "omniglot-20w5s", "miniimagenet-5w1s", "miniimagenet-5w5s"),
        ("table4_nil",),
        (
            Clause(
                "NIL (ANIL-trained body) − ANIL",
                "within ±2.5 pt",
                "20w1s 96.7 vs 96.2",
                _nil_vs_anil,
            ),
        ),
    ),
    Claim(
        "head_in_training",
        "The head matters in training (bodies compared with the NIL head)",
        "Table 5",
        ("miniimagenet-5w1s",),
        ("table5_regimes",),
        (
            Clause("|MAML − ANIL|", "≤ 2 pt", "48.4 vs 48.0", _maml_anil_close),
            Clause(
                "MAML and ANIL above multiclass",
                "by ≥ 5 pt",
                "48.0 vs 39.7",
                _gap_at_least(("maml", "anil"), "multiclass", 5.0),
            ),
            Clause(
                "multiclass above random",
                "by ≥ 3 pt",
                "39.7 vs 32.9",
                _gap_at_least(("multiclass",), "random", 3.0),
            ),
            Clause(
                "random above multitask",
                "by ≥ 2 pt",
                "32.9 vs 26.5",
                _gap_at_least(("random",), "multitask", 2.0),
            ),
            Clause("multitask the worst", "lowest of all regimes", "26.5", _multitask_worst),
        ),
    ),
    Claim(
        "head_swap",
        "Swapping the head for NIL does not matter",
        "Appendix D.1",
        ("omniglot-20w1s", "miniimagenet-5w1s"),
        ("table4_nil",),
        (
            Clause("MAML body: |own head − NIL head|", "≤ 2.5 pt", "≈ equal", _head_swap("maml")),
            Clause("ANIL body: |own head − NIL head|", "≤ 2.5 pt", "≈ equal", _head_swap("anil")),
        ),
    ),
    Claim(
        "compute",
        "ANIL is cheaper than MAML",
        "Section 4.2",
        ("miniimagenet-5w1s",),
        ("speed",),
        (
            Clause(
                "training step speed-up (5 inner steps)",
                "≥ 1.3x",
                f"{PAPER['speedup']['train']}x",
                _speedup("train", 1.3),
            ),
            Clause(
                "test-time adaptation speed-up (10 steps)",
                "≥ 2.5x",
                f"{PAPER['speedup']['test']}x",
                _speedup("test", 2.5),
            ),
        ),
    ),
    Claim(
        "weight_movement",
        "The head's weights move most in the inner loop",
        "Appendix B.3",
        ("miniimagenet-5w1s",),
        ("weight_movement",),
        (
            Clause(
                "head ‖θ − θ′‖ over the largest body layer's, after 10 % of training",
                "≥ 5x",
                "head moves most",
                _movement,
            ),
        ),
    ),
)


def _shape(setting: str) -> str:
    """``omniglot-20w1s-paper`` -> ``omniglot-20w1s``."""
    return setting.rsplit("-", 1)[0] if setting.count("-") >= 2 else setting


def evaluate(results: dict[str, dict], contexts: dict[str, dict]) -> list[dict]:
    """Every clause of every claim on every setting that has its results.

    ``results[setting][name]`` is a results file's data, ``contexts[setting]`` its training
    settings. Returns rows ``{claim, source, clause, setting, proxy, ours, band, paper, verdict,
    reason}``; a claim with no setting at all gets one ``not tested here`` row per clause.
    """
    rows = []
    for claim in CLAIMS:
        settings = [s for s in results if all(n in results[s] for n in claim.needs)]
        for clause in claim.clauses:
            mine = [s for s in settings if clause.dataset in (None, s.split("-", 1)[0])]
            if not mine:
                where = f"{clause.dataset}" if clause.dataset else "—"
                why = clause.untested or f"no {', '.join(claim.needs)} results"
                rows.append(_row(claim, clause, where, False, "", NOT_TESTED, why))
        for setting in settings:
            shape_proxy = _shape(setting) not in claim.paper_settings
            for clause in claim.clauses:
                if clause.dataset not in (None, setting.split("-", 1)[0]):
                    continue
                proxy = shape_proxy or bool(clause.reduced and clause.reduced(results[setting]))
                value, bounds = None, (None, None)
                try:
                    answer = clause.check(results[setting], contexts[setting])
                    ours, ok = answer[:2]
                    if len(answer) == 4:
                        value, bounds = answer[2], answer[3]
                    verdict, reason = (HOLDS if ok else FAILS), ""
                except NotTested as exc:
                    ours, verdict, reason = "", NOT_TESTED, str(exc)
                row = _row(claim, clause, setting, proxy, ours, verdict, reason)
                rows.append({**row, "value": value, "band_low": bounds[0], "band_high": bounds[1]})
    return rows


def _row(claim, clause, setting, proxy, ours, verdict, reason) -> dict:
    return {
        "claim": claim.title,
        "key": claim.key,
        "source": claim.source,
        "clause": clause.text,
        "setting": setting,
        "proxy": proxy,
        "ours": ours,
        "band": clause.band,
        "paper": clause.paper,
        "paper_value": clause.paper_value,
        "verdict": verdict,
        "reason": reason,
    }


def evaluate_along(results: dict[str, dict[int, dict]], contexts: dict[str, dict]) -> list[dict]:
    """The clauses at every along-training iteration of each setting.

    ``results[setting][iteration]`` holds that iteration's results files (every run of the
    setting at the same iteration). Returns the rows of :func:`evaluate` for the setting itself
    (no "not tested here" rows for other datasets), each with its ``iteration``; a claim whose
    results are not computed along training (Figure 3 and weight movement, which are about
    training itself; the speed timing) has no rows.
    """
    rows = []
    for setting, by_iteration in results.items():
        for iteration in sorted(by_iteration):
            for row in evaluate({setting: by_iteration[iteration]}, {setting: contexts[setting]}):
                if row["setting"] == setting:
                    rows.append({**row, "iteration": iteration})
    return rows


def gap_to_band(value: float | None, low: float | None, high: float | None) -> float | None:
    """How far ``value`` lies outside the band ``[low, high]`` (either end may be open): 0
    inside, ``None`` without a number or a band."""
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return low - value
    if high is not None and value > high:
        return value - high
    return 0.0


def trend(gaps: list[float | None]) -> str:
    """Where a clause that fails at the last iteration is heading, from its gaps to the band
    (:func:`gap_to_band`) along training: ``closing`` when the last gap is below both the one
    before and the first (what undertraining looks like), ``widening`` when above both,
    ``mixed`` otherwise; ``""`` with fewer than two numbers or inside the band at the end. A
    direction, not a test: each gap carries the noise of its evaluation."""
    known = [g for g in gaps if g is not None]
    if len(known) < 2 or known[-1] == 0:
        return ""
    if known[-1] < known[-2] and known[-1] < known[0]:
        return "closing"
    if known[-1] > known[-2] and known[-1] > known[0]:
        return "widening"
    return "mixed"


def held_from(rows: list[dict]) -> list[dict]:
    """One row per (claim, clause, setting) of :func:`evaluate_along`'s rows: its value and
    verdict at each iteration and ``holds_from``, the first iteration from which it holds at
    every later one, or ``never held`` (``held, not at the end`` when it held at some iteration
    but fails at the last; ``not tested`` when no iteration decides it); for a clause that fails
    at the last iteration, its ``gaps`` to the band and their :func:`trend`."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["key"], r["clause"], r["setting"]), []).append(r)
    out = []
    for (_, _, setting), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["iteration"])
        verdicts = [r["verdict"] for r in rs]
        if all(v == NOT_TESTED for v in verdicts):
            since = "not tested"
        elif verdicts[-1] != HOLDS:
            since = "held, not at the end" if HOLDS in verdicts else "never held"
        else:
            k = len(rs)
            while k > 0 and verdicts[k - 1] == HOLDS:
                k -= 1
            since = f"from {rs[k]['iteration']:,}"
        first = rs[0]
        gaps = [gap_to_band(r["value"], r.get("band_low"), r.get("band_high")) for r in rs]
        out.append(
            {
                **{k: first[k] for k in ("claim", "key", "source", "clause", "band", "paper")},
                "setting": setting,
                "proxy": first["proxy"],
                "iterations": [r["iteration"] for r in rs],
                "ours": [r["ours"] for r in rs],
                "values": [r["value"] for r in rs],
                "verdicts": verdicts,
                "holds_from": since,
                "gaps": gaps,
                "trend": trend(gaps) if verdicts[-1] == FAILS else "",
            }
        )
    return out


def format_along_table(summary: list[dict]) -> str:
    """:func:`held_from`'s rows as Markdown: one column per iteration (value and verdict)."""
    iterations = sorted({i for r in summary for i in r["iterations"]})
    mark = {HOLDS: "✓", FAILS: "✗", NOT_TESTED: "–"}
    head = ["claim (source)", "clause", "setting", *(f"{i:,}" for i in iterations), "holds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        at = dict(zip(r["iterations"], zip(r["values"], r["verdicts"], r["ours"])))
        cells = [f"{r['claim']} ({r['source']})", r["clause"], r["setting"]]
        for i in iterations:
            if i not in at:
                cells.append("")
                continue
            value, verdict, ours = at[i]
            shown = f"{value:.3g}" if value is not None else (ours or "")
            cells.append(f"{shown} {mark[verdict]}".strip())
        cells.append(r["holds_from"] + (f"; {r['trend']}" if r.get("trend") else ""))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """The clause-by-clause table as Markdown."""
    lines = [
        "| claim (source) | clause | setting | ours | band | paper | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setting = r["setting"] + (" (**proxy**)" if r["proxy"] else "")
        verdict = r["verdict"] + (f": {r['reason']}" if r["reason"] else "")
        cells = [f"{r['claim']} ({r['source']})", r["clause"], setting, r["ours"], r["band"]]
        cells += [r["paper"], verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
