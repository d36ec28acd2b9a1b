"""Regenerate the paper's tables and figures from a folder of checkpoints.

Input: a checkpoint folder with ``manifest.json`` (written by ``analysis/collect_checkpoints.py``
or by ``--quick``) that lists each training run: its algorithm, seed, final checkpoint,
checkpoints along training and metrics log. Output, under ``out``:

- ``results/*.json`` and ``*.csv``: every number, with provenance (code version, settings);
- ``figures/*.png`` and ``*.pdf``: drawn from those results;
- ``results/report.md``: each headline claim of the paper, our figure beside the paper's, and
  a verdict computed from the numbers (never tuned to pass).

Runs of different lengths are compared at their common iteration (the shortest run's final
iteration; longer runs keep a checkpoint there), so seeds compare like with like.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from repsim.errors import CheckpointError, InputError

BODY = ("conv1", "conv2", "conv3", "conv4")
LAYERS = (*BODY, "head")
FREEZE_LABELS = ("none", "conv1", "conv1-2", "conv1-3", "conv1-4")

# The paper's numbers (Raghu et al., ICLR 2020; read from the ICLR submission text). Tables 1
# and 5 are MiniImageNet 5-way 1-shot, Tables 2 and 4 Omniglot 20-way 1-shot; our shipped runs
# are Omniglot 5-way 1-shot at CPU scale, so the comparison is of the *claims*, not the digits.
PAPER = {
    "table1_freezing_miniimagenet_5w1s": {
        "none": 44.5,
        "conv1": 44.8,
        "conv1-2": 44.8,
        "conv1-3": 44.7,
        "conv1-4": 44.7,
    },
    "figure2_cca": {"body": "> 0.9", "head": "< 0.5"},
    "table2_omniglot_20w1s": {"maml": 93.7, "anil": 96.2},
    "table3_body_similarity": {
        "MAML-MAML": {"cca": 0.51, "cka": 0.83},
        "ANIL-ANIL": {"cca": 0.51, "cka": 0.86},
        "ANIL-MAML": {"cca": 0.50, "cka": 0.83},
    },
    "speedup": {"train": 1.7, "test": 4.1},
    "table4_omniglot_20w1s": {"maml": 93.7, "anil": 96.2, "nil": 96.7},
    "table5_nil_head_miniimagenet_5w1s": {
        "maml": 48.4,
        "anil": 48.0,
        "multiclass": 39.7,
        "multitask": 26.5,
        "random": 32.9,
        "nil": 38.3,
    },
}


@dataclass
class Run:
    """One training run listed in a manifest (paths relative to the manifest's folder)."""

    name: str
    algorithm: str
    seed: int
    iterations: int
    final: str
    checkpoints: dict[int, str] = field(default_factory=dict)
    metrics: str | None = None

    def checkpoint_at(self, iteration: int, root: Path) -> Path:
        if iteration == self.iterations:
            return root / self.final
        if iteration in self.checkpoints:
            return root / self.checkpoints[iteration]
        raise CheckpointError(
            f"run {self.name} has no checkpoint at iteration {iteration}; it has "
            f"{sorted(self.checkpoints) + [self.iterations]}. Retrain it with "
            f"--checkpoint-at {iteration}."
        )


@dataclass
class Settings:
    """How many tasks each analysis uses (the full run's defaults; ``quick()`` for CI)."""

    accuracy_tasks: int = 600
    freeze_tasks: int = 200
    training_tasks: int = 200
    similarity_tasks: int = 20
    compare_tasks: int = 10
    speed_repeats: int = 5
    seed: int = 0
    data_dir: str | None = None

    @classmethod
    def quick(cls, data_dir: str | None = None) -> Settings:
        return cls(
            accuracy_tasks=6,
            freeze_tasks=4,
            training_tasks=4,
            similarity_tasks=2,
            compare_tasks=2,
            speed_repeats=1,
            data_dir=data_dir,
        )


def read_manifest(ckpt_dir: str | Path) -> list[Run]:
    """The runs listed in ``ckpt_dir/manifest.json``."""
    path = Path(ckpt_dir) / "manifest.json"
    if not path.exists():
        raise CheckpointError(
            f"{path} is missing: a checkpoint folder for `repsim reproduce` lists its runs in "
            "manifest.json (see analysis/collect_checkpoints.py), or use --quick to train tiny "
            "ones."
        )
    try:
        data = json.loads(path.read_text())
        runs = [
            Run(**{**r, "checkpoints": {int(k): v for k, v in r.get("checkpoints", {}).items()}})
            for r in data["runs"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid manifest ({exc})") from None
    for run in runs:
        for rel in [run.final, *run.checkpoints.values()]:
            if not (Path(ckpt_dir) / rel).exists():
                raise CheckpointError(f"{path} lists {rel} (run {run.name}), which is missing")
    return runs


def write_manifest(ckpt_dir: str | Path, runs: list[Run], note: str = "") -> Path:
    path = Path(ckpt_dir) / "manifest.json"
    path.write_text(
        json.dumps(
            {"note": note, "runs": [dataclasses.asdict(r) for r in runs]}, indent=2, sort_keys=True
        )
    )
    return path


# --- the pipeline -----------------------------------------------------------------------------


class Reproduction:
    """Holds the loaded test split and caches accuracies, so each (checkpoint, head, freeze)
    is evaluated once across tables."""

    def __init__(
        self, ckpt_dir: str | Path, out: str | Path, settings: Settings, progress: bool = True
    ):
        from repsim.checkpoint import load_checkpoint
        from repsim.evaluate import test_sampler_for

        self.root = Path(ckpt_dir)
        self.runs = read_manifest(self.root)
        self.out = Path(out)
        self.results = self.out / "results"
        self.figures = self.out / "figures"
        self.results.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        self.s = settings
        self.progress = progress
        self._acc: dict[tuple, list[float]] = {}
        _, record = load_checkpoint(self.root / self.runs[0].final)
        self.record = record
        self.sampler = test_sampler_for(record, settings.data_dir, seed=settings.seed)
        self.meta_runs = [r for r in self.runs if r.algorithm in ("maml", "anil")]
        if not any(r.algorithm == "maml" for r in self.runs):
            raise InputError("the manifest lists no MAML run: the analyses compare against MAML")
        self.common = min(r.iterations for r in self.meta_runs)
        self.started = time.perf_counter()

    # helpers
    def runs_of(self, algorithm: str) -> list[Run]:
        return sorted((r for r in self.runs if r.algorithm == algorithm), key=lambda r: r.seed)

    def say(self, text: str) -> None:
        if self.progress:
            print(f"[{time.perf_counter() - self.started:6.0f}s] {text}", flush=True)

    def accuracies(
        self, path: Path, head: str = "adapt", freeze: int = 0, tasks: int | None = None
    ) -> list[float]:
        """Per-task query accuracies of a checkpoint on the fixed test tasks ``0..tasks-1``."""
        from repsim.checkpoint import load_checkpoint
        from repsim.evaluate import evaluate_model

        tasks = tasks or self.s.accuracy_tasks
        key = (str(path), head, freeze)
        have = self._acc.get(key, [])
        if len(have) < tasks:
            model, record = load_checkpoint(path)
            r = evaluate_model(
                model, record, self.sampler, tasks, freeze, head, progress=self.progress
            )
            self._acc[key] = have = r["per_task"]
        return have[:tasks]

    def write(self, name: str, data: dict, rows: list[dict] | None = None) -> None:
        from repsim.results import provenance, write_csv, write_json

        write_json(
            self.results / f"{name}.json",
            {
                **data,
                "provenance": provenance(
                    settings=dataclasses.asdict(self.s), checkpoints=str(self.root)
                ),
            },
        )
        if rows:
            write_csv(self.results / f"{name}.csv", rows)


def _pct(summary: dict) -> str:
    return f"{100 * summary['mean']:.1f} ± {100 * summary['half_width']:.1f}"


def table1_freezing(rp: Reproduction) -> dict:
    """Accuracy with conv1..convK frozen at test time, MAML seeds at the common iteration."""
    from repsim.results import mean_ci

    rows, per = [], {}
    for k, label in enumerate(FREEZE_LABELS):
        accs = []
        for run in rp.runs_of("maml"):
            a = rp.accuracies(
                run.checkpoint_at(rp.common, rp.root), freeze=k, tasks=rp.s.freeze_tasks
            )
            accs += a
            rows.append({"frozen": label, "seed": run.seed, **mean_ci(a)})
        per[label] = mean_ci(accs)
    rp.write(
        "table1_freezing",
        {
            "iteration": rp.common,
            "summary": per,
            "paper_miniimagenet_5w1s": PAPER["table1_freezing_miniimagenet_5w1s"],
        },
        rows,
    )
    _plot_freezing(per, rp.figures / "table1_freezing")
    return per


def figure2_similarity(rp: Reproduction) -> dict:
    """CCA and CKA of each layer before vs after the inner loop (MAML and ANIL seeds)."""
    from repsim.checkpoint import load_meta_learner
    from repsim.figures import plot_layer_similarity
    from repsim.results import summarise

    out = {}
    all_rows = []
    for algorithm in ("maml", "anil"):
        records = []
        for run in rp.runs_of(algorithm):
            change = _change(rp, load_meta_learner(run.checkpoint_at(rp.common, rp.root)))
            records += [{**r, "seed": run.seed, "algorithm": algorithm} for r in change.records]
        summary = summarise(records, ("layer", "measure"))
        out[algorithm] = summary
        all_rows += [{"algorithm": algorithm, **r} for r in summary]
        plot_layer_similarity(
            summary,
            LAYERS,
            rp.figures / f"figure2_{algorithm}",
            title=f"{algorithm.upper()}: before vs after the inner loop",
        )
    rp.write("figure2_similarity", {"iteration": rp.common, "summary": out}, all_rows)
    return out


def _change(rp: Reproduction, learner, tasks: int | None = None):
    from repsim.representation import representation_change

    n = tasks or rp.s.similarity_tasks
    return representation_change(
        learner,
        [rp.sampler.task(i) for i in range(n)],
        measures=("cca", "cka"),
        warn=lambda msg: None,
    )


def figure3_training(rp: Reproduction) -> dict:
    """Along training (MAML seed 0): freezing accuracy, per-layer CCA and weight movement."""
    from repsim.checkpoint import load_meta_learner
    from repsim.results import mean_ci

    run = rp.runs_of("maml")[0]
    iterations = sorted([*run.checkpoints, run.iterations])
    rows, moves = [], []
    for it in iterations:
        path = run.checkpoint_at(it, rp.root)
        acc_none = mean_ci(rp.accuracies(path, freeze=0, tasks=rp.s.training_tasks))
        acc_frozen = mean_ci(rp.accuracies(path, freeze=4, tasks=rp.s.training_tasks))
        change = _change(rp, load_meta_learner(path))
        cca = {r["layer"]: r for r in change.summary() if r["measure"] == "cca"}
        rows.append(
            {
                "iteration": it,
                "acc_none": acc_none["mean"],
                "acc_none_ci": acc_none["half_width"],
                "acc_conv1_4": acc_frozen["mean"],
                "acc_conv1_4_ci": acc_frozen["half_width"],
                **{f"cca_{lyr}": cca[lyr]["mean"] for lyr in LAYERS if lyr in cca},
            }
        )
        moves += [{"iteration": it, **m} for m in change.movement_summary()]
    rp.write("figure3_training", {"run": run.name, "rows": rows}, rows)
    rp.write("weight_movement", {"run": run.name, "rows": moves}, moves)
    _plot_training(rows, moves, rp.figures / "figure3_training", rp.figures / "weight_movement")
    return {"rows": rows, "movement": moves}


def table2_maml_vs_anil(rp: Reproduction) -> dict:
    """MAML vs ANIL test accuracy (every seed at the common iteration, and each run's final)."""
    from repsim.results import mean_ci

    out, rows = {}, []
    for algorithm in ("maml", "anil"):
        accs = []
        for run in rp.runs_of(algorithm):
            a = rp.accuracies(run.checkpoint_at(rp.common, rp.root))
            accs += a
            rows.append(
                {"algorithm": algorithm, "seed": run.seed, "iteration": rp.common, **mean_ci(a)}
            )
            if run.iterations != rp.common:
                f = mean_ci(rp.accuracies(rp.root / run.final))
                rows.append(
                    {"algorithm": algorithm, "seed": run.seed, "iteration": run.iterations, **f}
                )
                out[f"{algorithm}_seed{run.seed}_final"] = {**f, "iteration": run.iterations}
        out[algorithm] = mean_ci(accs)
    rp.write(
        "table2_maml_vs_anil",
        {
            "iteration": rp.common,
            "summary": out,
            "paper_omniglot_20w1s": PAPER["table2_omniglot_20w1s"],
        },
        rows,
    )
    _plot_learning_curves(rp, rp.figures / "figure5_learning_curves")
    return out


def table3_seed_similarity(rp: Reproduction) -> dict:
    """CCA / CKA between the meta-inits of different seeds: MAML-MAML, ANIL-ANIL, ANIL-MAML."""
    from repsim.capture import capture
    from repsim.checkpoint import load_checkpoint
    from repsim.results import mean_ci
    from repsim.similarity import get_measure

    models = {
        (r.algorithm, r.seed): load_checkpoint(r.checkpoint_at(rp.common, rp.root))[0]
        for r in rp.meta_runs
    }
    inputs = [
        torch.cat([t.support_x, t.query_x])
        for t in (rp.sampler.task(i) for i in range(rp.s.compare_tasks))
    ]
    acts = {key: [capture(m, x) for x in inputs] for key, m in models.items()}
    maml = [k for k in models if k[0] == "maml"]
    anil = [k for k in models if k[0] == "anil"]
    pairs = {
        "MAML-MAML": list(itertools.combinations(maml, 2)),
        "ANIL-ANIL": list(itertools.combinations(anil, 2)),
        "ANIL-MAML": [(a, m) for a in anil for m in maml if a[1] != m[1]],
    }
    rows, out = [], {}
    for label, plist in pairs.items():
        if not plist:
            continue
        out[label] = {}
        for measure in ("cca", "cka"):
            fn = get_measure(measure)
            per_layer = {}
            for layer in LAYERS:
                vals = [
                    float(fn(acts[a][i][layer].double(), acts[b][i][layer].double()))
                    for a, b in plist
                    for i in range(len(inputs))
                ]
                per_layer[layer] = mean_ci(vals)
                rows.append({"pair": label, "measure": measure, "layer": layer, **per_layer[layer]})
            body = float(np.mean([per_layer[lyr]["mean"] for lyr in BODY]))
            out[label][measure] = {"body": body, "per_layer": per_layer}
    rp.write(
        "table3_seed_similarity",
        {"iteration": rp.common, "summary": out, "paper": PAPER["table3_body_similarity"]},
        rows,
    )
    return out


def speed(rp: Reproduction) -> dict:
    """Seconds per training iteration (the trainer's own path: vmap for MAML on CPU, the
    body-once loop for ANIL) and per test-time adaptation, ANIL vs MAML, 1 thread."""
    from repsim import inner_loop
    from repsim.checkpoint import load_checkpoint
    from repsim.data import TaskSampler
    from repsim.models import adapted_parameter_names
    from repsim.train import TrainConfig, episodic_loss, use_vmap

    run = rp.runs_of("maml")[0]
    model, record = load_checkpoint(rp.root / run.final)
    tr = record["train"]
    train_shaped = TaskSampler(rp.sampler.classes, tr["ways"], tr["shots"], tr["queries"])
    batch = train_shaped.batch(range(tr["meta_batch"]))
    task = rp.sampler.task(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for algorithm in ("maml", "anil"):
            cfg = TrainConfig(**{**_config_fields(tr), "algorithm": algorithm})
            names = adapted_parameter_names(model, algorithm)
            params = dict(model.named_parameters())

            def train_step(params=params, names=names, cfg=cfg):
                episodic_loss(model, params, batch, cfg, names, use_vmap(cfg), backward=True)
                model.zero_grad(set_to_none=True)

            def test_adapt(params=params, names=names):
                p = {n: v.detach() for n, v in params.items()}
                fast = inner_loop.adapt(
                    model,
                    p,
                    task.support_x,
                    task.support_y,
                    names,
                    tr["inner_lr"],
                    tr["test_inner_steps"],
                )
                inner_loop.forward(model, fast, task.query_x)

            out[algorithm] = {
                "train_step_s": _median_time(train_step, rp.s.speed_repeats),
                "test_adapt_s": _median_time(test_adapt, 3 * rp.s.speed_repeats),
                "vmap": use_vmap(cfg),
            }
    finally:
        torch.set_num_threads(old)
    out["speedup_train"] = out["maml"]["train_step_s"] / out["anil"]["train_step_s"]
    out["speedup_test"] = out["maml"]["test_adapt_s"] / out["anil"]["test_adapt_s"]
    out["setting"] = {
        k: tr[k]
        for k in ("ways", "shots", "queries", "meta_batch", "inner_steps", "test_inner_steps")
    }
    rows = [{"algorithm": a, **out[a]} for a in ("maml", "anil")]
    rp.write("speed", {"summary": out, "paper": PAPER["speedup"], "threads": 1}, rows)
    return out


def _config_fields(record_train: dict) -> dict:
    """The ``TrainConfig`` fields of a checkpoint's train record (drops derived keys)."""
    from repsim.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in record_train.items() if k in names}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def table4_nil(rp: Reproduction, table2: dict) -> dict:
    """NIL (no head: cosine similarity to the support features) vs MAML vs ANIL."""
    from repsim.results import mean_ci

    out = {"maml": table2["maml"], "anil": table2["anil"]}
    rows = []
    for algorithm in ("anil", "maml"):
        accs = []
        for run in rp.runs_of(algorithm):
            a = rp.accuracies(run.checkpoint_at(rp.common, rp.root), head="nil")
            accs += a
            rows.append({"trained_with": algorithm, "head": "nil", "seed": run.seed, **mean_ci(a)})
        out[f"nil_on_{algorithm}"] = mean_ci(accs)
    rp.write(
        "table4_nil",
        {
            "iteration": rp.common,
            "summary": out,
            "paper_omniglot_20w1s": PAPER["table4_omniglot_20w1s"],
        },
        rows,
    )
    return out


def table5_regimes(rp: Reproduction) -> dict:
    """Each training regime's body with the NIL head and with an adapted head."""
    from repsim.results import mean_ci

    out, rows = {}, []
    for regime in ("maml", "anil", "multiclass", "multitask", "nil", "random"):
        runs = rp.runs_of(regime)
        if not runs:
            continue
        run = runs[0]
        path = (
            run.checkpoint_at(rp.common, rp.root)
            if regime in ("maml", "anil")
            else rp.root / run.final
        )
        out[regime] = {head: mean_ci(rp.accuracies(path, head=head)) for head in ("nil", "adapt")}
        rows += [{"regime": regime, "head": h, **v} for h, v in out[regime].items()]
    rp.write(
        "table5_regimes",
        {
            "summary": out,
            "paper_nil_head_miniimagenet_5w1s": PAPER["table5_nil_head_miniimagenet_5w1s"],
        },
        rows,
    )
    return out


# --- plots ------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def _save(fig, stem: Path) -> None:
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"{stem}.{ext}", dpi=150)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _plot_freezing(per: dict, stem: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    labels = list(per)
    ax.errorbar(
        range(len(labels)),
        [100 * per[k]["mean"] for k in labels],
        yerr=[100 * np.nan_to_num(per[k]["half_width"]) for k in labels],
        marker="o",
        capsize=3,
    )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("layers frozen in the inner loop (test time)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Table 1: freezing layers at test time (MAML)", fontsize=9)
    _save(fig, stem)


def _plot_training(rows: list[dict], moves: list[dict], stem: Path, move_stem: Path) -> None:
    plt = _plt()
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
    for lyr in LAYERS:
        ax.plot(its, [r.get(f"cca_{lyr}", math.nan) for r in rows], marker="o", label=lyr)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("CCA before vs after adaptation")
    ax.legend(fontsize=7)
    ax.set_title("Representation change along training", fontsize=9)
    _save(fig, stem)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for lyr in LAYERS:
        pts = [(m["iteration"], m["rel_mean"]) for m in moves if m["layer"] == lyr]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=lyr)
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("||θ - θ'|| / ||θ|| in the inner loop")
    ax.legend(fontsize=7)
    ax.set_title("Weight movement per layer", fontsize=9)
    _save(fig, move_stem)


def _plot_learning_curves(rp: Reproduction, stem: Path) -> None:
    from repsim.train import read_metrics

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    colours = {"maml": "tab:blue", "anil": "tab:orange"}
    for run in rp.meta_runs:
        if not run.metrics or not (rp.root / run.metrics).exists():
            continue
        pts = [
            (r["iteration"], 100 * r["val_accuracy"])
            for r in read_metrics(rp.root / run.metrics)
            if "val_accuracy" in r
        ]
        if pts:
            ax.plot(
                *zip(*pts),
                marker=".",
                color=colours[run.algorithm],
                alpha=0.8,
                label=f"{run.algorithm.upper()} seed {run.seed}",
            )
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("Figure 5: MAML vs ANIL learning curves", fontsize=9)
    _save(fig, stem)


# --- the report -------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "holds" if ok else "does not hold at our scale"


def claims(fig2, t1, t2, t4, t5, sp) -> list[dict]:
    """The headline claims, our numbers beside the paper's, and a verdict from the numbers."""
    cca = {r["layer"]: r["mean"] for r in fig2["maml"] if r["measure"] == "cca"}
    body_min = min(cca[lyr] for lyr in BODY)
    drop = 100 * (t1["none"]["mean"] - t1["conv1-4"]["mean"])
    gap = 100 * (t2["maml"]["mean"] - t2["anil"]["mean"])
    nil_gap = 100 * (t4["anil"]["mean"] - t4["nil_on_anil"]["mean"])
    out = [
        {
            "claim": "Feature reuse: body CCA >= 0.9 and head CCA <= 0.6 before vs after",
            "ours": f"body min {body_min:.3f} ("
            + ", ".join(f"{lyr} {cca[lyr]:.3f}" for lyr in BODY)
            + f"); head {cca['head']:.3f}",
            "paper": "body > 0.9, head < 0.5 (MiniImageNet)",
            "verdict": _verdict(body_min >= 0.9 and cca["head"] <= 0.6),
        },
        {
            "claim": "Freezing all four conv layers at test time costs <= 2 points",
            "ours": f"{100 * t1['none']['mean']:.1f} -> {100 * t1['conv1-4']['mean']:.1f} "
            f"(drop {drop:.1f})",
            "paper": "44.5 -> 44.7 (MiniImageNet 5w1s)",
            "verdict": _verdict(drop <= 2.0),
        },
        {
            "claim": "ANIL within 2 points of MAML",
            "ours": f"MAML {_pct(t2['maml'])}, ANIL {_pct(t2['anil'])} (MAML - ANIL {gap:+.1f})",
            "paper": "MAML 93.7, ANIL 96.2 (Omniglot 20w1s)",
            "verdict": _verdict(abs(gap) <= 2.0),
        },
        {
            "claim": "NIL within 2.5 points of ANIL",
            "ours": f"ANIL {_pct(t4['anil'])}, NIL {_pct(t4['nil_on_anil'])} "
            f"(ANIL - NIL {nil_gap:+.1f})",
            "paper": "ANIL 96.2, NIL 96.7 (Omniglot 20w1s)",
            "verdict": _verdict(abs(nil_gap) <= 2.5),
        },
    ]
    paper5 = PAPER["table5_nil_head_miniimagenet_5w1s"]
    regimes = [r for r in paper5 if r in t5]
    ours_order = sorted(regimes, key=lambda r: -t5[r]["nil"]["mean"])
    paper_order = sorted(regimes, key=lambda r: -paper5[r])
    meta_first = set(ours_order[:2]) == {"maml", "anil"} if len(regimes) > 2 else False
    out.append(
        {
            "claim": "Training regimes ordered as in the paper (NIL head): meta-learned "
            "bodies best",
            "ours": " > ".join(f"{r} {100 * t5[r]['nil']['mean']:.1f}" for r in ours_order),
            "paper": " > ".join(f"{r} {paper5[r]}" for r in paper_order),
            "verdict": (
                "holds (same order)"
                if ours_order == paper_order
                else "partly: MAML/ANIL best, order of baselines differs"
                if meta_first
                else "does not hold at our scale"
            ),
        }
    )
    out.append(
        {
            "claim": "ANIL is faster than MAML (paper: 1.7x training, 4.1x inference)",
            "ours": f"{sp['speedup_train']:.1f}x training, {sp['speedup_test']:.1f}x "
            "test-time adaptation",
            "paper": "1.7x, 4.1x",
            "verdict": _verdict(sp["speedup_train"] >= 1.7 and sp["speedup_test"] >= 4.1),
        }
    )
    return out


def _display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (reports stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_report(rp: Reproduction, cl: list[dict], t1, fig2, t2, t3, sp, t4, t5, fig3) -> Path:
    tr = rp.record.get("train", {})
    lines = [
        "# Rapid learning or feature reuse? Our reproduction beside the paper",
        "",
        f"Checkpoints: `{_display_path(rp.root)}` ({len(rp.runs)} runs). "
        f"Setting: {tr.get('dataset')} "
        f"{tr.get('ways')}-way {tr.get('shots')}-shot, {tr.get('split')} split, inner lr "
        f"{tr.get('inner_lr')} (mean CE), {tr.get('inner_steps')} / "
        f"{tr.get('test_inner_steps')} inner steps (train / test). Seeds are compared at their "
        f"common iteration {rp.common}. Accuracies: mean ± 95 % CI over test tasks "
        f"({rp.s.accuracy_tasks} per seed; freezing {rp.s.freeze_tasks}). The paper's numbers "
        "are for its own settings (Omniglot 20-way, MiniImageNet); compare claims, not digits.",
        "",
        "## Claims",
        "",
        "| claim | ours | paper | verdict |",
        "|---|---|---|---|",
        *[f"| {c['claim']} | {c['ours']} | {c['paper']} | {c['verdict']} |" for c in cl],
        "",
        "## Table 1: test-time freezing (MAML)",
        "",
        "| frozen | ours (%) | paper, MiniImageNet 5w1s (%) |",
        "|---|---|---|",
        *[
            f"| {k} | {_pct(v)} | {PAPER['table1_freezing_miniimagenet_5w1s'][k]} |"
            for k, v in t1.items()
        ],
        "",
        "![Table 1](../figures/table1_freezing.png)",
        "",
        "## Figure 2: similarity before vs after the inner loop",
        "",
        "| layer | MAML CCA | MAML CKA | ANIL CCA | ANIL CKA |",
        "|---|---|---|---|---|",
    ]
    get = {(a, r["layer"], r["measure"]): r["mean"] for a in fig2 for r in fig2[a]}
    for lyr in LAYERS:
        lines.append(
            f"| {lyr} | "
            + " | ".join(
                f"{get.get((a, lyr, m), math.nan):.3f}"
                for a in ("maml", "anil")
                for m in ("cca", "cka")
            )
            + " |"
        )
    lines += [
        "",
        "![Figure 2](../figures/figure2_maml.png)",
        "",
        "## Figure 3 and weight movement: along training (MAML seed 0)",
        "",
        "| iteration | acc (%) | acc, conv1-4 frozen (%) | "
        + " | ".join(f"CCA {lyr}" for lyr in LAYERS)
        + " |",
        "|---|---|---|" + "---|" * len(LAYERS),
    ]
    for r in fig3["rows"]:
        lines.append(
            f"| {r['iteration']} | {100 * r['acc_none']:.1f} | "
            f"{100 * r['acc_conv1_4']:.1f} | "
            + " | ".join(f"{r.get(f'cca_{lyr}', math.nan):.3f}" for lyr in LAYERS)
            + " |"
        )
    lines += [
        "",
        "![Figure 3](../figures/figure3_training.png)",
        "![Weight movement](../figures/weight_movement.png)",
        "",
        "## Table 2: MAML vs ANIL",
        "",
        "| algorithm | ours (%) | paper, Omniglot 20w1s (%) |",
        "|---|---|---|",
        f"| MAML | {_pct(t2['maml'])} | 93.7 ± 0.7 |",
        f"| ANIL | {_pct(t2['anil'])} | 96.2 ± 0.5 |",
    ]
    for k, v in t2.items():
        if k.endswith("_final"):
            lines.append(f"| {k} (iteration {v['iteration']}) | {_pct(v)} | |")
    lines += [
        "",
        "![Figure 5](../figures/figure5_learning_curves.png)",
        "",
        "## Table 3: similarity across seeds (body average)",
        "",
        "| pair | CCA | CKA | paper CCA | paper CKA |",
        "|---|---|---|---|---|",
    ]
    for label, v in t3.items():
        p = PAPER["table3_body_similarity"][label]
        lines.append(
            f"| {label} | {v['cca']['body']:.3f} | {v['cka']['body']:.3f} | "
            f"{p['cca']} | {p['cka']} |"
        )
    lines += [
        "",
        "## Speed: ANIL vs MAML (1 CPU thread)",
        "",
        "| | MAML (s) | ANIL (s) | speed-up | paper |",
        "|---|---|---|---|---|",
        f"| training iteration | {sp['maml']['train_step_s']:.3f} | "
        f"{sp['anil']['train_step_s']:.3f} | {sp['speedup_train']:.1f}x | 1.7x |",
        f"| test-time adaptation | {sp['maml']['test_adapt_s']:.4f} | "
        f"{sp['anil']['test_adapt_s']:.4f} | {sp['speedup_test']:.1f}x | 4.1x |",
        "",
        "## Table 4: NIL",
        "",
        "| method | ours (%) | paper, Omniglot 20w1s (%) |",
        "|---|---|---|",
        f"| MAML | {_pct(t4['maml'])} | 93.7 |",
        f"| ANIL | {_pct(t4['anil'])} | 96.2 |",
        f"| NIL (ANIL-trained body) | {_pct(t4['nil_on_anil'])} | 96.7 |",
        f"| NIL (MAML-trained body) | {_pct(t4['nil_on_maml'])} | |",
        "",
        "## Table 5: training regimes",
        "",
        "| regime | NIL head (%) | adapted head (%) | paper, NIL head, MiniImageNet 5w1s |",
        "|---|---|---|---|",
    ]
    for regime, v in t5.items():
        lines.append(
            f"| {regime} | {_pct(v['nil'])} | {_pct(v['adapt'])} | "
            f"{PAPER['table5_nil_head_miniimagenet_5w1s'].get(regime, '')} |"
        )
    from repsim.provenance import code_version

    lines += ["", f"Generated by `repsim reproduce` ({code_version()}).", ""]
    path = rp.results / "report.md"
    path.write_text("\n".join(lines))
    return path


def reproduce(
    ckpt_dir: str | Path, out: str | Path, settings: Settings | None = None, progress: bool = True
) -> Path:
    """Run every analysis; returns the report's path."""
    rp = Reproduction(ckpt_dir, out, settings or Settings(), progress)
    rp.say("Figure 2: similarity before vs after adaptation")
    fig2 = figure2_similarity(rp)
    rp.say("Table 1: test-time freezing")
    t1 = table1_freezing(rp)
    rp.say("Table 2 / Figure 5: MAML vs ANIL")
    t2 = table2_maml_vs_anil(rp)
    rp.say("Table 3: similarity across seeds")
    t3 = table3_seed_similarity(rp)
    rp.say("Table 4: NIL")
    t4 = table4_nil(rp, t2)
    rp.say("Table 5: training regimes")
    t5 = table5_regimes(rp)
    rp.say("Figure 3 / weight movement: along training")
    fig3 = figure3_training(rp)
    rp.say("Speed: ANIL vs MAML")
    sp = speed(rp)
    cl = claims(fig2, t1, t2, t4, t5, sp)
    rp.write("claims", {"claims": cl}, cl)
    path = write_report(rp, cl, t1, fig2, t2, t3, sp, t4, t5, fig3)
    rp.say(f"report: {path}")
    return path


def train_quick_checkpoints(
    ckpt_dir: str | Path, data_dir: str | None = None, iterations: int = 6, progress: bool = False
) -> list[Run]:
    """Tiny real runs (MAML and ANIL x 2 seeds, every baseline regime) for ``--quick``."""
    import shutil

    from repsim.train import TrainConfig, train

    root = Path(ckpt_dir)
    root.mkdir(parents=True, exist_ok=True)
    runs = []
    specs = [
        ("maml", 0),
        ("maml", 1),
        ("anil", 0),
        ("anil", 1),
        ("multiclass", 0),
        ("multitask", 0),
        ("nil", 0),
        ("random", 0),
    ]
    for algorithm, seed in specs:
        name = f"{algorithm}_seed{seed}"
        cfg = TrainConfig(
            algorithm=algorithm,
            seed=seed,
            ways=5,
            shots=1,
            queries=2,
            meta_batch=2,
            inner_steps=1,
            test_inner_steps=3,
            iterations=iterations,
            val_every=iterations,
            val_tasks=2,
            save_every=iterations,
            log_every=1,
            multiclass_batch=16,
            checkpoint_at=[iterations // 2],
            data_dir=data_dir,
        )
        run_dir = root / name
        final = train(cfg, run_dir, progress=progress)
        for extra in run_dir.glob("last*.safetensors"):
            extra.unlink()
        checkpoints = {
            int(p.stem.split("_")[1]): f"{name}/{p.name}"
            for p in sorted(run_dir.glob("iter_*.safetensors"))
        }
        runs.append(
            Run(
                name,
                algorithm,
                seed,
                iterations,
                f"{name}/{final.name}",
                checkpoints,
                f"{name}/metrics.jsonl",
            )
        )
        shutil.rmtree(run_dir / "__pycache__", ignore_errors=True)
    write_manifest(root, runs, note="tiny runs trained by `repsim reproduce --quick`")
    return runs
