"""The paper's CCA summary (google/svcca's 0.98-truncated mean) and chance levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim.errors import InputError
from repsim.similarity import (
    cca,
    cca_98,
    cca_coefficients,
    chance_level,
    get_measure,
    similarity_matrix,
    truncated_mean,
)


def _google_mean(rho: np.ndarray, threshold: float) -> float:
    """The summary written from its definition: the first i (0 <= i < len) whose prefix sum
    rho[:i] reaches threshold * sum(rho); all of rho when none does."""
    total = float(np.sum(rho))
    for i in range(len(rho)):
        if float(np.sum(rho[:i])) / total >= threshold:
            return float(np.mean(rho[:i]))
    return float(np.mean(rho))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 1.0), min_size=1, max_size=40),
    st.sampled_from([0.5, 0.9, 0.98, 0.99, 1.0]),
)
def test_truncated_mean_equals_the_definition(values, threshold):
    rho = np.sort(np.asarray(values))[::-1].copy()
    ours = truncated_mean(torch.from_numpy(rho), threshold)
    assert ours == pytest.approx(_google_mean(rho, threshold), rel=1e-12, abs=1e-12)


def test_truncation_drops_the_weakest_coefficients():
    rho = torch.tensor([1.0] * 98 + [0.5, 0.5], dtype=torch.float64)
    # 98 ones reach 98/99 of the sum (>= 0.98) at i = 98: the two halves are dropped
    assert truncated_mean(rho, 0.98) == 1.0
    assert truncated_mean(rho, 1.0) == pytest.approx(float(rho.mean()))


def test_cca98_is_at_least_the_plain_mean_and_uses_the_real_coefficients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, generator=g, dtype=torch.float64)
    y = x[:, :6] @ torch.randn(6, 10, generator=g, dtype=torch.float64)
    y = y + 0.8 * torch.randn(400, 10, generator=g, dtype=torch.float64)
    rho = cca_coefficients(x, y).numpy()
    assert cca_98(x, y) == pytest.approx(_google_mean(rho, 0.98), rel=1e-12)
    assert cca_98(x, y) >= cca(x, y)
    assert cca(x, y, threshold=0.98) == cca_98(x, y)
    m = similarity_matrix({"a": x}, {"b": y}, measure="cca98")
    assert m["a", "b"] == pytest.approx(cca_98(x, y), rel=1e-10)


def test_bad_threshold_is_refused():
    with pytest.raises(InputError, match="threshold"):
        truncated_mean(torch.ones(3), 0.0)


def test_chance_level_of_unrelated_small_layers_is_well_above_zero_and_below_real_similarity():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, 5, generator=g, dtype=torch.float64)  # a linear map: CCA = 1
    chance = chance_level("cca", x, y, permutations=5, seed=0)
    # 5 canonical correlations of 80 unrelated points: about 0.1-0.3 in expectation
    assert 0.05 < chance < 0.4
    assert cca(x, y) == pytest.approx(1.0)
    assert chance_level("cca", x, y, permutations=5, seed=0) == chance  # reproducible
    assert chance_level("cka", x, y, seed=0) < 0.3


def test_chance_level_needs_a_permutation():
    with pytest.raises(InputError, match="permutations"):
        chance_level("cka", torch.ones(5, 2), torch.ones(5, 2), permutations=0)


def test_every_layer_of_the_shipped_maml_is_far_above_its_chance_level():
    """Real checkpoint, real probe images: before/after similarity against permuted data."""
    from repsim.checkpoint import DEFAULT_CHECKPOINT, load_meta_learner
    from repsim.data import TaskSampler, load_probe_classes
    from repsim.representation import representation_change

    learner = load_meta_learner(DEFAULT_CHECKPOINT)
    sampler = TaskSampler(load_probe_classes(), 5, 1, 15, seed=0)
    change = representation_change(
        learner, [sampler.task(i) for i in range(2)], ("cca98", "cka"), chance=2
    )
    rows = change.summary()
    assert {r["layer"] for r in rows} == {"conv1", "conv2", "conv3", "conv4", "head"}
    for r in rows:
        assert 0.0 <= r["chance"] < r["mean"] - 0.2, r


def test_similarity_cli_prints_the_chance_level_beside_each_value(tmp_path, capsys, monkeypatch):
    from repsim.cli import main

    monkeypatch.delenv("REPSIM_DATA", raising=False)  # the shipped probe set
    out = tmp_path / "sim"
    assert main(["similarity", "--tasks", "2", "--chance", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[chance level, 1 permutations]" in text
    import re

    conv1 = next(line for line in text.splitlines() if line.startswith("conv1"))
    assert len(re.findall(r"\[0\.\d\d\]", conv1)) == 2  # CCA and CKA, each with its chance


@pytest.mark.parametrize("measure", ["cca", "cca98", "svcca", "pwcca", "cka", "rbf_cka"])
def test_chance_level_prepared_once_equals_the_measure_on_each_permutation(measure):
    """chance_level prepares x once; it must equal the public function on every permuted y."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    y = (x @ rng.standard_normal((6, 5)) + 0.5 * rng.standard_normal((120, 5))).astype(np.float32)
    g = torch.Generator().manual_seed(7)
    orders = [torch.randperm(120, generator=g) for _ in range(4)]
    fn = get_measure(measure)
    expected = np.mean([fn(x, y[o.numpy()]) for o in orders])
    assert chance_level(measure, x, y, permutations=4, seed=7) == pytest.approx(expected, rel=1e-12)
