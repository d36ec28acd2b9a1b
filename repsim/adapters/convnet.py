"""The small conv nets other meta-learning libraries train, rebuilt exactly.

The "Conv4" of each library differs in ways that change the forward pass: the order of ReLU and
BatchNorm, the padding (0, 1, or TensorFlow's asymmetric ``'SAME'``), strides and pooling, the
norm's epsilon and whether it has a scale, the activation (MAML++ uses leaky ReLU), and how the
last feature map reaches the head (spatial mean, NCHW flatten, or TensorFlow's NHWC flatten).
A :class:`NetSpec` states all of these, and :class:`ConvNet` runs it.

Layer names follow repsim's Conv4: blocks ``conv1 .. convK`` (each with ``conv`` and ``norm``,
output after activation and pooling) and ``head``; ``analysis_layers`` lists them. Parameters:
``convK.conv.weight`` ``(C_out, C_in, k, k)``, ``convK.conv.bias``, ``convK.norm.weight``,
``convK.norm.bias`` ``(C_out,)``, ``head.weight`` ``(ways, features)``, ``head.bias``.

Normalisation always uses the current batch's statistics (``nn.BatchNorm2d`` in training mode,
``F.batch_norm(..., training=True)``, TensorFlow's ``batch_norm(is_training=True)``): that is
how each of these libraries runs its model at meta-test time, so no running statistics are used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from repsim.errors import CheckpointError, InputError
from repsim.models import BatchStatNorm, BodyHeadModel, tf_same_pad

ORDERS = ("conv-norm-act", "conv-act-norm")
READOUTS = ("mean", "flatten", "flatten_nhwc")


@dataclass(frozen=True)
class BlockSpec:
    """One conv block: ``conv(k, stride, padding)`` then norm and activation in ``order``,
    then an optional max-pool ``(kernel, stride)``. ``padding="same"`` is TensorFlow's
    'SAME' (extra row/column at the bottom/right when the total is odd)."""

    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: int | str = 1
    pool: tuple[int, int] | None = None


@dataclass(frozen=True)
class NetSpec:
    in_channels: int
    image_size: int
    blocks: tuple[BlockSpec, ...]
    ways: int
    order: str = "conv-norm-act"
    activation: str = "relu"  # or "leaky_relu" (slope 0.01, MAML++)
    norm_eps: float = 1e-5
    norm_scale: bool = True  # False: beta only, scale fixed at 1 (TensorFlow batch_norm default)
    readout: str = "flatten"  # "mean": spatial mean; "flatten": NCHW; "flatten_nhwc": TF order
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.readout not in READOUTS:
            raise InputError(f"readout must be one of {READOUTS}, got {self.readout!r}")

    def spatial_sizes(self) -> list[int]:
        """Side length after each block, for a square ``image_size`` input."""
        sizes, s = [], self.image_size
        for b in self.blocks:
            if b.padding == "same":
                s = -(-s // b.stride)
            else:
                s = (s + 2 * int(b.padding) - b.kernel) // b.stride + 1
            if b.pool is not None:
                s = (s - b.pool[0]) // b.pool[1] + 1
            if s < 1:
                raise CheckpointError(
                    f"a {self.image_size}x{self.image_size} image shrinks to nothing in this "
                    "network: pass the image size it was trained on (image_size=...)"
                )
            sizes.append(s)
        return sizes

    def feature_dim(self) -> int:
        c = self.blocks[-1].out_channels
        return c if self.readout == "mean" else c * self.spatial_sizes()[-1] ** 2

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = [asdict(b) for b in self.blocks]
        return d


class ScaleFreeNorm(BatchStatNorm):
    """Batch-statistics norm with a learned shift only (``beta``); the scale is a fixed
    buffer of ones, as in TensorFlow's ``batch_norm(scale=False)``."""

    def __init__(self, channels: int, eps: float):
        super().__init__(channels, "transductive", eps)
        del self.weight
        self.register_buffer("weight", torch.ones(channels), persistent=False)


class Block(nn.Module):
    def __init__(self, cin: int, spec: BlockSpec, net: NetSpec):
        super().__init__()
        self.spec = spec
        self.order = net.order
        self.activation = net.activation
        pad = 0 if spec.padding == "same" else int(spec.padding)
        self.conv = nn.Conv2d(cin, spec.out_channels, spec.kernel, spec.stride, pad)
        if net.norm_scale:
            self.norm = BatchStatNorm(spec.out_channels, "transductive", net.norm_eps)
        else:
            self.norm = ScaleFreeNorm(spec.out_channels, net.norm_eps)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x) if self.activation == "leaky_relu" else F.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.padding == "same":
            x = tf_same_pad(x, self.spec.kernel, self.spec.stride)
        x = self.conv(x)
        x = self.act(self.norm(x)) if self.order == "conv-norm-act" else self.norm(self.act(x))
        if self.spec.pool is not None:
            x = F.max_pool2d(x, self.spec.pool[0], self.spec.pool[1])
        return x


class ConvNet(BodyHeadModel):
    """A conv net described by a :class:`NetSpec`: images ``(N, C, H, W)`` -> logits
    ``(N, ways)``; ``stage="body"`` gives the head's input features ``(N, feature_dim)`` and
    ``stage="head"`` applies the head to them (the fast ANIL path of ``repsim.inner_loop``)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        cin = spec.in_channels
        names = []
        for i, b in enumerate(spec.blocks):
            self.add_module(f"conv{i + 1}", Block(cin, b, spec))
            names.append(f"conv{i + 1}")
            cin = b.out_channels
        self.body_layers = tuple(names)
        self.analysis_layers = (*names, "head")
        self.head = nn.Linear(spec.feature_dim(), spec.ways)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise InputError(
                f"this network takes images shaped (N, {self.spec.in_channels}, H, W), got "
                f"{tuple(x.shape)}"
            )
        for name in self.body_layers:
            x = getattr(self, name)(x)
        if self.spec.readout == "mean":
            return x.mean(dim=(2, 3))
        if self.spec.readout == "flatten_nhwc":
            return x.permute(0, 2, 3, 1).flatten(1)
        return x.flatten(1)


def load_mapped(
    net: nn.Module, tensors: dict[str, torch.Tensor], origin: dict[str, str], source: str
) -> None:
    """Copy ``tensors`` (keyed by ``net``'s names) into ``net``; every parameter must be given
    exactly once with the right shape. ``origin`` maps a name back to the source file's key,
    so errors name both."""
    expected = {n: p for n, p in net.named_parameters()}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(
            f"{source} lacks tensors for {missing}: the file does not hold a whole model of "
            "this layout (or it is another library's; try --format with another name)"
        )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(
            f"{source}: unexpected tensors {[origin.get(k, k) for k in extra]} for this layout"
        )
    with torch.no_grad():
        for name, param in expected.items():
            value = tensors[name]
            if tuple(value.shape) != tuple(param.shape):
                layer = name.split(".", 1)[0]
                raise CheckpointError(
                    f"{source}: layer {layer!r}: tensor {origin.get(name, name)!r} has shape "
                    f"{tuple(value.shape)}, the rebuilt model expects {tuple(param.shape)} for "
                    f"{name} (wrong image size or a different architecture?)"
                )
            if not torch.isfinite(value).all():
                raise CheckpointError(
                    f"{source}: tensor {origin.get(name, name)!r} holds NaN or inf; the run "
                    "that wrote it diverged"
                )
            param.copy_(value.to(param.dtype))
