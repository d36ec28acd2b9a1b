"""Rank decisions respect the precision of the caller's data, not only of the computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repsim.similarity import cca, cca_coefficients, pwcca, similarity_matrix


def rank_deficient_float32(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(1500, 6, generator=g)
    x = latent @ torch.randn(6, 12, generator=g)  # 12 columns, rank 6, float32 rounding noise
    y = x @ torch.randn(12, 12, generator=g)  # an invertible map of the same space
    return x, y


def test_float32_rank_deficient_layers_are_not_inflated_by_rounding_noise():
    x, y = rank_deficient_float32()
    assert cca_coefficients(x, y).numel() == 6
    assert cca(x, y) == pytest.approx(1.0, abs=1e-6)
    assert pwcca(x, y) == pytest.approx(1.0, abs=1e-6)
    assert cca(x.numpy(), y.numpy()) == pytest.approx(1.0, abs=1e-6)
    m = similarity_matrix({"a": x}, {"b": y}, "cca")
    assert m["a", "b"] == pytest.approx(1.0, abs=1e-6)


def test_float64_data_keeps_its_full_precision():
    g = np.random.default_rng(1)
    x = g.standard_normal((500, 5))
    y = np.column_stack([x[:, 0], 1e-9 * g.standard_normal(500) + x[:, 1], g.standard_normal(500)])
    # a direction at 1e-9 relative scale is real in float64 data and must be kept
    assert cca_coefficients(y, x).numel() == 3
