"""Convolutional activations ``(N, C, H, W)`` as ``(n_datapoints, n_features)``."""

from __future__ import annotations

import numpy as np
import torch

from repsim.errors import InputError
from repsim.similarity._core import Array

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
