"""What every adapter shares: tracking which source keys were used, guessing the image size a
head was trained for, choosing the adapted parameters, and wrapping up a MetaLearner."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch

from repsim.adapters.convnet import ConvNet, NetSpec, load_mapped
from repsim.errors import CheckpointError
from repsim.inner_loop import InnerLoop
from repsim.protocol import MetaLearner

IMAGE_SIZES = (28, 84, 32, 64, 80, 96, 105, 224)  # Omniglot, MiniImageNet, CIFAR-FS/FC100, ...
ADAPTED_CHOICES = ("all", "no-norm", "head", "body")


class KeyTracker:
    """The source file's tensors; ``take`` marks a key as used; :meth:`check_all_used` fails
    listing the keys no part of the rebuilt model accounted for."""

    def __init__(self, state: dict[str, torch.Tensor], source: str, layout: str):
        self.state = state
        self.used: set[str] = set()
        self.source = source
        self.layout = layout

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise CheckpointError(
                f"{self.source} lacks tensor {key!r}, which the {self.layout} layout needs; "
                f"it has {sorted(self.state)[:12]}..."
            )
        self.used.add(key)
        return self.state[key]

    def ignore(self, keys: Iterable[str]) -> list[str]:
        keys = [k for k in keys if k in self.state]
        self.used.update(keys)
        return keys

    def check_all_used(self) -> None:
        left = sorted(set(self.state) - self.used)
        if left:
            raise CheckpointError(
                f"{self.source}: unexpected keys {left} for the {self.layout} layout: the "
                "file holds more than the model repsim rebuilds (another architecture, or "
                "another library: try a different --format)"
            )


def dataset_for(in_channels: int) -> str:
    return "omniglot" if in_channels == 1 else "miniimagenet"


def fit_image_size(make_spec, head_in: int, image_size: int | None, in_channels: int) -> NetSpec:
    """The :class:`NetSpec` ``make_spec(image_size)`` whose feature size equals the head's
    input ``head_in``: the given ``image_size``, else the usual sizes tried in order."""
    tried = [image_size] if image_size else [28 if in_channels == 1 else 84, *IMAGE_SIZES]
    for size in dict.fromkeys(tried):
        try:
            spec = make_spec(size)
            if spec.feature_dim() == head_in:
                return spec
        except CheckpointError:
            continue
    raise CheckpointError(
        f"the head reads {head_in} features, which no image size in {list(dict.fromkeys(tried))} "
        "gives for this architecture: pass image_size=... (or another --format)"
    )


def select_adapted(net: ConvNet, which: str) -> list[str]:
    """Names of the parameters the inner loop changes: ``all`` (learn2learn, higher,
    dragen1860 adapt every parameter), ``no-norm`` (Finn et al., torchmeta, MAML++: convs and
    head), ``head`` (ANIL), ``body`` (BOIL: convs only)."""
    names = [n for n, _ in net.named_parameters()]
    if which == "all":
        return names
    no_norm = [n for n in names if ".norm." not in n]
    if which == "no-norm":
        return no_norm
    if which == "head":
        return [n for n in names if n.startswith("head.")]
    if which == "body":
        return [n for n in no_norm if not n.startswith("head.")]
    raise CheckpointError(f"adapted must be one of {ADAPTED_CHOICES}, got {which!r}")


def make_learner(
    spec: NetSpec,
    tensors: dict[str, torch.Tensor],
    origin: dict[str, str],
    *,
    source: str,
    family: str,
    adapted: str,
    inner_lr: float,
    inner_steps: int,
    config: dict | None = None,
    adapt=None,
) -> MetaLearner:
    """Build ``ConvNet(spec)``, load ``tensors`` into it strictly, and wrap it as a
    :class:`MetaLearner` whose inner loop is plain gradient descent on the mean cross-entropy
    (``lr``, ``steps``, on the ``adapted`` parameters) unless ``adapt`` is given."""
    net = ConvNet(spec)
    load_mapped(net, tensors, origin, source)
    net.eval()
    names = select_adapted(net, adapted)
    if inner_steps < 0:
        raise CheckpointError(f"inner steps must be >= 0, got {inner_steps}")
    loop = None if adapt else InnerLoop(tuple(names), float(inner_lr), int(inner_steps))
    fn = adapt or partial(loop.adapt, net)
    record = {
        "format": family,
        "checkpoint": source,
        "dataset": dataset_for(spec.in_channels),
        "ways": spec.ways,
        "model": spec.to_dict(),
        "adapt": {"adapted": names, "inner_lr": inner_lr, "inner_steps": inner_steps},
        **(config or {}),
    }
    return MetaLearner(
        module=net,
        analysis_layers=list(net.analysis_layers),
        adapt=fn,
        input_shape=(spec.in_channels, spec.image_size, spec.image_size),
        inner_loop=loop,
        config=record,
    )
