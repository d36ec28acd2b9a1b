"""learn2learn's CNN4 / MiniImagenetCNN, OmniglotCNN and ANIL checkpoints.

Architecture (``learn2learn.vision.models.ConvBlock``): 3x3 conv, padding 1 (stride 1 with a 2x2
max-pool after the block, or stride 2 without pooling) -> ``BatchNorm2d`` (eps 1e-5, used in
training mode, i.e. batch statistics) -> ReLU. MiniImagenetCNN flattens the last map (NCHW);
OmniglotCNN takes the spatial mean. The head is ``classifier`` (``nn.Linear``).

Layouts: ``features.{0..3}.conv|normalize.*`` + ``classifier.*`` (CNN4 / MiniImagenetCNN);
OmniglotCNN registers the same tensors twice, as ``base.{i}.*`` and ``features.1.{i}.*`` (the
copies are checked equal and one is used); ANIL saves the body as ``{i}.conv|normalize.*`` and
the ``MAML``-wrapped head as ``module.weight`` / ``module.bias``. Wrappers (``module.`` from
MAML/DDP, ``model.`` from Lightning, ``_orig_mod.``) are stripped before.

Inner loop: learn2learn's ``MAML`` adapts every parameter (norm affine included) with plain SGD
on the mean cross-entropy. The learning rate is not saved in the file; the defaults are those
of learn2learn's examples: ``fast_lr`` 0.4 on 1-channel (Omniglot) models, 0.5 on 3-channel
(MiniImageNet) ones, 1 adaptation step; the ANIL layout adapts the head only with 0.1 and 5
steps (``anil_fc100.py``).
"""

from __future__ import annotations

import re

import torch

from repsim.adapters.common import KeyTracker, fit_image_size, make_learner
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError

BODY_KEY = re.compile(
    r"^(?P<prefix>(?:.*\.)?)(?P<i>\d+)\.(?P<part>conv|normalize)\."
    r"(?P<leaf>weight|bias|running_mean|running_var|num_batches_tracked)$"
)
STATS = ("running_mean", "running_var", "num_batches_tracked")


def matches(keys) -> bool:
    return any(".normalize." in k or re.match(r"^\d+\.normalize\.", k) for k in keys)


def _body_groups(state: dict) -> dict[str, dict[int, dict[str, str]]]:
    """``{prefix: {block index: {"conv.weight": key, ...}}}`` of the body keys."""
    groups: dict[str, dict[int, dict[str, str]]] = {}
    for key in state:
        m = BODY_KEY.match(key)
        if m:
            block = groups.setdefault(m["prefix"], {}).setdefault(int(m["i"]), {})
            block[f"{m['part']}.{m['leaf']}"] = key
    return groups


def load(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    max_pool=None,
    adapted=None,
    **_,
):
    keys = KeyTracker(state, source, "learn2learn")
    blocks, omniglot_cnn = _one_body(state, keys, source)
    order = sorted(blocks)
    head_prefix = _head_prefix(state, keys, source)
    anil = head_prefix == "module."

    tensors, origin = {}, {}
    for i in order:
        parts = blocks[i]
        for part, name in (
            ("conv.weight", "conv.weight"),
            ("conv.bias", "conv.bias"),
            ("normalize.weight", "norm.weight"),
            ("normalize.bias", "norm.bias"),
        ):
            if part not in parts:
                raise CheckpointError(f"{source}: block {i} lacks {part}")
            tensors[f"conv{i + 1}.{name}"] = keys.take(parts[part])
            origin[f"conv{i + 1}.{name}"] = parts[part]
        keys.ignore(parts[f"normalize.{s}"] for s in STATS if f"normalize.{s}" in parts)
    for leaf in ("weight", "bias"):
        tensors[f"head.{leaf}"] = keys.take(head_prefix + leaf)
        origin[f"head.{leaf}"] = head_prefix + leaf
    keys.check_all_used()

    pool = (not omniglot_cnn) if max_pool is None else bool(max_pool)
    net_spec = _net_spec(tensors, order, pool, image_size)
    if anil:
        lr, steps, which = 0.1, 5, "head"
    else:
        lr, steps, which = (0.4 if net_spec.in_channels == 1 else 0.5), 1, "all"
    return make_learner(
        net_spec,
        tensors,
        origin,
        source=source,
        family="learn2learn",
        adapted=adapted or which,
        inner_lr=lr if inner_lr is None else inner_lr,
        inner_steps=steps if inner_steps is None else inner_steps,
        config={
            "algorithm": "anil" if anil else "maml",
            "layout": "anil" if anil else ("OmniglotCNN" if omniglot_cnn else "CNN4"),
            "ignored": "BatchNorm running statistics (batch statistics are used)",
        },
    )


def _one_body(state: dict, keys: KeyTracker, source: str) -> tuple[dict, bool]:
    """The body's blocks ``{i: {part: key}}`` (numbered 0..K-1) and whether the file is an
    OmniglotCNN, whose ``base.*`` and ``features.1.*`` must be the same tensors (the copies are
    checked, then ignored)."""
    groups = _body_groups(state)
    if not groups:
        raise CheckpointError(
            f"{source}: no learn2learn body keys (*.{{i}}.conv.weight, *.{{i}}.normalize.weight)"
        )
    omniglot_cnn = "base." in groups
    first = "base." if omniglot_cnn else sorted(groups)[0]
    for prefix, blocks in groups.items():
        if prefix == first:
            continue
        for i, parts in blocks.items():
            for part, key in parts.items():
                other = groups[first].get(i, {}).get(part)
                if other is None or not torch.equal(state[other], state[key]):
                    raise CheckpointError(
                        f"{source}: {key!r} is not a copy of {other!r}: the file holds two "
                        "different bodies; save one model's state_dict"
                    )
                keys.ignore([key])
    blocks = groups[first]
    order = sorted(blocks)
    if order != list(range(len(order))):
        raise CheckpointError(f"{source}: body blocks {order} are not numbered 0..K-1")
    return blocks, omniglot_cnn


def _net_spec(tensors: dict, order: list[int], pool: bool, image_size) -> NetSpec:
    """learn2learn's CNN4 / OmniglotCNN as a :class:`NetSpec` (max-pooled or strided), its image
    size fitted to the head's width."""
    in_channels = tensors["conv1.conv.weight"].shape[1]
    ways, head_in = tensors["head.weight"].shape
    channels = [tensors[f"conv{i + 1}.conv.weight"].shape[0] for i in order]
    kernel = tensors["conv1.conv.weight"].shape[-1]

    def spec(size: int) -> NetSpec:
        blocks = tuple(
            BlockSpec(c, kernel, 1 if pool else 2, 1, (2, 2) if pool else None) for c in channels
        )
        readout = "mean" if (not pool and head_in == channels[-1]) else "flatten"
        return NetSpec(in_channels, size, blocks, ways, readout=readout)

    return fit_image_size(spec, head_in, image_size, in_channels)


def _head_prefix(state: dict, keys: KeyTracker, source: str) -> str:
    for prefix in ("classifier.", "module.", "head.", ""):
        w = state.get(prefix + "weight")
        if w is not None and w.dim() == 2 and prefix + "bias" in state:
            return prefix
    raise CheckpointError(
        f"{source}: no learn2learn head found (classifier.weight, or module.weight for ANIL)"
    )
