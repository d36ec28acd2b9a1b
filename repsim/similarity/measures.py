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
    """All canonical correlations of x and y, in descending order.

    The canonical correlations of two sets of variables (Hotelling 1936, "Relations between two
    sets of variates", Biometrika) are the singular values of ``Qx^T Qy``, for orthonormal bases
    ``Qx``, ``Qy`` of the two centred column spaces: the i-th is the correlation of the i-th
    pair of maximally correlated directions, each uncorrelated with the earlier ones. Raghu et
    al. (2017, "SVCCA", NeurIPS) use them to compare network layers. Constant (dead) neurons and
    linearly dependent directions are dropped first, so there are ``min(rank_x, rank_y)``.

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).
        rtol: directions with a singular value below ``rtol`` times the largest (after
            centring and column normalisation) are null and dropped. Default ``max(n, d) *
            eps(dtype)``; giving it forces the QR route.

    Returns:
        A 1-D tensor of the ``min(rank_x, rank_y)`` coefficients, each in [0, 1], descending,
            on the inputs' device.

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; or ``rank_x + rank_y > n - 1``,
            where CCA is degenerate (that many coefficients are 1 whatever the data): use CKA, or
            more datapoints.
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
    """Mean CCA similarity of x and y: the mean of their canonical correlations, in [0, 1].

    ``threshold=None``: the mean of all ``min(rank_x, rank_y)`` coefficients
    (:func:`cca_coefficients`), the "mean CCA similarity" of Raghu, Gilmer, Yosinski &
    Sohl-Dickstein (2017), "SVCCA: Singular vector canonical correlation analysis for deep
    learning dynamics and interpretability", NeurIPS. ``threshold=t``: google/svcca's
    ``get_cca_similarity(...)["mean"]`` summary, which Raghu et al. (2020) report: with the
    coefficients ``rho`` in descending order, the mean of ``rho[:i]`` for the first ``i`` at
    which ``sum(rho[:i]) >= t * sum(rho)`` (all of them if no ``i < len(rho)`` gets there);
    their default is ``t = 0.98`` (:func:`cca_98`). Symmetric, and invariant to invertible
    linear maps of either side (so to column scaling).

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).
        rtol: null-direction tolerance, as in :func:`cca_coefficients`.
        threshold: ``None`` (the plain mean), or a fraction in (0, 1] for google/svcca's
            truncated mean.

    Returns:
        The mean canonical correlation, a Python float in [0, 1].

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; ``threshold`` outside (0, 1]; or
            ``rank_x + rank_y > n - 1`` (too few datapoints for CCA: use CKA, or more datapoints,
            e.g. ``conv_to_2d(a, "channels")``).

    Example::

        import numpy as np
        from repsim.similarity import cca
        x = np.random.default_rng(0).normal(size=(500, 20))
        cca(x, x @ np.random.default_rng(1).normal(size=(20, 20)))   # ~1.0: an invertible map
    """
    return compute("cca", x, y, dtype, rtol=rtol, threshold=threshold)


def cca_98(x: Array, y: Array, *, dtype: torch.dtype = _F64) -> float:
    """The paper's CCA: google/svcca's mean truncated at 98 % of the coefficients' sum.

    ``cca(x, y, threshold=0.98)``, the summary Raghu et al. (2020) report in their Figure 2
    (google/svcca's ``get_cca_similarity(...)["mean"]``); measure name ``cca98``.

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).

    Returns:
        A Python float in [0, 1].

    Raises:
        InputError: as :func:`cca`.
    """
    return compute("cca98", x, y, dtype)


def svcca(x: Array, y: Array, keep: float = 0.99, *, dtype: torch.dtype = _F64) -> float:
    """SVCCA: mean CCA of each side's top singular directions.

    Singular vector canonical correlation analysis (Raghu, Gilmer, Yosinski & Sohl-Dickstein
    2017, "SVCCA: Singular vector canonical correlation analysis for deep learning dynamics and
    interpretability", NeurIPS): centre each side, take its SVD, keep the fewest directions
    whose squared singular values add up to at least ``keep`` of its total variance, then
    return the mean canonical correlation of the kept directions. Dropping the low-variance
    directions makes it robust to the many near-null directions of wide layers that plain CCA
    weighs like the others. Symmetric.

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        keep: the fraction of each side's variance to keep, in (0, 1]; ``keep=1`` keeps every
            non-null direction.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).

    Returns:
        A Python float in [0, 1].

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; ``keep`` outside (0, 1]; or the
            kept ranks add up to more than ``n - 1``.
    """
    return compute("svcca", x, y, dtype, keep=keep)


def pwcca(x: Array, y: Array, *, dtype: torch.dtype = _F64, rtol: float | None = None) -> float:
    """Projection-weighted CCA, weighted by x's side; not symmetric.

    Morcos, Raghu & Bengio (2018), "Insights on representational similarity in neural networks
    with canonical correlation", NeurIPS: ``sum_i alpha_i rho_i``, the canonical correlations
    ``rho_i`` weighted by how much of x its canonical variates account for, ``alpha_i``
    proportional to ``sum_j |<h_i, x_j>|`` with ``h_i`` the i-th unit-norm canonical variate of
    centred x (the true variates ``Xc w_i``) and ``x_j`` its j-th centred neuron (column);
    the weights sum to 1. ``pwcca(x, y) != pwcca(y, x)`` in general: x is the side whose
    structure weights the coefficients. (google/svcca's ``compute_pwcca`` differs by about
    0.002–0.003: its weights skip the whitening.)

    Args:
        x: activations ``(n_datapoints, n_features_x)``, numpy or torch: the side that weights
            the coefficients.
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).
        rtol: null-direction tolerance, as in :func:`cca_coefficients`.

    Returns:
        A Python float in [0, 1].

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; or ``rank_x + rank_y > n - 1``.
    """
    return compute("pwcca", x, y, dtype, rtol=rtol)


def linear_cka(x: Array, y: Array, debiased: bool = False, *, dtype: torch.dtype = _F64) -> float:
    """Linear centred kernel alignment (CKA) of x and y.

    Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of neural network representations
    revisited", ICML: ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` for the centred
    activations ``Xc``, ``Yc``, i.e. HSIC of the two linear kernels, normalised. In [0, 1],
    symmetric, invariant to orthogonal maps, isotropic scaling and translation (not to every
    invertible linear map, unlike CCA), and defined for any number of datapoints. Computed in
    feature space (``O(n d^2)``) or Gram space (``O(n^2 d)``, when ``d >> n``), whichever is
    cheaper.

    ``debiased=True`` replaces HSIC by its unbiased estimator (Song, Smola, Gretton, Bedo &
    Borgwardt 2012, "Feature selection via dependence maximization", JMLR), which removes
    CKA's upward bias when features outnumber datapoints; it may then be slightly negative.

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        debiased: use the unbiased HSIC estimator (needs at least 4 datapoints).
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).

    Returns:
        A Python float: in [0, 1] (debiased: at most 1, possibly slightly below 0).

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; or, debiased, fewer than 4
            datapoints (or a self term <= 0).

    Example::

        import numpy as np
        from repsim.similarity import linear_cka
        x = np.random.default_rng(0).normal(size=(1000, 64))
        linear_cka(x, 3.0 * x + 1.0)        # 1.0: scaling and translation do not count
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
    """CKA with Gaussian (RBF) kernels ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``.

    Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of neural network representations
    revisited", ICML: ``<HKH, HLH> / (||HKH||_F ||HLH||_F)`` for the two sides' kernel
    matrices ``K``, ``L`` ``(n, n)`` and the centring matrix ``H``. With ``sigma=None`` each
    side gets its own bandwidth ``sigma = sigma_frac * sqrt(median_{i<j} ||a_i - a_j||^2)``,
    their notebook's convention (``threshold`` there is ``sigma_frac`` here), except that the
    median is over the distinct pairs only. Needs ``O(n^2)`` memory and time.

    Args:
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        sigma: ``None`` (the median bandwidth per side), one bandwidth for both sides, or a
            pair ``(sigma_x, sigma_y)``; each > 0.
        debiased: use the unbiased HSIC estimator (Song et al. 2012; needs 4 datapoints).
        sigma_frac: the median bandwidth's factor (> 0), used when ``sigma`` is None.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).

    Returns:
        A Python float in [0, 1] (debiased: possibly slightly below 0).

    Raises:
        InputError: x or y is not 2-D, is empty, has NaN or inf values or no variance (every neuron
            constant), or the two differ in datapoints or device; a ``sigma`` or ``sigma_frac`` that
            is not > 0; a median distance of 0 (most datapoints identical: pass ``sigma``); or,
            debiased, fewer than 4 datapoints.
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
"""Measure name -> public function; every name is also a key of :data:`REGISTRY`."""
assert set(MEASURES) == set(REGISTRY)


def get_measure(name: str) -> Callable[..., float]:
    """The measure called ``name``: ``get_measure("cka")(x, y) -> float``.

    Args:
        name: one of :data:`MEASURES`: ``cca``, ``svcca``, ``pwcca``, ``cka``,
            ``cka_debiased``, ``rbf_cka``, ``rbf_cka_debiased``, ``cca98``.

    Returns:
        The public function, called as ``fn(x, y, **options)``.

    Raises:
        InputError: an unknown name (the message lists the valid ones).
    """
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
    """The measure's value when x and y are unrelated but keep their shapes and spectra.

    The mean of ``measure(x, y[perm])`` over ``permutations`` random orders of y's datapoints:
    a permutation baseline. A similarity means something only above this: mean CCA of (80, 5)
    against (80, 5) is about 0.2 for unrelated data, and linear CKA of a wide layer with few
    datapoints is far from 0.

    Args:
        measure: a measure name (:data:`MEASURES`; x is then prepared once) or any function
            ``fn(x, y, dtype=...) -> float``.
        x: activations ``(n_datapoints, n_features_x)``, a numpy array or a torch tensor
            (tensors stay on their device).
        y: activations ``(n_datapoints, n_features_y)`` of the same datapoints in the same
            order, on the same device as x.
        permutations: how many random orders to average (at least 1).
        seed: seed of the permutations, for reproducible values.
        dtype: the compute dtype (default float64; float32 input is converted once, so it
            gets the float64 answer unless ``dtype=torch.float32``).

    Returns:
        The mean over the permutations, a Python float.

    Raises:
        InputError: an unknown measure name, ``permutations < 1``, or whatever the measure raises
            for this input.
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
