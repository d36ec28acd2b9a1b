"""Input checks, centring and the centred products every measure starts from.

One place for the error texts and for the numerics shared by the CCA and CKA families: a layer
is validated once (:func:`as_matrix`), its column means give the finiteness check, and
:func:`centred_gram` returns the centred Gram matrix ``Xc^T Xc`` together with the data the
cross products of a pair are taken from (:func:`cross`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from repsim.errors import InputError

Array = Any  # numpy.ndarray | torch.Tensor

# A centred column whose norm is below this many ulps of its magnitude is a dead neuron.
DEAD_ULPS = 100.0

# A layer already in the compute dtype is multiplied uncentred, and the centring applied to the
# (d, d) products (``X^T Y - n mu_x mu_y^T``), when every column's n * mean^2 is at most this
# many times its centred sum of squares: the correction then costs at most log10(1 + 64) ~ 1.8
# digits of the float64 result, and the (n, d) centred copy is never made. Other layers (large
# offsets, constant neurons) are centred first, as before.
RAW_MEAN_RATIO = 64.0


def eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def check_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputError(f"dtype must be a torch floating dtype (e.g. torch.float64), got {dtype}")


def as_matrix(a: Array, name: str, dtype: torch.dtype) -> torch.Tensor:
    """``a`` as a 2-D torch tensor on its own device (numpy -> CPU, no copy). Floating input
    keeps its dtype (the compute dtype is applied when the layer is centred); other numbers are
    converted to ``dtype``."""
    if isinstance(a, np.ndarray):
        if a.dtype == object or not (
            np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)
        ):
            raise InputError(f"{name} has dtype {a.dtype}; pass numbers (a float array)")
        if a.dtype == np.float16:
            a = a.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
    elif isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        raise InputError(
            f"{name} is a {type(a).__name__}; pass a numpy array or a torch tensor shaped "
            "(n_datapoints, n_features)"
        )
    if t.dim() == 1:
        raise InputError(
            f"{name} is 1-D with shape {tuple(t.shape)}; activations must be "
            "(n_datapoints, n_features): for a single neuron use reshape(-1, 1)"
        )
    if t.dim() != 2:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}; activations must be (n_datapoints, n_features): "
            "convert conv outputs (N, C, H, W) with conv_to_2d(a, mode='channels' or 'flatten')"
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise InputError(f"{name} has shape {tuple(t.shape)}; it needs datapoints and features")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(dtype)
    return t


def check_pair(x: Array, y: Array, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of activations with the same datapoints on one device."""
    check_dtype(dtype)
    tx = as_matrix(x, "x", dtype)
    ty = as_matrix(y, "y", dtype)
    if tx.shape[0] != ty.shape[0]:
        raise InputError(
            f"x has {tx.shape[0]} datapoints (rows) but y has {ty.shape[0]}; both must be the "
            "same datapoints in the same order"
        )
    if tx.device != ty.device:
        raise InputError(f"x is on {tx.device} but y is on {ty.device}; move both to one device")
    return tx, ty


def input_eps(a: Array) -> float:
    """Machine epsilon of the caller's data (float32 activations carry float32 rounding noise
    even when the computation runs in float64), 0 for integer data."""
    dt = getattr(a, "dtype", None)
    if isinstance(dt, torch.dtype):
        return torch.finfo(dt).eps if dt.is_floating_point else 0.0
    try:
        return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0
    except TypeError:
        return 0.0


def raise_non_finite(t: torch.Tensor, name: str) -> None:
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise InputError(
            f"{name} contains {bad} NaN or inf value(s); remove or fix those datapoints first "
            "(e.g. check the model for a diverged forward pass)"
        )
    raise InputError(
        f"{name} has values too large for {t.dtype} (its column sums overflow); rescale it "
        "(every measure here is scale invariant) or compute in float64"
    )


def column_mean(t: torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
    """Column means in ``dtype``; a NaN or inf anywhere in ``t`` makes a mean non-finite, so
    checking the ``d`` means is the finiteness check (no extra pass over ``t``)."""
    mean = t.mean(dim=0, dtype=dtype)
    if not bool(torch.isfinite(mean).all()):
        raise_non_finite(t, name)
    return mean


_NUMPY = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


def converted(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A copy of ``t`` in ``dtype``; on the CPU numpy's conversion (8 ms against torch's 22 ms
    at (10000, 512), float32 to float64)."""
    if t.device.type == "cpu":
        return torch.from_numpy(t.numpy().astype(_NUMPY[dtype]))
    return t.to(dtype)


def centre(t: torch.Tensor, name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t - mean, mean)`` in ``dtype``. Input of another dtype is converted first and centred
    in place (a casting subtraction, or a mean that casts on the fly, is several times slower
    than a conversion plus a same-dtype pass)."""
    if t.dtype != dtype:
        tc = converted(t, dtype)
        mean = column_mean(tc, name, dtype)
        return tc.sub_(mean), mean
    mean = column_mean(t, name, dtype)
    return torch.sub(t, mean), mean


def _numpy_ok(t: torch.Tensor) -> bool:
    return (
        t.device.type == "cpu" and not t.requires_grad and t.dtype in (torch.float32, torch.float64)
    )


# From this many columns on, numpy's symmetric product beats torch's general one on the CPU.
_SYRK_MIN_D = 192


def gram(t: torch.Tensor) -> torch.Tensor:
    """``t^T t`` ``(d, d)``. On the CPU numpy's BLAS computes ``A.T @ A`` as a symmetric rank-k
    update (half the flops: 0.053 s against torch's 0.082 s at (10000, 512) in float64); for
    narrow layers (0.32 ms against 0.21 ms at (2000, 64)), and elsewhere (CUDA, autograd),
    plain torch."""
    if t.shape[1] >= _SYRK_MIN_D and _numpy_ok(t):
        a = t.numpy()
        return torch.from_numpy(a.T @ a)
    return t.mT @ t


def row_gram(t: torch.Tensor) -> torch.Tensor:
    """``t t^T`` ``(n, n)``, symmetric rank-k on the CPU as :func:`gram`."""
    if _numpy_ok(t):
        a = t.numpy()
        return torch.from_numpy(a @ a.T)
    return t @ t.mT


def alive_columns(sumsq: torch.Tensor, mean: torch.Tensor, n: int) -> torch.Tensor:
    """Mask of the columns that are not constant (dead neurons are).

    ``sumsq``: each column's centred sum of squares; ``mean``: its mean. A constant column
    centres to rounding noise of a few ulps of its mean; anything above ``DEAD_ULPS`` ulps is
    variation.
    """
    floor = n * (DEAD_ULPS * eps(mean.dtype) * mean.abs()).square()
    return sumsq > floor


@dataclass
class Centred:
    """A layer ready for products: its centred Gram ``gram = Xc^T Xc`` ``(d, d)``, and ``mat``
    ``(n, d)``, either the input itself (``mu`` = its column means: products with it are
    corrected by ``n mu mu^T``) or a centred copy (``mu`` None).

    ``amp`` bounds how much the uncentred products amplify rounding (1 for a centred copy);
    measures whose accuracy depends on it (Gram whitening) take it into account.
    """

    mat: torch.Tensor
    mu: torch.Tensor | None
    mean: torch.Tensor
    gram: torch.Tensor
    source: torch.Tensor
    amp: float = 1.0

    @property
    def n(self) -> int:
        return int(self.mat.shape[0])

    def centred(self) -> torch.Tensor:
        """The centred data ``(n, d)`` (a copy when ``mat`` is the raw input)."""
        if self.mu is None:
            return self.mat
        return torch.sub(self.source, self.mean)


def centred_gram(t: torch.Tensor, name: str, dtype: torch.dtype) -> Centred:
    """:class:`Centred` for ``t`` ``(n, d)``, in ``dtype``.

    float64 input computed in float64, with moderate column offsets (``RAW_MEAN_RATIO``), is
    used as it is: one symmetric product and a rank-one correction, no copy. Otherwise the data
    is centred (and converted) in one pass first.
    """
    n = t.shape[0]
    if dtype == torch.float64 and t.dtype != dtype and t.device.type == "cpu":
        t = converted(t, dtype)  # converted once, then as float64 input
    if t.dtype != dtype or dtype != torch.float64:  # float32 keeps every digit: centred first
        tc, mean = centre(t, name, dtype)
        return Centred(mat=tc, mu=None, mean=mean, gram=gram(tc), source=t)
    mean = column_mean(t, name, dtype)
    g = gram(t)
    g -= n * torch.outer(mean, mean)
    offset = n * mean.square()
    var = g.diagonal()
    if bool((offset <= RAW_MEAN_RATIO * var).all()):
        ratio = float((offset / var.clamp_min(torch.finfo(dtype).tiny)).max())
        return Centred(mat=t, mu=mean, mean=mean, gram=g, source=t, amp=1.0 + ratio)
    tc = torch.sub(t, mean)  # large offsets: centred first (the mean is already known)
    return Centred(mat=tc, mu=None, mean=mean, gram=gram(tc), source=t)


def cross(a: torch.Tensor, mu_a: torch.Tensor | None, b: torch.Tensor, mu_b) -> torch.Tensor:
    """``Ac^T Bc`` ``(d_a, d_b)`` from two layers' product data (see :class:`Centred`). When
    either side is centred the product needs no correction (``X^T Yc = Xc^T Yc``)."""
    m = a.mT @ b
    if mu_a is not None and mu_b is not None:
        m -= a.shape[0] * torch.outer(mu_a, mu_b)
    return m


def need_debiased_n(n: int) -> None:
    if n < 4:
        raise InputError(
            f"the debiased (unbiased HSIC) estimator needs at least 4 datapoints, got {n}; "
            "pass more datapoints or use debiased=False"
        )


def ratio(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, debiased: bool) -> float:
    xx, yy = float(xx), float(yy)
    if debiased and (xx <= 0 or yy <= 0):
        raise InputError(
            "the unbiased HSIC of a layer with itself came out <= 0 (too few datapoints for "
            "the debiased estimator); pass more datapoints or use debiased=False"
        )
    return float(xy) / math.sqrt(xx * yy)
