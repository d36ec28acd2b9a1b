"""Similarity of two layers' representations: CCA, SVCCA, PWCCA and (debiased) CKA.

Every measure compares activations shaped ``(n_datapoints, n_features)``: the same ``n``
datapoints (rows) pushed through two layers (or one layer before and after the inner loop). The
inputs are numpy arrays or torch tensors; tensors stay on their device (CUDA included) and all
the math is torch, so it runs on a GPU when the activations live there. The computation is in
float64 unless ``dtype=`` says otherwise, and every measure returns a Python float.

Conventions
-----------
* Rows are centred before anything else (every measure here is translation invariant).
* **CCA** (:func:`cca`, :func:`cca_coefficients`) is the mean of *all* canonical correlations
  between the two centred column spaces: singular values of ``Qx^T Qy`` for orthonormal bases
  ``Qx``, ``Qy``, clipped to [0, 1]. A *dead* (constant) neuron and any linearly dependent
  direction is dropped first (columns are normalised, then directions whose singular value is
  below ``rtol`` times the largest are null; default ``rtol = max(n, d) * eps(dtype)``), so the
  mean is over ``min(rank_x, rank_y)`` coefficients. This is the "mean CCA similarity" of
  Raghu et al. (2017, SVCCA, arXiv:1706.05806; NeurIPS 2017), *not* google/svcca's ``"mean"``
  key, which first truncates at 98 % of the sum of the coefficients. CCA is invariant to any
  invertible linear map of either side (so to column scaling: 1e-8 and 1e8 columns are fine).
* **CCA needs more datapoints than dimensions.** After centring, ``n`` points span at most
  ``n - 1`` dimensions; when ``rank_x + rank_y > n - 1`` the two subspaces must share
  ``rank_x + rank_y - (n - 1)`` directions, whatever the data, and that many coefficients are 1
  (with ``n <= d`` *every* coefficient is 1). CCA, SVCCA and PWCCA refuse such input with an
  :class:`~repsim.errors.InputError` (use CKA, or more datapoints, e.g.
  ``conv_to_2d(a, "channels")``). The ranks are those after dropping null directions (for SVCCA:
  the directions kept).
* **SVCCA** (:func:`svcca`, Raghu et al. 2017): centre, SVD each side, keep the fewest
  directions that explain at least ``keep`` of the variance (sum of squared singular values),
  then mean CCA of the kept directions.
* **PWCCA** (:func:`pwcca`, Morcos, Raghu & Bengio 2018, "Insights on representational
  similarity in neural networks with canonical correlation", NeurIPS): the canonical
  correlations ``rho_i`` weighted by how much of **x** its canonical variates account for:
  ``alpha_i = sum_j |<h_i, x_j>|`` with ``h_i`` the i-th unit-norm canonical variate of x (true
  variates ``Xc w_i``) and ``x_j`` the j-th centred neuron of x, normalised to sum to 1. It is
  *not* symmetric: ``pwcca(x, y) != pwcca(y, x)`` in general; x is the side whose structure
  weights the coefficients.
* **Linear CKA** (:func:`linear_cka`, Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of
  neural network representations revisited", ICML): ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F
  ||Yc^T Yc||_F)``, computed in feature space (``O(n d^2)``) when that is cheaper and in Gram
  space (``O(n^2 d)``) when ``d >> n``. ``debiased=True`` replaces HSIC by its unbiased
  estimator (Song, Smola, Gretton, Bedo & Borgwardt 2012, "Feature selection via dependence
  maximization", JMLR), written in feature space where possible; in Gram space it is the
  Szekely-Rizzo U-centring. Debiased CKA needs n >= 4 and may be slightly negative.
* **RBF CKA** (:func:`rbf_cka`): Gaussian kernel ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``.
  With ``sigma=None`` each side gets its own bandwidth
  ``sigma = sigma_frac * sqrt(median_{i<j} ||a_i - a_j||^2)`` -- Kornblith et al.'s notebook
  convention (``threshold`` there is ``sigma_frac`` here), except that the median is over the
  distinct pairs only (their notebook also counts the n zero distances on the diagonal).
* **Numerics.** A dead neuron is a column whose centred sum of squares is below
  ``n * (100 ulp of its mean)^2``. CCA-type measures whiten a layer from its Gram matrix (the
  same ``n d^2`` products CKA needs) when its column-normalised covariance is well conditioned
  (smallest/largest eigenvalue >= ``10 sqrt(eps)``, about 1.5e-7 in float64: the error is then
  ~``eps * condition``); otherwise, and whenever ``rtol`` is given, the basis comes from a QR
  factorisation, rank-revealed by the SVD of R (error ~``eps * sqrt(condition)``). NaN or inf
  anywhere in an input shows up in its column means, which is how it is detected.
* Convolutional activations ``(N, C, H, W)`` go through :func:`conv_to_2d` first: by default
  ``(N*H*W, C)`` -- channels are neurons and every spatial position is a datapoint, as in the
  paper.

:func:`similarity_matrix` compares every layer of one model with every layer of another and
does the per-layer work (centring, bases, self terms) once per layer. :class:`StreamingLinearCKA`
and :class:`StreamingCCA` accumulate exact sufficient statistics over minibatches (``O(d^2)``
memory) and equal the full-batch values to ~1e-10 in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from repsim.errors import InputError

__all__ = [
    "MEASURES",
    "SimilarityMatrix",
    "StreamingCCA",
    "StreamingLinearCKA",
    "cca",
    "cca_98",
    "cca_coefficients",
    "chance_level",
    "conv_to_2d",
    "get_measure",
    "linear_cka",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
    "truncated_mean",
]

Array = Any  # numpy.ndarray | torch.Tensor

# A centred column whose norm is below this many ulps of its magnitude is a dead neuron.
_DEAD_ULPS = 100.0


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_matrix(a: Array, name: str, dtype: torch.dtype) -> torch.Tensor:
    """``a`` as a finite 2-D torch tensor of ``dtype`` on its own device (numpy -> CPU)."""
    if isinstance(a, np.ndarray):
        if a.dtype == object or not (
            np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)
        ):
            raise InputError(f"{name} has dtype {a.dtype}; pass numbers (a float array)")
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
    return t.to(dtype)


def _raise_non_finite(t: torch.Tensor, name: str) -> None:
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


def _check_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputError(f"dtype must be a torch floating dtype (e.g. torch.float64), got {dtype}")


def _pair(x: Array, y: Array, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert a pair of activations with the same number of datapoints."""
    _check_dtype(dtype)
    tx = _as_matrix(x, "x", dtype)
    ty = _as_matrix(y, "y", dtype)
    if tx.shape[0] != ty.shape[0]:
        raise InputError(
            f"x has {tx.shape[0]} datapoints (rows) but y has {ty.shape[0]}; both must be the "
            "same datapoints in the same order"
        )
    if tx.device != ty.device:
        raise InputError(f"x is on {tx.device} but y is on {ty.device}; move both to one device")
    return tx, ty


def _need_debiased_n(n: int) -> None:
    if n < 4:
        raise InputError(
            f"the debiased (unbiased HSIC) estimator needs at least 4 datapoints, got {n}; "
            "pass more datapoints or use debiased=False"
        )


def _centre(t: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t - mean, mean)``; a NaN or inf anywhere in ``t`` makes its column mean non-finite,
    so checking the ``d`` means is the finiteness check (no extra pass over ``t``)."""
    mean = t.mean(dim=0)
    if not bool(torch.isfinite(mean).all()):
        _raise_non_finite(t, name)
    return t - mean, mean


def _gram(tc: torch.Tensor) -> torch.Tensor:
    """``tc^T tc`` ``(d, d)``. On the CPU, numpy's BLAS computes ``A.T @ A`` as a symmetric
    rank-k update (half the flops; measured 0.053 s vs 0.082 s for torch at (10000, 512) in
    float64); elsewhere (CUDA, autograd) plain torch. The result is the same product."""
    if (
        tc.device.type == "cpu"
        and not tc.requires_grad
        and tc.dtype in (torch.float32, torch.float64)
    ):
        a = tc.numpy()
        return torch.from_numpy(a.T @ a)
    return tc.mT @ tc


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def _alive_columns(sumsq: torch.Tensor, mean: torch.Tensor, n: int) -> torch.Tensor:
    """Mask of the columns that are not constant (dead neurons are).

    ``sumsq``: each column's centred sum of squares; ``mean``: its mean. A constant column
    centres to rounding noise of a few ulps of its mean; anything above ``_DEAD_ULPS`` ulps is
    variation.
    """
    floor = n * (_DEAD_ULPS * _eps(mean.dtype) * mean.abs()).square()
    return sumsq > floor


# --------------------------------------------------------------------------------------------
# CCA family
# --------------------------------------------------------------------------------------------


@dataclass
class _Basis:
    """An orthonormal basis ``mat @ w`` ``(n, rank)`` of a layer's centred column space.

    Either ``mat`` is the centred data ``(n, d)`` and ``w`` ``(d, rank)`` its whitening matrix
    (well-conditioned layers: only Gram products needed), or ``mat`` is an orthonormal ``Q``
    from a QR factorisation and ``w`` is None. Null directions are already dropped.
    """

    mat: torch.Tensor
    w: torch.Tensor | None
    n: int

    @property
    def rank(self) -> int:
        return int((self.w if self.w is not None else self.mat).shape[1])

    def cross(self, other: _Basis) -> torch.Tensor:
        """``(self basis)^T (other basis)``, ``(rank_self, rank_other)``."""
        m = self.mat.mT @ other.mat
        if self.w is not None:
            m = self.w.mT @ m
        if other.w is not None:
            m = m @ other.w
        return m

    def project(self, tc: torch.Tensor, gram: torch.Tensor | None) -> torch.Tensor:
        """``basis^T tc`` ``(rank, d)``; from the Gram ``tc^T tc`` when ``mat`` is ``tc``."""
        if self.w is not None and gram is not None:
            return self.w.mT @ gram
        b = self.mat if self.w is None else self.mat @ self.w
        return b.mT @ tc


def _default_rtol(n: int, d: int, dtype: torch.dtype) -> float:
    return max(n, d) * _eps(dtype)


def _input_eps(a: Array) -> float:
    """Machine epsilon of the caller's data (float32 activations carry float32 rounding noise
    even when the computation runs in float64), 0 for integer data."""
    dt = getattr(a, "dtype", None)
    if isinstance(dt, torch.dtype):
        return torch.finfo(dt).eps if dt.is_floating_point else 0.0
    try:
        return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0
    except TypeError:
        return 0.0


def _fast_ok(ratio: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whitening from the Gram matrix loses ~eps * condition^2 of accuracy: use it only when the
    smallest kept eigenvalue is at least ``10 sqrt(eps)`` of the largest (else QR)."""
    return float(ratio) >= 10.0 * math.sqrt(_eps(dtype))


def _no_variance_cca(name: str) -> InputError:
    return InputError(
        f"{name} has no variance: every column (neuron) is constant over the datapoints, so "
        "its canonical correlations are undefined; check the layer or pass other datapoints"
    )


def _cca_basis(
    t: torch.Tensor, name: str, rtol: float | None, data_eps: float = 0.0
) -> tuple[_Basis, torch.Tensor]:
    """Orthonormal basis of the centred column space of ``t`` (dead and dependent directions
    dropped), and ``t`` centred.

    Columns are normalised first, so the rank decision is invariant to column scaling. A
    well-conditioned layer is whitened through its Gram matrix (one ``n d^2`` product); otherwise
    QR, rank-revealed by the SVD of R.
    """
    n, d = t.shape
    tc, mean = _centre(t, name)
    gram = _gram(tc)
    sumsq = gram.diagonal()
    alive = _alive_columns(sumsq, mean, n)
    if not bool(alive.any()):
        raise _no_variance_cca(name)
    every = bool(alive.all())
    idx = None if every else alive.nonzero().squeeze(1)
    std = sumsq.sqrt() if every else sumsq[idx].sqrt()
    sub = gram if every else gram[idx][:, idx]
    lam, v = torch.linalg.eigh(sub / std[:, None] / std[None, :])
    if rtol is None and _fast_ok(lam[0] / lam[-1], t.dtype):
        w = v / lam.sqrt() / std[:, None]
        if not every:
            full = torch.zeros(d, w.shape[1], dtype=w.dtype, device=w.device)
            full[idx] = w
            w = full
        return _Basis(mat=tc, w=w, n=n), gram
    cols = tc if every else tc[:, idx]
    q, r = torch.linalg.qr(cols / std)
    u, s, _ = torch.linalg.svd(r)
    if rtol is None:  # the data's own precision bounds what counts as a direction
        rtol = max(n, d) * max(_eps(t.dtype), data_eps)
    k = int((s > rtol * s[0]).sum())
    if k < u.shape[1]:
        q = q @ u[:, :k]
    return _Basis(mat=q, w=None, n=n), gram


def _svd_basis(t: torch.Tensor, name: str, keep: float) -> _Basis:
    """Top singular directions of centred ``t`` explaining at least ``keep`` of the variance."""
    n, d = t.shape
    tc, mean = _centre(t, name)
    gram = _gram(tc)
    if not bool(_alive_columns(gram.diagonal(), mean, n).any()):
        raise _no_variance_cca(name)
    lam, v = torch.linalg.eigh(gram)
    lam, v = lam.flip(0).clamp_min(0.0), v.flip(1)
    k = _keep_count(lam, keep, n, d)
    if _fast_ok(lam[k - 1] / lam[0], t.dtype):
        return _Basis(mat=tc, w=v[:, :k] / lam[:k].sqrt(), n=n)
    q, r = torch.linalg.qr(tc)
    u, s, _ = torch.linalg.svd(r)
    k = _keep_count(s.square(), keep, n, d, s)
    return _Basis(mat=q @ u[:, :k], w=None, n=n)


def _keep_count(
    var: torch.Tensor, keep: float, n: int, d: int, s: torch.Tensor | None = None
) -> int:
    """Fewest leading directions whose variance ``var`` (descending) reaches ``keep`` of the
    total; null directions (singular value below ``max(n, d) eps`` of the largest) never count."""
    sv = var.sqrt() if s is None else s
    nonnull = int((sv > _default_rtol(n, d, var.dtype) * sv[0]).sum())
    var = var[:nonnull]
    frac = torch.cumsum(var, 0) / var.sum()
    # guard against rounding just below keep = 1.0
    return min(int((frac < keep - 1e-12).sum()) + 1, nonnull)


def _check_cca_dims(bx: _Basis, by: _Basis, what: str) -> None:
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


def _coefficients_from_bases(bx: _Basis, by: _Basis, what: str = "CCA") -> torch.Tensor:
    _check_cca_dims(bx, by, what)
    return torch.linalg.svdvals(bx.cross(by)).clamp(0.0, 1.0)


def cca_coefficients(
    x: Array, y: Array, *, dtype: torch.dtype = torch.float64, rtol: float | None = None
) -> torch.Tensor:
    """All ``min(rank_x, rank_y)`` canonical correlations of x ``(n, d_x)`` and y ``(n, d_y)``.

    Returned as a 1-D tensor (on the inputs' device) in descending order, each in [0, 1].
    ``rtol``: directions with a singular value below ``rtol`` times the largest (after centring
    and column normalisation) are null and dropped (default ``max(n, d) * eps(dtype)``; giving
    it forces the QR route). Raises :class:`InputError` when ``rank_x + rank_y > n - 1``.
    """
    tx, ty = _pair(x, y, dtype)
    bx, _ = _cca_basis(tx, "x", rtol, _input_eps(x))
    by, _ = _cca_basis(ty, "y", rtol, _input_eps(y))
    return _coefficients_from_bases(bx, by)


def cca(
    x: Array,
    y: Array,
    *,
    dtype: torch.dtype = torch.float64,
    rtol: float | None = None,
    threshold: float | None = None,
) -> float:
    """Mean of the canonical correlations of x and y, in [0, 1].

    ``threshold=None``: the mean of all ``min(rank_x, rank_y)`` coefficients. ``threshold=t``:
    google/svcca's ``get_cca_similarity(...)["mean"]`` summary, which Raghu et al. (2020) report:
    with the coefficients ``rho`` in descending order, the mean of ``rho[:i]`` for the first
    ``i`` at which ``sum(rho[:i]) >= t * sum(rho)`` (all of them if no ``i < len(rho)`` gets
    there); their default is ``t = 0.98``. Symmetric and invariant to invertible linear maps of
    either side. Needs ``rank_x + rank_y <= n - 1`` datapoints; see :func:`cca_coefficients`.
    """
    rho = cca_coefficients(x, y, dtype=dtype, rtol=rtol)
    if threshold is None:
        return float(rho.mean())
    return truncated_mean(rho, threshold)


def truncated_mean(rho: torch.Tensor, threshold: float = 0.98) -> float:
    """google/svcca's summary of descending coefficients ``rho``: the mean of ``rho[:i]`` for
    the first ``i`` with ``sum(rho[:i]) >= threshold * sum(rho)`` (``i < len(rho)``; all of
    ``rho`` when none reaches it). All-zero ``rho`` gives 0."""
    if not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
    total = float(rho.sum())
    if total <= 0.0:
        return 0.0
    before = torch.cumsum(rho, 0) - rho  # before[i] = sum(rho[:i])
    hits = torch.nonzero(before >= threshold * total)
    i = int(hits[0]) if len(hits) else len(rho)
    return float(rho[:i].mean())


def cca_98(x: Array, y: Array, *, dtype: torch.dtype = torch.float64) -> float:
    """The paper's CCA: google/svcca's mean truncated at 98 % of the coefficients' sum."""
    return cca(x, y, dtype=dtype, threshold=0.98)


def svcca(x: Array, y: Array, keep: float = 0.99, *, dtype: torch.dtype = torch.float64) -> float:
    """SVCCA of Raghu et al. (2017): mean CCA of each side's top singular directions.

    Each side keeps the fewest directions whose squared singular values add up to at least
    ``keep`` (in (0, 1]) of its total variance; ``keep=1`` keeps every non-null direction.
    """
    _check_keep(keep)
    tx, ty = _pair(x, y, dtype)
    bx, by = _svd_basis(tx, "x", keep), _svd_basis(ty, "y", keep)
    return float(_coefficients_from_bases(bx, by, "SVCCA").mean())


def _check_keep(keep: float) -> None:
    if not 0.0 < float(keep) <= 1.0:
        raise InputError(f"keep must be in (0, 1] (a fraction of variance), got {keep}")


def _pwcca_from(bx: _Basis, proj_x: torch.Tensor, by: _Basis) -> float:
    """``proj_x = basis_x^T Xc`` ``(rank_x, d_x)``: x's neurons in its orthonormal basis."""
    _check_cca_dims(bx, by, "PWCCA")
    u, rho, _ = torch.linalg.svd(bx.cross(by), full_matrices=False)
    # <h_i, x_j> for the true, unit-norm canonical variates h = basis_x @ u of x
    alpha = (u.mT @ proj_x).abs().sum(dim=1)
    rho = rho.clamp(0.0, 1.0)
    return float((alpha * rho).sum() / alpha.sum())


def _pwcca_prepare(
    t: torch.Tensor, name: str, rtol: float | None, data_eps: float = 0.0
) -> tuple[_Basis, torch.Tensor]:
    basis, gram = _cca_basis(t, name, rtol, data_eps)
    tc = basis.mat if basis.w is not None else _centre(t, name)[0]
    return basis, basis.project(tc, gram)


def pwcca(
    x: Array, y: Array, *, dtype: torch.dtype = torch.float64, rtol: float | None = None
) -> float:
    """Projection-weighted CCA of Morcos et al. (2018), weighted by x's side; not symmetric.

    ``sum_i alpha_i rho_i`` with ``alpha_i`` proportional to ``sum_j |<h_i, x_j>|``: ``h_i`` the
    unit-norm canonical variates of centred x and ``x_j`` its centred neurons (columns).
    """
    tx, ty = _pair(x, y, dtype)
    bx, proj = _pwcca_prepare(tx, "x", rtol, _input_eps(x))
    by, _ = _cca_basis(ty, "y", rtol, _input_eps(y))
    return _pwcca_from(bx, proj, by)


# --------------------------------------------------------------------------------------------
# CKA family
# --------------------------------------------------------------------------------------------


def _use_feature_space(n: int, dx: int, dy: int) -> bool:
    """Feature-space cost 2n(dx^2+dy^2+dx*dy) vs Gram-space 2n^2(dx+dy) + n^2."""
    return dx * dx + dy * dy + dx * dy <= n * (dx + dy)


def _no_variance(name: str) -> InputError:
    return InputError(
        f"{name} has no variance: every column (neuron) is constant over the datapoints, so CKA "
        "is undefined (0/0); check the layer or pass other datapoints"
    )


def _hsic_u_feature(
    a: torch.Tensor, b: torch.Tensor, ab_frob2: torch.Tensor, ka: torch.Tensor, kb: torch.Tensor
) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012) of linear kernels, times n(n-3), in feature space.

    ``a (n, da)``, ``b (n, db)`` (centred or not), ``ab_frob2 = ||a^T b||_F^2``, ``ka``, ``kb``:
    the Gram diagonals (row squared norms). With K~ = aa^T minus its diagonal:
    tr(K~L~) = ||a^T b||^2 - ka.kb; 1^T K~ 1 = ||a^T 1||^2 - sum ka; K~1 = a (a^T 1) - ka.
    """
    n = a.shape[0]
    sa, sb = a.sum(dim=0), b.sum(dim=0)
    ka1 = a @ sa - ka
    kb1 = b @ sb - kb
    trace = ab_frob2 - ka @ kb
    tot = (sa @ sa - ka.sum()) * (sb @ sb - kb.sum())
    return trace + tot / ((n - 1) * (n - 2)) - 2.0 * (ka1 @ kb1) / (n - 2)


def _u_centre(k: torch.Tensor) -> torch.Tensor:
    """Szekely-Rizzo U-centring of a Gram matrix ``(n, n)`` (diagonal set to 0)."""
    n = k.shape[0]
    k = k.clone()
    k.fill_diagonal_(0.0)
    rows = k.sum(dim=1) / (n - 2)
    total = k.sum() / ((n - 1) * (n - 2))
    k -= rows[:, None]
    k -= rows[None, :]
    k += total
    k.fill_diagonal_(0.0)
    return k


def _double_centre(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T/n, for a symmetric Gram matrix ``(n, n)``."""
    rows = k.mean(dim=1)
    return k - rows[:, None] - rows[None, :] + rows.mean()


def _ratio(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, debiased: bool) -> float:
    xx, yy = float(xx), float(yy)
    if debiased and (xx <= 0 or yy <= 0):
        raise InputError(
            "the unbiased HSIC of a layer with itself came out <= 0 (too few datapoints for "
            "the debiased estimator); pass more datapoints or use debiased=False"
        )
    return float(xy) / math.sqrt(xx * yy)


@dataclass
class _CKALayer:
    """Per-layer work for linear CKA, done once: centred data and self terms."""

    space: str  # "feature" or "gram"
    debiased: bool
    xc: torch.Tensor | None = None  # (n, d), feature space
    kdiag: torch.Tensor | None = None  # (n,), feature space, debiased
    gram: torch.Tensor | None = None  # (n, n) centred / U-centred, Gram space
    self_term: torch.Tensor | None = None  # ||Xc^T Xc||_F (biased) or n(n-3) HSIC_u(x, x)


def _prepare_linear_cka(t: torch.Tensor, name: str, space: str, debiased: bool) -> _CKALayer:
    n = t.shape[0]
    tc, mean = _centre(t, name)
    if space == "feature":
        g = _gram(tc)
        if not bool(_alive_columns(g.diagonal(), mean, n).any()):
            raise _no_variance(name)
        if not debiased:
            return _CKALayer(space, debiased, xc=tc, self_term=g.norm())
        kd = tc.square().sum(dim=1)
        self_term = _hsic_u_feature(tc, tc, g.square().sum(), kd, kd)
        return _CKALayer(space, debiased, xc=tc, kdiag=kd, self_term=self_term)
    if not bool(_alive_columns(tc.square().sum(dim=0), mean, n).any()):
        raise _no_variance(name)
    k = tc @ tc.mT
    if debiased:
        k = _u_centre(k)
    return _CKALayer(
        space, debiased, gram=k, self_term=(k.square().sum() if debiased else k.norm())
    )


def _linear_cka_pair(a: _CKALayer, b: _CKALayer) -> float:
    if a.space == "feature":
        cross2 = (a.xc.mT @ b.xc).square().sum()
        if not a.debiased:
            return min(float(cross2 / (a.self_term * b.self_term)), 1.0)
        xy = _hsic_u_feature(a.xc, b.xc, cross2, a.kdiag, b.kdiag)
        return _ratio(xy, a.self_term, b.self_term, True)
    xy = (a.gram * b.gram).sum()
    if not a.debiased:
        return min(max(float(xy / (a.self_term * b.self_term)), 0.0), 1.0)
    return _ratio(xy, a.self_term, b.self_term, True)


def linear_cka(
    x: Array, y: Array, debiased: bool = False, *, dtype: torch.dtype = torch.float64
) -> float:
    """Linear CKA of Kornblith et al. (2019) between x ``(n, d_x)`` and y ``(n, d_y)``.

    Biased: in [0, 1], symmetric, invariant to orthogonal maps, isotropic scaling and translation.
    ``debiased=True`` uses the unbiased HSIC estimator (Song et al. 2012; needs n >= 4).
    """
    tx, ty = _pair(x, y, dtype)
    n = tx.shape[0]
    if debiased:
        _need_debiased_n(n)
    space = "feature" if _use_feature_space(n, tx.shape[1], ty.shape[1]) else "gram"
    a = _prepare_linear_cka(tx, "x", space, debiased)
    b = _prepare_linear_cka(ty, "y", space, debiased)
    return _linear_cka_pair(a, b)


def _sq_distances(tc: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``tc`` (centred), ``(n, n)``."""
    g = tc @ tc.mT
    sq = g.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * g).clamp_min(0.0)
    d2.fill_diagonal_(0.0)
    return d2


def _median(v: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor, the mean of the two middle values when the count is even."""
    m = v.numel()
    lo = torch.kthvalue(v, (m + 1) // 2).values
    return lo if m % 2 else (lo + torch.kthvalue(v, m // 2 + 1).values) / 2


def _rbf_gram(tc: torch.Tensor, name: str, sigma: float | None, sigma_frac: float) -> torch.Tensor:
    d2 = _sq_distances(tc)
    if sigma is None:
        n = d2.shape[0]
        iu = torch.triu_indices(n, n, offset=1, device=d2.device)
        med = _median(d2[iu[0], iu[1]])
        if float(med) <= 0:
            raise InputError(
                f"{name}: the median pairwise distance is 0 (most datapoints are identical), so "
                "the median bandwidth is 0; pass sigma= explicitly"
            )
        s2 = (sigma_frac**2) * med
    else:
        s2 = torch.as_tensor(float(sigma) ** 2, dtype=d2.dtype, device=d2.device)
    return torch.exp(-d2 / (2.0 * s2))


def _prepare_rbf(
    t: torch.Tensor, name: str, sigma: float | None, sigma_frac: float, debiased: bool
) -> _CKALayer:
    tc, mean = _centre(t, name)
    if not bool(_alive_columns(tc.square().sum(dim=0), mean, t.shape[0]).any()):
        raise _no_variance(name)
    k = _rbf_gram(tc, name, sigma, sigma_frac)
    k = _u_centre(k) if debiased else _double_centre(k)
    self_term = k.square().sum() if debiased else k.norm()
    return _CKALayer("gram", debiased, gram=k, self_term=self_term)


def rbf_cka(
    x: Array,
    y: Array,
    sigma: float | None = None,
    debiased: bool = False,
    *,
    sigma_frac: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> float:
    """CKA with Gaussian kernels ``exp(-||a - b||^2 / (2 sigma^2))``; ``O(n^2)`` memory.

    ``sigma=None``: per side, ``sigma = sigma_frac * sqrt(median_{i<j} ||a_i - a_j||^2)``;
    a given ``sigma`` is used for both sides.
    """
    if sigma is not None and not float(sigma) > 0:
        raise InputError(f"sigma must be > 0 (a kernel bandwidth) or None, got {sigma}")
    if not float(sigma_frac) > 0:
        raise InputError(f"sigma_frac must be > 0, got {sigma_frac}")
    tx, ty = _pair(x, y, dtype)
    if debiased:
        _need_debiased_n(tx.shape[0])
    a = _prepare_rbf(tx, "x", sigma, sigma_frac, debiased)
    b = _prepare_rbf(ty, "y", sigma, sigma_frac, debiased)
    return _linear_cka_pair(a, b)


def _cka_debiased(x: Array, y: Array, *, dtype: torch.dtype = torch.float64) -> float:
    """Debiased linear CKA (unbiased HSIC, Song et al. 2012)."""
    return linear_cka(x, y, debiased=True, dtype=dtype)


def _rbf_cka_debiased(x: Array, y: Array, **kwargs) -> float:
    """Debiased RBF CKA (median bandwidth unless ``sigma`` is given)."""
    return rbf_cka(x, y, debiased=True, **kwargs)


# --------------------------------------------------------------------------------------------
# Conv activations
# --------------------------------------------------------------------------------------------

CONV_MODES = ("channels", "flatten")


def conv_to_2d(a: Array, mode: str = "channels") -> Array:
    """Convolutional activations ``(N, C, H, W)`` as ``(n_datapoints, n_features)``.

    ``"channels"``: ``(N*H*W, C)``, channels are neurons and every spatial position of every
    input is a datapoint (the paper's convention); rows are ordered input-major, then H, then W.
    ``"flatten"``: ``(N, C*H*W)``, one datapoint per input. 2-D input is returned unchanged.
    Works for any ``(N, C, *spatial)``; returns the same kind (numpy or torch) as given.
    """
    if mode not in CONV_MODES:
        raise InputError(f"mode must be one of {CONV_MODES}, got {mode!r}")
    if not isinstance(a, (np.ndarray, torch.Tensor)):
        raise InputError(f"a is a {type(a).__name__}; pass a numpy array or a torch tensor")
    if a.ndim == 2:
        return a
    if a.ndim < 2:
        raise InputError(
            f"a has shape {tuple(a.shape)}; expected (N, C, H, W) (or (N, D), passed through); "
            "for a single neuron use reshape(-1, 1)"
        )
    n, c = a.shape[0], a.shape[1]
    if mode == "flatten":
        return a.reshape(n, -1)
    axes = (0, *range(2, a.ndim), 1)
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a.transpose(axes)).reshape(-1, c)
    return a.permute(axes).reshape(-1, c)


# --------------------------------------------------------------------------------------------
# Registry and layer-by-layer matrices
# --------------------------------------------------------------------------------------------

MEASURES: dict[str, Callable[..., float]] = {
    "cca": cca,
    "svcca": svcca,
    "pwcca": pwcca,
    "cka": linear_cka,
    "cka_debiased": _cka_debiased,
    "rbf_cka": rbf_cka,
    "rbf_cka_debiased": _rbf_cka_debiased,
    "cca98": cca_98,
}


def chance_level(
    measure: str | Callable[..., float],
    x: Array,
    y: Array,
    permutations: int = 3,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
) -> float:
    """The measure's value when x and y are unrelated but keep their shapes and spectra: the
    mean of ``measure(x, y[perm])`` over ``permutations`` random orders of y's datapoints.

    A similarity means something only above this: mean CCA of (80, 5) against (80, 5) is about
    0.2 for unrelated data, linear CKA of a wide layer with few datapoints is far from 0.
    ``seed`` makes the permutations reproducible.
    """
    fn = get_measure(measure) if isinstance(measure, str) else measure
    if int(permutations) < 1:
        raise InputError(f"permutations must be at least 1, got {permutations!r}")
    tx, ty = _pair(x, y, dtype)
    g = torch.Generator().manual_seed(int(seed))
    values = [
        float(fn(tx, ty[torch.randperm(ty.shape[0], generator=g).to(ty.device)], dtype=dtype))
        for _ in range(int(permutations))
    ]
    return float(np.mean(values))


def get_measure(name: str) -> Callable[..., float]:
    """The measure called ``name``: ``get_measure("cka")(x, y) -> float``."""
    try:
        return MEASURES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown similarity measure {name!r}; valid names: {', '.join(MEASURES)}"
        ) from None


@dataclass(frozen=True)
class SimilarityMatrix:
    """``values[i, j]`` = measure(``rows[i]`` of model a, ``cols[j]`` of model b)."""

    rows: list[str]
    cols: list[str]
    values: np.ndarray
    measure: str

    def __getitem__(self, key: tuple[str, str]) -> float:
        row, col = key
        return float(self.values[self.rows.index(row), self.cols.index(col)])

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{row: {col: value}}``."""
        return {
            r: {c: float(self.values[i, j]) for j, c in enumerate(self.cols)}
            for i, r in enumerate(self.rows)
        }


def _layers(acts: Mapping[str, Array], which: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    if not isinstance(acts, Mapping) or not acts:
        raise InputError(f"{which} must be a non-empty dict {{layer name: activations}}")
    return {str(k): _as_matrix(v, f"{which}[{k!r}]", dtype) for k, v in acts.items()}


def similarity_matrix(
    acts_a: Mapping[str, Array],
    acts_b: Mapping[str, Array] | None = None,
    measure: str = "cka",
    *,
    dtype: torch.dtype = torch.float64,
    **kwargs,
) -> SimilarityMatrix:
    """Every layer of ``acts_a`` against every layer of ``acts_b`` (default: ``acts_a`` itself).

    ``acts_*``: ``{layer name: (n, d_layer)}`` on the same n datapoints. Each layer's own work
    (centring, orthonormal basis, Gram matrix, self term) is done once, not once per pair.
    ``kwargs`` go to the measure (e.g. ``keep=`` for SVCCA, ``sigma=`` for RBF CKA). A pair a
    CCA-type measure refuses (too few datapoints) raises :class:`InputError`.
    """
    if measure not in MEASURES:
        get_measure(measure)
    _check_dtype(dtype)
    la = _layers(acts_a, "acts_a", dtype)
    lb = la if acts_b is None else _layers(acts_b, "acts_b", dtype)
    ns = {t.shape[0] for t in (*la.values(), *lb.values())}
    if len(ns) != 1:
        raise InputError(
            f"every layer must have the same datapoints, but the row counts are {sorted(ns)}; "
            "compare activations of the same inputs (for conv layers use the same conv_to_2d mode)"
        )
    n = ns.pop()
    sources = [*acts_a.values(), *(acts_b.values() if acts_b is not None else [])]
    data_eps = max(_input_eps(v) for v in sources)
    dims = [t.shape[1] for t in (*la.values(), *lb.values())]
    prep = _preparer(measure, n, dims, kwargs, data_eps)
    pa = {k: prep(t, k) for k, t in la.items()}
    pb = pa if acts_b is None else {k: prep(t, k) for k, t in lb.items()}
    pair = _pair_fn(measure, kwargs)
    values = np.empty((len(pa), len(pb)))
    for i, ka in enumerate(pa):
        for j, kb in enumerate(pb):
            values[i, j] = pair(pa[ka], pb[kb])
    return SimilarityMatrix(rows=list(pa), cols=list(pb), values=values, measure=measure)


def _preparer(
    measure: str, n: int, dims: list[int], kwargs: dict, data_eps: float = 0.0
) -> Callable:
    allowed = {
        "cca": {"rtol", "threshold"},
        "cca98": set(),
        "pwcca": {"rtol"},
        "svcca": {"keep"},
        "cka": {"debiased"},
        "cka_debiased": set(),
        "rbf_cka": {"sigma", "sigma_frac", "debiased"},
        "rbf_cka_debiased": {"sigma", "sigma_frac"},
    }[measure]
    extra = set(kwargs) - allowed
    if extra:
        raise InputError(
            f"{measure} takes no argument(s) {sorted(extra)}; "
            f"it accepts {sorted(allowed) or 'none'}"
        )
    if measure in ("cca", "cca98"):
        return lambda t, k: _cca_basis(t, k, kwargs.get("rtol"), data_eps)[0]
    if measure == "pwcca":
        return lambda t, k: _pwcca_prepare(t, k, kwargs.get("rtol"), data_eps)
    if measure == "svcca":
        keep = kwargs.get("keep", 0.99)
        _check_keep(keep)
        return lambda t, k: _svd_basis(t, k, keep)
    if measure in ("cka", "cka_debiased"):
        debiased = measure == "cka_debiased" or bool(kwargs.get("debiased", False))
        if debiased:
            _need_debiased_n(n)
        # one space for the whole matrix: feature space unless some layer is much wider than n
        feature_cost = sum(dims) ** 2
        gram_cost = n * (2 * sum(dims) + len(dims) ** 2)
        space = "feature" if feature_cost <= gram_cost else "gram"
        return lambda t, k: _prepare_linear_cka(t, k, space, debiased)
    debiased = measure == "rbf_cka_debiased" or bool(kwargs.get("debiased", False))
    if debiased:
        _need_debiased_n(n)
    sigma, frac = kwargs.get("sigma"), kwargs.get("sigma_frac", 1.0)
    return lambda t, k: _prepare_rbf(t, k, sigma, frac, debiased)


def _pair_fn(measure: str, kwargs: dict) -> Callable:
    if measure in ("cca", "cca98"):
        threshold = 0.98 if measure == "cca98" else kwargs.get("threshold")
        if threshold is None:
            return lambda a, b: float(_coefficients_from_bases(a, b).mean())
        return lambda a, b: truncated_mean(_coefficients_from_bases(a, b), threshold)
    if measure == "svcca":
        return lambda a, b: float(_coefficients_from_bases(a, b, "SVCCA").mean())
    if measure == "pwcca":
        return lambda a, b: _pwcca_from(a[0], a[1], b[0])
    return _linear_cka_pair


# --------------------------------------------------------------------------------------------
# Exact streaming over minibatches
# --------------------------------------------------------------------------------------------


class _Moments:
    """Running n, sums and cross-products of shifted x and y (shift = first batch's mean).

    Shifting by a fixed vector keeps the sums exact and avoids cancellation when the mean is
    large compared with the spread. ``O(d^2)`` memory.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        _check_dtype(dtype)
        self.dtype = dtype
        self.n = 0
        self.shift_x = self.shift_y = None
        self.sx = self.sy = self.xx = self.xy = self.yy = None

    def update(self, x_batch: Array, y_batch: Array) -> None:
        tx, ty = _pair(x_batch, y_batch, self.dtype)
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
            _raise_non_finite(tx, "x_batch")
        if not bool(torch.isfinite(sb).all()):
            _raise_non_finite(ty, "y_batch")
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
        """Non-constant columns, as :func:`_alive_columns`, allowing for the cancellation in
        ``raw - n mean mean^T`` (``raw``: shifted cross-products, ``s``: shifted sums)."""
        mean = shift + s / self.n
        floor = _DEAD_ULPS * _eps(self.dtype) * raw.diagonal()
        return _alive_columns(c.diagonal() - floor, mean, self.n)


class StreamingLinearCKA:
    """Exact linear CKA accumulated over minibatches of paired activations.

    ``update(x_batch (b, d_x), y_batch (b, d_y))`` adds the batch's sums and cross-products
    (``O(d^2)`` memory); ``value()`` equals ``linear_cka`` on all the rows seen so far.
    """

    def __init__(self, *, dtype: torch.dtype = torch.float64) -> None:
        self._m = _Moments(dtype)

    @property
    def n(self) -> int:
        """Datapoints seen so far."""
        return self._m.n

    def update(self, x_batch: Array, y_batch: Array) -> StreamingLinearCKA:
        self._m.update(x_batch, y_batch)
        return self

    def value(self) -> float:
        m = self._m
        cxx, cxy, cyy = m.centred()
        if not bool(m.alive(cxx, m.xx, m.shift_x, m.sx).any()):
            raise _no_variance("x")
        if not bool(m.alive(cyy, m.yy, m.shift_y, m.sy).any()):
            raise _no_variance("y")
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
    tol = (rtol if rtol is not None else 1e3 * d * _eps(c.dtype)) * lam[-1]
    keep = lam > tol
    w_sub = v[:, keep] / lam[keep].sqrt() / std[:, None]
    w = torch.zeros(c.shape[0], w_sub.shape[1], dtype=c.dtype, device=c.device)
    w[idx] = w_sub
    return w


class StreamingCCA:
    """Exact CCA accumulated over minibatches, from covariance whitening of the moments.

    ``value()`` is the mean of ``coefficients()`` and equals :func:`cca` on all rows seen so far
    (to ~1e-10 for well-conditioned data: covariances square the condition number, so directions
    with relative variance below ``rtol`` (default ``1e3 * d * eps``) of the largest, after
    column normalisation, are treated as null).
    """

    def __init__(self, *, dtype: torch.dtype = torch.float64, rtol: float | None = None) -> None:
        self._m = _Moments(dtype)
        self.rtol = rtol

    @property
    def n(self) -> int:
        """Datapoints seen so far."""
        return self._m.n

    def update(self, x_batch: Array, y_batch: Array) -> StreamingCCA:
        self._m.update(x_batch, y_batch)
        return self

    def coefficients(self) -> torch.Tensor:
        """Canonical correlations, descending, in [0, 1]."""
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
        """Mean canonical correlation."""
        return float(self.coefficients().mean())
