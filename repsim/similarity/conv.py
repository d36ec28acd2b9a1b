"""Convolutional activations ``(N, C, H, W)`` as ``(n_datapoints, n_features)``."""

from __future__ import annotations

import numpy as np
import torch

from repsim.errors import InputError
from repsim.similarity._core import Array

CONV_MODES = ("channels", "flatten")
"""The ways :func:`conv_to_2d` turns ``(N, C, H, W)`` into ``(n_datapoints, n_features)``."""


def conv_to_2d(a: Array, mode: str = "channels") -> Array:
    """Convolutional activations ``(N, C, H, W)`` as ``(n_datapoints, n_features)``.

    Args:
        a: activations ``(N, C, H, W)`` (any ``(N, C, *spatial)``), numpy or torch; 2-D input
            ``(N, D)`` is returned unchanged.
        mode: ``"channels"``: ``(N*H*W, C)``, channels are neurons and every spatial position
            of every input is a datapoint (the paper's convention, after Raghu et al. 2017);
            rows are ordered input-major, then H, then W. ``"flatten"``: ``(N, C*H*W)``, one
            datapoint per input.

    Returns:
        The same kind (numpy or torch) as given, 2-D.

    Raises:
        InputError: an unknown mode, input that is not a numpy array or torch tensor, or
            input with fewer than 2 dimensions.
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
