"""The paper's network: Conv4 of Finn et al. (2017), with the layers named as in Raghu et al.

Omniglot: 4 x [3x3 conv, 64 filters, stride 2, 'same' padding -> norm -> ReLU], spatial mean,
linear head 64 -> N. MiniImageNet: 4 x [3x3 conv, 32 filters, stride 1, 'same' padding -> norm ->
ReLU -> 2x2 max-pool], flatten (32*5*5 = 800), linear head 800 -> N.

The norm is :class:`BatchStatNorm`. In the default ``"transductive"`` mode it always normalises
with the statistics of the current batch, as the original MAML code does (at meta-test time too),
and is written with plain mean/var ops so that second-order gradients are exact under
``torch.func.vmap`` (``nn.BatchNorm2d`` is not; pytorch/functorch#534). Its affine parameters
(``convK.norm.weight/bias``) are meta-learned but never adapted in the inner loop.

Parameter names: ``conv{1..4}.conv.{weight,bias}``, ``conv{1..4}.norm.{weight,bias}``,
``head.{weight,bias}``. The analysis layers are ``conv1 .. conv4`` (block outputs, after ReLU
and pooling) and ``head`` (the logits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repsim.errors import InputError

BODY_LAYERS = ("conv1", "conv2", "conv3", "conv4")
ANALYSIS_LAYERS = (*BODY_LAYERS, "head")
NORM_MODES = ("transductive", "running")
NORM_AFFINE = ("full", "beta")  # scale and shift, or shift only (the original code's default)
HEAD_INITS = ("xavier", "normal")  # Xavier-uniform, or N(0, 1) (the original Omniglot code)
# 1 pixel on every side, or TensorFlow's 'SAME' (the original code): 0 before / 1 after at stride 2
PADDINGS = ("symmetric", "tf-same")


@dataclass(frozen=True)
class Conv4Config:
    """Architecture of a Conv4 network; stored in every checkpoint."""

    in_channels: int = 1
    image_size: int = 28
    hidden: int = 64
    ways: int = 5
    stride: int = 2
    max_pool: bool = False
    pooling: str = "mean"  # "mean": spatial mean (Omniglot); "flatten" (MiniImageNet)
    norm: str = "transductive"  # "transductive": batch statistics always; "running"
    norm_eps: float = 1e-5
    norm_momentum: float = 0.1
    norm_affine: str = "full"  # "full": scale and shift; "beta": shift only
    head_init: str = "xavier"  # "xavier": Xavier-uniform; "normal": N(0, 1) weights
    padding: str = "symmetric"  # "symmetric": 1 pixel each side; "tf-same": TensorFlow's 'SAME'

    def __post_init__(self):
        if self.padding not in PADDINGS:
            raise InputError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.norm_affine not in NORM_AFFINE:
            raise InputError(f"norm_affine must be one of {NORM_AFFINE}, got {self.norm_affine!r}")
        if self.head_init not in HEAD_INITS:
            raise InputError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")

    @classmethod
    def omniglot(cls, ways: int = 5, **overrides) -> Conv4Config:
        return cls(
            **{
                "in_channels": 1,
                "image_size": 28,
                "hidden": 64,
                "ways": ways,
                "stride": 2,
                "max_pool": False,
                "pooling": "mean",
                **overrides,
            }
        )

    @classmethod
    def miniimagenet(cls, ways: int = 5, **overrides) -> Conv4Config:
        return cls(
            **{
                "in_channels": 3,
                "image_size": 84,
                "hidden": 32,
                "ways": ways,
                "stride": 1,
                "max_pool": True,
                "pooling": "flatten",
                **overrides,
            }
        )

    @classmethod
    def for_dataset(cls, dataset: str, ways: int, **overrides) -> Conv4Config:
        if dataset == "omniglot":
            return cls.omniglot(ways, **overrides)
        if dataset == "miniimagenet":
            return cls.miniimagenet(ways, **overrides)
        raise InputError(f"unknown dataset {dataset!r}: use 'omniglot' or 'miniimagenet'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Conv4Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown Conv4 config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def spatial_out(self) -> int:
        """Side length of conv4's output map."""
        s = self.image_size
        for _ in range(4):
            s = (s + self.stride - 1) // self.stride  # 'same' padding
            if self.max_pool:
                s //= 2
        return s

    def feature_dim(self) -> int:
        """Size of the penultimate representation that the head reads."""
        if self.pooling == "mean":
            return self.hidden
        return self.hidden * self.spatial_out() ** 2


class BatchStatNorm(nn.Module):
    """Per-channel normalisation of (N, C, H, W) input with batch mean and biased variance.

    ``mode="transductive"``: always the current batch's statistics (MAML's convention).
    ``mode="running"``: batch statistics in training mode, updating running averages;
    the running averages in eval mode.
    ``affine="full"``: a learned scale (``weight``) and shift (``bias``); ``affine="beta"``: the
    shift only, as the original MAML code's ``batch_norm`` defaults (no ``weight`` parameter).
    """

    def __init__(
        self,
        channels: int,
        mode: str = "transductive",
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: str = "full",
    ):
        super().__init__()
        if mode not in NORM_MODES:
            raise InputError(f"norm mode must be one of {NORM_MODES}, got {mode!r}")
        if affine not in NORM_AFFINE:
            raise InputError(f"norm affine must be one of {NORM_AFFINE}, got {affine!r}")
        self.mode = mode
        self.eps = eps
        self.momentum = momentum
        if affine == "full":
            self.weight = nn.Parameter(torch.ones(channels))
        else:
            self.register_parameter("weight", None)
        self.bias = nn.Parameter(torch.zeros(channels))
        if mode == "running":
            self.register_buffer("running_mean", torch.zeros(channels))
            self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "transductive":
            # The native kernel with no running statistics: no buffers, so exact second-order
            # gradients under vmap too (measured equal to the mean/var ops to 9e-14 in float64,
            # and 1.02-1.32x faster per MAML step).
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if self.mode == "running" and not self.training:
            mean, var = self.running_mean, self.running_var
        else:
            mean = x.mean(dim=(0, 2, 3))
            var = (x - mean[None, :, None, None]).pow(2).mean(dim=(0, 2, 3))
            if self.mode == "running" and self.training:
                with torch.no_grad():
                    n = x.numel() // x.shape[1]
                    unbiased = var.detach() * n / max(n - 1, 1)
                    self.running_mean.lerp_(mean.detach(), self.momentum)
                    self.running_var.lerp_(unbiased, self.momentum)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        return (x - mean[None, :, None, None]) * scale[None, :, None, None] + self.bias[
            None, :, None, None
        ]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, mode={self.mode!r}, eps={self.eps}"


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` as TensorFlow's 'SAME' does: total ``max((ceil(s/stride)-1)*stride
    + kernel - s, 0)``, the smaller half before, the larger after."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad wants (left, right, top, bottom)
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ConvBlock(nn.Module):
    """3x3 conv ('same' padding: symmetric, or TensorFlow's) -> norm -> ReLU [-> 2x2 max-pool]."""

    def __init__(self, cin: int, cout: int, cfg: Conv4Config):
        super().__init__()
        self.tf_same = cfg.padding == "tf-same"
        self.stride = cfg.stride
        pad = 0 if self.tf_same else 1
        self.conv = nn.Conv2d(cin, cout, 3, stride=cfg.stride, padding=pad)
        self.norm = BatchStatNorm(cout, cfg.norm, cfg.norm_eps, cfg.norm_momentum, cfg.norm_affine)
        self.max_pool = cfg.max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = tf_same_pad(x, 3, self.stride)
        x = F.relu(self.norm(self.conv(x)))
        if self.max_pool:
            x = F.max_pool2d(x, 2)
        return x


class BodyHeadModel(nn.Module):
    """A network that is ``head(body(x))`` and can run either part alone.

    ``forward(x)`` gives logits; ``forward(x, stage="body")`` the penultimate features;
    ``forward(f, stage="head")`` the head on such features. Functional callers
    (``torch.func.functional_call``) use ``stage`` so that ANIL runs the body once per task.
    Subclasses define ``body(x)`` and a ``head`` module.
    """

    supports_stages = True

    def forward(self, x: torch.Tensor, stage: str = "full") -> torch.Tensor:
        if stage == "full":
            return self.head(self.body(x))
        if stage == "body":
            return self.body(x)
        if stage == "head":
            return self.head(x)
        raise InputError(f"stage must be 'full', 'body' or 'head', got {stage!r}")


class Conv4(BodyHeadModel):
    """Conv4 with layers ``conv1..conv4`` and ``head``.

    ``forward(x)`` maps images ``(N, C, H, W)`` to logits ``(N, ways)``.
    ``forward(x, stage="body")`` gives the penultimate features ``(N, feature_dim)``;
    ``forward(f, stage="head")`` applies the head to such features. Functional callers
    (``torch.func.functional_call``) use ``stage`` to run the body once per task for ANIL.
    """

    analysis_layers = ANALYSIS_LAYERS
    body_layers = BODY_LAYERS

    def __init__(self, config: Conv4Config | None = None):
        super().__init__()
        cfg = config or Conv4Config()
        self.config = cfg
        chans = [cfg.in_channels] + [cfg.hidden] * 4
        for i in range(4):
            self.add_module(f"conv{i + 1}", ConvBlock(chans[i], chans[i + 1], cfg))
        self.head = nn.Linear(cfg.feature_dim(), cfg.ways)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Finn et al.'s init: Xavier-uniform conv kernels, zero biases, unit norm scale; the head
        Xavier-uniform, or N(0, 1) with ``head_init="normal"`` (the original Omniglot code)."""
        for name in BODY_LAYERS:
            block = getattr(self, name)
            nn.init.xavier_uniform_(block.conv.weight)
            nn.init.zeros_(block.conv.bias)
            if block.norm.weight is not None:
                nn.init.ones_(block.norm.weight)
            nn.init.zeros_(block.norm.bias)
        if self.config.head_init == "normal":
            nn.init.normal_(self.head.weight, 0.0, 1.0)
        else:
            nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise InputError(
                f"Conv4 expects images shaped (N, {self.config.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        for name in BODY_LAYERS:
            x = getattr(self, name)(x)
        if self.config.pooling == "mean":
            return x.mean(dim=(2, 3))
        return x.flatten(1)


def layer_of(param_name: str) -> str:
    """The analysis layer a parameter belongs to: ``conv2.norm.weight`` -> ``conv2``."""
    return param_name.split(".", 1)[0]


def is_norm_param(param_name: str) -> bool:
    return ".norm." in param_name


def adapted_parameter_names(
    model: nn.Module, algorithm: str = "maml", freeze: int = 0
) -> list[str]:
    """Names of the parameters the inner loop adapts.

    - ``maml`` / ``fomaml``: every conv kernel and bias and the head (never the norm's affine
      parameters, as in Finn et al.);
    - ``anil``: the head only;
    - ``boil``: the body only (BOIL-style);
    - ``freeze=k``: test-time freezing, MAML minus the first k body layers, conv1..convk
      (Table 1 of the paper), or a policy's fc1..fck.

    A model may name parameters that only the outer loop trains (``meta_only_parameters``,
    e.g. a policy's log-std); like the norm's affine parameters they are never adapted.
    """
    meta_only = set(getattr(model, "meta_only_parameters", ()))
    names = [n for n, _ in model.named_parameters() if not is_norm_param(n) and n not in meta_only]
    if algorithm in ("maml", "fomaml"):
        chosen = names
    elif algorithm == "anil":
        chosen = [n for n in names if layer_of(n) == "head"]
    elif algorithm == "boil":
        chosen = [n for n in names if layer_of(n) != "head"]
    elif algorithm in ("nil", "multiclass", "multitask", "random"):
        chosen = [n for n in names if layer_of(n) == "head"]
    else:
        raise InputError(f"unknown algorithm {algorithm!r}: use maml, fomaml, anil or boil")
    body = tuple(getattr(model, "body_layers", BODY_LAYERS))
    if not 0 <= freeze <= len(body):
        raise InputError(
            f"freeze must be between 0 and {len(body)} (body layers {', '.join(body)}), "
            f"got {freeze}"
        )
    frozen = set(body[:freeze])
    return [n for n in chosen if layer_of(n) not in frozen]
