"""Capture and per-task representation change: the properties the paper's analysis rests on."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from repsim.capture import (
    capture,
    capture_before_after,
    capture_pass,
    capture_raw,
    capture_streaming,
    match_datapoints,
    resolve_layers,
)
from repsim.errors import InputError
from repsim.models import Conv4, Conv4Config
from repsim.protocol import MetaLearner, no_adaptation
from repsim.representation import (
    cross_layer_similarity,
    layer_similarity,
    representation_change,
    weight_movement,
)
from repsim.results import mean_ci, summarise

WAYS, SHOTS, QUERIES = 5, 2, 4


def small_conv4(seed: int = 0) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(Conv4Config.omniglot(WAYS, hidden=8))


def random_task(seed: int):
    g = torch.Generator().manual_seed(seed)
    from types import SimpleNamespace

    return SimpleNamespace(
        support_x=torch.rand(WAYS * SHOTS, 1, 28, 28, generator=g),
        support_y=torch.arange(WAYS).repeat_interleave(SHOTS),
        query_x=torch.rand(WAYS * QUERIES, 1, 28, 28, generator=g),
        query_y=torch.arange(WAYS).repeat_interleave(QUERIES),
    )


def head_only_adapt(model: nn.Module, lr: float = 2.0, steps: int = 5):
    """A tiny ANIL-style inner loop: gradient steps on the head's parameters only."""
    head = [n for n, _ in model.named_parameters() if n.startswith("head.")]

    def adapt(params, support_x, support_y):
        fast = dict(params)
        with torch.enable_grad():
            for _ in range(steps):
                leaves = {n: fast[n].detach().requires_grad_(True) for n in head}
                logits = torch.func.functional_call(model, {**fast, **leaves}, (support_x,))
                grads = torch.autograd.grad(
                    F.cross_entropy(logits, support_y), list(leaves.values())
                )
                fast.update({n: (leaves[n] - lr * g).detach() for n, g in zip(head, grads)})
        return fast

    return adapt


def learner_of(model: nn.Module, adapt=no_adaptation) -> MetaLearner:
    return MetaLearner(model, list(model.analysis_layers), adapt, (1, 28, 28), {})


def test_adapting_nothing_gives_similarity_one_for_every_layer():
    model = small_conv4()
    change = representation_change(
        learner_of(model), [random_task(s) for s in range(3)], measures=("cca", "cka")
    )
    assert {r["layer"] for r in change.records} == set(model.analysis_layers)
    for r in change.records:
        assert r["value"] == pytest.approx(1.0, abs=1e-9), r
    assert all(m["abs"] == 0.0 and m["rel"] == 0.0 for m in change.movement)


def test_adapting_only_the_head_leaves_body_similarity_at_one():
    model = small_conv4()
    learner = learner_of(model, head_only_adapt(model))
    change = representation_change(
        learner, [random_task(s) for s in range(3)], measures=("cca", "cka")
    )
    for r in change.records:
        if r["layer"] == "head":
            assert r["value"] < 1.0 - 1e-4, r
        else:
            assert r["value"] == pytest.approx(1.0, abs=1e-9), r
    moved = {row["layer"]: row["mean"] for row in summarise(change.movement, ("layer",), "abs")}
    assert moved["head"] > 0
    assert all(moved[layer] == 0.0 for layer in ("conv1", "conv2", "conv3", "conv4"))
    summary = change.summary()
    assert [(r["layer"], r["measure"]) for r in summary][:2] == [("conv1", "cca"), ("conv1", "cka")]
    assert all(r["n"] == 3 for r in summary)


def test_capturing_through_fast_weights_equals_a_module_loaded_with_them():
    model = small_conv4()
    task = random_task(1)
    torch.manual_seed(5)
    fast = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    loaded = copy.deepcopy(model)
    loaded.load_state_dict(fast)
    x = torch.cat([task.support_x, task.query_x])
    through_fast = capture(model, x, params=fast)
    plain = capture(loaded, x)
    for layer in model.analysis_layers:
        torch.testing.assert_close(through_fast[layer], plain[layer], rtol=0, atol=0)
    # and the meta-init path is the module's own forward
    before, after = capture_before_after(model, None, fast, x)
    for layer in model.analysis_layers:
        torch.testing.assert_close(after[layer], plain[layer], rtol=0, atol=0)
        assert not torch.equal(before[layer], after[layer])


def test_one_pass_gives_the_layers_logits_and_body_of_separate_passes():
    from repsim.inner_loop import body_features, forward

    model = small_conv4()
    task = random_task(2)
    x = torch.cat([task.support_x, task.query_x])
    torch.manual_seed(6)
    fast = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    raw, logits, body = capture_pass(model, x, params=fast)
    for layer, out in capture_raw(model, x, params=fast).items():
        assert torch.equal(raw[layer], out), layer
    with torch.no_grad():
        assert torch.equal(logits, forward(model, fast, x))
        assert torch.equal(body, body_features(model, fast, x))
    plain = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))  # no body of its own
    raw, logits, body = capture_pass(plain, x, layers=["1"])
    assert body is None and torch.equal(logits, raw["1"])
    with torch.no_grad():
        assert torch.equal(logits, plain(x))


def test_conv_layers_become_channels_or_flattened_2d():
    model = small_conv4()
    x = random_task(0).support_x  # 10 images, 28x28 -> conv1 14x14
    channels = capture(model, x)
    flat = capture(model, x, conv_mode="flatten")
    assert channels["conv1"].shape == (10 * 14 * 14, 8)
    assert flat["conv1"].shape == (10, 8 * 14 * 14)
    assert channels["head"].shape == flat["head"].shape == (10, WAYS)


class Explodes(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_no_hooks_remain_after_an_error_mid_forward():
    model = small_conv4()
    model.conv3 = Explodes()
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, random_task(0).support_x, layers=["conv1", "conv2", "conv4", "head"])
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, random_task(0).support_x, params=dict(model.named_parameters()))
    for name, sub in model.named_modules():
        assert not sub._forward_hooks, name


def test_unknown_layer_error_lists_the_layers():
    model = small_conv4()
    with pytest.raises(InputError) as err:
        capture(model, random_task(0).support_x, layers=["conv1", "conv9"])
    message = str(err.value)
    assert "conv9" in message
    for name in ("conv1", "conv2.norm", "conv4.conv", "head"):
        assert name in message
    assert not any(sub._forward_hooks for sub in model.modules())


def test_a_module_without_analysis_layers_asks_for_layers():
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(InputError, match="layers="):
        resolve_layers(mlp, None)
    acts = capture(mlp, torch.randn(6, 3), layers=["0", "2"])
    assert acts["0"].shape == (6, 4) and acts["2"].shape == (6, 2)


def test_a_refusing_measure_gives_nan_with_its_reason():
    # CCA on the head needs more datapoints than its 5 features: 4 images are too few.
    model = small_conv4()
    x = random_task(0).support_x[:4]
    before = capture(model, x, layers=["head"])
    rows = layer_similarity(before, before, ["cca", "cka"])
    by_measure = {r["measure"]: r for r in rows}
    assert math.isnan(by_measure["cca"]["value"]) and by_measure["cca"]["note"]
    assert by_measure["cka"]["value"] == pytest.approx(1.0, abs=1e-9)


def test_weight_movement_is_the_norm_of_the_change_per_layer():
    meta = {"a.w": torch.tensor([3.0, 0.0]), "a.b": torch.tensor([4.0]), "b.w": torch.ones(2)}
    fast = {"a.w": torch.tensor([3.0, 1.0]), "a.b": torch.tensor([4.0]), "b.w": torch.ones(2)}
    rows = {r["layer"]: r for r in weight_movement(meta, fast, ["a", "b"])}
    assert rows["a"]["abs"] == pytest.approx(1.0)
    assert rows["a"]["rel"] == pytest.approx(1.0 / 5.0)
    assert rows["b"]["abs"] == 0.0


def test_match_datapoints_pools_to_the_coarser_grid():
    a, b, h = torch.randn(3, 4, 8, 8), torch.randn(3, 6, 4, 4), torch.randn(3, 5)
    pa, pb = match_datapoints(a, b)
    assert pa.shape == (3, 4, 4, 4) and pb is b
    pa, ph = match_datapoints(a, h)
    assert pa.shape == (3, 4) and ph is h
    with pytest.raises(InputError):
        match_datapoints(a, torch.randn(2, 5))


def test_a_model_compared_with_itself_has_a_diagonal_of_one():
    model = small_conv4()
    inputs = [torch.cat([t.support_x, t.query_x]) for t in map(random_task, range(2))]
    records = cross_layer_similarity(model, model, inputs, measures=("cka",))
    assert len(records) == 2 * 5 * 5
    for r in records:
        if r["layer_a"] == r["layer_b"]:
            assert r["value"] == pytest.approx(1.0, abs=1e-9)
        else:
            assert 0.0 <= r["value"] <= 1.0 + 1e-9


def test_streaming_capture_matches_one_batch_for_a_batch_independent_module():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
    mlp.analysis_layers = ("1", "2")  # full-rank outputs (CCA is rank-sensitive)
    other = {n: p.detach() + 0.3 * torch.randn_like(p) for n, p in mlp.named_parameters()}
    x = torch.randn(90, 16)
    streamed = capture_streaming(mlp, x.split(30), None, other, measures=("cka", "cca"))
    before, after = capture_before_after(mlp, None, other, x)
    whole = layer_similarity(before, after, ["cka", "cca"])
    for r in whole:
        assert streamed[r["layer"]][r["measure"]] == pytest.approx(r["value"], abs=1e-6)


def test_mean_ci_is_scipys_t_interval_and_skips_nan():
    from scipy import stats

    values = [0.9, 0.8, 0.85, math.nan, 0.95]
    ci = mean_ci(values)
    finite = np.array([0.9, 0.8, 0.85, 0.95])
    low, high = stats.t.interval(0.95, df=3, loc=finite.mean(), scale=stats.sem(finite))
    assert ci["n"] == 4 and ci["n_failed"] == 1
    assert ci["ci_low"] == pytest.approx(low) and ci["ci_high"] == pytest.approx(high)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30))
def test_mean_ci_contains_the_mean_and_is_symmetric(values):
    ci = mean_ci(values)
    assert ci["ci_low"] <= ci["mean"] + 1e-9 and ci["mean"] <= ci["ci_high"] + 1e-9
    assert (ci["mean"] - ci["ci_low"]) == pytest.approx(ci["ci_high"] - ci["mean"], abs=1e-6)


def test_capture_raw_concatenates_a_layer_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    acts = capture_raw(Twice(), torch.randn(4, 3), layers=["lin"])
    assert acts["lin"].shape == (8, 3)
