"""Property tests (hypothesis) for the similarity measures over random shapes and data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim import similarity as sim

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def layer_pair(draw, min_n_over_d: int = 2):
    """(x, y): n datapoints, d_x and d_y features, partly shared signal, random seed."""
    dx = draw(st.integers(1, 8))
    dy = draw(st.integers(1, 8))
    n = draw(st.integers(dx + dy + min_n_over_d, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    shared = draw(st.floats(0.0, 3.0))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx)) * rng.uniform(0.1, 10.0, size=dx) + rng.normal(size=dx)
    y = shared * x @ rng.standard_normal((dx, dy)) + rng.standard_normal((n, dy))
    return x, y, rng


def ref_cka(x, y):
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def orthogonal(d, rng):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q


@SETTINGS
@given(layer_pair())
def test_linear_cka_agrees_with_gram_reference_symmetric_in_range(data):
    x, y, _ = data
    value = sim.linear_cka(x, y)
    assert value == pytest.approx(ref_cka(x, y), abs=1e-8)
    assert value == pytest.approx(sim.linear_cka(y, x), abs=1e-12)
    assert 0.0 <= value <= 1.0


@SETTINGS
@given(layer_pair())
def test_cka_invariances(data):
    x, y, rng = data
    base = sim.linear_cka(x, y)
    q = orthogonal(x.shape[1], rng)
    moved = 3.7 * x @ q + rng.normal(size=x.shape[1]) * 100
    assert sim.linear_cka(moved, y) == pytest.approx(base, abs=1e-9)
    assert sim.linear_cka(x, y, debiased=True) == pytest.approx(
        sim.linear_cka(moved, y, debiased=True), abs=1e-8
    )
    assert sim.rbf_cka(x, y) == pytest.approx(sim.rbf_cka(moved, y), abs=1e-8)


@SETTINGS
@given(layer_pair())
def test_cca_agrees_with_subspace_angles_and_is_invariant(data):
    x, y, rng = data
    coef = sim.cca_coefficients(x, y).numpy()
    angles = scipy.linalg.subspace_angles(x - x.mean(0), y - y.mean(0))
    np.testing.assert_allclose(coef, np.sort(np.cos(angles))[::-1], atol=1e-8)
    assert np.all(np.diff(coef) <= 1e-15) and coef.min() >= 0 and coef.max() <= 1
    value = sim.cca(x, y)
    assert value == pytest.approx(sim.cca(y, x), abs=1e-10)
    # any invertible linear map (well conditioned) plus a translation
    a = rng.standard_normal((x.shape[1], x.shape[1])) + 3 * np.eye(x.shape[1])
    assert sim.cca(x @ a + 5.0, y) == pytest.approx(value, abs=1e-8)


@SETTINGS
@given(layer_pair(), st.floats(0.5, 1.0))
def test_svcca_and_pwcca_in_range(data, keep):
    x, y, _ = data
    sv = sim.svcca(x, y, keep=keep)
    assert 0.0 <= sv <= 1.0
    assert sv == pytest.approx(sim.svcca(y, x, keep=keep), abs=1e-10)
    pw = sim.pwcca(x, y)
    assert 0.0 <= pw <= 1.0 + 1e-12
    # a weighted mean of the coefficients lies between the smallest and the largest
    coef = sim.cca_coefficients(x, y).numpy()
    assert coef.min() - 1e-12 <= pw <= coef.max() + 1e-12


@SETTINGS
@given(layer_pair(), st.lists(st.integers(1, 20), min_size=1, max_size=6))
def test_streaming_equals_full_batch(data, cuts):
    x, y, _ = data
    n = x.shape[0]
    edges = sorted({min(c * n // 21, n) for c in cuts} | {0, n})
    cka, cca = sim.StreamingLinearCKA(), sim.StreamingCCA()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            cka.update(x[lo:hi], y[lo:hi])
            cca.update(x[lo:hi], y[lo:hi])
    assert cka.value() == pytest.approx(sim.linear_cka(x, y), abs=1e-10)
    assert cca.value() == pytest.approx(sim.cca(x, y), abs=1e-10)
