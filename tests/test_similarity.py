"""Similarity core: known values, independent reference formulas, streaming, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch

from repsim import similarity as sim
from repsim.errors import InputError
from repsim.similarity.cca import cca_basis, svd_basis
from repsim.similarity.registry import REGISTRY, Context

# ---------------------------------------------------------------------------------------------
# Independent reference formulas, written plainly (numpy / scipy, explicit matrices)
# ---------------------------------------------------------------------------------------------


def ref_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Gram-space CKA with an explicit centring matrix H = I - 11^T/n."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


def ref_hsic_unbiased(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, the trace formula with explicit matrices."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


def ref_cka_debiased(k: np.ndarray, l_: np.ndarray) -> float:
    return ref_hsic_unbiased(k, l_) / np.sqrt(ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l_, l_))


def ref_cca_coefficients(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Covariance whitening with Cholesky factors: svd(Lx^-1 Cxy Ly^-T), full-rank inputs."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    lx = np.linalg.cholesky(xc.T @ xc)
    ly = np.linalg.cholesky(yc.T @ yc)
    m = scipy.linalg.solve_triangular(lx, xc.T @ yc, lower=True)
    m = scipy.linalg.solve_triangular(ly, m.T, lower=True).T
    return np.linalg.svd(m, compute_uv=False)


def ref_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """Morcos et al. (2018) PWCCA from symmetric inverse square roots of the covariances."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    wx = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(xc.T @ xc)))
    wy = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(yc.T @ yc)))
    u, rho, _ = np.linalg.svd(wx @ xc.T @ yc @ wy)
    m = min(x.shape[1], y.shape[1])
    h = xc @ wx @ u[:, :m]  # canonical variates of x
    h /= np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(np.sum(alpha * rho[:m]) / alpha.sum())


def ref_rbf_cka(x: np.ndarray, y: np.ndarray, frac: float = 1.0) -> float:
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n

    def gram(a):
        d2 = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        med = np.median(d2[np.triu_indices(n, 1)])
        return np.exp(-d2 / (2 * frac**2 * med))

    k, l_ = h @ gram(x) @ h, h @ gram(y) @ h
    return float(np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


def pair(n=200, dx=6, dy=5, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = x @ rng.standard_normal((dx, dy)) + noise * rng.standard_normal((n, dy))
    return x, y


def random_orthogonal(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


# ---------------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(sim.MEASURES))
def test_identical_inputs_give_one(name):
    x, _ = pair(n=120)
    assert sim.get_measure(name)(x, x) == pytest.approx(1.0, abs=1e-10)


def test_cca_closed_form_constructed_correlations():
    """x = Z A, y = (Z diag(rho) + E diag(sqrt(1 - rho^2))) B with orthonormal centred Z, E."""
    rng = np.random.default_rng(1)
    n, rho = 300, np.array([0.9, 0.6, 0.3, 0.05])
    k = rho.size
    raw = rng.standard_normal((n, 2 * k))
    q, _ = np.linalg.qr(raw - raw.mean(0))
    z, e = q[:, :k], q[:, k:]
    x = z @ rng.standard_normal((k, k)) + 5.0
    y = (z * rho + e * np.sqrt(1 - rho**2)) @ rng.standard_normal((k, k)) - 2.0
    coef = sim.cca_coefficients(x, y)
    np.testing.assert_allclose(coef.numpy(), rho, atol=1e-10)
    assert sim.cca(x, y) == pytest.approx(rho.mean(), abs=1e-10)
    assert sim.svcca(x, y, keep=1.0) == pytest.approx(rho.mean(), abs=1e-10)


def test_linear_cka_closed_form_nested_orthonormal_columns():
    """X with orthonormal centred columns, Y = its first k columns: CKA = sqrt(k / d)."""
    rng = np.random.default_rng(2)
    raw = rng.standard_normal((100, 8))
    q, _ = np.linalg.qr(raw - raw.mean(0))
    assert sim.linear_cka(q, q[:, :2]) == pytest.approx(np.sqrt(2 / 8), abs=1e-12)


def test_independent_layers_have_low_similarity():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4000, 4)), rng.standard_normal((4000, 4))
    assert sim.linear_cka(x, y) < 0.01
    assert abs(sim.linear_cka(x, y, debiased=True)) < 0.002
    assert sim.cca(x, y) < 0.05


# ---------------------------------------------------------------------------------------------
# Agreement with the reference formulas (float64, 1e-8)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,dx,dy", [(40, 3, 7), (200, 10, 4), (15, 40, 60)])
def test_linear_cka_matches_gram_space_reference(n, dx, dy):
    x, y = pair(n, dx, dy, seed=n)
    assert sim.linear_cka(x, y) == pytest.approx(ref_linear_cka(x, y), abs=1e-10)


@pytest.mark.parametrize("n,dx,dy", [(40, 3, 7), (200, 10, 4), (12, 30, 50), (4, 2, 3)])
def test_debiased_cka_matches_song_formula(n, dx, dy):
    x, y = pair(n, dx, dy, seed=n + 1)
    expected = ref_cka_debiased(x @ x.T, y @ y.T)
    assert sim.linear_cka(x, y, debiased=True) == pytest.approx(expected, abs=1e-9)


def test_debiased_cka_feature_and_gram_space_agree():
    x, y = pair(30, 5, 9, seed=4)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    spec, options = REGISTRY["cka"], {"debiased": True}
    values = []
    for feature_space in (True, False):
        ctx = Context(torch.float64, options, feature_space=feature_space)
        a, b = spec.prepare(tx, "x", ctx), spec.prepare(ty, "y", ctx)
        values.append(spec.pair(a, b, options))
    assert values[0] == pytest.approx(values[1], abs=1e-12)


@pytest.mark.parametrize("n,dx,dy", [(50, 3, 5), (300, 12, 10), (30, 1, 1)])
def test_cca_matches_covariance_whitening_and_subspace_angles(n, dx, dy):
    x, y = pair(n, dx, dy, seed=n + 2)
    coef = sim.cca_coefficients(x, y).numpy()
    np.testing.assert_allclose(coef, ref_cca_coefficients(x, y), atol=1e-8)
    angles = scipy.linalg.subspace_angles(x - x.mean(0), y - y.mean(0))
    np.testing.assert_allclose(coef, np.sort(np.cos(angles))[::-1], atol=1e-8)


@pytest.mark.parametrize("n,dx,dy", [(80, 4, 6), (300, 10, 3)])
def test_pwcca_matches_reference_and_is_not_symmetric(n, dx, dy):
    x, y = pair(n, dx, dy, seed=n + 3)
    assert sim.pwcca(x, y) == pytest.approx(ref_pwcca(x, y), abs=1e-8)
    assert sim.pwcca(y, x) == pytest.approx(ref_pwcca(y, x), abs=1e-8)
    assert abs(sim.pwcca(x, y) - sim.pwcca(y, x)) > 1e-4


def test_rbf_cka_matches_reference():
    x, y = pair(60, 4, 3, seed=5)
    assert sim.rbf_cka(x, y) == pytest.approx(ref_rbf_cka(x, y), abs=1e-10)
    assert sim.rbf_cka(x, y, sigma_frac=0.5) == pytest.approx(ref_rbf_cka(x, y, 0.5), abs=1e-10)


def test_rbf_cka_explicit_sigma_and_large_sigma_limit():
    """As sigma -> inf the RBF kernel's centred Gram tends to linear CKA's (Kornblith et al.)."""
    x, y = pair(60, 4, 3, seed=6)
    assert sim.rbf_cka(x, y, sigma=1e4) == pytest.approx(sim.linear_cka(x, y), abs=1e-5)
    assert sim.rbf_cka(x, y, sigma=2.0) != pytest.approx(sim.rbf_cka(x, y, sigma=0.5), abs=1e-3)


def test_debiased_rbf_cka_matches_song_formula():
    x, y = pair(40, 3, 3, seed=7)
    n = x.shape[0]

    def gram(a):
        d2 = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * np.median(d2[np.triu_indices(n, 1)])))

    expected = ref_cka_debiased(gram(x), gram(y))
    assert sim.rbf_cka(x, y, debiased=True) == pytest.approx(expected, abs=1e-9)


def test_svcca_keeps_the_fewest_directions_explaining_keep():
    rng = np.random.default_rng(8)
    # x: 3 strong directions + 3 very weak; y shares only the strong ones
    strong = rng.standard_normal((500, 3))
    weak = 1e-3 * rng.standard_normal((500, 3))
    x = np.c_[strong, weak]
    y = np.c_[strong @ rng.standard_normal((3, 3)), rng.standard_normal((500, 3))]
    tx = torch.from_numpy(x)
    assert svd_basis(tx, "x", torch.float64, 0.99).rank == 3
    assert svd_basis(tx, "x", torch.float64, 1.0).rank == 6
    # with y's noise dimensions kept, SVCCA(keep=.99) of x's 3 strong directions vs y
    coef = sim.cca_coefficients(strong, y)
    assert sim.svcca(x, y, keep=0.99) == pytest.approx(float(coef.mean()), abs=1e-10)


# ---------------------------------------------------------------------------------------------
# Rank deficiency, dead neurons, scaling, dtypes
# ---------------------------------------------------------------------------------------------


def test_dead_and_duplicate_neurons_are_dropped():
    x, y = pair(200, 5, 4, seed=9)
    rng = np.random.default_rng(9)
    x_dead = np.c_[x, np.zeros(200), np.full(200, 7.5)]
    y_dead = np.c_[y, np.full(200, -1e6)]
    x_dup = np.c_[x_dead, x[:, :2] @ rng.standard_normal((2, 3))]
    assert sim.cca_coefficients(x_dup, y_dead).shape == (4,)
    for name, fn in sim.MEASURES.items():
        got = fn(x_dead, y_dead)
        assert np.isfinite(got) and got == pytest.approx(fn(x, y), abs=1e-10), name
        # CCA-type measures see only the column space: dependent neurons change nothing
        if name == "cca":
            assert fn(x_dup, y_dead) == pytest.approx(fn(x, y), abs=1e-10), name
        assert np.isfinite(fn(x_dup, y_dead)), name
    # PWCCA weights use x's neurons: duplicates change them, but it stays finite and in [0, 1]
    assert 0.0 <= sim.pwcca(x_dup, y_dead) <= 1.0


def test_cca_on_badly_scaled_columns_is_exact():
    x, y = pair(300, 4, 4, seed=10)
    scaled = x * np.array([1e-8, 1e8, 1.0, 1e4])
    assert sim.cca(scaled, y) == pytest.approx(sim.cca(x, y), abs=1e-10)
    st = sim.StreamingCCA().update(scaled, y)
    assert st.value() == pytest.approx(sim.cca(x, y), abs=1e-10)
    assert sim.linear_cka(x * 1e-8, y * 1e8) == pytest.approx(sim.linear_cka(x, y), abs=1e-12)


def test_gram_whitening_and_qr_routes_agree():
    """Well-conditioned layers are whitened from the Gram matrix, others go through QR."""
    x, y = pair(300, 6, 5, seed=23)
    tx = torch.from_numpy(x)
    assert cca_basis(tx, "x", torch.float64, None)[0].w is not None  # fast route
    assert cca_basis(tx, "x", torch.float64, 1e-12)[0].w is None  # rtol given: QR route
    np.testing.assert_allclose(
        sim.cca_coefficients(x, y).numpy(), sim.cca_coefficients(x, y, rtol=1e-12), atol=1e-12
    )
    assert sim.pwcca(x, y) == pytest.approx(sim.pwcca(x, y, rtol=1e-12), abs=1e-12)
    # an invertible but badly conditioned map (condition ~1e9) takes the QR route, still exact
    u, v = random_orthogonal(6, 1), random_orthogonal(6, 2)
    a = u @ np.diag(np.logspace(0, -9, 6)) @ v
    assert cca_basis(torch.from_numpy(x @ a), "x", torch.float64, None)[0].w is None
    assert sim.cca(x @ a, y) == pytest.approx(sim.cca(x, y), abs=1e-7)


def test_float32_input_gives_float64_answer():
    x, y = pair(300, 8, 6, seed=11)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for name, fn in sim.MEASURES.items():
        assert fn(x32, y32) == pytest.approx(fn(x, y), abs=1e-6), name
        assert fn(torch.from_numpy(x32), torch.from_numpy(y32)) == pytest.approx(
            fn(x, y), abs=1e-6
        ), name


def test_dtype_keyword_computes_in_float32():
    x, y = pair(300, 8, 6, seed=12)
    assert sim.linear_cka(x, y, dtype=torch.float32) == pytest.approx(
        sim.linear_cka(x, y), abs=1e-5
    )
    assert sim.cca(x, y, dtype=torch.float32) == pytest.approx(sim.cca(x, y), abs=1e-4)
    assert sim.cca_coefficients(x, y, dtype=torch.float32).dtype == torch.float32


def test_returns_python_float_and_accepts_integer_arrays():
    x = np.random.default_rng(13).integers(0, 5, size=(50, 3))
    y = x * 2 + 1
    value = sim.linear_cka(x, y)
    assert type(value) is float and value == pytest.approx(1.0, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_device():
    x, y = pair(300, 8, 6, seed=14)
    gx, gy = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    assert sim.cca_coefficients(gx, gy).device.type == "cuda"
    for name, fn in sim.MEASURES.items():
        assert fn(gx, gy) == pytest.approx(fn(x, y), abs=1e-9), name


# ---------------------------------------------------------------------------------------------
# conv_to_2d
# ---------------------------------------------------------------------------------------------


def test_conv_to_2d_shapes_and_ordering():
    a = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    ch = sim.conv_to_2d(a, "channels")
    assert ch.shape == (2 * 4 * 5, 3)
    # row (n, h, w) holds the C values at that position
    assert torch.equal(ch[1 * 20 + 2 * 5 + 3], a[1, :, 2, 3])
    fl = sim.conv_to_2d(a, "flatten")
    assert fl.shape == (2, 60) and torch.equal(fl[1], a[1].reshape(-1))
    np.testing.assert_array_equal(sim.conv_to_2d(a.numpy(), "channels"), ch.numpy())
    two_d = np.ones((5, 3))
    assert sim.conv_to_2d(two_d) is two_d
    with pytest.raises(InputError, match="mode"):
        sim.conv_to_2d(a, "pixels")
    with pytest.raises(InputError, match="reshape"):
        sim.conv_to_2d(np.ones(4))


# ---------------------------------------------------------------------------------------------
# similarity_matrix
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(sim.MEASURES))
def test_similarity_matrix_equals_per_pair_calls(name):
    rng = np.random.default_rng(15)
    base = rng.standard_normal((120, 6))
    acts_a = {"conv1": base, "head": base[:, :3] @ rng.standard_normal((3, 4))}
    acts_b = {
        "conv1": base + 0.5 * rng.standard_normal((120, 6)),
        "conv2": rng.standard_normal((120, 5)),
        "head": torch.from_numpy(base[:, :2]),
    }
    m = sim.similarity_matrix(acts_a, acts_b, name)
    assert m.rows == ["conv1", "head"] and m.cols == ["conv1", "conv2", "head"]
    assert m.values.shape == (2, 3) and m.measure == name
    fn = sim.get_measure(name)
    for r in m.rows:
        for c in m.cols:
            assert m[r, c] == pytest.approx(fn(acts_a[r], acts_b[c]), abs=1e-10), (r, c)
    assert m.to_dict()["head"]["conv2"] == m["head", "conv2"]


def test_similarity_matrix_does_per_layer_work_once(monkeypatch):
    calls = []
    spec = REGISTRY["cca"]
    counted = dataclasses.replace(
        spec, prepare=lambda t, k, ctx: calls.append(k) or spec.prepare(t, k, ctx)
    )
    monkeypatch.setitem(REGISTRY, "cca", counted)
    rng = np.random.default_rng(16)
    acts = {f"l{i}": rng.standard_normal((100, 4)) for i in range(4)}
    m = sim.similarity_matrix(acts, measure="cca")
    assert sorted(calls) == sorted(acts)
    np.testing.assert_allclose(np.diag(m.values), 1.0, atol=1e-12)
    np.testing.assert_allclose(m.values, m.values.T, atol=1e-12)


def test_similarity_matrix_kwargs_and_errors():
    rng = np.random.default_rng(17)
    acts = {"a": rng.standard_normal((60, 5)), "b": rng.standard_normal((60, 5))}
    m = sim.similarity_matrix(acts, measure="svcca", keep=0.5)
    assert m["a", "b"] == pytest.approx(sim.svcca(acts["a"], acts["b"], keep=0.5), abs=1e-12)
    with pytest.raises(InputError, match="keep"):
        sim.similarity_matrix(acts, measure="cca", keep=0.5)
    with pytest.raises(InputError, match="valid names"):
        sim.similarity_matrix(acts, measure="procrustes")
    with pytest.raises(InputError, match="same datapoints"):
        sim.similarity_matrix(acts, {"c": rng.standard_normal((50, 5))})
    with pytest.raises(InputError, match="non-empty dict"):
        sim.similarity_matrix({})


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


def _stream(cls, x, y, sizes):
    st = cls()
    start = 0
    for size in sizes:
        st.update(x[start : start + size], y[start : start + size])
        start += size
    assert start == x.shape[0] and st.n == x.shape[0]
    return st


def test_streaming_equals_full_batch():
    x, y = pair(1000, 12, 9, seed=18)
    x = x + 100.0  # a large mean: the shifted moments must not lose precision
    sizes = [1, 3, 96, 400, 500]
    cka = _stream(sim.StreamingLinearCKA, x, y, sizes)
    assert cka.value() == pytest.approx(sim.linear_cka(x, y), abs=1e-10)
    cca = _stream(sim.StreamingCCA, x, y, sizes)
    np.testing.assert_allclose(
        cca.coefficients().numpy(), sim.cca_coefficients(x, y).numpy(), atol=1e-10
    )
    assert cca.value() == pytest.approx(sim.cca(x, y), abs=1e-10)


def test_streaming_cca_with_dead_and_dependent_neurons():
    x, y = pair(600, 6, 5, seed=19)
    rng = np.random.default_rng(19)
    x_bad = np.c_[x, np.full(600, 3.0), x[:, :2] @ rng.standard_normal((2, 2))]
    st = _stream(sim.StreamingCCA, x_bad, y, [200, 200, 200])
    assert st.coefficients().shape == (5,)
    assert st.value() == pytest.approx(sim.cca(x_bad, y), abs=1e-10)
    st_cka = _stream(sim.StreamingLinearCKA, x_bad, y, [300, 300])
    assert st_cka.value() == pytest.approx(sim.linear_cka(x_bad, y), abs=1e-10)


def test_streaming_errors():
    with pytest.raises(InputError, match="update"):
        sim.StreamingLinearCKA().value()
    st = sim.StreamingCCA().update(np.ones((10, 3)), np.ones((10, 2)))
    with pytest.raises(InputError, match="no variance"):
        st.value()
    st = sim.StreamingLinearCKA().update(np.ones((10, 3)), np.ones((10, 2)))
    with pytest.raises(InputError, match="x-features"):
        st.update(np.ones((10, 4)), np.ones((10, 2)))
    x, y = pair(10, 6, 6, seed=20)
    with pytest.raises(InputError, match="degenerate"):
        sim.StreamingCCA().update(x, y).value()


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

ALL = list(sim.MEASURES.items())


@pytest.mark.parametrize("name,fn", ALL)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(name, fn, bad):
    x, y = pair(50, 3, 3)
    x[4, 1] = bad
    with pytest.raises(InputError, match=r"x contains 1 NaN or inf"):
        fn(x, y)
    with pytest.raises(InputError, match=r"y contains 1 NaN or inf"):
        fn(y, x)


@pytest.mark.parametrize("name,fn", ALL)
def test_mismatched_datapoints_is_refused(name, fn):
    x, y = pair(50, 3, 3)
    with pytest.raises(InputError, match="x has 50 datapoints .* y has 49"):
        fn(x, y[:49])


@pytest.mark.parametrize("name,fn", ALL)
def test_one_dimensional_input_is_refused_with_reshape_hint(name, fn):
    x, y = pair(50, 3, 3)
    with pytest.raises(InputError, match=r"reshape\(-1, 1\)"):
        fn(x[:, 0], y)
    with pytest.raises(InputError, match="conv_to_2d"):
        fn(x.reshape(50, 3, 1), y)


@pytest.mark.parametrize("name", ["cka_debiased", "rbf_cka_debiased"])
def test_debiased_needs_four_datapoints(name):
    x, y = pair(3, 2, 2)
    with pytest.raises(InputError, match="at least 4 datapoints"):
        sim.get_measure(name)(x, y)


@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca"])
def test_cca_with_too_few_datapoints_is_refused(name):
    x, y = pair(20, 12, 12)
    with pytest.raises(InputError, match="degenerate.*linear_cka.*more datapoints"):
        sim.get_measure(name)(x, y)
    # rank, not the feature count, decides: 30 features of rank 3 are fine
    rng = np.random.default_rng(21)
    wide = x[:, :3] @ rng.standard_normal((3, 30))
    assert np.isfinite(sim.get_measure(name)(wide, y[:, :4]))


def test_cca_refusal_boundary_is_rank_x_plus_rank_y_le_n_minus_1():
    x, y = pair(11, 5, 5, seed=22)
    assert np.isfinite(sim.cca(x, y))  # 5 + 5 = 10 = n - 1
    with pytest.raises(InputError, match="degenerate"):
        sim.cca(x[:10], y[:10])


@pytest.mark.parametrize("name,fn", ALL)
def test_constant_input_is_refused(name, fn):
    x, y = pair(50, 3, 3)
    with pytest.raises(InputError, match="no variance"):
        fn(np.full((50, 3), 2.0), y)


def test_other_bad_arguments():
    x, y = pair(50, 3, 3)
    with pytest.raises(InputError, match="valid names: cca, svcca, pwcca, cka"):
        sim.get_measure("cosine")
    with pytest.raises(InputError, match="keep"):
        sim.svcca(x, y, keep=1.5)
    with pytest.raises(InputError, match="sigma"):
        sim.rbf_cka(x, y, sigma=0.0)
    with pytest.raises(InputError, match="numpy array or a torch tensor"):
        sim.linear_cka(x.tolist(), y)
    with pytest.raises(InputError, match="dtype"):
        sim.linear_cka(x, y, dtype=torch.int64)
    with pytest.raises(ValueError):  # InputError is a ValueError
        sim.cca(x, y[:10])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sample", [40, 4000])
def test_rbf_median_by_selection_is_the_exact_median_of_distinct_pairs(monkeypatch, seed, sample):
    """The bandwidth's median is selected from a sampled bracket (or, when the sample misses,
    from every pair): either way it is the exact median of the n(n-1)/2 distinct distances."""
    from repsim.similarity import cka

    monkeypatch.setattr(cka, "_SMALL_MEDIAN", 10)
    monkeypatch.setattr(cka, "_SAMPLE", sample)
    monkeypatch.setattr(cka, "_BLOCK_ELEMENTS", 1000)  # several blocks of rows
    rng = np.random.default_rng(seed)
    n = 150 + seed  # even and odd pair counts
    x = rng.standard_normal((n, 3))
    x[: 20 * seed] = x[0]  # ties: repeated datapoints give repeated (and zero) distances
    d2, median = cka.upper_sq_distances(torch.from_numpy(x - x.mean(0)), median=True)
    iu = np.triu_indices(n, 1)
    full = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert float(median) == pytest.approx(np.median(full[iu]), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.triu(d2.numpy(), 1), np.triu(full, 1), atol=1e-12)


def test_rbf_cka_matches_kornblith_gram_formula_with_the_same_bandwidths():
    """Against explicit centring matrices, with each side's bandwidth given as a pair."""
    x, y = pair(120, 6, 4, seed=31)
    sx, sy = 1.3, 0.7

    def centred_kernel(a, s):
        d2 = ((a[:, None] - a[None]) ** 2).sum(-1)
        h = np.eye(len(a)) - 1.0 / len(a)
        return h @ np.exp(-d2 / (2 * s * s)) @ h

    k, m = centred_kernel(x, sx), centred_kernel(y, sy)
    expected = (k * m).sum() / np.sqrt((k * k).sum() * (m * m).sum())
    assert sim.rbf_cka(x, y, sigma=(sx, sy)) == pytest.approx(expected, abs=1e-12)
    from repsim.similarity import cka

    with pytest.MonkeyPatch.context() as mp:  # the blocked passes, many blocks
        mp.setattr(cka, "_BLOCK_ELEMENTS", 500)
        assert sim.rbf_cka(x, y, sigma=(sx, sy)) == pytest.approx(expected, abs=1e-12)
        assert sim.rbf_cka(x, y) == pytest.approx(sim.rbf_cka(x, y, sigma=None), abs=1e-14)
    with pytest.raises(InputError, match="pair"):
        sim.rbf_cka(x, y, sigma=(1.0, 2.0, 3.0))
