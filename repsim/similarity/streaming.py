"""Exact streaming over minibatches: linear CKA and CCA from accumulated sufficient statistics
(``O(d^2)`` memory), equal to the full-batch values to ~1e-10 in float64."""

from __future__ import annotations

import torch

from repsim.errors import InputError
from repsim.similarity._core import (
    DEAD_ULPS,
    Array,
    alive_columns,
    check_dtype,
    check_pair,
    eps,
    raise_non_finite,
)
from repsim.similarity.cka import no_variance


class _Moments:
    """Running n, sums and cross-products of shifted x and y (shift = first batch's mean).

    Shifting by a fixed vector keeps the sums exact and avoids cancellation when the mean is
    large compared with the spread. ``O(d^2)`` memory.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        check_dtype(dtype)
        self.dtype = dtype
        self.n = 0
        self.shift_x = self.shift_y = None
        self.sx = self.sy = self.xx = self.xy = self.yy = None

    def update(self, x_batch: Array, y_batch: Array) -> None:
        tx, ty = (t.to(self.dtype) for t in check_pair(x_batch, y_batch, self.dtype))
        if self.n == 0:
            self.shift_x, self.shift_y = tx.mean(0), ty.mean(0)
            dx, dy = tx.shape[1], ty.shape[1]
            z = dict(dtype=self.dtype, device=tx.device)
            self.sx, self.sy = torch.zeros(dx, **z), torch.zeros(dy, **z)
            self.xx, self.yy = torch.zeros(dx, dx, **z), torch.zeros(dy, dy, **z)
            self.xy = torch.zeros(dx, dy, **z)
        elif tx.shape[1] != self.sx.shape[0] or ty.shape[1] != self.sy.shape[0]:
            raise InputError(
                f"this batch has {tx.shape[1]} x-features and {ty.shape[1]} y-features but earlier "
                f"batches had {self.sx.shape[0]} and {self.sy.shape[0]}; stream one layer pair"
            )
        elif tx.device != self.sx.device:
            raise InputError(f"this batch is on {tx.device}, earlier ones on {self.sx.device}")
        a, b = tx - self.shift_x, ty - self.shift_y
        sa, sb = a.sum(0), b.sum(0)
        if not bool(torch.isfinite(sa).all()):
            raise_non_finite(tx, "x_batch")
        if not bool(torch.isfinite(sb).all()):
            raise_non_finite(ty, "y_batch")
        self.n += tx.shape[0]
        self.sx += sa
        self.sy += sb
        self.xx += a.mT @ a
        self.yy += b.mT @ b
        self.xy += a.mT @ b

    def centred(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centred scatter matrices ``Xc^T Xc``, ``Xc^T Yc``, ``Yc^T Yc``."""
        if self.n == 0:
            raise InputError("no data yet: call .update(x_batch, y_batch) first")
        mx, my = self.sx / self.n, self.sy / self.n
        cxx = self.xx - self.n * torch.outer(mx, mx)
        cyy = self.yy - self.n * torch.outer(my, my)
        cxy = self.xy - self.n * torch.outer(mx, my)
        return cxx, cxy, cyy

    def alive(self, c: torch.Tensor, raw: torch.Tensor, shift: torch.Tensor, s: torch.Tensor):
        """Non-constant columns, as ``_core.alive_columns``, allowing for the cancellation
        in ``raw - n mean mean^T`` (``raw``: shifted cross-products, ``s``: shifted sums)."""
        mean = shift + s / self.n
        floor = DEAD_ULPS * eps(self.dtype) * raw.diagonal()
        return alive_columns(c.diagonal() - floor, mean, self.n)


class StreamingLinearCKA:
    """Exact linear CKA accumulated over minibatches of paired activations.

    ``update(x_batch, y_batch)`` adds a batch's sums and cross-products (``O(d^2)`` memory,
    whatever the number of datapoints); ``value()`` equals :func:`linear_cka` on all the rows
    seen so far (to ~1e-10 in float64). For layers too large to hold at once.

    Args:
        dtype: the accumulation dtype (default float64).

    Example::

        acc = StreamingLinearCKA()
        for xb, yb in batches:              # (b, d_x), (b, d_y) each
            acc.update(xb, yb)
        acc.value()
    """

    def __init__(self, *, dtype: torch.dtype = torch.float64) -> None:
        self._m = _Moments(dtype)

    @property
    def n(self) -> int:
        """Datapoints seen so far."""
        return self._m.n

    def update(self, x_batch: Array, y_batch: Array) -> StreamingLinearCKA:
        """Add a batch: ``x_batch (b, d_x)`` and ``y_batch (b, d_y)``, the same b datapoints.

        Returns:
            The accumulator itself (so updates chain).

        Raises:
            InputError: a batch that is not 2-D, has NaN or inf values, differs in rows or
                device between x and y, or in features or device from the earlier batches.
        """
        self._m.update(x_batch, y_batch)
        return self

    def value(self) -> float:
        """Linear CKA of all the datapoints seen so far, a Python float in [0, 1].

        Raises:
            InputError: no data yet, or a side with no variance.
        """
        m = self._m
        cxx, cxy, cyy = m.centred()
        if not bool(m.alive(cxx, m.xx, m.shift_x, m.sx).any()):
            raise no_variance("x")
        if not bool(m.alive(cyy, m.yy, m.shift_y, m.sy).any()):
            raise no_variance("y")
        return min(float(cxy.square().sum() / (cxx.norm() * cyy.norm())), 1.0)


def _whitener(c: torch.Tensor, alive: torch.Tensor, name: str, rtol: float | None) -> torch.Tensor:
    """``W (d, r)`` with ``W^T C W = I_r`` over the non-null directions of scatter matrix C."""
    if not bool(alive.any()):
        raise InputError(
            f"{name} has no variance: every column (neuron) is constant over the datapoints, so "
            "its canonical correlations are undefined"
        )
    idx = alive.nonzero().squeeze(1)
    sub = c[idx][:, idx]
    std = sub.diagonal().sqrt()
    corr = sub / std[:, None] / std[None, :]
    lam, v = torch.linalg.eigh(corr)
    d = corr.shape[0]
    tol = (rtol if rtol is not None else 1e3 * d * eps(c.dtype)) * lam[-1]
    keep = lam > tol
    w_sub = v[:, keep] / lam[keep].sqrt() / std[:, None]
    w = torch.zeros(c.shape[0], w_sub.shape[1], dtype=c.dtype, device=c.device)
    w[idx] = w_sub
    return w


class StreamingCCA:
    """Exact CCA accumulated over minibatches, from covariance whitening of the moments.

    ``update(x_batch, y_batch)`` adds a batch (``O(d^2)`` memory); ``value()`` is the mean of
    ``coefficients()`` and equals :func:`cca` on all rows seen so far (to ~1e-10 for
    well-conditioned data: covariances square the condition number, so directions with
    relative variance below ``rtol`` (default ``1e3 * d * eps``) of the largest, after column
    normalisation, are treated as null).

    Args:
        dtype: the accumulation dtype (default float64).
        rtol: the relative variance below which a direction is null (default ``1e3 * d *
            eps(dtype)``).
    """

    def __init__(self, *, dtype: torch.dtype = torch.float64, rtol: float | None = None) -> None:
        self._m = _Moments(dtype)
        self.rtol = rtol

    @property
    def n(self) -> int:
        """Datapoints seen so far."""
        return self._m.n

    def update(self, x_batch: Array, y_batch: Array) -> StreamingCCA:
        """Add a batch: ``x_batch (b, d_x)`` and ``y_batch (b, d_y)``, the same b datapoints.

        Returns:
            The accumulator itself (so updates chain).

        Raises:
            InputError: as :meth:`StreamingLinearCKA.update`.
        """
        self._m.update(x_batch, y_batch)
        return self

    def coefficients(self) -> torch.Tensor:
        """Canonical correlations of all the datapoints seen so far.

        Returns:
            A 1-D tensor, descending, each in [0, 1].

        Raises:
            InputError: no data yet, a side with no variance, or ``rank_x + rank_y > n - 1``
                (stream more datapoints, or use :class:`StreamingLinearCKA`).
        """
        m = self._m
        cxx, cxy, cyy = m.centred()
        wx = _whitener(cxx, m.alive(cxx, m.xx, m.shift_x, m.sx), "x", self.rtol)
        wy = _whitener(cyy, m.alive(cyy, m.yy, m.shift_y, m.sy), "y", self.rtol)
        rx, ry = wx.shape[1], wy.shape[1]
        if rx + ry > m.n - 1:
            forced = rx + ry - (m.n - 1)
            raise InputError(
                f"CCA is degenerate here: x has rank {rx} and y rank {ry} but the {m.n} "
                f"datapoints span only {m.n - 1} dimensions after centring, so at least "
                f"{min(forced, rx, ry)} canonical correlation(s) equal 1 whatever the data. "
                "Use StreamingLinearCKA, or stream more datapoints"
            )
        return torch.linalg.svdvals(wx.mT @ cxy @ wy).clamp(0.0, 1.0)

    def value(self) -> float:
        """Mean canonical correlation of all the datapoints seen so far (a Python float).

        Raises:
            InputError: as :meth:`coefficients`.
        """
        return float(self.coefficients().mean())
