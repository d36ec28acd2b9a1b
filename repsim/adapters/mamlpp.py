"""MAML++ (HowToTrainYourMAMLPytorch) checkpoints: a ``network`` dict inside the saved state.

Architecture (``VGGReLUNormNetwork``): per stage, ``MetaConv2dLayer`` (3x3, stride 1 with max
pooling / 2 without, padding 1 when ``conv_padding``) -> ``MetaBatchNormLayer``
(``F.batch_norm(training=True)``, eps 1e-5, batch statistics) -> leaky ReLU (slope 0.01)
[-> 2x2 max-pool]; without max pooling a global average pool; flatten; ``linear``
(``MetaLinearLayer``, whose weight is called ``weights``).

Keys: ``classifier.layer_dict.conv{0..3}.conv.{weight,bias}``,
``classifier.layer_dict.conv{i}.norm_layer.{weight,bias,running_mean,running_var}`` (with
per-step BatchNorm, shape ``(steps, C)``: one set per inner step),
``classifier.layer_dict.linear.{weights,bias}``, and the learned per-layer per-step learning
rates ``inner_loop_optimizer.names_learning_rates_dict.layer_dict-conv0-conv-weight`` ...
(shape ``(steps + 1,)``).

Per-step BatchNorm: the analysed model uses the norm weights of step ``bn_step`` (default 0,
the step at which MAML++ runs the meta-init), before and after adaptation alike; the inner loop
itself runs step ``i`` with the norm weights of step ``i``, as MAML++ does. Inner loop: convs
and linear adapt (not the norm), mean cross-entropy, step ``i`` with the file's learning rate
for that layer and step; steps default to the number the rates were learned for.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch.func import functional_call

from repsim.adapters.common import KeyTracker, fit_image_size, make_learner, select_adapted
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError
from repsim.protocol import no_adaptation

CONV = re.compile(r"^classifier\.layer_dict\.conv(\d+)\.(conv|norm_layer)\.(\w+)$")
LR_PREFIX = "inner_loop_optimizer.names_learning_rates_dict."


def matches(keys) -> bool:
    return any(CONV.match(k) for k in keys)


def load(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    bn_step: int = 0,
    max_pooling: bool = True,
    conv_padding: bool = True,
    adapted=None,
    **_,
):
    tensors, origin, per_step, lrs, stages = _take(state, source, bn_step)
    steps_bn = next((t.shape[0] for t in per_step.values()), None)
    net_spec = _net_spec(tensors, stages, image_size, max_pooling, conv_padding)
    rates = _rates_by_param(lrs, stages, source) if lrs else {}
    learned_steps = min((len(v) for v in rates.values()), default=0) - 1
    steps = inner_steps if inner_steps is not None else (learned_steps if rates else 5)
    if steps < 0:
        raise CheckpointError(f"inner steps must be >= 0, got {steps}")
    learner = make_learner(
        net_spec,
        tensors,
        origin,
        source=source,
        family="mamlpp",
        adapted=adapted or "no-norm",
        inner_lr=inner_lr
        if inner_lr is not None
        else ("learned per layer and step" if rates else 0.1),
        inner_steps=steps,
        adapt=no_adaptation,  # replaced below, once the network exists
        config={
            "algorithm": "maml++",
            "bn_step": bn_step,
            "per_step_bn_steps": steps_bn,
            "learned_rates": {k: v.tolist() for k, v in rates.items()},
        },
    )
    net = learner.module
    names = select_adapted(net, adapted or "no-norm")
    if inner_lr is not None or not rates:
        rates = {n: torch.full((max(steps, 1),), float(inner_lr or 0.1)) for n in names}
    missing = [n for n in names if n not in rates]
    if missing:
        raise CheckpointError(f"{source}: no learned learning rate for {missing}")

    def adapt(params, support_x, support_y):
        return _adapt_per_step(net, params, support_x, support_y, names, rates, per_step, steps)

    learner.adapt = adapt
    return learner


def _take(state, source: str, bn_step: int):
    """Every tensor of the file under our names (with its key in the file), the per-step norm
    tensors (``(steps, C)``; the analysed model takes row ``bn_step``), the learned rates and
    the stage numbers; a key left over or missing is a :class:`CheckpointError`."""
    keys = KeyTracker(state, source, "MAML++")
    stages = sorted({int(CONV.match(k).group(1)) for k in state if CONV.match(k)})
    if stages != list(range(len(stages))):
        raise CheckpointError(f"{source}: MAML++ stages {stages} are not conv0..convK")
    tensors, origin, per_step = {}, {}, {}
    for s in stages:
        base = f"classifier.layer_dict.conv{s}"
        for part in ("weight", "bias"):
            tensors[f"conv{s + 1}.conv.{part}"] = keys.take(f"{base}.conv.{part}")
            origin[f"conv{s + 1}.conv.{part}"] = f"{base}.conv.{part}"
            t = keys.take(f"{base}.norm_layer.{part}")
            if t.dim() == 2:
                if not 0 <= bn_step < t.shape[0]:
                    raise CheckpointError(
                        f"{source}: bn_step={bn_step}, but the file has per-step BatchNorm for "
                        f"{t.shape[0]} steps (0..{t.shape[0] - 1})"
                    )
                per_step[f"conv{s + 1}.norm.{part}"] = t
                t = t[bn_step]
            tensors[f"conv{s + 1}.norm.{part}"] = t
            origin[f"conv{s + 1}.norm.{part}"] = f"{base}.norm_layer.{part}"
        keys.ignore(
            k
            for k in state
            if k.startswith(f"{base}.norm_layer.") and ("running" in k or "backup" in k)
        )
    for ours, theirs in (("weight", "weights"), ("bias", "bias")):
        tensors[f"head.{ours}"] = keys.take(f"classifier.layer_dict.linear.{theirs}")
        origin[f"head.{ours}"] = f"classifier.layer_dict.linear.{theirs}"
    lrs = {k[len(LR_PREFIX) :]: keys.take(k) for k in list(state) if k.startswith(LR_PREFIX)}
    keys.check_all_used()
    return tensors, origin, per_step, lrs, stages


def _net_spec(tensors, stages, image_size, max_pooling: bool, conv_padding: bool) -> NetSpec:
    """``VGGReLUNormNetwork`` as a :class:`NetSpec`, its image size fitted to the head's width."""
    in_channels = tensors["conv1.conv.weight"].shape[1]
    ways, head_in = tensors["head.weight"].shape
    channels = [tensors[f"conv{s + 1}.conv.weight"].shape[0] for s in stages]
    stride = 1 if max_pooling else 2

    def spec(size: int) -> NetSpec:
        blocks = tuple(
            BlockSpec(c, 3, stride, 1 if conv_padding else 0, (2, 2) if max_pooling else None)
            for c in channels
        )
        return NetSpec(
            in_channels,
            size,
            blocks,
            ways,
            activation="leaky_relu",
            readout="flatten" if max_pooling else "mean",
        )

    return fit_image_size(spec, head_in, image_size, in_channels)


def _rates_by_param(lrs: dict[str, torch.Tensor], stages, source: str) -> dict[str, torch.Tensor]:
    """Learned rates keyed by our parameter names: ``layer_dict-conv0-conv-weight`` ->
    ``conv1.conv.weight``, ``layer_dict-linear-weights`` -> ``head.weight``."""
    out = {}
    for key, value in lrs.items():
        m = re.match(r"^layer_dict-conv(\d+)-conv-(weight|bias)$", key)
        if m:
            out[f"conv{int(m.group(1)) + 1}.conv.{m.group(2)}"] = value.detach()
            continue
        m = re.match(r"^layer_dict-linear-(weights|bias)$", key)
        if m:
            out["head.weight" if m.group(1) == "weights" else "head.bias"] = value.detach()
            continue
        if "norm_layer" in key:
            continue  # rates for norm parameters exist only when MAML++ adapts them
        raise CheckpointError(f"{source}: unknown learning-rate entry {LR_PREFIX}{key}")
    return out


def _adapt_per_step(net, params, support_x, support_y, names, rates, per_step, steps):
    """MAML++'s inner loop: step ``i`` uses the norm weights of step ``i`` and the learned
    rate ``rates[name][i]``; returns fast weights (norm weights as in ``params``)."""
    fast = dict(params)
    if steps == 0:
        return fast
    with torch.enable_grad():
        for n in names:
            fast[n] = fast[n].detach().requires_grad_(True)
        for i in range(steps):
            norm = {n: t[min(i, t.shape[0] - 1)] for n, t in per_step.items()}
            logits = functional_call(net, {**fast, **norm}, (support_x,))
            grads = torch.autograd.grad(
                F.cross_entropy(logits, support_y), [fast[n] for n in names]
            )
            for n, g in zip(names, grads):
                rate = rates[n][min(i, len(rates[n]) - 1)]
                fast[n] = (fast[n] - rate * g).detach().requires_grad_(True)
    return {n: t.detach() for n, t in fast.items()}
