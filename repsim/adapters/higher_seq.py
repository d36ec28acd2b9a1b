"""The ``higher`` and ``torch.func`` MAML Omniglot examples: a plain ``nn.Sequential``.

Architecture (``examples/maml-omniglot.py``): three times [``Conv2d(C, 64, 3)`` (padding 0) ->
``BatchNorm2d(64, momentum=1, affine=True)`` -> ReLU -> ``MaxPool2d(2, 2)``], ``Flatten``,
``Linear(64, ways)``: keys ``0.weight, 0.bias, 1.weight, 1.bias[, 1.running_*], 4.*, 5.*, 8.*,
9.*, 13.weight, 13.bias``. The examples run the net in training mode (batch statistics); the
torch.func version builds the norms with ``track_running_stats=False``.

Inner loop: SGD with lr 0.1 on every parameter (norm affine included), 5 steps, mean
cross-entropy (the examples' ``inner_opt`` and ``n_inner_iter``).
"""

from __future__ import annotations

import re

import torch

from repsim.adapters.common import KeyTracker, fit_image_size, make_learner
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError

KEY = re.compile(r"^(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def matches(keys) -> bool:
    keys = list(keys)
    return bool(keys) and all(KEY.match(k) for k in keys)


def load(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    adapted=None,
    **_,
):
    keys = KeyTracker(state, source, "higher / torch.func nn.Sequential")
    indices = sorted({int(KEY.match(k).group(1)) for k in state if KEY.match(k)})
    convs = [i for i in indices if state.get(f"{i}.weight", torch.empty(0)).dim() == 4]
    linears = [i for i in indices if state.get(f"{i}.weight", torch.empty(0)).dim() == 2]
    if not convs or len(linears) != 1:
        raise CheckpointError(
            f"{source}: expected conv layers and one linear head in an "
            f"nn.Sequential, found indices {indices}"
        )
    expected_convs = [4 * b for b in range(len(convs))]
    if convs != expected_convs or linears[0] != 4 * len(convs) + 1:
        raise CheckpointError(
            f"{source}: conv layers at {convs} and head at {linears[0]}; the higher/torch.func "
            f"example has [conv, norm, relu, pool] blocks: convs at {expected_convs}, head at "
            f"{4 * len(convs) + 1}"
        )
    tensors, origin = {}, {}
    for b, c in enumerate(convs):
        pairs = (
            ("conv.weight", f"{c}.weight"),
            ("conv.bias", f"{c}.bias"),
            ("norm.weight", f"{c + 1}.weight"),
            ("norm.bias", f"{c + 1}.bias"),
        )
        for name, key in pairs:
            tensors[f"conv{b + 1}.{name}"] = keys.take(key)
            origin[f"conv{b + 1}.{name}"] = key
        keys.ignore(
            [f"{c + 1}.running_mean", f"{c + 1}.running_var", f"{c + 1}.num_batches_tracked"]
        )
    h = linears[0]
    for leaf in ("weight", "bias"):
        tensors[f"head.{leaf}"] = keys.take(f"{h}.{leaf}")
        origin[f"head.{leaf}"] = f"{h}.{leaf}"
    keys.check_all_used()

    in_channels = tensors["conv1.conv.weight"].shape[1]
    ways, head_in = tensors["head.weight"].shape
    blocks = tuple(
        BlockSpec(
            tensors[f"conv{b + 1}.conv.weight"].shape[0],
            tensors[f"conv{b + 1}.conv.weight"].shape[-1],
            1,
            0,
            (2, 2),
        )
        for b in range(len(convs))
    )

    def spec(size: int) -> NetSpec:
        return NetSpec(in_channels, size, blocks, ways, readout="flatten")

    return make_learner(
        fit_image_size(spec, head_in, image_size, in_channels),
        tensors,
        origin,
        source=source,
        family="higher",
        adapted=adapted or "all",
        inner_lr=0.1 if inner_lr is None else inner_lr,
        inner_steps=5 if inner_steps is None else inner_steps,
        config={"algorithm": "maml"},
    )
