"""The CKA family: linear CKA (feature or Gram space), debiased, and RBF CKA.

Per layer: the centred data and self term (linear CKA in feature space), or the centred kernel
matrix and its row sums (Gram space, RBF). Per pair: one cross product (feature space) or one
elementwise product of two kernel matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from repsim.errors import InputError
from repsim.similarity._core import (
    alive_columns,
    centre,
    centred_gram,
    cross,
    ratio,
    row_gram,
)


def no_variance(name: str) -> InputError:
    return InputError(
        f"{name} has no variance: every column (neuron) is constant over the datapoints, so CKA "
        "is undefined (0/0); check the layer or pass other datapoints"
    )


def use_feature_space(n: int, dims: list[int]) -> bool:
    """Feature space costs ``n (sum d)^2`` (the products of every pair of layers), Gram space
    ``n^2 (2 sum d + layers^2)``; for one pair: ``dx^2+dy^2+dx dy <= n (dx+dy)``."""
    if len(dims) == 2:
        dx, dy = dims
        return dx * dx + dy * dy + dx * dy <= n * (dx + dy)
    return sum(dims) ** 2 <= n * (2 * sum(dims) + len(dims) ** 2)


def _hsic_u(cross2: torch.Tensor, ka: torch.Tensor, kb: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012) of linear kernels on centred features, times n(n-3):
    ``||Xc^T Yc||^2 - n/(n-2) ka.kb + sum(ka) sum(kb) / ((n-1)(n-2))`` with ``ka``, ``kb`` the
    centred rows' squared norms (the diagonals of the centred Gram matrices)."""
    return cross2 - n / (n - 2.0) * (ka @ kb) + ka.sum() * kb.sum() / ((n - 1) * (n - 2))


@dataclass
class FeatureLayer:
    """Linear CKA in feature space: the layer's product data (see ``_core.Centred``), its self
    term (``||Xc^T Xc||_F``, or n(n-3) HSIC_u(x, x) when debiased) and, debiased, the centred
    rows' squared norms."""

    mat: torch.Tensor
    mu: torch.Tensor | None
    self_term: torch.Tensor
    kdiag: torch.Tensor | None = None


@dataclass
class GramLayer:
    """CKA in Gram space: the centred (or U-centred) kernel matrix ``(n, n)`` and self term."""

    gram: torch.Tensor
    self_term: torch.Tensor


def _row_sq_norms(c) -> torch.Tensor:
    """Squared norms of the centred rows, from the layer's product data without a copy."""
    norms = torch.linalg.vector_norm(c.mat, dim=1).square()
    if c.mu is None:
        return norms
    return norms - 2.0 * (c.mat @ c.mu) + c.mu @ c.mu


def prepare_linear(t: torch.Tensor, name: str, ctx) -> FeatureLayer | GramLayer:
    n = t.shape[0]
    debiased = bool(ctx.options.get("debiased", False))
    if ctx.feature_space:
        c = centred_gram(t, name, ctx.dtype)
        if not bool(alive_columns(c.gram.diagonal(), c.mean, n).any()):
            raise no_variance(name)
        if not debiased:
            return FeatureLayer(c.mat, c.mu, c.gram.norm())
        kd = _row_sq_norms(c)
        return FeatureLayer(c.mat, c.mu, _hsic_u(c.gram.square().sum(), kd, kd, n), kd)
    tc, mean = centre(t, name, ctx.dtype)
    if not bool(alive_columns(tc.square().sum(dim=0), mean, n).any()):
        raise no_variance(name)
    k = row_gram(tc)
    if debiased:
        k = u_centre(k)
        return GramLayer(k, k.square().sum())
    return GramLayer(k, k.norm())


def pair_linear(a, b, options: dict) -> float:
    if isinstance(a, GramLayer):
        return pair_gram(a, b, options)
    cross2 = cross(a.mat, a.mu, b.mat, b.mu).square().sum()
    if a.kdiag is None:
        return min(float(cross2 / (a.self_term * b.self_term)), 1.0)
    xy = _hsic_u(cross2, a.kdiag, b.kdiag, a.mat.shape[0])
    return ratio(xy, a.self_term, b.self_term, True)


def pair_gram(a: GramLayer, b: GramLayer, options: dict) -> float:
    xy = torch.vdot(a.gram.reshape(-1), b.gram.reshape(-1))
    if not options.get("debiased", False):
        return min(max(float(xy / (a.self_term * b.self_term)), 0.0), 1.0)
    return ratio(xy, a.self_term, b.self_term, True)


def u_centre(k: torch.Tensor) -> torch.Tensor:
    """Szekely-Rizzo U-centring of a Gram matrix ``(n, n)`` in place (diagonal set to 0)."""
    n = k.shape[0]
    k.fill_diagonal_(0.0)
    rows = k.sum(dim=1) / (n - 2)
    total = k.sum() / ((n - 1) * (n - 2))
    k -= rows[:, None]
    k -= rows[None, :]
    k += total
    k.fill_diagonal_(0.0)
    return k


# --------------------------------------------------------------------------------------------
# RBF CKA
# --------------------------------------------------------------------------------------------

# Rows per block of the passes over (n, n) matrices: 26 rows of 10,000 float64 = 2 MB.
_BLOCK_ELEMENTS = 1 << 18
# Below this many distinct pairs the median is a plain selection over all of them.
_SMALL_MEDIAN = 1 << 15
_SAMPLE = 50_000


def _blocks(n: int):
    """Row blocks ``[r0, r1)`` of an upper-triangular pass: each touches ``[r0:r1, r0:]``."""
    step = max(1, _BLOCK_ELEMENTS // n)
    for r0 in range(0, n, step):
        yield r0, min(n, r0 + step)


def _zero_below_diagonal(blk: torch.Tensor, r0: int, r1: int, and_on: bool = False) -> None:
    """Zero the entries of ``blk`` = rows ``[r0, r1)``, columns ``[r0, n)`` below the diagonal
    (``and_on``: and on it)."""
    square = blk[:, : r1 - r0]
    keep = torch.ones_like(square, dtype=torch.bool).triu(1 if and_on else 0)
    square.masked_fill_(~keep, 0.0)


def upper_sq_distances(tc: torch.Tensor, median: bool = False):
    """Squared Euclidean distances between the rows of centred ``tc`` ``(n, n)``, in the upper
    triangle only (``j > i``; the diagonal and below read 0 within each block's reach), and,
    with ``median=True``, the exact median of those ``m = n(n-1)/2`` distances (else None).

    One symmetric rank-k product (BLAS ``syrk`` on the CPU: half the flops of ``tc @ tc.T`` and
    no mirrored copy), then ``|a|^2 + |b|^2 - 2 a.b`` in place, a block of rows at a time.

    The median is selected, not sorted: a random sample of pairs brackets it in ``[lo, hi]``;
    the same blocked pass counts the distances below ``lo`` and gathers those inside, and the
    median is selected among the few inside (the mean of the two middle values when ``m`` is
    even). The answer does not depend on the sample; a sample that misses (odds about 1e-8)
    falls back to selecting among all pairs."""
    n = tc.shape[0]
    if tc.device.type == "cpu" and tc.dtype in (torch.float32, torch.float64):
        from scipy.linalg import blas

        syrk = blas.dsyrk if tc.dtype == torch.float64 else blas.ssyrk
        # a.T is Fortran-ordered: C = -2 a a^T without a copy; lower in Fortran = upper in C
        d2 = torch.from_numpy(syrk(-2.0, tc.numpy().T, trans=1, lower=1).T)
    else:
        d2 = (tc @ tc.mT).mul_(-2.0)
    sq = d2.diagonal() / -2.0
    m = n * (n - 1) // 2
    ranks = ((m + 1) // 2, m // 2 + 1)
    bracket = _bracket(d2, sq, ranks) if median and m > _SMALL_MEDIAN else None
    below, inside = 0, []
    for r0, r1 in _blocks(n):
        blk = d2[r0:r1, r0:]
        blk.add_(sq[r0:r1, None]).add_(sq[None, r0:]).clamp_(min=0.0)
        _zero_below_diagonal(blk, r0, r1, and_on=True)
        if bracket is not None:
            lo, hi = bracket
            b = r1 - r0
            below += int(torch.count_nonzero(blk < lo)) - b * (b + 1) // 2  # less the wedge
            inside.append(blk[(blk >= lo) & (blk <= hi)])
    if not median:
        return d2, None
    if bracket is not None:
        vals = torch.cat(inside)
        r = (ranks[0] - below, ranks[1] - below)
        if r[0] >= 1 and r[1] <= vals.numel():
            return d2, _select(vals, r)
    iu = torch.triu_indices(n, n, offset=1, device=d2.device)
    return d2, _select(d2[iu[0], iu[1]], ranks)


def _bracket(g: torch.Tensor, sq: torch.Tensor, ranks: tuple[int, int]):
    """``(lo, hi)`` around the distances of the given ranks, from a seeded sample of pairs
    read off ``g`` = -2 times the Gram matrix; None when ``lo`` is not above 0 (the counting
    pass relies on the zeros it leaves below the diagonal being below ``lo``)."""
    n = g.shape[0]
    m = n * (n - 1) // 2
    size = min(_SAMPLE, m // 4)
    gen = torch.Generator(device="cpu").manual_seed(0)
    i = torch.randint(0, n, (size,), generator=gen)
    j = torch.randint(0, n - 1, (size,), generator=gen)
    j += j >= i
    i, j = torch.minimum(i, j).to(g.device), torch.maximum(i, j).to(g.device)
    sample = (sq[i] + sq[j] + g[i, j]).clamp_(min=0.0)  # g holds -2 a.b
    margin = 3.0 * math.sqrt(size)  # six standard deviations of the sample rank
    lo = torch.kthvalue(sample, max(1, int(size * ranks[0] / m - margin))).values
    hi = torch.kthvalue(sample, min(size, int(size * ranks[1] / m + margin) + 1)).values
    return (lo, hi) if float(lo) > 0.0 else None


def _select(v: torch.Tensor, ranks: tuple[int, int]) -> torch.Tensor:
    """Mean of the values at two 1-based ranks of ``v`` (the median: the two middle ranks)."""
    lo = torch.kthvalue(v, ranks[0]).values
    return lo if ranks[1] == ranks[0] else (lo + torch.kthvalue(v, ranks[1]).values) / 2


@dataclass
class RBFLayer:
    """A layer's Gaussian kernel less a constant, ``K' = K - c``, stored as its upper triangle
    with the diagonal (``(n, n)``, blocks reach ``[r0:r1, r0:]`` only), its row sums ``s``,
    their total ``S`` and ``<HK'H, HK'H>``. Centring ignores the constant, and the pair term
    ``<HKH, HLH> = sum K'*L' - 2/n s_K.s_L + S_K S_L / n^2`` needs one pass over the two
    triangles and never forms a centred matrix."""

    upper: torch.Tensor
    diag: float
    rows: torch.Tensor
    total: torch.Tensor
    self_term: torch.Tensor


def bandwidth2(med: torch.Tensor | None, name: str, sigma: float | None, sigma_frac: float):
    """``2 sigma^2`` for one side: given, or ``sigma_frac^2 * median`` of its distances."""
    if sigma is not None:
        return 2.0 * float(sigma) ** 2
    med = float(med)
    if med <= 0:
        raise InputError(
            f"{name}: the median pairwise distance is 0 (most datapoints are identical), so "
            "the median bandwidth is 0; pass sigma= explicitly"
        )
    return 2.0 * sigma_frac**2 * med


def prepare_rbf(t: torch.Tensor, name: str, ctx) -> RBFLayer | GramLayer:
    n = t.shape[0]
    tc, mean = centre(t, name, ctx.dtype)
    if not bool(alive_columns(torch.linalg.vector_norm(tc, dim=0).square(), mean, n).any()):
        raise no_variance(name)
    sigma = ctx.options.get("sigma")
    if isinstance(sigma, (tuple, list)):
        sigma = sigma[ctx.side]
    d2, med = upper_sq_distances(tc, median=sigma is None)
    mean_d2 = 2.0 * float(torch.linalg.vector_norm(tc)) ** 2 / (n - 1)  # off-diagonal mean
    del tc
    gamma = 1.0 / bandwidth2(med, name, sigma, ctx.options.get("sigma_frac", 1.0))
    # c = the kernel at the mean distance, less 1: expm1 keeps K - 1 - c exact when sigma is
    # large (K near 1 everywhere), and the shifted entries are small, so the centring sums below
    # do not cancel.
    c = math.expm1(-gamma * mean_d2)
    rows = torch.zeros(n, dtype=torch.float64, device=d2.device)
    kk = torch.zeros((), dtype=torch.float64, device=d2.device)
    for r0, r1 in _blocks(n):  # the kernel, its row sums and sum K'*K', one block in cache
        blk = d2[r0:r1, r0:].mul_(-gamma).expm1_().sub_(c)
        _zero_below_diagonal(blk, r0, r1)
        rows[r0:r1] += blk.sum(dim=1, dtype=torch.float64)
        rows[r0:] += blk.sum(dim=0, dtype=torch.float64)
        kk += torch.linalg.vector_norm(blk).square()
    rows += c  # the diagonal (K'_ii = -c) was counted twice
    kk = 2.0 * kk - n * c * c
    if ctx.options.get("debiased", False):
        k = u_centre(_symmetric(d2))
        return GramLayer(k, k.square().sum())
    total = rows.sum()
    return RBFLayer(d2, -c, rows, total, kk - 2.0 / n * (rows @ rows) + (total / n) ** 2)


def _symmetric(upper: torch.Tensor) -> torch.Tensor:
    """The full symmetric matrix from an upper triangle with diagonal (in place)."""
    low = torch.ones_like(upper, dtype=torch.bool).tril(-1)
    upper[low] = upper.mT[low]
    return upper


def pair_rbf(a, b, options: dict) -> float:
    if isinstance(a, GramLayer):
        return pair_gram(a, b, options)
    n = a.upper.shape[0]
    kl = torch.zeros((), dtype=torch.float64, device=a.upper.device)
    for r0, r1 in _blocks(n):
        kl += (a.upper[r0:r1, r0:] * b.upper[r0:r1, r0:]).sum()
    kl = 2.0 * kl - n * a.diag * b.diag
    xy = kl - 2.0 / n * (a.rows @ b.rows) + a.total * b.total / n**2
    return min(max(float(xy / torch.sqrt(a.self_term * b.self_term)), 0.0), 1.0)


def check_rbf_options(options: dict) -> None:
    sigma = options.get("sigma")
    sigmas = sigma if isinstance(sigma, (tuple, list)) else [sigma]
    if isinstance(sigma, (tuple, list)) and len(sigma) != 2:
        raise InputError(f"sigma must be a number, a pair (sigma_x, sigma_y) or None, got {sigma}")
    for s in sigmas:
        if s is not None and not float(s) > 0:
            raise InputError(f"sigma must be > 0 (a kernel bandwidth) or None, got {s}")
    if not float(options.get("sigma_frac", 1.0)) > 0:
        raise InputError(f"sigma_frac must be > 0, got {options.get('sigma_frac')}")
