"""Representation change in the inner loop: the paper's Section 4 analysis, per task.

For each task: adapt the meta-init on the support set (``learner.adapt``), run the task's
support and query images together, in one batch as the model sees them, through the meta-init
and through the fast weights, and compare each layer's activations before and after with every
chosen similarity measure. Also measure how far each layer's weights moved.

Example::

    from repsim.representation import representation_change
    change = representation_change(learner, tasks, measures=("cca", "cka"))
    change.summary()          # [{layer, measure, mean, ci_low, ci_high, n, n_failed}, ...]
    change.records            # [{task, layer, measure, value, note[, chance]}, ...]
    change.seconds            # {adapt, capture, similarity}: wall seconds, summed over tasks

``chance=k`` also gives each record the measure's chance level: the same measure on the same
shapes with the datapoints of one side permuted, averaged over ``k`` permutations
(:func:`repsim.similarity.chance_level`).

Similarity near 1 in the body and low in the head is feature reuse; low similarity in the body
would be rapid learning.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from repsim.capture import capture_before_after, resolve_layers
from repsim.errors import InputError
from repsim.protocol import MetaLearner, Params
from repsim.results import summarise

STAGES = ("adapt", "capture", "similarity")
"""The stages of :func:`representation_change`, timed in ``RepresentationChange.seconds``:
the inner loop, the two forward passes with their activations, and the measures with the
weight movement."""


@dataclass
class RepresentationChange:
    """Per-task similarity records and weight movement, with their summaries over tasks."""

    layers: list[str]
    measures: list[str]
    records: list[dict] = field(default_factory=list)  # {task, layer, measure, value, note}
    movement: list[dict] = field(default_factory=list)  # {task, layer, abs, rel}
    seconds: dict[str, float] = field(  # wall time per stage, summed over tasks
        default_factory=lambda: dict.fromkeys(STAGES, 0.0)
    )

    def summary(self, confidence: float = 0.95) -> list[dict]:
        """Mean and t-interval over tasks per (layer, measure), in layer then measure order;
        with ``chance``, each row also has the mean chance level over tasks."""
        rows = summarise(self.records, ("layer", "measure"), "value", confidence)
        if any("chance" in r for r in self.records):
            chance = {
                (r["layer"], r["measure"]): r["mean"]
                for r in summarise(self.records, ("layer", "measure"), "chance", confidence)
            }
            rows = [{**r, "chance": chance.get((r["layer"], r["measure"]))} for r in rows]
        return rows

    def movement_summary(self, confidence: float = 0.95) -> list[dict]:
        """Mean and t-interval over tasks of ``||theta_l - theta_l'||`` (abs and rel) per layer."""
        absolute = {r["layer"]: r for r in summarise(self.movement, ("layer",), "abs", confidence)}
        relative = {r["layer"]: r for r in summarise(self.movement, ("layer",), "rel", confidence)}
        return [
            {
                "layer": layer,
                "abs_mean": absolute[layer]["mean"],
                "abs_ci_low": absolute[layer]["ci_low"],
                "abs_ci_high": absolute[layer]["ci_high"],
                "rel_mean": relative[layer]["mean"],
                "rel_ci_low": relative[layer]["ci_low"],
                "rel_ci_high": relative[layer]["ci_high"],
                "n": absolute[layer]["n"],
            }
            for layer in self.layers
            if layer in absolute
        ]

    def failures(self) -> list[dict]:
        """The records a measure refused (value NaN), with the reason in ``note``."""
        return [r for r in self.records if math.isnan(r["value"])]


def params_of_layer(param_name: str, layers: Sequence[str]) -> str | None:
    """The analysis layer whose module path prefixes ``param_name`` (longest match), or None."""
    best = None
    for layer in layers:
        if param_name == layer or param_name.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def weight_movement(meta_params: Params, fast_weights: Params, layers: Sequence[str]) -> list[dict]:
    """Per layer, ``||theta_l - theta_l'||`` over all its parameters (``abs``), and that divided
    by ``||theta_l||`` (``rel``). Parameters missing from ``fast_weights`` did not move."""
    sq_diff = {layer: 0.0 for layer in layers}
    sq_norm = {layer: 0.0 for layer in layers}
    for name, before in meta_params.items():
        layer = params_of_layer(name, layers)
        if layer is None:
            continue
        after = fast_weights.get(name, before)
        before64 = before.detach().double()
        sq_diff[layer] += float((after.detach().double() - before64).pow(2).sum())
        sq_norm[layer] += float(before64.pow(2).sum())
    rows = []
    for layer in layers:
        absolute = math.sqrt(sq_diff[layer])
        norm = math.sqrt(sq_norm[layer])
        rows.append({"layer": layer, "abs": absolute, "rel": absolute / norm if norm else math.nan})
    return rows


def layer_similarity(
    before: dict[str, torch.Tensor],
    after: dict[str, torch.Tensor],
    measures: Sequence[str],
    chance: int = 0,
    seed: int = 0,
) -> list[dict]:
    """``[{layer, measure, value, note}]`` comparing ``before[layer]`` with ``after[layer]``.

    A measure that refuses the input (e.g. CCA with fewer datapoints than features) gives
    ``value=NaN`` and its reason in ``note`` instead of stopping the analysis. ``chance=k``
    adds ``chance``: the measure with after's datapoints permuted (mean of ``k`` orders drawn
    from ``seed``).
    """
    from repsim.similarity import chance_level, get_measure

    fns = {m: get_measure(m) for m in measures}
    rows = []
    for layer in before:
        x, y = before[layer].double(), after[layer].double()
        for m, fn in fns.items():
            row = {"layer": layer, "measure": m}
            try:
                row.update(value=float(fn(x, y)), note="")
                if chance:
                    row["chance"] = chance_level(fn, x, y, chance, seed)
            except InputError as exc:
                row.update(value=math.nan, note=str(exc))
                if chance:
                    row["chance"] = math.nan
            rows.append(row)
    return rows


def task_inputs(task) -> torch.Tensor:
    """Support then query images of one task, ``[N*K + Q, C, H, W]``: one batch, as the model
    sees them (the transductive norm's statistics come from this batch)."""
    return torch.cat([task.support_x, task.query_x], dim=0)


def representation_change(
    learner: MetaLearner,
    tasks: Iterable,
    measures: Sequence[str] = ("cca", "cka"),
    conv_mode: str = "channels",
    layers: Sequence[str] | None = None,
    progress: bool = False,
    warn=None,
    chance: int = 0,
    inputs: Callable[[object], torch.Tensor] = task_inputs,
) -> RepresentationChange:
    """Adapt on each task's support set and compare every layer before and after.

    ``tasks`` yields objects with ``support_x [N*K, C, H, W]``, ``support_y [N*K]``,
    ``query_x``, ``query_y``. ``layers`` defaults to ``learner.analysis_layers``.
    ``inputs(task)`` gives the batch that both networks see (default :func:`task_inputs`,
    support then query; a policy's tasks give the states its adapted policy visited).
    ``warn(message)`` is called once per refused (layer, measure) with the reason (default:
    print to stderr); ``progress=True`` shows a tqdm bar on stderr. ``chance=k`` adds each
    measure's chance level (``k`` permutations per task, seeded by the task's position).
    """
    module: nn.Module = learner.module
    names = resolve_layers(module, layers if layers is not None else learner.analysis_layers)
    if not measures:
        raise InputError("measures is empty: choose at least one of cca, svcca, pwcca, cka, ...")
    result = RepresentationChange(layers=list(names), measures=list(measures))
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    warned: set[tuple[str, str]] = set()
    iterator = tasks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(
            tasks,
            desc="tasks",
            unit="task",
            file=sys.stderr,
            leave=False,
            total=len(tasks) if hasattr(tasks, "__len__") else None,
        )
    seconds, clock = result.seconds, time.perf_counter
    for index, task in enumerate(iterator):
        t0 = clock()
        meta_params = learner.meta_params()
        fast_weights = learner.adapt(meta_params, task.support_x, task.support_y)
        fast_weights = {n: w.detach() for n, w in fast_weights.items()}
        t1 = clock()
        before, after = capture_before_after(
            module, meta_params, fast_weights, inputs(task), names, conv_mode
        )
        t2 = clock()
        for row in layer_similarity(before, after, measures, chance, seed=index):
            result.records.append({"task": index, **row})
            key = (row["layer"], row["measure"])
            if row["note"] and key not in warned:
                warned.add(key)
                warn(f"warning: {row['measure']} on {row['layer']} gave NaN: {row['note']}")
        for row in weight_movement(meta_params, fast_weights, names):
            result.movement.append({"task": index, **row})
        seconds["adapt"] += t1 - t0
        seconds["capture"] += t2 - t1
        seconds["similarity"] += clock() - t2
    if not result.records:
        raise InputError("no tasks given: pass at least one task")
    return result


def cross_layer_similarity(
    module_a: nn.Module,
    module_b: nn.Module,
    inputs: Iterable[torch.Tensor],
    measures: Sequence[str] = ("cca", "cka"),
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    conv_mode: str = "channels",
    params_a: Params | None = None,
    params_b: Params | None = None,
    progress: bool = False,
) -> list[dict]:
    """Every layer of ``module_a`` against every layer of ``module_b`` on the same inputs.

    ``inputs`` yields image batches (e.g. each task's support + query, ``[N*K + Q, C, H, W]``);
    each batch is one record group. No adaptation: each module runs with ``params_*`` (default
    its own parameters, i.e. the meta-init). In ``"channels"`` mode, layers of different spatial
    size are pooled to the coarser grid first (:func:`repsim.capture.match_datapoints`); a layer
    against its same-sized counterpart is compared exactly as in the paper's Table 3.

    Returns ``[{task, layer_a, layer_b, measure, value, note, n_datapoints, features_a,
    features_b}]``; a refused measure gives NaN and its reason in ``note``. Mind the ratio of
    datapoints to features: a conv layer against the head is compared on N examples only, and
    CCA with few datapoints per feature is biased towards 1 (prefer CKA off the diagonal).
    """
    from repsim.capture import capture_raw, match_datapoints, to_2d
    from repsim.similarity import get_measure

    names_a = resolve_layers(module_a, layers_a)
    names_b = resolve_layers(module_b, layers_b)
    fns = {m: get_measure(m) for m in measures}
    iterator = inputs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(
            inputs,
            desc="tasks",
            unit="task",
            file=sys.stderr,
            leave=False,
            total=len(inputs) if hasattr(inputs, "__len__") else None,
        )
    records = []
    for index, batch in enumerate(iterator):
        raw_a = capture_raw(module_a, batch, names_a, params_a)
        raw_b = capture_raw(module_b, batch, names_b, params_b)
        for la in names_a:
            for lb in names_b:
                a, b = raw_a[la], raw_b[lb]
                if conv_mode == "channels":
                    a, b = match_datapoints(a, b)
                x, y = to_2d(a, conv_mode).double(), to_2d(b, conv_mode).double()
                for m, fn in fns.items():
                    try:
                        value, note = float(fn(x, y)), ""
                    except InputError as exc:
                        value, note = math.nan, str(exc)
                    records.append(
                        {
                            "task": index,
                            "layer_a": la,
                            "layer_b": lb,
                            "measure": m,
                            "value": value,
                            "note": note,
                            "n_datapoints": int(x.shape[0]),
                            "features_a": int(x.shape[1]),
                            "features_b": int(y.shape[1]),
                        }
                    )
    if not records:
        raise InputError("no inputs given: pass at least one batch of images")
    return records
