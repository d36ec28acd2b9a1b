"""The analyses of the reproduction: each computes its numbers from checkpoints and writes them
as JSON and CSV under ``OUT/results/<setting>/`` (with provenance). Nothing here plots or
renders; the figures (:mod:`repsim.reproduce.figures`) and the report
(:mod:`repsim.reproduce.report`) read these files.

Runs of different lengths are compared at their common iteration (:func:`common_iteration`:
the latest at which every MAML and ANIL run has a checkpoint), so seeds compare like with like.
Along training (:func:`run_along`), the analyses that a claim reads are repeated at every
iteration the runs share (:func:`along_iterations`), each into ``<setting>/along/<iteration>/``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from repsim.errors import InputError
from repsim.reproduce.paper import FREEZE_LABELS
from repsim.reproduce.runs import Run, Settings, read_manifest, setting_of

BODY = ("conv1", "conv2", "conv3", "conv4")
LAYERS = (*BODY, "head")
# The measures of Figure 2, Figure 3 and Table 3: plain mean CCA, the paper's CCA (google/svcca's
# mean truncated at 98 % of the coefficients' sum), SVCCA (99 %) and linear CKA.
MEASURES = ("cca", "cca98", "svcca", "cka")
VERDICT_MEASURE = "cca98"  # what the paper's code computes: the verdicts use it


class Reproduction:
    """One checkpoint folder (one setting): its runs, the test tasks, an accuracy cache (each
    (checkpoint, head, freeze) is evaluated once across tables) and where results go."""

    def __init__(
        self,
        ckpt_dir: str | Path,
        out: str | Path,
        settings: Settings,
        progress=True,
        at: int | None = None,
    ):
        """``at``: compare every run at this iteration (one of :func:`along_iterations`), and
        write into ``results/<setting>/along/<at>/``; by default at the common iteration."""
        from repsim.checkpoint import load_checkpoint, read_record
        from repsim.evaluate import test_sampler_for

        self.root = Path(ckpt_dir)
        self.runs = read_manifest(self.root)
        self.s = settings
        self.progress = progress
        _, self.record = load_checkpoint(self.root / self.runs[0].final)
        self.setting = setting_of(self.record)
        self.results = Path(out) / "results" / self.setting
        if at is not None:
            self.results = self.results / "along" / f"{at:06d}"
        self.results.mkdir(parents=True, exist_ok=True)
        self.sampler = test_sampler_for(self.record, settings.data_dir, seed=settings.seed)
        self.meta_runs = [r for r in self.runs if r.algorithm in ("maml", "anil")]
        if not any(r.algorithm == "maml" for r in self.runs):
            raise InputError(
                f"{self.root}/manifest.json lists no MAML run: the analyses compare against MAML"
            )
        self.common = common_iteration(self.meta_runs, self.root)
        self.along = at is not None
        if self.along:
            if at not in along_iterations(self.meta_runs):
                raise InputError(
                    f"not every MAML and ANIL run of {self.root} has a checkpoint at iteration "
                    f"{at}; they share {along_iterations(self.meta_runs)}"
                )
            self.common = at
        self.devices = {  # where each run was trained (older records: the CPU)
            r.name: read_record(self.root / r.final).get("device", {}).get("type", "cpu")
            for r in self.runs
        }
        self._acc: dict[tuple, list[float]] = {}
        self.started = time.perf_counter()

    def runs_of(self, algorithm: str) -> list[Run]:
        return sorted((r for r in self.runs if r.algorithm == algorithm), key=lambda r: r.seed)

    def at_common(self, run: Run) -> Path:
        return run.checkpoint_at(self.common, self.root)

    def baseline_checkpoint(self, run: Run) -> Path | None:
        """A baseline regime's checkpoint for Table 5: its final one; along training, the one at
        the iteration compared (an untrained ``random`` body is the same at every iteration),
        or None when it has none there."""
        if not self.along or run.algorithm == "random":
            return self.root / run.final
        if self.common == run.iterations or self.common in run.checkpoints:
            return run.checkpoint_at(self.common, self.root)
        return None

    def say(self, text: str) -> None:
        if self.progress:
            print(
                f"[{time.perf_counter() - self.started:6.0f}s] {self.setting}: {text}", flush=True
            )

    def bar(self, iterable=None, desc: str = "", total: int | None = None, unit: str = "task"):
        """A progress bar for a stage of an analysis (:func:`repsim.progress.bar`: on a
        terminal only), when the reproduction reports progress."""
        from repsim.progress import bar

        return bar(iterable, desc, total, unit, enabled=self.progress)

    def accuracies(
        self, path: Path, head: str = "adapt", freeze: int = 0, tasks: int | None = None
    ) -> list[float]:
        """Per-task query accuracies of a checkpoint on the fixed test tasks ``0..tasks-1``."""
        from repsim.checkpoint import load_checkpoint
        from repsim.evaluate import evaluate_model
        from repsim.progress import shown

        tasks = tasks or self.s.accuracy_tasks
        key = (str(path), head, freeze)
        have = self._acc.get(key, [])
        if len(have) < tasks:
            model, record = load_checkpoint(path)
            r = evaluate_model(  # its bar only on a terminal, as every bar of the reproduction
                model, record, self.sampler, tasks, freeze, head, progress=shown(self.progress)
            )
            self._acc[key] = have = r["per_task"]
        return have[:tasks]

    def tasks(self, n: int) -> list:
        return [self.sampler.task(i) for i in range(n)]

    def write(self, name: str, data: dict, rows: list[dict] | None = None) -> dict:
        from repsim.results import provenance, write_csv, write_json

        tr = self.record.get("train", {})
        data = {
            "setting": self.setting,
            "train": {
                k: tr.get(k)
                for k in (
                    "dataset",
                    "ways",
                    "shots",
                    "inner_lr",
                    "inner_steps",
                    "test_inner_steps",
                    "meta_batch",
                    "task_rotations",
                    "head_init",
                    "norm_affine",
                )
            },
            "runs": {
                r.name: {"iterations": r.iterations, "device": self.devices[r.name]}
                for r in self.runs
            },
            **data,
        }
        write_json(
            self.results / f"{name}.json",
            {
                **data,
                "provenance": provenance(
                    settings=dataclasses.asdict(self.s), checkpoints=self.root.name
                ),
            },
        )
        if rows:
            write_csv(self.results / f"{name}.csv", rows)
        return data


def along_iterations(runs: list[Run]) -> list[int]:
    """Every iteration at which all ``runs`` have a checkpoint, ascending."""
    have = [set(r.checkpoints) | {r.iterations} for r in runs]
    return sorted(set.intersection(*have)) if have else []


def common_iteration(runs: list[Run], root: Path) -> int:
    """The latest iteration at which every run has a checkpoint (its final one or one along
    training): runs of different lengths, or still training, are compared there."""
    shared = along_iterations(runs)
    if not shared:
        have = [set(r.checkpoints) | {r.iterations} for r in runs]
        raise InputError(
            f"the runs in {root}/manifest.json share no checkpoint iteration "
            f"({ {r.name: sorted(h) for r, h in zip(runs, have)} }); keep checkpoints at common "
            "iterations (--checkpoint-at) to compare them"
        )
    return max(shared)


def _change(rp: Reproduction, path: Path, measures=MEASURES, chance: bool = True, desc=""):
    from repsim.checkpoint import load_meta_learner
    from repsim.representation import representation_change

    return representation_change(
        load_meta_learner(path),
        rp.bar(rp.tasks(rp.s.similarity_tasks), desc or path.stem),
        measures=measures,
        warn=lambda msg: None,
        chance=rp.s.chance_permutations if chance else 0,
    )


def freezing(rp: Reproduction) -> dict:
    """Table 1: MAML's accuracy with conv1..convK frozen at test time (seeds pooled)."""
    from repsim.results import mean_ci

    rows, per = [], {}
    for k, label in enumerate(FREEZE_LABELS):
        accs = []
        for run in rp.runs_of("maml"):
            a = rp.accuracies(rp.at_common(run), freeze=k, tasks=rp.s.freeze_tasks)
            accs += a
            rows.append({"frozen": label, "seed": run.seed, **mean_ci(a)})
        per[label] = mean_ci(accs)
    return rp.write("table1_freezing", {"iteration": rp.common, "summary": per}, rows)


def before_after(rp: Reproduction) -> dict:
    """Figure 2: every layer before vs after the inner loop, MAML and ANIL seeds, with chance."""
    from repsim.results import summarise

    out, all_rows = {}, []
    for algorithm in ("maml", "anil"):
        runs = rp.runs_of(algorithm)
        if not runs:
            continue  # a folder with MAML only draws no ANIL figure
        records = []
        for run in runs:
            change = _change(rp, rp.at_common(run), desc=f"Figure 2: {run.name}")
            records += [{**r, "seed": run.seed} for r in change.records]
        summary = summarise(records, ("layer", "measure"))
        chance = {
            (r["layer"], r["measure"]): r["mean"]
            for r in summarise(records, ("layer", "measure"), "chance")
        }
        summary = [{**r, "chance": chance[(r["layer"], r["measure"])]} for r in summary]
        out[algorithm] = summary
        all_rows += [{"algorithm": algorithm, **r} for r in summary]
    return rp.write(
        "figure2_similarity",
        {"iteration": rp.common, "measures": list(MEASURES), "summary": out},
        all_rows,
    )


def along_training(rp: Reproduction) -> dict:
    """Figure 3 and Appendix B.3: along MAML seed 0's training, the accuracy with and without
    conv1-4 frozen, each layer's similarity before vs after (with chance), weight movement."""
    from repsim.results import mean_ci

    run = rp.runs_of("maml")[0]
    iterations = sorted([*run.checkpoints, run.iterations])
    rows, moves = [], []
    for it in iterations:
        path = run.checkpoint_at(it, rp.root)
        acc_none = mean_ci(rp.accuracies(path, freeze=0, tasks=rp.s.training_tasks))
        acc_frozen = mean_ci(rp.accuracies(path, freeze=4, tasks=rp.s.training_tasks))
        change = _change(rp, path, ("cca", "cca98", "cka"), desc=f"Figure 3: iteration {it}")
        summary = change.summary()
        row = {
            "iteration": it,
            "fraction": it / run.iterations,
            "acc_none": acc_none["mean"],
            "acc_none_ci": acc_none["half_width"],
            "acc_conv1_4": acc_frozen["mean"],
            "acc_conv1_4_ci": acc_frozen["half_width"],
        }
        for r in summary:
            row[f"{r['measure']}_{r['layer']}"] = r["mean"]
            row[f"{r['measure']}_{r['layer']}_chance"] = r["chance"]
        rows.append(row)
        moves += [{"iteration": it, **m} for m in change.movement_summary()]
    rp.write(
        "weight_movement", {"run": run.name, "iterations": run.iterations, "rows": moves}, moves
    )
    return rp.write(
        "figure3_training", {"run": run.name, "iterations": run.iterations, "rows": rows}, rows
    )


def _training_tail(rp: Reproduction, run: Run, key: str, tail: float = 0.1) -> float | None:
    """Mean of a logged training number (``loss`` or ``accuracy``: the query loss or accuracy
    after the training inner loop, on the meta-batch's training tasks) over the last ``tail``
    of a run's iterations, up to the common iteration."""
    rows = _metrics(rp, run)
    late = [r[key] for r in rows if key in r and r["iteration"] > (1 - tail) * rp.common]
    return float(np.mean(late)) if late else None


def _metrics(rp: Reproduction, run: Run) -> list[dict]:
    """A run's metrics log up to the common iteration (none when the run has no log)."""
    from repsim.run_log import read_metrics

    if not run.metrics or not (rp.root / run.metrics).exists():
        return []
    return [r for r in read_metrics(rp.root / run.metrics) if r["iteration"] <= rp.common]


def _fit(rp: Reproduction, run: Run) -> dict:
    """Underfitting or overfitting: a run's query accuracy on its training tasks (the last 10 %
    of the logged iterations, after the training inner loop) beside its last validation
    accuracy (fixed validation tasks, the test inner loop), both up to the common iteration."""
    val = [r for r in _metrics(rp, run) if "val_accuracy" in r]
    train = _training_tail(rp, run, "accuracy")
    last = val[-1] if val else None
    return {
        "algorithm": run.algorithm,
        "seed": run.seed,
        "train_query_accuracy": train,
        "val_accuracy": last["val_accuracy"] if last else None,
        "val_iteration": last["iteration"] if last else None,
        "gap": train - last["val_accuracy"] if last and train is not None else None,
    }


def _curve(rp: Reproduction, run: Run, points: int = 200) -> dict:
    """A run's learning curve from its metrics log: training loss (at most ``points`` rows)
    and validation accuracy against iteration."""
    from repsim.run_log import read_metrics

    out = {"algorithm": run.algorithm, "seed": run.seed, "loss": [], "val_accuracy": []}
    if not run.metrics or not (rp.root / run.metrics).exists():
        return out
    rows = read_metrics(rp.root / run.metrics)
    loss = [(r["iteration"], r["loss"]) for r in rows if "loss" in r]
    step = max(1, len(loss) // points)
    out["loss"] = loss[::step]
    out["val_accuracy"] = [(r["iteration"], r["val_accuracy"]) for r in rows if "val_accuracy" in r]
    return out


def maml_vs_anil(rp: Reproduction) -> dict:
    """Table 2: MAML vs ANIL test accuracy (seeds pooled, at the common iteration), the
    learning curves' final training losses, each run's fit (:func:`_fit`) and each run's own
    final accuracy."""
    from repsim.results import mean_ci

    out, rows, losses = {}, [], {}
    for algorithm in ("maml", "anil"):
        accs = []
        for run in rp.runs_of(algorithm):
            a = rp.accuracies(rp.at_common(run))
            accs += a
            rows.append(
                {"algorithm": algorithm, "seed": run.seed, "iteration": rp.common, **mean_ci(a)}
            )
            losses.setdefault(algorithm, []).append(_training_tail(rp, run, "loss"))
            if run.iterations != rp.common:  # each longer run at its own latest checkpoint too
                f = mean_ci(rp.accuracies(rp.root / run.final))
                rows.append(
                    {"algorithm": algorithm, "seed": run.seed, "iteration": run.iterations, **f}
                )
                out[f"{algorithm}_seed{run.seed}_latest"] = {**f, "iteration": run.iterations}
        if accs:
            out[algorithm] = mean_ci(accs)
            out[f"{algorithm}_seed_std"] = float(
                np.std(
                    [
                        r["mean"]
                        for r in rows
                        if r["algorithm"] == algorithm and r["iteration"] == rp.common
                    ]
                )
            )
    curves = {run.name: _curve(rp, run) for run in rp.meta_runs}
    return rp.write(
        "table2_maml_vs_anil",
        {
            "iteration": rp.common,
            "summary": out,
            "final_training_loss": losses,
            "fit": [_fit(rp, run) for run in rp.meta_runs],
            "curves": curves,
        },
        rows,
    )


def _pooled_activations(model, tasks, layers) -> dict[str, torch.Tensor]:
    """Each layer's activations over all tasks, ``(sum of datapoints, features)``: every task
    runs as its own batch (its own normalisation pass), then the rows are stacked."""
    from repsim.capture import capture
    from repsim.similarity import conv_to_2d

    per_layer: dict[str, list[torch.Tensor]] = {lyr: [] for lyr in layers}
    for task in tasks:
        acts = capture(model, torch.cat([task.support_x, task.query_x]))
        for lyr in layers:
            per_layer[lyr].append(conv_to_2d(acts[lyr].double()))
    return {lyr: torch.cat(v) for lyr, v in per_layer.items()}


def seed_similarity(rp: Reproduction) -> dict:
    """Table 3: similarity of the meta-inits (no adaptation) across seeds and algorithms, on
    activations pooled over tasks, with each (layer, measure)'s chance level."""
    from repsim.checkpoint import load_checkpoint
    from repsim.results import mean_ci
    from repsim.similarity import chance_level, get_measure

    tasks = rp.tasks(rp.s.compare_tasks)
    acts = {
        (r.algorithm, r.seed): _pooled_activations(
            load_checkpoint(rp.at_common(r))[0], tasks, LAYERS
        )
        for r in rp.meta_runs
    }
    maml = [k for k in acts if k[0] == "maml"]
    anil = [k for k in acts if k[0] == "anil"]
    pairs = {
        "MAML-MAML": list(itertools.combinations(maml, 2)),
        "ANIL-ANIL": list(itertools.combinations(anil, 2)),
        "ANIL-MAML": [(a, m) for a in anil for m in maml if a[1] != m[1]],
    }
    rows, out = [], {}
    steps = rp.bar(
        desc="Table 3: seed pairs",
        total=sum(bool(p) for p in pairs.values()) * len(MEASURES) * len(LAYERS),
        unit="layer",
    )
    for label, plist in pairs.items():
        if not plist:
            continue
        out[label] = {}
        for measure in MEASURES:
            fn = get_measure(measure)
            per_layer = {}
            for layer in LAYERS:
                steps.set_postfix_str(f"{label} {measure} {layer}")
                vals = [float(fn(acts[a][layer], acts[b][layer])) for a, b in plist]
                a, b = plist[0]
                chance = chance_level(
                    fn, acts[a][layer], acts[b][layer], rp.s.chance_permutations, rp.s.seed
                )
                per_layer[layer] = {**mean_ci(vals), "chance": chance}
                rows.append({"pair": label, "measure": measure, "layer": layer, **per_layer[layer]})
                steps.update()
            out[label][measure] = {
                "body": float(np.mean([per_layer[lyr]["mean"] for lyr in BODY])),
                "body_chance": float(np.mean([per_layer[lyr]["chance"] for lyr in BODY])),
                "per_layer": per_layer,
                "pairs": len(plist),
            }
    steps.close()
    return rp.write(
        "table3_seed_similarity",
        {
            "iteration": rp.common,
            "tasks": len(tasks),
            "datapoints": {lyr: int(next(iter(acts.values()))[lyr].shape[0]) for lyr in LAYERS},
            "summary": out,
        },
        rows,
    )


def nil_head(rp: Reproduction) -> dict:
    """Table 4 and Appendix D.1: MAML and ANIL bodies with the NIL head (cosine similarity to
    the support features, no head at all) against their own adapted head."""
    from repsim.results import mean_ci

    out, rows = {}, []
    for algorithm in ("maml", "anil"):
        nil, own = [], []
        for run in rp.runs_of(algorithm):
            a = rp.accuracies(rp.at_common(run), head="nil")
            b = rp.accuracies(rp.at_common(run))
            nil += a
            own += b
            rows.append({"body": algorithm, "head": "nil", "seed": run.seed, **mean_ci(a)})
            rows.append({"body": algorithm, "head": "own", "seed": run.seed, **mean_ci(b)})
        if nil:
            out[algorithm] = {"nil": mean_ci(nil), "own": mean_ci(own)}
    return rp.write("table4_nil", {"iteration": rp.common, "summary": out}, rows)


def regimes(rp: Reproduction) -> dict:
    """Table 5: each training regime's body with the NIL head and with an adapted head, every
    seed of a regime pooled (the same test tasks for each; the spread of the seeds' own means
    beside it). NIL training runs are labelled by their softmax temperature (``nil@1``,
    ``nil@10``)."""
    from repsim.checkpoint import read_record
    from repsim.results import mean_ci

    pooled: dict[str, dict] = {}
    rows = []
    for regime in ("maml", "anil", "multiclass", "multitask", "nil", "random"):
        for run in rp.runs_of(regime):
            path = rp.at_common(run) if regime in ("maml", "anil") else rp.baseline_checkpoint(run)
            if path is None:
                rp.say(f"Table 5: {run.name} has no checkpoint at iteration {rp.common}: left out")
                continue
            label = regime
            if regime == "nil":
                scale = read_record(path)["train"].get("nil_train_scale", 10.0)
                label = f"nil@{scale:g}"
            entry = pooled.setdefault(
                label, {"seeds": [], "iterations": [], "nil": [], "adapt": []}
            )
            entry["seeds"].append(run.seed)
            at_compared = regime in ("maml", "anil") or (rp.along and regime != "random")
            entry["iterations"].append(rp.common if at_compared else run.iterations)
            for h in ("nil", "adapt"):
                a = rp.accuracies(path, head=h)
                entry[h].append(a)
                rows.append({"regime": label, "seed": run.seed, "head": h, **mean_ci(a)})
    out = {
        label: {
            **{h: mean_ci([x for a in e[h] for x in a]) for h in ("nil", "adapt")},
            "seed_std": {h: float(np.std([np.mean(a) for a in e[h]])) for h in ("nil", "adapt")},
            "seeds": e["seeds"],
            "iterations": min(e["iterations"]),
        }
        for label, e in pooled.items()
    }
    return rp.write("table5_regimes", {"summary": out}, rows)


def speed(rp: Reproduction, train_steps: int = 5, test_steps: int = 10) -> dict:
    """Section 4.2: seconds per training iteration (the trainer's own path) and per test-time
    adaptation, ANIL vs MAML, 1 thread, at the paper's inner steps (5 in training, 10 at
    test) on this setting's shapes."""
    from repsim.checkpoint import load_checkpoint
    from repsim.data import TaskSampler
    from repsim.inner_loop import InnerLoop, forward
    from repsim.train import TrainConfig, episodic_loss, use_vmap

    run = rp.runs_of("maml")[0]
    model, record = load_checkpoint(rp.root / run.final)
    tr = record["train"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    base = {k: v for k, v in tr.items() if k in fields}
    shaped = TaskSampler(rp.sampler.classes, tr["ways"], tr["shots"], tr["queries"])
    batch = shaped.batch(range(tr["meta_batch"]))
    task = rp.sampler.task(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for algorithm in ("maml", "anil"):
            cfg = TrainConfig(
                **{
                    **base,
                    "algorithm": algorithm,
                    "inner_steps": train_steps,
                    "test_inner_steps": test_steps,
                }
            )
            record = {"train": cfg.to_dict()}
            train_loop = InnerLoop.from_record(model, record, phase="train")
            test_loop = InnerLoop.from_record(model, record, phase="test")
            params = dict(model.named_parameters())

            def train_step(loop=train_loop, cfg=cfg, params=params):
                episodic_loss(model, params, batch, loop, use_vmap(cfg), backward=True)
                model.zero_grad(set_to_none=True)

            def test_adapt(loop=test_loop, params=params):
                p = {n: v.detach() for n, v in params.items()}
                forward(model, loop.adapt(model, p, task.support_x, task.support_y), task.query_x)

            out[algorithm] = {
                "train_step_s": _median_time(train_step, rp.s.speed_repeats),
                "test_adapt_s": _median_time(test_adapt, 3 * rp.s.speed_repeats),
                "vmap": use_vmap(cfg),
            }
    finally:
        torch.set_num_threads(old)
    out["speedup_train"] = out["maml"]["train_step_s"] / out["anil"]["train_step_s"]
    out["speedup_test"] = out["maml"]["test_adapt_s"] / out["anil"]["test_adapt_s"]
    out["shape"] = {
        "ways": tr["ways"],
        "shots": tr["shots"],
        "queries": tr["queries"],
        "meta_batch": tr["meta_batch"],
        "inner_steps": train_steps,
        "test_inner_steps": test_steps,
    }
    rows = [{"algorithm": a, **out[a]} for a in ("maml", "anil")]
    return rp.write("speed", {"summary": out, "threads": 1}, rows)


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


SUPPLEMENTARY = "supplementary: not one of the paper's claims"


def linear_probes(rp: Reproduction) -> dict:
    """Supplementary, not one of the paper's claims (no claim reads it): per layer, the query
    accuracy of a linear probe (logistic regression fit on each task's support activations,
    :func:`repsim.representation.linear_probe` with its defaults) before and after the inner
    loop, beside the model's own head and the NIL head. MAML and ANIL seeds at the common
    iteration, pooled, on the first ``similarity_tasks`` test tasks (Figure 2's)."""
    from repsim.checkpoint import load_meta_learner
    from repsim.representation import linear_probe
    from repsim.results import summarise

    tasks = rp.tasks(rp.s.similarity_tasks)
    out, rows, settings, chance = {}, [], None, None
    for algorithm in ("maml", "anil"):
        records = []
        for run in rp.runs_of(algorithm):
            probe = linear_probe(
                load_meta_learner(rp.at_common(run)), rp.bar(tasks, f"linear probes: {run.name}")
            )
            records += [{**r, "seed": run.seed} for r in probe.records]
            settings, chance = probe.settings, probe.chance
        if records:
            summary = summarise(records, ("classifier", "layer", "stage"), "accuracy")
            out[algorithm] = summary
            rows += [{"algorithm": algorithm, **r} for r in summary]
    data = {
        "supplementary": SUPPLEMENTARY,
        "iteration": rp.common,
        "tasks": len(tasks),
        "chance": chance,
        "probe": settings,
        "summary": out,
    }
    return rp.write("supplementary_linear_probe", data, rows)


def _needs_maml_and_anil(rp: Reproduction) -> str:
    have = {r.algorithm for r in rp.meta_runs}
    return "" if have == {"maml", "anil"} else "needs MAML and ANIL runs"


def _needs_two_meta_runs(rp: Reproduction) -> str:
    return "" if len(rp.meta_runs) >= 2 else "needs two MAML/ANIL runs to compare"


def _needs_a_baseline(rp: Reproduction) -> str:
    if {r.algorithm for r in rp.runs} - {"maml", "anil"}:
        return ""
    return "needs a regime besides MAML and ANIL (multiclass, random, ...)"


def _always(rp: Reproduction) -> str:
    return ""  # a MAML run is enough, and every folder has one


# (title, analysis, what the folder must hold: "" when it does, else why it is skipped). A
# folder with only MAML (e.g. Omniglot 5-way 5-shot, there for Table 1's 5-shot band) runs the
# analyses that MAML alone decides.
ANALYSES = (
    ("Figure 2: similarity before vs after adaptation", before_after, _always),
    ("Table 1: test-time freezing", freezing, _always),
    ("Table 2: MAML vs ANIL", maml_vs_anil, _needs_maml_and_anil),
    ("Table 3: similarity across seeds", seed_similarity, _needs_two_meta_runs),
    ("Table 4 / Appendix D.1: NIL head", nil_head, _always),
    ("Table 5: training regimes", regimes, _needs_a_baseline),
    ("Figure 3 / weight movement: along training", along_training, _always),
    ("Speed: ANIL vs MAML", speed, _always),
    ("Supplementary: linear probes per layer", linear_probes, _always),
)
RESULT_FILES = {  # what each analysis writes: a skipped one's old files are removed
    before_after: ("figure2_similarity",),
    freezing: ("table1_freezing",),
    maml_vs_anil: ("table2_maml_vs_anil",),
    seed_similarity: ("table3_seed_similarity",),
    nil_head: ("table4_nil",),
    regimes: ("table5_regimes",),
    along_training: ("figure3_training", "weight_movement"),
    speed: ("speed",),
    linear_probes: ("supplementary_linear_probe",),
}


def run_all(rp: Reproduction, only: tuple[str, ...] | None = None) -> None:
    """Every analysis of one setting (or those whose title starts with one of ``only``); each
    writes its own results file. One whose runs the folder lacks is skipped, and the results
    file an earlier reproduction left in its place is removed (it would describe other runs)."""
    for title, analysis, needs in ANALYSES:
        if only is not None and not title.startswith(only):
            continue
        why = needs(rp)
        if why:
            rp.say(f"{title}: skipped ({why})")
            for name in RESULT_FILES[analysis]:
                for ext in ("json", "csv"):
                    (rp.results / f"{name}.{ext}").unlink(missing_ok=True)
            continue
        rp.say(title)
        analysis(rp)


# ``jobs=2``: two processes of about equal work (going by the analyses' durations in the 20-way
# reproduction). Each keeps the accuracy cache its tables share; "Speed" times itself, so it
# runs alone after them.
PARALLEL_GROUPS = (
    ("Figure 2", "Table 1", "Table 3", "Figure 3"),
    ("Table 2", "Table 4", "Table 5", "Supplementary"),
)
ALONE = ("Speed",)
# Along training: the analyses whose claims compare runs at one iteration. Figure 3 and weight
# movement are about training itself (they follow MAML seed 0 already), and the speed timing
# does not depend on the iteration.
ALONG = ("Figure 2", "Table 1", "Table 2", "Table 3", "Table 4", "Table 5")


def _run_group(ckpt_dir, out, settings, progress, only, at=None) -> None:
    run_all(Reproduction(ckpt_dir, out, settings, progress, at), only)


def run_along(
    ckpt_dir: str | Path, out: str | Path, settings: Settings, progress=True, jobs: int = 1
) -> list[Path]:
    """The :data:`ALONG` analyses of one checkpoint folder at every iteration its MAML and
    ANIL runs share (:func:`along_iterations`), with ``settings``' sizes; returns the results
    folders, one per iteration."""
    import shutil

    runs = [r for r in read_manifest(ckpt_dir) if r.algorithm in ("maml", "anil")]
    done = [
        run_setting(ckpt_dir, out, settings, progress, jobs, at=it) for it in along_iterations(runs)
    ]
    for old in done[0].parent.iterdir() if done else []:  # iterations of other runs, earlier
        if old.is_dir() and old not in done:
            shutil.rmtree(old)
    return done


def run_setting(
    ckpt_dir: str | Path,
    out: str | Path,
    settings: Settings,
    progress=True,
    jobs: int = 1,
    at: int | None = None,
) -> Path:
    """Every analysis of one checkpoint folder, in one process or (``jobs >= 2``) the groups
    of :data:`PARALLEL_GROUPS` side by side, each process with this process's torch thread
    count; returns the setting's results folder. ``at``: the :data:`ALONG` analyses with every
    run at that iteration, into ``<setting>/along/<at>/``."""
    from repsim.processes import process_pool, spawn_blocker

    rp = Reproduction(ckpt_dir, out, settings, progress, at)
    only = ALONG if at is not None else None
    if jobs >= 2 and (blocker := spawn_blocker()) is not None:
        rp.say(f"one process: {blocker}")
        jobs = 1
    if jobs < 2:
        run_all(rp, only)
        return rp.results
    with process_pool(len(PARALLEL_GROUPS)) as pool:
        done = [
            pool.submit(
                _run_group,
                ckpt_dir,
                out,
                settings,
                progress,
                tuple(t for t in group if only is None or t in only),
                at,
            )
            for group in PARALLEL_GROUPS
        ]
        for future in done:
            future.result()  # re-raises an analysis's error here
    if at is None:
        run_all(rp, ALONE)
    return rp.results
