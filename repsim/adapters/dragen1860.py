"""dragen1860/MAML-Pytorch checkpoints: ``Learner`` parameters by position, driven by a config.

The ``Learner`` keeps its tensors in ``vars`` (an ``nn.ParameterList``: conv weight
``(C_out, C_in, k, k)`` and bias, BatchNorm weight and bias, linear weight ``(out, in)`` and
bias, in config order) and the BatchNorm running statistics in ``vars_bn``; a ``Meta`` object
saves them as ``net.vars.{i}`` / ``net.vars_bn.{j}``. Stride, padding and pooling are not in
the file: they come from the config list the Learner was built with (``config=[('conv2d',
[64, 1, 3, 3, 2, 0]), ('relu', [True]), ('bn', [64]), ...]``), by default the repository's
Omniglot config for 1-channel models and its MiniImageNet config for 3-channel ones
(:data:`OMNIGLOT_CONFIG`, :data:`MINIIMAGENET_CONFIG`). Note ReLU comes *before* BatchNorm,
and convs use padding 0. ``F.batch_norm(..., training=True)`` (eps 1e-5): batch statistics.

Inner loop: every ``vars`` tensor adapts (BatchNorm affine included), mean cross-entropy,
``update_lr`` 0.4 (Omniglot) / 0.01 (MiniImageNet), ``update_step_test`` 10 steps.
"""

from __future__ import annotations

import re

import torch

from repsim.adapters.common import KeyTracker, make_learner
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError

VARS = re.compile(r"^(?:.*\.)?vars\.(\d+)$")
VARS_BN = re.compile(r"^(?:.*\.)?vars_bn\.(\d+)$")


def _conv4_config(channels: int, hidden: int, strides, last_kernel: int, pools, linear_in):
    config = []
    cin = channels
    for i, stride in enumerate(strides):
        k = last_kernel if i == len(strides) - 1 else 3
        config += [("conv2d", [hidden, cin, k, k, stride, 0]), ("relu", [True]), ("bn", [hidden])]
        if pools[i]:
            config.append(("max_pool2d", list(pools[i])))
        cin = hidden
    return config + [("flatten", []), ("linear", [5, linear_in])]


# The configs of omniglot_train.py and miniimagenet_train.py (the linear's ways are read from
# the file).
OMNIGLOT_CONFIG = _conv4_config(1, 64, (2, 2, 2, 1), 2, (None,) * 4, 64)
MINIIMAGENET_CONFIG = _conv4_config(
    3, 32, (1, 1, 1, 1), 3, ((2, 2, 0), (2, 2, 0), (2, 2, 0), (2, 1, 0)), 32 * 5 * 5
)


def matches(keys) -> bool:
    return any(VARS.match(k) for k in keys)


def spec_from_config(config, ways: int, image_size: int) -> NetSpec:
    """A :class:`NetSpec` from a dragen1860 config list (conv2d, relu, bn, max_pool2d,
    flatten, linear)."""
    blocks, current, order = [], None, None
    for name, param in config:
        if name == "conv2d":
            if current:
                blocks.append(current)
            co, _ci, k, _k2, stride, pad = param
            current = {"out": co, "k": k, "stride": stride, "pad": pad, "pool": None, "seen": []}
        elif name in ("relu", "bn"):
            if current is None:
                raise CheckpointError(f"config: {name} before any conv2d")
            current["seen"].append(name)
        elif name == "max_pool2d":
            current["pool"] = (param[0], param[1])
            if param[2] != 0:
                raise CheckpointError("config: max_pool2d with padding is not supported")
        elif name in ("flatten", "linear"):
            continue
        else:
            raise CheckpointError(
                f"config entry {name!r} is not supported (conv2d, relu, bn, "
                "max_pool2d, flatten, linear are)"
            )
    if current:
        blocks.append(current)
    orders = {tuple(b["seen"]) for b in blocks}
    if orders == {("relu", "bn")}:
        order = "conv-act-norm"
    elif orders == {("bn", "relu")}:
        order = "conv-norm-act"
    else:
        raise CheckpointError(f"config blocks mix relu/bn orders {orders}: not supported")
    specs = tuple(BlockSpec(b["out"], b["k"], b["stride"], b["pad"], b["pool"]) for b in blocks)
    return NetSpec(config[0][1][1], image_size, specs, ways, order=order, readout="flatten")


def load(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    config=None,
    adapted=None,
    **_,
):
    keys = KeyTracker(state, source, "dragen1860 MAML-Pytorch")
    by_index = {int(VARS.match(k).group(1)): k for k in state if VARS.match(k)}
    bn_keys = [k for k in state if VARS_BN.match(k)]
    if sorted(by_index) != list(range(len(by_index))):
        raise CheckpointError(f"{source}: vars indices {sorted(by_index)} are not 0..n-1")
    seq = [by_index[i] for i in range(len(by_index))]
    in_channels = state[seq[0]].shape[1]
    if config is None:  # the repository's config, with the file's filter count
        hidden = state[seq[0]].shape[0]
        if in_channels == 1:
            config = _conv4_config(1, hidden, (2, 2, 2, 1), 2, (None,) * 4, hidden)
        else:
            pools = ((2, 2, 0), (2, 2, 0), (2, 2, 0), (2, 1, 0))
            config = _conv4_config(in_channels, hidden, (1, 1, 1, 1), 3, pools, hidden * 25)
    ways = state[seq[-2]].shape[0]
    spec = spec_from_config(config, ways, image_size or (28 if in_channels == 1 else 84))

    tensors, origin = {}, {}
    pos = 0

    def take(name: str) -> None:
        nonlocal pos
        if pos >= len(seq):
            raise CheckpointError(
                f"{source}: vars ends before {name} (the config has more layers than the file)"
            )
        tensors[name], origin[name] = keys.take(seq[pos]), seq[pos]
        pos += 1

    for b in range(len(spec.blocks)):
        for part in ("conv.weight", "conv.bias", "norm.weight", "norm.bias"):
            take(f"conv{b + 1}.{part}")
    take("head.weight")
    take("head.bias")
    keys.ignore(bn_keys)
    keys.check_all_used()
    for b, blk in enumerate(spec.blocks):
        w = tensors[f"conv{b + 1}.conv.weight"]
        if w.dim() != 4 or w.shape[0] != blk.out_channels or w.shape[-1] != blk.kernel:
            raise CheckpointError(
                f"{source}: layer 'conv{b + 1}': {origin[f'conv{b + 1}.conv.weight']} has shape "
                f"{tuple(w.shape)}, the config says {blk.out_channels} filters of size "
                f"{blk.kernel}: pass the config the Learner was built with (config=[...])"
            )
    mini = in_channels != 1
    return make_learner(
        spec,
        tensors,
        origin,
        source=source,
        family="dragen1860",
        adapted=adapted or "all",
        inner_lr=(0.01 if mini else 0.4) if inner_lr is None else inner_lr,
        inner_steps=10 if inner_steps is None else inner_steps,
        config={
            "algorithm": "maml",
            "learner_config": [list(c) for c in config],
            "ignored": "vars_bn running statistics (batch statistics are used)",
        },
    )
