"""One registry of measures: each is a ``prepare`` step done once per layer and a ``pair``
step. A public function is ``pair(prepare(x), prepare(y))``; :func:`similarity_matrix` prepares
every layer once and pairs them all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from repsim.errors import InputError
from repsim.similarity import cca as _cca
from repsim.similarity import cka as _cka
from repsim.similarity._core import (
    Array,
    as_matrix,
    check_dtype,
    check_pair,
    input_eps,
    need_debiased_n,
)


@dataclass(frozen=True)
class Context:
    """What ``prepare`` needs beyond the layer: compute dtype, the measure's options, the
    input's own precision, the CKA space chosen for the whole comparison and the side."""

    dtype: torch.dtype
    options: dict
    data_eps: float = 0.0
    feature_space: bool = True
    side: int = 0


@dataclass(frozen=True)
class Measure:
    """A similarity measure of :data:`REGISTRY`: a ``prepare`` step per layer and a ``pair``
    step per pair of prepared layers.

    The public function of a measure is ``pair(prepare(x), prepare(y), options)``, and
    :func:`similarity_matrix` prepares every layer once and pairs them all.

    Attributes:
        name: the measure's name (``"cca"``, ``"cka"``, ...).
        prepare: ``prepare(t, name, ctx)``: one layer ``(n, d)`` made ready for products
            (centring, orthonormal basis, Gram or kernel matrix, self term).
        pair: ``pair(a, b, options) -> float``: the measure of two prepared layers.
        options: the keyword arguments the measure takes, with their defaults.
        fixed: options its name implies (``cca98`` is ``cca`` with ``threshold=0.98``).
        check: validates the resolved options (raises ``InputError``), or None.
    """

    name: str
    prepare: Callable[..., Any]
    pair: Callable[..., float]
    options: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], None] | None = None

    def resolve(self, kwargs: Mapping[str, Any]) -> dict:
        extra = set(kwargs) - set(self.options)
        if extra:
            raise InputError(
                f"{self.name} takes no argument(s) {sorted(extra)}; "
                f"it accepts {sorted(self.options) or 'none'}"
            )
        options = {**self.options, **kwargs, **self.fixed}
        if self.check is not None:
            self.check(options)
        return options

    def needs_n(self, options: dict, n: int) -> None:
        if options.get("debiased"):
            need_debiased_n(n)


def _check_cca(options: dict) -> None:
    _cca.check_threshold(options.get("threshold"))


def _check_svcca(options: dict) -> None:
    _cca.check_keep(options["keep"])


REGISTRY: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure(
            "cca",
            _cca.prepare_cca,
            _cca.pair_cca,
            {"rtol": None, "threshold": None},
            check=_check_cca,
        ),
        Measure("svcca", _cca.prepare_svcca, _cca.pair_svcca, {"keep": 0.99}, check=_check_svcca),
        Measure("pwcca", _cca.prepare_pwcca, _cca.pair_pwcca, {"rtol": None}),
        Measure("cka", _cka.prepare_linear, _cka.pair_linear, {"debiased": False}),
        Measure("cka_debiased", _cka.prepare_linear, _cka.pair_linear, fixed={"debiased": True}),
        Measure(
            "rbf_cka",
            _cka.prepare_rbf,
            _cka.pair_rbf,
            {"sigma": None, "debiased": False, "sigma_frac": 1.0},
            check=_cka.check_rbf_options,
        ),
        Measure(
            "rbf_cka_debiased",
            _cka.prepare_rbf,
            _cka.pair_rbf,
            {"sigma": None, "sigma_frac": 1.0},
            fixed={"debiased": True},
            check=_cka.check_rbf_options,
        ),
        Measure("cca98", _cca.prepare_cca, _cca.pair_cca, fixed={"threshold": 0.98, "rtol": None}),
    )
}
"""Every measure by name: ``cca``, ``svcca``, ``pwcca``, ``cka``, ``cka_debiased``,
``rbf_cka``, ``rbf_cka_debiased``, ``cca98`` (each a :class:`Measure`)."""


def get_spec(name: str) -> Measure:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown similarity measure {name!r}; valid names: {', '.join(REGISTRY)}"
        ) from None


def prepared_pair(
    name: str, x: Array, y: Array, dtype: torch.dtype, **kwargs
) -> tuple[Measure, dict, Any, Any]:
    """Validate a pair, resolve the options and prepare both sides."""
    spec, options, tx, ty, ctx = _pair_context(name, x, y, dtype, kwargs)
    a = spec.prepare(tx, "x", dataclasses.replace(ctx, data_eps=input_eps(x), side=0))
    b = spec.prepare(ty, "y", dataclasses.replace(ctx, data_eps=input_eps(y), side=1))
    return spec, options, a, b


def _pair_context(name: str, x: Array, y: Array, dtype: torch.dtype, kwargs: Mapping):
    spec = get_spec(name)
    options = spec.resolve(kwargs)
    tx, ty = check_pair(x, y, dtype)
    n = tx.shape[0]
    spec.needs_n(options, n)
    ctx = Context(
        dtype, options, feature_space=_cka.use_feature_space(n, [tx.shape[1], ty.shape[1]])
    )
    return spec, options, tx, ty, ctx


def compute_reordered(
    name: str, x: Array, y: Array, orders: Callable[[int], list[torch.Tensor]], dtype: torch.dtype
) -> list[float]:
    """``pair(prepare(x), prepare(y[order]))`` for each row order of y, ``orders(n)`` giving
    the orders of the n validated datapoints; x is prepared once."""
    spec, options, tx, ty, ctx = _pair_context(name, x, y, dtype, {})
    a = spec.prepare(tx, "x", dataclasses.replace(ctx, data_eps=input_eps(x), side=0))
    side_y = dataclasses.replace(ctx, data_eps=input_eps(y), side=1)
    return [
        spec.pair(a, spec.prepare(ty[o.to(ty.device)], "y", side_y), options)
        for o in orders(ty.shape[0])
    ]


def compute(name: str, x: Array, y: Array, dtype: torch.dtype, **kwargs) -> float:
    """``pair(prepare(x), prepare(y))`` for the measure called ``name``."""
    spec, options, a, b = prepared_pair(name, x, y, dtype, **kwargs)
    return spec.pair(a, b, options)


@dataclass(frozen=True)
class SimilarityMatrix:
    """Layer x layer similarities: ``values[i, j]`` = measure(``rows[i]`` of a, ``cols[j]`` of b).

    ``matrix["conv1", "conv2"]`` reads one cell by layer names.

    Attributes:
        rows: the layer names of ``acts_a``, in order.
        cols: the layer names of ``acts_b`` (``rows`` again when b is a itself).
        values: the similarities, a float array ``(len(rows), len(cols))``.
        measure: the measure's name.
    """

    rows: list[str]
    cols: list[str]
    values: np.ndarray
    measure: str

    def __getitem__(self, key: tuple[str, str]) -> float:
        row, col = key
        return float(self.values[self.rows.index(row), self.cols.index(col)])

    def to_dict(self) -> dict[str, dict[str, float]]:
        """The values as nested dicts, ``{row: {col: value}}`` (JSON-able)."""
        return {
            r: {c: float(self.values[i, j]) for j, c in enumerate(self.cols)}
            for i, r in enumerate(self.rows)
        }


def _layers(acts: Mapping[str, Array], which: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    if not isinstance(acts, Mapping) or not acts:
        raise InputError(f"{which} must be a non-empty dict {{layer name: activations}}")
    return {str(k): as_matrix(v, f"{which}[{k!r}]", dtype) for k, v in acts.items()}


def similarity_matrix(
    acts_a: Mapping[str, Array],
    acts_b: Mapping[str, Array] | None = None,
    measure: str = "cka",
    *,
    dtype: torch.dtype = torch.float64,
    **kwargs,
) -> SimilarityMatrix:
    """Every layer of ``acts_a`` against every layer of ``acts_b`` (default: ``acts_a`` itself).

    Each layer's own work (centring, orthonormal basis, Gram matrix, self term) is done once,
    not once per pair, so a ``k x k`` matrix costs about ``k`` preparations and ``k^2`` small
    products. The values equal the public function's on each pair.

    Args:
        acts_a: ``{layer name: activations (n_datapoints, n_features_layer)}``, numpy or
            torch, every layer on the same ``n`` datapoints (for conv layers, the same
            ``conv_to_2d`` mode).
        acts_b: another model's layers on the same datapoints, or None to compare ``acts_a``
            with itself.
        measure: a name of :data:`REGISTRY` (default ``"cka"``).
        dtype: the compute dtype (default float64).
        **kwargs (Any): the measure's options (e.g. ``keep=`` for SVCCA, ``sigma=`` for RBF CKA: one
            sigma for every layer, not a pair).

    Returns:
        A :class:`SimilarityMatrix` with ``rows`` = a's layers and ``cols`` = b's.

    Raises:
        InputError: an empty or non-dict input, layers with different numbers of datapoints,
            an unknown measure or option, or a pair the measure refuses (e.g. CCA with too few
            datapoints).

    Example::

        from repsim.similarity import similarity_matrix
        m = similarity_matrix(before, after, "cka")    # {layer: (n, d)} dicts
        m["conv4", "conv4"], m.to_dict()
    """
    spec = get_spec(measure)
    options = spec.resolve(kwargs)
    if isinstance(options.get("sigma"), (tuple, list)):
        raise InputError("similarity_matrix takes one sigma for every layer (or None), not a pair")
    check_dtype(dtype)
    la = _layers(acts_a, "acts_a", dtype)
    lb = la if acts_b is None else _layers(acts_b, "acts_b", dtype)
    ns = {t.shape[0] for t in (*la.values(), *lb.values())}
    if len(ns) != 1:
        raise InputError(
            f"every layer must have the same datapoints, but the row counts are {sorted(ns)}; "
            "compare activations of the same inputs (for conv layers use the same conv_to_2d mode)"
        )
    n = ns.pop()
    spec.needs_n(options, n)
    sources = [*acts_a.values(), *(acts_b.values() if acts_b is not None else [])]
    dims = [t.shape[1] for t in (*la.values(), *lb.values())]
    data_eps = max(input_eps(v) for v in sources)
    ctx = Context(dtype, options, data_eps, feature_space=_cka.use_feature_space(n, dims))
    pa = {k: spec.prepare(t, k, ctx) for k, t in la.items()}
    pb = pa if acts_b is None else {k: spec.prepare(t, k, ctx) for k, t in lb.items()}
    values = np.empty((len(pa), len(pb)))
    for i, ka in enumerate(pa):
        for j, kb in enumerate(pb):
            values[i, j] = spec.pair(pa[ka], pb[kb], options)
    return SimilarityMatrix(rows=list(pa), cols=list(pb), values=values, measure=measure)
