"""The public functions, one per measure, each ``pair(prepare(x), prepare(y))`` of the
registry; the name -> function table; and chance levels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from repsim.errors import InputError
from repsim.similarity import cca as _cca
from repsim.similarity._core import Array, check_pair
from repsim.similarity.registry import REGISTRY, compute, compute_reordered, prepared_pair

_F64 = torch.float64


def cca_coefficients(
    x: Array, y: Array, *, dtype: torch.dtype = _F64, rtol: float | None = None
) -> torch.Tensor:
    """All ``min(rank_x, rank_y)`` canonical correlations of x ``(n, d_x)`` and y ``(n, d_y)``.

    Returned as a 1-D tensor (on the inputs' device) in descending order, each in [0, 1].
    ``rtol``: directions with a singular value below ``rtol`` times the largest (after centring
    and column normalisation) are null and dropped (default ``max(n, d) * eps(dtype)``; giving
    it forces the QR route). Raises :class:`InputError` when ``rank_x + rank_y > n - 1``.
    """
    _, _, a, b = prepared_pair("cca", x, y, dtype, rtol=rtol)
    return _cca.coefficients(a, b)


def cca(
    x: Array,
    y: Array,
    *,
    dtype: torch.dtype = _F64,
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
    return compute("cca", x, y, dtype, rtol=rtol, threshold=threshold)


def cca_98(x: Array, y: Array, *, dtype: torch.dtype = _F64) -> float:
    """The paper's CCA: google/svcca's mean truncated at 98 % of the coefficients' sum."""
    return compute("cca98", x, y, dtype)


def svcca(x: Array, y: Array, keep: float = 0.99, *, dtype: torch.dtype = _F64) -> float:
    """SVCCA of Raghu et al. (2017): mean CCA of each side's top singular directions.

    Each side keeps the fewest directions whose squared singular values add up to at least
    ``keep`` (in (0, 1]) of its total variance; ``keep=1`` keeps every non-null direction.
    """
    return compute("svcca", x, y, dtype, keep=keep)


def pwcca(x: Array, y: Array, *, dtype: torch.dtype = _F64, rtol: float | None = None) -> float:
    """Projection-weighted CCA of Morcos et al. (2018), weighted by x's side; not symmetric.

    ``sum_i alpha_i rho_i`` with ``alpha_i`` proportional to ``sum_j |<h_i, x_j>|``: ``h_i`` the
    unit-norm canonical variates of centred x and ``x_j`` its centred neurons (columns).
    """
    return compute("pwcca", x, y, dtype, rtol=rtol)


def linear_cka(x: Array, y: Array, debiased: bool = False, *, dtype: torch.dtype = _F64) -> float:
    """Linear CKA of Kornblith et al. (2019) between x ``(n, d_x)`` and y ``(n, d_y)``.

    Biased: in [0, 1], symmetric, invariant to orthogonal maps, isotropic scaling and translation.
    ``debiased=True`` uses the unbiased HSIC estimator (Song et al. 2012; needs n >= 4).
    """
    return compute("cka", x, y, dtype, debiased=bool(debiased))


def rbf_cka(
    x: Array,
    y: Array,
    sigma: float | tuple[float, float] | None = None,
    debiased: bool = False,
    *,
    sigma_frac: float = 1.0,
    dtype: torch.dtype = _F64,
) -> float:
    """CKA with Gaussian kernels ``exp(-||a - b||^2 / (2 sigma^2))``; ``O(n^2)`` memory.

    ``sigma=None``: per side, ``sigma = sigma_frac * sqrt(median_{i<j} ||a_i - a_j||^2)``;
    a given ``sigma`` is used for both sides, a pair ``(sigma_x, sigma_y)`` gives each its own.
    """
    return compute(
        "rbf_cka", x, y, dtype, sigma=sigma, debiased=bool(debiased), sigma_frac=sigma_frac
    )


def _cka_debiased(x: Array, y: Array, *, dtype: torch.dtype = _F64) -> float:
    """Debiased linear CKA (unbiased HSIC, Song et al. 2012)."""
    return compute("cka_debiased", x, y, dtype)


def _rbf_cka_debiased(x: Array, y: Array, *, dtype: torch.dtype = _F64, **kwargs) -> float:
    """Debiased RBF CKA (median bandwidth unless ``sigma`` is given)."""
    return compute("rbf_cka_debiased", x, y, dtype, **kwargs)


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
assert set(MEASURES) == set(REGISTRY)


def get_measure(name: str) -> Callable[..., float]:
    """The measure called ``name``: ``get_measure("cka")(x, y) -> float``."""
    try:
        return MEASURES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown similarity measure {name!r}; valid names: {', '.join(MEASURES)}"
        ) from None


def chance_level(
    measure: str | Callable[..., float],
    x: Array,
    y: Array,
    permutations: int = 3,
    seed: int = 0,
    *,
    dtype: torch.dtype = _F64,
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
    g = torch.Generator().manual_seed(int(seed))

    def orders(n: int) -> list[torch.Tensor]:
        return [torch.randperm(n, generator=g) for _ in range(int(permutations))]

    if isinstance(measure, str):  # a registered measure: validated once, x prepared once
        return float(np.mean(compute_reordered(measure, x, y, orders, dtype)))
    tx, ty = check_pair(x, y, dtype)
    return float(
        np.mean([float(fn(tx, ty[o.to(ty.device)], dtype=dtype)) for o in orders(ty.shape[0])])
    )
