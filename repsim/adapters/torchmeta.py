"""torchmeta / pytorch-maml / BOIL checkpoints (``MetaConvModel`` and the conv3x3 example).

Architecture: 3x3 conv, padding 1, stride 1 -> ``BatchNorm2d(momentum=1.,
track_running_stats=False)`` (always batch statistics, eps 1e-5) -> ReLU -> 2x2 max-pool, four
times; flatten (NCHW); ``classifier`` (``MetaLinear``).

Layouts: ``features.layer{1..4}.conv|norm.{weight,bias}`` + ``classifier.*``
(torchmeta's ``ModelConvOmniglot`` / ``ModelConvMiniImagenet``, pytorch-maml, BOIL), or
``features.{0..3}.{0,1}.*`` (conv, norm) + ``classifier.*`` (torchmeta's example model). There
are no running statistics (if present they are ignored).

Inner loop: ``gradient_update_parameters`` updates the ``MetaModule`` parameters only: convs and
classifier, never the (plain ``nn``) BatchNorm. Defaults: ``step_size`` 0.4, 1 step, mean
cross-entropy (the torchmeta / pytorch-maml examples). ``algorithm="boil"`` (or
``--format boil``) adapts the convs only, as BOIL does.
"""

from __future__ import annotations

import re

import torch

from repsim.adapters.common import KeyTracker, fit_image_size, make_learner
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError

NAMED = re.compile(r"^features\.layer(?P<i>\d+)\.(?P<part>conv|norm)\.(?P<leaf>\w+)$")
INDEXED = re.compile(r"^features\.(?P<i>\d+)\.(?P<part>[01])\.(?P<leaf>\w+)$")
STATS = ("running_mean", "running_var", "num_batches_tracked")


def matches(keys) -> bool:
    keys = list(keys)
    return any(k.startswith("classifier.") for k in keys) and any(
        NAMED.match(k) or INDEXED.match(k) for k in keys
    )


def load(
    state: dict[str, torch.Tensor],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    algorithm="maml",
    adapted=None,
    **_,
):
    keys = KeyTracker(state, source, "torchmeta")
    blocks: dict[int, dict[str, str]] = {}
    for key in state:
        m = NAMED.match(key)
        if m:
            blocks.setdefault(int(m["i"]) - 1, {})[f"{m['part']}.{m['leaf']}"] = key
            continue
        m = INDEXED.match(key)
        if m:
            part = "conv" if m["part"] == "0" else "norm"
            blocks.setdefault(int(m["i"]), {})[f"{part}.{m['leaf']}"] = key
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(
            f"{source}: torchmeta body blocks missing or misnumbered ({sorted(blocks)})"
        )
    tensors, origin = {}, {}
    for i in sorted(blocks):
        for part in ("conv.weight", "conv.bias", "norm.weight", "norm.bias"):
            if part not in blocks[i]:
                raise CheckpointError(f"{source}: block {i + 1} lacks {part}")
            tensors[f"conv{i + 1}.{part}"] = keys.take(blocks[i][part])
            origin[f"conv{i + 1}.{part}"] = blocks[i][part]
        keys.ignore(blocks[i].get(f"norm.{s}", "") for s in STATS)
    for leaf in ("weight", "bias"):
        tensors[f"head.{leaf}"] = keys.take(f"classifier.{leaf}")
        origin[f"head.{leaf}"] = f"classifier.{leaf}"
    keys.check_all_used()

    in_channels = tensors["conv1.conv.weight"].shape[1]
    ways, head_in = tensors["head.weight"].shape
    channels = [tensors[f"conv{i + 1}.conv.weight"].shape[0] for i in sorted(blocks)]

    def spec(size: int) -> NetSpec:
        return NetSpec(
            in_channels,
            size,
            tuple(BlockSpec(c, 3, 1, 1, (2, 2)) for c in channels),
            ways,
            readout="flatten",
        )

    boil = algorithm == "boil"
    return make_learner(
        fit_image_size(spec, head_in, image_size, in_channels),
        tensors,
        origin,
        source=source,
        family="boil" if boil else "torchmeta",
        adapted=adapted or ("body" if boil else "no-norm"),
        inner_lr=0.4 if inner_lr is None else inner_lr,
        inner_steps=1 if inner_steps is None else inner_steps,
        config={"algorithm": "boil" if boil else "maml"},
    )
