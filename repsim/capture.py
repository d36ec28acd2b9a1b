"""Capture layer activations before and after adaptation.

Arrow of the house: ``model, params, inputs -> capture -> {layer: activations}``. Capture knows
nothing of checkpoints or tasks: it takes an ``nn.Module``, a parameter dict (the meta-init or the
fast weights of one task) and a batch of inputs, and returns, per layer (a module path such as
``"conv2"`` or ``"conv2.norm"``), that layer's output as a 2-D ``(n_datapoints, n_features)``
tensor, ready for :mod:`repsim.similarity`.

Example::

    from repsim.capture import capture_before_after
    before, after = capture_before_after(model, meta_params, fast_weights, images)
    before["conv1"].shape   # (N*H*W, C) with conv_mode="channels"

Activations are taken with forward hooks that are always removed on exit, even when the forward
pass raises, so no hook leaks into the module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from repsim.errors import InputError
from repsim.params import Params
from repsim.similarity.conv import CONV_MODES, conv_to_2d


def default_layers(module: nn.Module) -> list[str]:
    """The layers ``module`` declares for analysis (its ``analysis_layers`` attribute).

    Raises:
        InputError: the module declares none (the message lists its module paths).
    """
    layers = getattr(module, "analysis_layers", None)
    if not layers:
        raise InputError(
            f"{type(module).__name__} declares no analysis_layers: pass layers=[...] with module "
            f"paths to capture; it has {available_layers(module)}"
        )
    return list(layers)


def available_layers(module: nn.Module) -> list[str]:
    """Every named submodule path of ``module`` (what ``layers`` may name), in order."""
    return [name for name, _ in module.named_modules() if name]


def resolve_layers(module: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """Check the layer names against ``module.named_modules()``.

    Args:
        module: any ``nn.Module``.
        layers: module paths (``"conv2"``, ``"conv2.norm"``), or None for the module's
            declared ``analysis_layers``.

    Returns:
        The layer names, in the order given.

    Raises:
        InputError: an empty list, a name the module does not have (the message lists the
            ones it has), or None for a module that declares no ``analysis_layers``.
    """
    chosen = default_layers(module) if layers is None else list(layers)
    if not chosen:
        raise InputError("layers is empty: name at least one module path to capture")
    known = dict(module.named_modules())
    unknown = [name for name in chosen if not name or name not in known]
    if unknown:
        raise InputError(
            f"unknown layer(s) {unknown} in {type(module).__name__}; "
            f"its layers are: {', '.join(available_layers(module))}"
        )
    return chosen


def to_2d(activation: torch.Tensor, conv_mode: str = "channels") -> torch.Tensor:
    """One layer's output as ``(n_datapoints, n_features)``.

    Args:
        activation: the layer's output: ``(N, D)`` stays as it is; ``(N, C, H, W)`` goes
            through :func:`repsim.similarity.conv_to_2d`; any other rank is flattened to
            ``(N, -1)``.
        conv_mode: ``"channels"``: ``(N*H*W, C)``, every spatial position a datapoint, as in
            the paper; ``"flatten"``: ``(N, C*H*W)``.

    Returns:
        A 2-D tensor.

    Raises:
        InputError: an unknown ``conv_mode``, or an output with fewer than 2 dimensions.
    """
    if conv_mode not in CONV_MODES:
        raise InputError(f"conv_mode must be one of {CONV_MODES}, got {conv_mode!r}")
    if activation.dim() == 2:
        return activation
    if activation.dim() == 4:
        return conv_to_2d(activation, mode=conv_mode)
    if activation.dim() < 2:
        raise InputError(
            f"a layer output of shape {tuple(activation.shape)} has no batch and feature axes; "
            "capture layers whose outputs are (N, ...)"
        )
    return activation.reshape(activation.shape[0], -1)


def _first_tensor(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InputError(
        f"a captured layer returned {type(output).__name__}, not a tensor: capture a module "
        "whose output is a tensor (or a tuple starting with one)"
    )


def capture_raw(
    module: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    params: Params | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``inputs`` through ``module`` once and return each layer's raw output, detached.

    Forward hooks on the chosen submodules collect their outputs; they are removed on exit,
    even when the forward pass raises. A layer called several times in one forward pass has its
    outputs concatenated along the batch axis. Runs under ``torch.no_grad()``.

    Args:
        module: any ``nn.Module``.
        inputs: one batch, e.g. images ``(N, C, H, W)``.
        layers: module paths to capture (default: ``module.analysis_layers``).
        params: ``{name: tensor}`` to run with, through ``torch.func.functional_call``: the
            meta-init or one task's fast weights; it may name a subset (the rest come from the
            module). None runs the module with its own parameters.

    Returns:
        ``{layer: output}``, each as the layer returned it (e.g. ``(N, C, H, W)``).

    Raises:
        InputError: an unknown layer name, a layer the forward pass never calls, or a layer
            whose output is not a tensor (or a tuple starting with one).
    """
    return capture_pass(module, inputs, layers, params)[0]


def capture_pass(
    module: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    params: Params | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """:func:`capture_raw`'s layer outputs, and from the same forward pass the module's output
    (logits) and, for a module that runs its body separately (``supports_stages``), its
    penultimate features (else ``None``): ``(raw, logits, body)``. A staged module runs as
    ``stage="body"`` then ``stage="head"`` on those features, which is its full forward pass."""
    names = resolve_layers(module, layers)
    modules = dict(module.named_modules())
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def hook_for(name: str):
        def hook(_mod, _inp, out):
            outputs[name].append(_first_tensor(out).detach())

        return hook

    def call(x, **kwargs):
        if params is None:
            return module(x, **kwargs)
        return torch.func.functional_call(module, params, (x,), kwargs)

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        with torch.no_grad():
            if getattr(module, "supports_stages", False):
                body = call(inputs, stage="body")
                logits = call(body, stage="head")
            else:
                body, logits = None, call(inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if not outputs[name]]
    if missing:
        raise InputError(
            f"layer(s) {missing} were never called in the forward pass: choose layers the "
            "forward pass uses"
        )
    raw = {
        name: outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        for name, outs in outputs.items()
    }
    return raw, _first_tensor(logits).detach(), body


def capture(
    module: nn.Module,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    params: Params | None = None,
    conv_mode: str = "channels",
) -> dict[str, torch.Tensor]:
    """Each layer's output for ``inputs`` as ``(n_datapoints, n_features)``.

    :func:`capture_raw`, then :func:`to_2d` per layer.

    Args:
        module: any ``nn.Module``.
        inputs: one batch, e.g. images ``(N, C, H, W)``.
        layers: module paths to capture (default: ``module.analysis_layers``).
        params: the parameters to run with (default: the module's own); see
            :func:`capture_raw`.
        conv_mode: ``"channels"`` (``(N*H*W, C)``, the paper's) or ``"flatten"``
            (``(N, C*H*W)``) for conv outputs.

    Returns:
        ``{layer: (n_datapoints, n_features)}``, detached tensors on the inputs' device.

    Raises:
        InputError: as :func:`capture_raw` and :func:`to_2d`.
    """
    raw = capture_raw(module, inputs, layers, params)
    return {name: to_2d(act, conv_mode) for name, act in raw.items()}


def capture_before_after(
    module: nn.Module,
    meta_params: Params | None,
    fast_weights: Params,
    inputs: torch.Tensor,
    layers: Sequence[str] | None = None,
    conv_mode: str = "channels",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The same ``inputs`` through the meta-init (before) and the fast weights (after).

    The paper's Section 4 measurement for one task: ``before[layer]`` and ``after[layer]``
    hold the same datapoints in the same order, so any measure of :mod:`repsim.similarity`
    compares them layer by layer.

    Args:
        module: any ``nn.Module`` (e.g. ``learner.module``).
        meta_params: the meta-initialisation, ``{name: tensor}`` (e.g.
            ``learner.meta_params()``), or None for the module's own parameters.
        fast_weights: the parameters after the inner loop on the task's support set (e.g.
            ``learner.adapt(meta_params, support_x, support_y)``).
        inputs: one batch, e.g. the task's support and query images ``[N*K + Q, C, H, W]``
            together, as the model sees them (the transductive norm's statistics come from
            this batch).
        layers: module paths to capture (default: ``module.analysis_layers``).
        conv_mode: ``"channels"`` (``(N*H*W, C)``, the paper's) or ``"flatten"``.

    Returns:
        before: ``{layer: (n_datapoints, n_features)}`` through the meta-init.
        after: the same layers through the fast weights, row for row the same datapoints as
            ``before``.

    Raises:
        InputError: as :func:`capture`.
    """
    before = capture(module, inputs, layers, meta_params, conv_mode)
    after = capture(module, inputs, layers, fast_weights, conv_mode)
    return before, after


def match_datapoints(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Make two raw layer outputs of the same ``N`` inputs comparable datapoint by datapoint.

    For comparing *different* layers (a layer x layer matrix): two conv maps ``(N, C, H, W)``
    of different spatial sizes are average-pooled to the smaller grid, so that ``"channels"``
    mode gives both the same ``N*h*w`` datapoints (example, position); a conv map against a
    non-spatial output ``(N, D)`` is pooled to ``(N, C)``. Same-sized outputs are returned as
    they are, so comparing a layer with its counterpart is exactly the paper's measure.

    Args:
        a: one layer's raw output, ``(N, C, H, W)`` or ``(N, D)``.
        b: another layer's raw output for the same ``N`` inputs.

    Returns:
        a: the first output, pooled where needed.
        b: the second output, pooled where needed.

    Raises:
        InputError: the two outputs are for different numbers of inputs.
    """
    import torch.nn.functional as F

    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"outputs for {a.shape[0]} and {b.shape[0]} inputs cannot be compared: run the same "
            "inputs through both"
        )
    if a.dim() == 4 and b.dim() == 4:
        size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
        if tuple(a.shape[2:]) != size:
            a = F.adaptive_avg_pool2d(a, size)
        if tuple(b.shape[2:]) != size:
            b = F.adaptive_avg_pool2d(b, size)
        return a, b
    if a.dim() == 4:
        a = a.mean(dim=(2, 3))
    if b.dim() == 4:
        b = b.mean(dim=(2, 3))
    return a, b


def capture_streaming(
    module: nn.Module,
    batches: Iterable[torch.Tensor],
    params_a: Params | None,
    params_b: Params | None,
    layers: Sequence[str] | None = None,
    measures: Sequence[str] = ("cka",),
    conv_mode: str = "channels",
) -> dict[str, dict[str, float]]:
    """Similarity of every layer between ``params_a`` and ``params_b`` over many input batches,
    without holding all activations: each batch feeds the exact streaming accumulators of
    :mod:`repsim.similarity` (``"cka"`` -> ``StreamingLinearCKA``, ``"cca"`` -> ``StreamingCCA``).

    Args:
        module: any ``nn.Module``.
        batches: an iterable of input batches, e.g. images ``(B, C, H, W)`` each.
        params_a: the parameters of side a (e.g. the meta-init), or None for the module's own.
        params_b: the parameters of side b (e.g. one task's fast weights), or None.
        layers: module paths (default: ``module.analysis_layers``).
        measures: ``"cka"`` and / or ``"cca"``.
        conv_mode: ``"channels"`` or ``"flatten"``, as in :func:`capture`.

    Returns:
        ``{layer: {measure: value}}``.

    Raises:
        InputError: a measure that cannot stream, no batches, or what :func:`capture` and
            the accumulators raise.

    Caution: with the paper's transductive BatchNorm (``norm="transductive"``) a layer's output
    depends on which examples share its batch, so streaming over minibatches computes different
    activations from one forward pass over everything. Use it for modules whose normalisation
    does not look at the batch (running statistics in eval mode, LayerNorm, no norm), or accept
    per-batch statistics knowingly.
    """
    from repsim import similarity

    factories = {"cka": similarity.StreamingLinearCKA, "cca": similarity.StreamingCCA}
    unknown = [m for m in measures if m not in factories]
    if unknown:
        raise InputError(
            f"streaming supports the measures {sorted(factories)}, got {unknown}: compute the "
            "others with capture_before_after on one batch"
        )
    names = resolve_layers(module, layers)
    accumulators = {name: {m: factories[m]() for m in measures} for name in names}
    seen = 0
    for batch in batches:
        acts_a = capture(module, batch, names, params_a, conv_mode)
        acts_b = capture(module, batch, names, params_b, conv_mode)
        for name in names:
            for acc in accumulators[name].values():
                acc.update(acts_a[name], acts_b[name])
        seen += 1
    if not seen:
        raise InputError("capture_streaming got no input batches: pass at least one batch")
    return {
        name: {m: float(acc.value()) for m, acc in accs.items()}
        for name, accs in accumulators.items()
    }
