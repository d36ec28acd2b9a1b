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
    """Per-task similarity records and weight movement, with their summaries over tasks.

    What :func:`representation_change` returns.

    Attributes:
        layers: the analysed layers, in order.
        measures: the similarity measures, in order.
        records: one dict per (task, layer, measure): ``{task, layer, measure, value, note}``
            (``value`` NaN and the reason in ``note`` when the measure refused the input), plus
            ``chance`` when chance levels were asked for.
        movement: one dict per (task, layer): ``{task, layer, abs, rel}``, the weight movement
            ``||theta_l - theta_l'||`` and that over ``||theta_l||``.
        seconds: wall seconds per stage (:data:`STAGES`), summed over tasks.
    """

    layers: list[str]
    measures: list[str]
    records: list[dict] = field(default_factory=list)  # {task, layer, measure, value, note}
    movement: list[dict] = field(default_factory=list)  # {task, layer, abs, rel}
    seconds: dict[str, float] = field(  # wall time per stage, summed over tasks
        default_factory=lambda: dict.fromkeys(STAGES, 0.0)
    )

    def summary(self, confidence: float = 0.95) -> list[dict]:
        """Mean and t-interval over tasks per (layer, measure), in layer then measure order.

        Args:
            confidence: the interval's confidence level.

        Returns:
            ``[{layer, measure, mean, ci_low, ci_high, half_width, n, n_failed}]``
                (``n_failed``: tasks the measure refused); with chance levels, each row also
                has ``chance``, their mean over tasks.
        """
        rows = summarise(self.records, ("layer", "measure"), "value", confidence)
        if any("chance" in r for r in self.records):
            chance = {
                (r["layer"], r["measure"]): r["mean"]
                for r in summarise(self.records, ("layer", "measure"), "chance", confidence)
            }
            rows = [{**r, "chance": chance.get((r["layer"], r["measure"]))} for r in rows]
        return rows

    def movement_summary(self, confidence: float = 0.95) -> list[dict]:
        """Mean and t-interval over tasks of ``||theta_l - theta_l'||`` (abs and rel) per layer.

        Args:
            confidence: the interval's confidence level.

        Returns:
            ``[{layer, abs_mean, abs_ci_low, abs_ci_high, rel_mean, rel_ci_low, rel_ci_high,
                n}]`` in layer order.
        """
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
    """The analysis layer whose module path prefixes ``param_name`` (longest match), or None.

    ``params_of_layer("conv2.conv.weight", ["conv1", "conv2"])`` is ``"conv2"``.
    """
    best = None
    for layer in layers:
        if param_name == layer or param_name.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def weight_movement(meta_params: Params, fast_weights: Params, layers: Sequence[str]) -> list[dict]:
    """How far each layer's weights moved in the inner loop (the paper's Appendix B.3).

    Args:
        meta_params: the meta-initialisation, ``{name: tensor}``.
        fast_weights: the parameters after the inner loop; a parameter missing from it did not
            move.
        layers: the analysis layers; a parameter belongs to the layer whose module path
            prefixes its name (:func:`params_of_layer`).

    Returns:
        ``[{layer, abs, rel}]`` in layer order: ``abs`` = ``||theta_l - theta_l'||`` over all
            the layer's parameters (in float64), ``rel`` = that divided by ``||theta_l||`` (NaN
            for a layer without parameters).
    """
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
    """Every measure on each layer, ``before[layer]`` against ``after[layer]``.

    A measure that refuses the input (e.g. CCA with fewer datapoints than features) gives
    ``value=NaN`` and its reason in ``note`` instead of stopping the analysis.

    Args:
        before: ``{layer: (n_datapoints, n_features)}`` through the meta-init.
        after: the same layers and datapoints through the fast weights.
        measures: names of :data:`repsim.similarity.MEASURES`.
        chance: ``k > 0`` adds ``chance``: the measure with after's datapoints permuted (the
            mean of ``k`` orders drawn from ``seed``).
        seed: seed of the permutations.

    Returns:
        ``[{layer, measure, value, note}]`` (plus ``chance``), layer-major.

    Raises:
        InputError: an unknown measure name.
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
    """Support then query images of one task, ``[N*K + N*Q, C, H, W]``.

    One batch, as the model sees them (the transductive norm's statistics come from this
    batch): the default ``inputs`` of :func:`representation_change`.
    """
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

    The paper's Section 4 analysis (Figure 2), what ``repsim similarity`` runs: per task,
    ``learner.adapt`` on the support set, then the task's batch through the meta-init and the
    fast weights (:func:`repsim.capture.capture_before_after`), every measure per layer
    (:func:`layer_similarity`), and the weight movement (:func:`weight_movement`).

    Args:
        learner: a :class:`repsim.protocol.MetaLearner` (e.g. ``repsim.load()``).
        tasks: an iterable of tasks with ``support_x [N*K, C, H, W]``, ``support_y [N*K]``,
            ``query_x [N*Q, C, H, W]``, ``query_y [N*Q]`` (e.g.
            ``repsim.data.TaskSampler(...).task(i)``).
        measures: names of :data:`repsim.similarity.MEASURES` (default CCA and linear CKA).
        conv_mode: ``"channels"`` (conv outputs as ``(N*H*W, C)``, the paper's) or
            ``"flatten"`` (``(N, C*H*W)``).
        layers: module paths to compare (default: ``learner.analysis_layers``).
        progress: show a progress bar on stderr (on a terminal only).
        warn (Callable[[str], None] | None): ``warn(message)`` is called once per refused
            (layer, measure) with the reason (default: print to stderr).
        chance: ``k > 0`` adds each measure's chance level (``k`` permutations per task,
            seeded by the task's position).
        inputs: ``inputs(task)`` gives the batch both networks see (default
            :func:`task_inputs`, support then query; a policy's tasks give the states its
            adapted policy visited).

    Returns:
        A :class:`RepresentationChange`: the per-task records, the weight movement and the
            seconds per stage; ``.summary()`` gives mean and 95 % CI per layer and measure.

    Raises:
        InputError: no tasks, no measures, an unknown measure or layer name.

    Example::

        import repsim, repsim.data
        learner = repsim.load()
        sampler = repsim.data.TaskSampler(repsim.data.load_probe_classes(), 5, 1, 15)
        change = representation_change(learner, [sampler.task(i) for i in range(20)])
        change.summary()
    """
    module: nn.Module = learner.module
    names = resolve_layers(module, layers if layers is not None else learner.analysis_layers)
    if not measures:
        raise InputError("measures is empty: choose at least one of cca, svcca, pwcca, cka, ...")
    result = RepresentationChange(layers=list(names), measures=list(measures))
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    warned: set[tuple[str, str]] = set()
    seconds, clock = result.seconds, time.perf_counter
    for index, task in enumerate(_over_tasks(tasks, progress)):
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

    What ``repsim compare`` runs (the paper's Table 3: MAML vs ANIL, seed vs seed). No
    adaptation: each module runs with ``params_*`` (default its own parameters, i.e. the
    meta-init). In ``"channels"`` mode, layers of different spatial size are pooled to the
    coarser grid first (:func:`repsim.capture.match_datapoints`); a layer against its
    same-sized counterpart is compared exactly as in the paper's Table 3.

    Mind the ratio of datapoints to features: a conv layer against the head is compared on N
    examples only, and CCA with few datapoints per feature is biased towards 1 (prefer CKA off
    the diagonal).

    Args:
        module_a: one ``nn.Module`` (e.g. ``repsim.load(a).module``).
        module_b: the other.
        inputs: an iterable of image batches (e.g. each task's support + query,
            ``[N*K + N*Q, C, H, W]``); each batch is one record group (``task``).
        measures: names of :data:`repsim.similarity.MEASURES`.
        layers_a: module paths of a (default: its ``analysis_layers``).
        layers_b: module paths of b (default: its ``analysis_layers``).
        conv_mode: ``"channels"`` or ``"flatten"``.
        params_a: parameters to run a with (default: its own).
        params_b: parameters to run b with (default: its own).
        progress: show a progress bar on stderr (on a terminal only).

    Returns:
        ``[{task, layer_a, layer_b, measure, value, note, n_datapoints, features_a,
            features_b}]``; a refused measure gives NaN and its reason in ``note``.

    Raises:
        InputError: no inputs, an unknown measure or layer name.
    """
    from repsim.capture import capture_raw, match_datapoints, to_2d
    from repsim.similarity import get_measure

    names_a = resolve_layers(module_a, layers_a)
    names_b = resolve_layers(module_b, layers_b)
    fns = {m: get_measure(m) for m in measures}
    records = []
    for index, batch in enumerate(_over_tasks(inputs, progress)):
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


# --- Linear probes: how linearly decodable is each layer, before and after the inner loop? ---

PROBE_STAGES = ("before", "after")
"""Where :func:`linear_probe` reads the representation: the meta-init (``before``) and the fast
weights of the inner loop (``after``)."""

PROBE_CLASSIFIERS = ("probe", "model", "nil")
"""The classifiers :func:`linear_probe` scores on the query set: a linear probe per layer, the
model's own head (``layer="head"``) and the NIL head on its penultimate features
(``layer="penultimate"``)."""


@dataclass
class LinearProbe:
    """Per-task query accuracies of the linear probes and the heads beside them.

    ``records``: ``[{task, classifier, layer, stage, accuracy, n_features, converged}]`` with
    ``classifier`` in :data:`PROBE_CLASSIFIERS` and ``stage`` in :data:`PROBE_STAGES`;
    ``settings``: the probe's settings (``C``, ``standardize``, ``conv_mode``, ``solver``,
    ``max_iter``, ``seed``), JSON-able.
    """

    layers: list[str]
    ways: int
    settings: dict
    records: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("adapt", "capture", "probe"), 0.0)
    )

    @property
    def chance(self) -> float:
        """The accuracy of guessing: ``1 / ways``."""
        return 1.0 / self.ways

    def summary(self, confidence: float = 0.95) -> list[dict]:
        """Mean and t-interval over tasks per (classifier, layer, stage): the probes in layer
        order, then the model's head and the NIL head; each row also has ``chance``."""
        rows = summarise(self.records, ("classifier", "layer", "stage"), "accuracy", confidence)
        return [{**r, "chance": self.chance} for r in rows]

    def not_converged(self) -> int:
        """How many probe fits stopped at ``max_iter`` before converging."""
        return sum(r["converged"] is False for r in self.records)


def _numpy(a, name: str):
    import numpy as np

    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not an array ({exc}): pass a numpy array or tensor") from None


def _probe_data(support_features, support_y, query_features, query_y, min_per_class: int):
    """Validated float64 features and int labels for :func:`probe_accuracy`."""
    import numpy as np

    xs = _numpy(support_features, "support_features")
    xq = _numpy(query_features, "query_features")
    ys = _numpy(support_y, "support_y")
    yq = _numpy(query_y, "query_y")
    for name, x in (("support_features", xs), ("query_features", xq)):
        if x.ndim != 2:
            raise InputError(
                f"{name} has shape {x.shape}; give (n_datapoints, n_features), one row per image "
                "(pool conv maps first: per_example_features)"
            )
    if xs.shape[1] != xq.shape[1]:
        raise InputError(
            f"support has {xs.shape[1]} features and query {xq.shape[1]}: take both from the "
            "same layer"
        )
    for name, y, x in (("support_y", ys, xs), ("query_y", yq, xq)):
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise InputError(f"{name} has shape {y.shape}; give one label per row ({x.shape[0]})")
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
            raise InputError(f"{name} must hold class indices 0..ways-1, got {y.dtype} {y[:5]}")
    if not xq.shape[0]:
        raise InputError("the query set is empty: give tasks with at least one query example")
    xs, xq = xs.astype(np.float64), xq.astype(np.float64)
    if not (np.isfinite(xs).all() and np.isfinite(xq).all()):
        raise InputError("features hold NaN or inf: check the layer's activations")
    counts = np.bincount(ys, minlength=int(max(ys.max(initial=0), yq.max()) + 1))
    if np.count_nonzero(counts) < 2:
        raise InputError(
            f"the support set has {np.count_nonzero(counts)} class(es): a probe needs at least "
            "two; give tasks with --ways 2 or more"
        )
    short = sorted({int(c) for c in np.concatenate([ys, yq]) if counts[c] < min_per_class})
    if short:
        raise InputError(
            f"class(es) {short} have {[int(counts[c]) for c in short]} support example(s); the "
            f"probe needs at least {min_per_class} of every class it is scored on: give tasks "
            "with more --shots, or every query class in the support set"
        )
    return xs, ys, xq, yq


def probe_accuracy(
    support_features,
    support_y,
    query_features,
    query_y,
    C: float = 1.0,
    standardize: bool = True,
    max_iter: int = 1000,
    seed: int = 0,
    min_per_class: int = 1,
) -> dict:
    """Fit a linear probe on the support set and score it on the query set.

    The probe is scikit-learn's multinomial ``LogisticRegression`` (lbfgs, L2 penalty, inverse
    strength ``C``) on ``support_features (n_support, n_features)`` with labels ``support_y
    (n_support,)`` in ``0..ways-1``. ``standardize=True`` first scales every feature to zero
    mean and unit variance *with the support set's statistics* (the query never informs the
    fit), so one ``C`` means the same across layers of different scale. Every class scored on
    needs ``min_per_class`` support examples (1: one-shot tasks work).

    Returns ``{accuracy, converged}``: the fraction of ``query_y`` predicted right, and whether
    lbfgs converged within ``max_iter``. Deterministic; ``seed`` is the estimator's
    ``random_state``.

    Example::

        probe_accuracy(fs, sy, fq, qy)["accuracy"]      # 0.0 .. 1.0
    """
    import math as _math
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not (isinstance(C, (int, float)) and _math.isfinite(C) and C > 0):
        raise InputError(f"C must be a positive number (1.0 is the default), got {C!r}")
    if max_iter < 1:
        raise InputError(f"max_iter must be at least 1, got {max_iter}")
    xs, ys, xq, yq = _probe_data(
        support_features, support_y, query_features, query_y, min_per_class
    )
    steps = [StandardScaler()] if standardize else []
    model = make_pipeline(
        *steps, LogisticRegression(C=float(C), max_iter=int(max_iter), random_state=seed)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(xs, ys)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"accuracy": float((model.predict(xq) == yq).mean()), "converged": converged}


def per_example_features(activation: torch.Tensor, conv_mode: str = "channels") -> torch.Tensor:
    """One layer's output as ``(n_images, n_features)``, one row per image, for a probe.

    A conv map ``(N, C, H, W)`` in ``"channels"`` mode keeps the channels as features and
    averages each image's positions (the pooling :func:`repsim.capture.match_datapoints` uses
    against a non-spatial layer): ``(N, C)``. ``"flatten"`` gives ``(N, C*H*W)``. An ``(N, D)``
    output stays as it is.
    """
    if activation.dim() == 4 and conv_mode == "channels":
        return activation.mean(dim=(2, 3))
    from repsim.capture import to_2d

    return to_2d(activation, "flatten" if activation.dim() == 4 else conv_mode)


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of rows of ``scores (n, ways)`` whose argmax is the label."""
    return float((scores.argmax(-1) == labels).float().mean())


def _rank(layer: str, names: Sequence[str]) -> int:
    return names.index(layer) if layer in names else len(names)


def _over_tasks(tasks, progress: bool):
    """``tasks``, behind a progress bar when ``progress`` (:func:`repsim.progress.bar`)."""
    if not progress:
        return tasks
    from repsim.progress import bar

    total = len(tasks) if hasattr(tasks, "__len__") else None
    return bar(tasks, desc="tasks", total=total, unit="task")


def _stage_cells(raw, logits, body, n_support, sy, qy, ways, conv_mode, probe_args) -> dict:
    """One stage of :func:`linear_probe` on one task's captured pass (support rows first):
    ``{(classifier, layer): record}`` for the layers' probes, the model's head and NIL's."""
    from repsim.nil import nil_probabilities

    rows = logits.shape[0]
    cells = {}
    for layer, features in raw.items():
        x = per_example_features(features, conv_mode)
        if x.shape[0] != rows:
            raise InputError(
                f"layer {layer} gave {x.shape[0]} rows for {rows} images "
                "(called more than once per forward pass?): probe layers called once"
            )
        fit = probe_accuracy(x[:n_support], sy, x[n_support:], qy, **probe_args)
        cells["probe", layer] = {"n_features": int(x.shape[1]), **fit}
    cells["model", "head"] = {
        "n_features": int(logits.shape[-1]),
        "accuracy": _accuracy(logits[n_support:], qy),
        "converged": None,
    }
    nil = math.nan
    if body is not None:
        nil = _accuracy(nil_probabilities(body[:n_support], sy, body[n_support:], ways), qy)
    cells["nil", "penultimate"] = {
        "n_features": None if body is None else int(body.shape[1]),
        "accuracy": nil,
        "converged": None,
    }
    return cells


def linear_probe(
    learner: MetaLearner,
    tasks: Iterable,
    layers: Sequence[str] | None = None,
    C: float = 1.0,
    standardize: bool = True,
    conv_mode: str = "channels",
    max_iter: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> LinearProbe:
    """Linear probes of every layer on each task, before and after the inner loop.

    For each task: adapt the meta-init on the support set (``learner.adapt``), run support and
    query in one batch (:func:`task_inputs`, as :func:`representation_change` does) through the
    meta-init (``before``) and through the fast weights (``after``), and per layer fit
    :func:`probe_accuracy` on the support rows and score it on the query rows. Conv maps are
    pooled per image (:func:`per_example_features`). Beside the probes, on the same forward
    passes: the model's own query accuracy (``classifier="model"``) and the NIL head's (cosine
    similarity to the support features, :func:`repsim.nil.nil_probabilities`; modules that
    cannot run their body alone give NaN).

    ``tasks`` yields objects with ``support_x [N*K, C, H, W]``, ``support_y [N*K]``,
    ``query_x``, ``query_y``; ``layers`` defaults to ``learner.analysis_layers``.

    Example::

        probe = linear_probe(repsim.load(), tasks)
        probe.summary()   # [{classifier, layer, stage, mean, ci_low, ci_high, n, chance}, ...]
    """
    from repsim.capture import capture_pass
    from repsim.similarity.conv import CONV_MODES

    module: nn.Module = learner.module
    names = resolve_layers(module, layers if layers is not None else learner.analysis_layers)
    if conv_mode not in CONV_MODES:
        raise InputError(f"conv_mode must be one of {CONV_MODES}, got {conv_mode!r}")
    settings = {
        "C": float(C),
        "standardize": bool(standardize),
        "conv_mode": conv_mode,
        "solver": "lbfgs",
        "penalty": "l2",
        "max_iter": int(max_iter),
        "seed": int(seed),
    }
    probe_args = {"C": C, "standardize": standardize, "max_iter": max_iter, "seed": seed}
    result: LinearProbe | None = None
    clock = time.perf_counter
    for index, task in enumerate(_over_tasks(tasks, progress)):
        t0 = clock()
        meta_params = learner.meta_params()
        fast_weights = learner.adapt(meta_params, task.support_x, task.support_y)
        fast_weights = {n: w.detach() for n, w in fast_weights.items()}
        t1 = clock()
        batch, n_support = task_inputs(task), task.support_x.shape[0]
        sy, qy = task.support_y, task.query_y
        if result is None:
            ways = int(max(sy.max(), qy.max())) + 1
            result = LinearProbe(layers=list(names), ways=ways, settings=settings)
        cells: dict[tuple[str, str, str], dict] = {}  # (classifier, layer, stage) -> record
        for stage, params in (("before", meta_params), ("after", fast_weights)):
            t2 = clock()
            raw, logits, body = capture_pass(module, batch, names, params)  # one pass
            t3 = clock()
            found = _stage_cells(
                raw, logits, body, n_support, sy, qy, result.ways, conv_mode, probe_args
            )
            cells.update({(c, layer, stage): rec for (c, layer), rec in found.items()})
            result.seconds["capture"] += t3 - t2
            result.seconds["probe"] += clock() - t3
        # records: the probes in layer order, then the model's head and NIL; before, after
        order = sorted(cells, key=lambda k: (PROBE_CLASSIFIERS.index(k[0]), _rank(k[1], names)))
        result.records += [
            {"task": index, "classifier": c, "layer": lyr, "stage": s, **cells[c, lyr, s]}
            for c, lyr, s in order
        ]
        result.seconds["adapt"] += t1 - t0
    if result is None:
        raise InputError("no tasks given: pass at least one task")
    return result
