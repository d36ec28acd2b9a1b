"""The CCA family: mean CCA, the paper's 0.98-truncated mean, SVCCA and PWCCA.

Per layer (:func:`prepare_cca`, :func:`prepare_svcca`, :func:`prepare_pwcca`): an orthonormal
basis of the centred column space, as the layer's data times a whitening matrix (from its
centred Gram matrix) or, for badly conditioned layers, an explicit ``Q``. Per pair: the
singular values of ``basis_x^T basis_y``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from repsim.errors import InputError
from repsim.similarity._core import Centred, alive_columns, centred_gram, cross, eps


@dataclass
class Basis:
    """An orthonormal basis ``(mat - mean) @ w`` ``(n, rank)`` of a layer's centred column space.

    Either ``mat`` is the layer's data (``mu`` its column means, or None when ``mat`` is
    already centred) and ``w`` ``(d, rank)`` its whitening matrix (well-conditioned layers:
    only Gram products needed), or ``mat`` is an orthonormal ``Q`` from a QR factorisation and
    ``w`` is None. Null directions are already dropped.
    """

    mat: torch.Tensor
    w: torch.Tensor | None
    n: int
    mu: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int((self.w if self.w is not None else self.mat).shape[1])

    def cross(self, other: Basis) -> torch.Tensor:
        """``(self basis)^T (other basis)``, ``(rank_self, rank_other)``."""
        m = cross(self.mat, self.mu, other.mat, other.mu)
        if self.w is not None:
            m = self.w.mT @ m
        if other.w is not None:
            m = m @ other.w
        return m


def default_rtol(n: int, d: int, dtype: torch.dtype) -> float:
    return max(n, d) * eps(dtype)


def _fast_ok(ratio: torch.Tensor, dtype: torch.dtype, amp: float = 1.0) -> bool:
    """Whitening from the Gram matrix loses ~eps * amp / ratio of accuracy (``ratio``: smallest
    over largest eigenvalue; ``amp``: the rounding amplification of uncentred products): use it
    only while that stays below ``sqrt(eps) / 10`` (for centred data: ``ratio >= 10 sqrt(eps)``),
    else QR."""
    return float(ratio) >= 10.0 * math.sqrt(eps(dtype)) * amp


def no_variance(name: str) -> InputError:
    return InputError(
        f"{name} has no variance: every column (neuron) is constant over the datapoints, so "
        "its canonical correlations are undefined; check the layer or pass other datapoints"
    )


def cca_basis(
    t: torch.Tensor, name: str, dtype: torch.dtype, rtol: float | None, data_eps: float = 0.0
) -> tuple[Basis, Centred]:
    """Orthonormal basis of the centred column space of ``t`` (dead and dependent directions
    dropped), and the layer's centred products.

    Columns are normalised first, so the rank decision is invariant to column scaling. A
    well-conditioned layer is whitened through its Gram matrix (one symmetric ``n d^2``
    product); otherwise QR of the centred data, rank-revealed by the SVD of R.
    """
    n, d = t.shape
    c = centred_gram(t, name, dtype)
    sumsq = c.gram.diagonal()
    alive = alive_columns(sumsq, c.mean, n)
    if not bool(alive.any()):
        raise no_variance(name)
    every = bool(alive.all())
    idx = None if every else alive.nonzero().squeeze(1)
    std = sumsq.sqrt() if every else sumsq[idx].sqrt()
    sub = c.gram if every else c.gram[idx][:, idx]
    lam, v = torch.linalg.eigh(sub / std[:, None] / std[None, :])
    if rtol is None and _fast_ok(lam[0] / lam[-1], dtype, c.amp):
        w = v / lam.sqrt() / std[:, None]
        if not every:
            full = torch.zeros(d, w.shape[1], dtype=w.dtype, device=w.device)
            full[idx] = w
            w = full
        return Basis(mat=c.mat, w=w, n=n, mu=c.mu), c
    tc = c.centred()
    cols = tc if every else tc[:, idx]
    q, r = torch.linalg.qr(cols / std)
    u, s, _ = torch.linalg.svd(r)
    if rtol is None:  # the data's own precision bounds what counts as a direction
        rtol = max(n, d) * max(eps(dtype), data_eps)
    k = int((s > rtol * s[0]).sum())
    if k < u.shape[1]:
        q = q @ u[:, :k]
    return Basis(mat=q, w=None, n=n), c


def svd_basis(t: torch.Tensor, name: str, dtype: torch.dtype, keep: float) -> Basis:
    """Top singular directions of centred ``t`` explaining at least ``keep`` of the variance."""
    n, d = t.shape
    c = centred_gram(t, name, dtype)
    if not bool(alive_columns(c.gram.diagonal(), c.mean, n).any()):
        raise no_variance(name)
    lam, v = torch.linalg.eigh(c.gram)
    lam, v = lam.flip(0).clamp_min(0.0), v.flip(1)
    k = keep_count(lam, keep, n, d)
    if _fast_ok(lam[k - 1] / lam[0], dtype, c.amp):
        return Basis(mat=c.mat, w=v[:, :k] / lam[:k].sqrt(), n=n, mu=c.mu)
    q, r = torch.linalg.qr(c.centred())
    u, s, _ = torch.linalg.svd(r)
    k = keep_count(s.square(), keep, n, d, s)
    return Basis(mat=q @ u[:, :k], w=None, n=n)


def keep_count(
    var: torch.Tensor, keep: float, n: int, d: int, s: torch.Tensor | None = None
) -> int:
    """Fewest leading directions whose variance ``var`` (descending) reaches ``keep`` of the
    total; null directions (singular value below ``max(n, d) eps`` of the largest) never count."""
    sv = var.sqrt() if s is None else s
    nonnull = int((sv > default_rtol(n, d, var.dtype) * sv[0]).sum())
    var = var[:nonnull]
    frac = torch.cumsum(var, 0) / var.sum()
    # guard against rounding just below keep = 1.0
    return min(int((frac < keep - 1e-12).sum()) + 1, nonnull)


def check_keep(keep: float) -> None:
    if not 0.0 < float(keep) <= 1.0:
        raise InputError(f"keep must be in (0, 1] (a fraction of variance), got {keep}")


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")


def _check_dims(bx: Basis, by: Basis, what: str) -> None:
    n = bx.n
    if bx.rank + by.rank > n - 1:
        forced = bx.rank + by.rank - (n - 1)
        raise InputError(
            f"{what} is degenerate here: x has rank {bx.rank} and y rank {by.rank} but the "
            f"{n} datapoints span only {n - 1} dimensions after centring, so at least "
            f"{min(forced, bx.rank, by.rank)} canonical correlation(s) equal 1 whatever the data "
            f"(with n <= d every one is 1). Use linear_cka (no such limit), or pass more "
            f"datapoints (rank_x + rank_y must be <= n - 1), e.g. conv_to_2d(a, 'channels')"
        )


def coefficients(bx: Basis, by: Basis, what: str = "CCA") -> torch.Tensor:
    """Canonical correlations of two bases, descending, in [0, 1]."""
    _check_dims(bx, by, what)
    return torch.linalg.svdvals(bx.cross(by)).clamp(0.0, 1.0)


def truncated_mean(rho: torch.Tensor, threshold: float = 0.98) -> float:
    """google/svcca's summary of descending coefficients ``rho``.

    The mean of ``rho[:i]`` for the first ``i`` with ``sum(rho[:i]) >= threshold * sum(rho)``
    (``i < len(rho)``; all of ``rho`` when none reaches it): ``get_cca_similarity(...)["mean"]``
    in google/svcca, the CCA that Raghu et al. (2020) report with ``threshold=0.98``.

    Args:
        rho: canonical correlations, 1-D, in descending order (:func:`cca_coefficients`).
        threshold: the fraction of the coefficients' sum to reach, in (0, 1].

    Returns:
        The truncated mean, a Python float; 0 for all-zero ``rho``.

    Raises:
        InputError: ``threshold`` outside (0, 1].
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
    total = float(rho.sum())
    if total <= 0.0:
        return 0.0
    before = torch.cumsum(rho, 0) - rho  # before[i] = sum(rho[:i])
    hits = torch.nonzero(before >= threshold * total)
    i = int(hits[0]) if len(hits) else len(rho)
    return float(rho[:i].mean())


# --------------------------------------------------------------------------------------------
# prepare / pair
# --------------------------------------------------------------------------------------------


@dataclass
class PWCCALayer:
    basis: Basis
    proj: torch.Tensor  # basis^T Xc (rank, d): the layer's neurons in its orthonormal basis


def prepare_cca(t, name, ctx) -> Basis:
    return cca_basis(t, name, ctx.dtype, ctx.options.get("rtol"), ctx.data_eps)[0]


def pair_cca(a: Basis, b: Basis, options: dict) -> float:
    rho = coefficients(a, b)
    threshold = options.get("threshold")
    return float(rho.mean()) if threshold is None else truncated_mean(rho, threshold)


def prepare_svcca(t, name, ctx) -> Basis:
    return svd_basis(t, name, ctx.dtype, ctx.options.get("keep", 0.99))


def pair_svcca(a: Basis, b: Basis, options: dict) -> float:
    return float(coefficients(a, b, "SVCCA").mean())


def prepare_pwcca(t, name, ctx) -> PWCCALayer:
    basis, c = cca_basis(t, name, ctx.dtype, ctx.options.get("rtol"), ctx.data_eps)
    if basis.w is not None:  # basis = (data - mean) w: basis^T Xc = w^T Gram
        return PWCCALayer(basis, basis.w.mT @ c.gram)
    return PWCCALayer(basis, basis.mat.mT @ c.centred())


def pair_pwcca(a: PWCCALayer, b: PWCCALayer, options: dict) -> float:
    """``sum_i alpha_i rho_i`` with ``alpha_i = sum_j |<h_i, x_j>|`` for the true, unit-norm
    canonical variates ``h = basis_x @ u`` of x and its centred neurons ``x_j``."""
    _check_dims(a.basis, b.basis, "PWCCA")
    u, rho, _ = torch.linalg.svd(a.basis.cross(b.basis), full_matrices=False)
    alpha = (u.mT @ a.proj).abs().sum(dim=1)
    rho = rho.clamp(0.0, 1.0)
    return float((alpha * rho).sum() / alpha.sum())
