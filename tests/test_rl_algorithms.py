"""Meta-RL algorithms: the policy-gradient inner step, returns and baseline, conjugate gradient,
the Fisher-vector product, TRPO's trust region, and MAML-RL learning on 2D-Navigation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.func import functional_call

from repsim.errors import InputError
from repsim.inner_loop import InnerLoop
from repsim.models import adapted_parameter_names
from repsim.rl.envs import make_env
from repsim.rl.metalearn import sample_meta_batch, surrogate_and_kl
from repsim.rl.policy import (
    GaussianMLPPolicy,
    PolicyConfig,
    kl_divergence,
    log_prob,
    lvc_loss,
    reinforce_loss,
)
from repsim.rl.returns import discounted_returns, fit_linear_baseline, gae, normalise
from repsim.rl.trpo import conjugate_gradient, fisher_vector_product, flatten, trpo_step

RECORD = {"train": {"algorithm": "maml", "inner_lr": 0.1, "inner_steps": 1, "test_inner_steps": 1}}


def _tiny_policy(hidden: int = 4, seed: int = 0, **kw) -> GaussianMLPPolicy:
    torch.manual_seed(seed)
    model = GaussianMLPPolicy(PolicyConfig(2, 2, hidden, **kw)).double()
    with torch.no_grad():  # a log-std away from 0, so its gradients are not special
        model.head.log_std.copy_(torch.tensor([-0.3, 0.2]))
    return model


def _synthetic_batch(seed: int = 1, h: int = 5, b: int = 3):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(h, b, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(h, b, 2, generator=g, dtype=torch.float64)
    adv = torch.randn(h, b, generator=g, dtype=torch.float64)
    return obs, actions, adv


def _params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_the_policy_relu_has_f_relus_values_gradients_and_second_derivatives():
    """Through a tanh-free MLP so that second derivatives reach the ReLU: the value, gradient
    and Hessian-vector product equal F.relu's exactly, zeros and negatives included."""
    from repsim.rl.policy import relu

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    x[:8] = 0.0
    w1, w2 = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in "ab")
    v = torch.randn(3, 5, generator=g, dtype=torch.float64)

    def derivatives(act):
        w = w1.clone().requires_grad_()
        out = act(x @ w) @ w2.T
        loss = (out**2).sum()
        (grad,) = torch.autograd.grad(loss, w, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), w)
        return out.detach(), grad.detach(), hv

    for ours, theirs in zip(derivatives(relu), derivatives(torch.nn.functional.relu)):
        assert torch.equal(ours, theirs)


def test_log_prob_and_kl_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m0, m1, a = (torch.randn(7, 3, generator=g, dtype=torch.float64) for _ in range(3))
    s0, s1 = (0.3 * torch.randn(7, 3, generator=g, dtype=torch.float64) for _ in range(2))
    p0 = torch.distributions.Normal(m0, s0.exp())
    p1 = torch.distributions.Normal(m1, s1.exp())
    assert torch.allclose(log_prob((m0, s0), a), p0.log_prob(a).sum(-1))
    expected = torch.distributions.kl_divergence(p0, p1).sum(-1)
    assert torch.allclose(kl_divergence((m0, s0), (m1, s1)), expected)


def test_policy_gradient_inner_step_matches_a_finite_difference_gradient_in_float64():
    model = _tiny_policy()
    obs, actions, adv = _synthetic_batch()
    params = _params(model)
    loop = InnerLoop.from_record(model, RECORD, phase="train")
    assert loop.loss is reinforce_loss and loop.to_dict()["loss"] == "reinforce_loss"
    fast = loop.adapt(model, params, obs, (actions, adv))

    def surrogate(p):
        return float(reinforce_loss(functional_call(model, p, (obs,)), (actions, adv)))

    eps = 1e-6
    for name, value in params.items():
        flat = value.reshape(-1)
        fd = torch.empty_like(flat)
        for i in range(flat.numel()):
            up, down = flat.clone(), flat.clone()
            up[i] += eps
            down[i] -= eps
            fd[i] = (
                surrogate({**params, name: up.view_as(value)})
                - surrogate({**params, name: down.view_as(value)})
            ) / (2 * eps)
        step = (params[name] - fast[name]).reshape(-1) / loop.lr
        assert torch.allclose(step, fd, rtol=1e-6, atol=1e-8), name


def test_lvc_loss_takes_reinforces_step_and_adds_the_sampling_term_to_its_hessian():
    """ProMP's LVC loss: the same gradient as REINFORCE, and a Hessian larger by
    -mean(grad log pi grad log pi^T * A), computed here from per-step gradients."""
    model = _tiny_policy()
    obs, actions, adv = _synthetic_batch()
    params = _params(model)
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def unflat(v):
        return dict(zip(names, (t.view(s) for t, s in zip(v.split(sizes), shapes))))

    def loss_of(loss):
        return lambda v: loss(functional_call(model, unflat(v), (obs,)), (actions, adv))

    flat = flatten([params[n] for n in names])
    reinforce, lvc = loss_of(reinforce_loss), loss_of(lvc_loss)
    assert torch.allclose(lvc(flat), -adv.mean(), atol=1e-12)  # the ratio is 1 in value
    g_r = torch.func.grad(reinforce)(flat)
    assert torch.allclose(g_r, torch.func.grad(lvc)(flat), atol=1e-12)
    h_r, h_lvc = torch.func.hessian(reinforce)(flat), torch.func.hessian(lvc)(flat)

    # the per-step score vectors grad log pi(a_t | s_t), one row per (t, b)
    def logp(v):
        return log_prob(functional_call(model, unflat(v), (obs,)), actions).reshape(-1)

    scores = torch.func.jacrev(logp)(flat)  # (H*B, P)
    extra = -(scores.T * adv.reshape(-1)) @ scores / adv.numel()
    assert extra.abs().max() > 1e-3  # the term is not negligible here
    assert torch.allclose(h_lvc, h_r + extra, atol=1e-10)
    # in the inner loop: the same fast weights
    loop = InnerLoop.from_record(model, RECORD, phase="train")
    a = loop.adapt(model, params, obs, (actions, adv))
    b = loop.replace(loss=lvc_loss).adapt(model, params, obs, (actions, adv))
    assert all(torch.allclose(a[n], b[n], atol=1e-12) for n in names)


def test_anil_adapts_the_head_and_log_std_and_runs_the_body_once():
    model = _tiny_policy()
    obs, actions, adv = _synthetic_batch()
    params = _params(model)
    record = {"train": {**RECORD["train"], "algorithm": "anil"}}
    loop = InnerLoop.from_record(model, record)
    assert set(loop.names) == {"head.weight", "head.bias", "head.log_std"} and loop.head_only
    fast = loop.adapt(model, params, obs, (actions, adv))
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(fast[name], params[name])  # the body is not adapted
        assert fast[name].data_ptr() == params[name].data_ptr()  # nor copied
    model.supports_stages = False  # the same loop through the full forward pass
    try:
        expected = loop.adapt(model, params, obs, (actions, adv))
    finally:
        del model.supports_stages
    for name in loop.names:
        assert torch.allclose(fast[name], expected[name])


def test_log_std_as_meta_parameter_is_never_adapted_and_freezing_counts_fc_layers():
    model = _tiny_policy(adapt_log_std=False)
    assert "head.log_std" not in adapted_parameter_names(model, "maml")
    assert adapted_parameter_names(model, "anil") == ["head.weight", "head.bias"]
    frozen = adapted_parameter_names(_tiny_policy(), "maml", freeze=1)
    assert not any(n.startswith("fc1.") for n in frozen) and "fc2.weight" in frozen
    with pytest.raises(InputError, match="fc1, fc2"):
        adapted_parameter_names(model, "maml", freeze=3)


def test_discounted_returns_and_gae_by_hand():
    rewards = torch.tensor([[1.0], [1.0], [1.0]], dtype=torch.float64)
    assert discounted_returns(rewards, 0.5).flatten().tolist() == [1.75, 1.5, 1.0]
    values = torch.tensor([[0.5], [0.25], [2.0]], dtype=torch.float64)
    returns = discounted_returns(rewards, 0.5)
    assert torch.allclose(gae(rewards, values, 0.5, 1.0), returns - values)  # tau=1
    td = rewards + 0.5 * torch.tensor([[0.25], [2.0], [0.0]]).double() - values
    assert torch.allclose(gae(rewards, values, 0.5, 0.0), td)  # tau=0: the TD residual
    z = normalise(torch.randn(20, 4, dtype=torch.float64))
    assert abs(float(z.mean())) < 1e-12 and float(z.std(unbiased=False)) == pytest.approx(1.0)


def test_masked_advantages_and_inner_loss_count_only_the_steps_inside_the_episodes():
    """With episodes that end early (2D-Navigation at the goal): the baseline is fitted, and
    the advantages normalised, on the steps inside the episodes only, the steps after the end
    get advantage 0, and the inner loss is the mean over the steps inside (MAML-RL's mean
    over a task's concatenated paths), so the steps after the end count for nothing."""
    from repsim.rl.returns import advantages

    g = torch.Generator().manual_seed(3)
    h, b = 6, 4
    obs = torch.randn(h, b, 2, generator=g, dtype=torch.float64)
    rewards = torch.randn(h, b, generator=g, dtype=torch.float64)
    lengths = [6, 3, 5, 2]
    mask = torch.stack([(torch.arange(h) < n).double() for n in lengths], dim=1)
    adv = advantages(obs, rewards * mask, 0.9, 1.0, mask=mask)
    assert adv[mask == 0].eq(0).all()
    inside = adv[mask > 0]
    assert float(inside.mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(inside.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
    model = _tiny_policy()
    actions = torch.randn(h, b, 2, generator=g, dtype=torch.float64)
    output = model(obs)
    masked = reinforce_loss(output, (actions, adv, mask))
    logp = log_prob(output, actions)
    assert torch.allclose(masked, -(logp[mask > 0] * adv[mask > 0]).mean())
    no_mask = advantages(obs, rewards, 0.9, 1.0)  # all steps count: the fixed-horizon path
    assert torch.allclose(advantages(obs, rewards, 0.9, 1.0, mask=torch.ones(h, b)), no_mask)


def test_linear_baseline_recovers_a_target_in_its_feature_space():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(30, 4, 2, generator=g, dtype=torch.float64)
    t = torch.arange(30, dtype=torch.float64).div(100).view(30, 1)
    target = 2 * obs[..., 0] - obs[..., 1] ** 2 + 3 * t - 0.5
    fitted = fit_linear_baseline(obs, target)
    assert torch.allclose(fitted, target, atol=1e-3)  # up to the ridge term (1e-5)
    assert float((fitted - target).abs().max()) < 1e-3 * float(target.abs().max())


def test_conjugate_gradient_solves_a_known_system():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iterations=2)
    assert torch.allclose(x, torch.tensor([1 / 11, 7 / 11], dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    m = torch.randn(8, 8, generator=g, dtype=torch.float64)
    spd = m @ m.T + 8 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iterations=8)
    assert torch.allclose(x, torch.linalg.solve(spd, b), atol=1e-10)


def _explicit_fisher(model, loop, params, obs, actions, adv, adapt: bool) -> torch.Tensor:
    """mean_s J_s^T M J_s with J_s the Jacobian of the (adapted) policy's (mean, log_std) at
    state s w.r.t. the meta-parameters, M = diag(1/sigma^2 for the mean, 2 for the log-std)."""
    leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    fast = loop.adapt(model, leaves, obs, (actions, adv), create_graph=True) if adapt else leaves
    mean, log_std = functional_call(model, fast, (obs,))
    mean, log_std = mean.reshape(-1, 2), log_std.reshape(-1, 2)
    n = mean.shape[0]
    fisher = 0
    for s in range(n):
        for out, weight in (
            (mean[s], torch.exp(-2 * log_std[s]).detach()),
            (log_std[s], torch.full((2,), 2.0, dtype=torch.float64)),
        ):
            for k in range(2):
                grads = torch.autograd.grad(
                    out[k], list(leaves.values()), retain_graph=True, materialize_grads=True
                )
                row = flatten(grads)
                fisher = fisher + weight[k] * torch.outer(row, row)
    return fisher / n


@pytest.mark.parametrize("adapt", [False, True], ids=["policy", "through-the-inner-step"])
def test_fisher_vector_product_equals_the_explicit_fisher_of_a_tiny_policy(adapt):
    model = _tiny_policy(hidden=3)
    obs, actions, adv = _synthetic_batch(h=3, b=2)
    params = _params(model)
    loop = InnerLoop.from_record(model, RECORD)
    leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    fast = loop.adapt(model, leaves, obs, (actions, adv), create_graph=True) if adapt else leaves
    new = functional_call(model, fast, (obs,))
    old = tuple(o.detach() for o in new)
    kl = kl_divergence(old, new).mean()
    fvp = fisher_vector_product(kl, list(leaves.values()), damping=0.0)
    size = sum(p.numel() for p in params.values())
    via_products = torch.stack([fvp(e) for e in torch.eye(size, dtype=torch.float64)])
    explicit = _explicit_fisher(model, loop, params, obs, actions, adv, adapt)
    assert torch.allclose(via_products, explicit, atol=1e-10)
    damped = fisher_vector_product(kl, list(leaves.values()), damping=0.1)
    v = torch.ones(size, dtype=torch.float64)
    assert torch.allclose(damped(v), explicit @ v + 0.1 * v, atol=1e-10)


def _small_2dnav_batch(model, loop, seed=0):
    env = make_env("2dnav", horizon=20)
    tasks = [{"goal": [0.3, -0.2]}, {"goal": [-0.4, 0.1]}, {"goal": [0.0, 0.45]}]
    return sample_meta_batch(env, model, loop, tasks, 6, 0.99, 1.0, seed)


@pytest.mark.parametrize("max_kl", [1e-3, 1e-2])
def test_trpo_step_improves_the_surrogate_and_respects_max_kl(max_kl):
    torch.manual_seed(0)
    model = GaussianMLPPolicy(PolicyConfig(2, 2, 16))
    loop = InnerLoop.from_record(model, RECORD, phase="train")
    batch = _small_2dnav_batch(model, loop)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    loss, kl = surrogate_and_kl(model, loop, params, batch, create_graph=True)
    assert float(kl.detach()) == pytest.approx(0.0, abs=1e-10)

    def evaluate():
        detached = {n: p.detach() for n, p in params.items()}
        new_loss, new_kl = surrogate_and_kl(model, loop, detached, batch, create_graph=False)
        return float(new_loss), float(new_kl)

    step = trpo_step(list(params.values()), loss, kl, evaluate, max_kl=max_kl)
    assert step["accepted"]
    new_loss, new_kl = evaluate()  # measured afresh at the parameters the step left
    assert new_loss < float(loss.detach())
    assert 0 < new_kl <= max_kl
    moved = sum(float((p.detach() - before[n]).norm()) for n, p in params.items())
    assert moved > 0


def test_trpo_leaves_the_parameters_when_no_step_improves():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    loss = (p**2).sum()
    kl = 0.5 * ((p - p.detach()) ** 2).sum()
    step = trpo_step([p], loss, kl, evaluate=lambda: (float("inf"), 0.0), backtrack_steps=3)
    assert not step["accepted"]
    assert p.detach().tolist() == [1.0, -2.0]


def test_a_short_maml_run_improves_the_post_adaptation_return(tmp_path):
    from repsim.rl.checkpoint import load_policy
    from repsim.rl.evaluate import adaptation_returns, evaluation_tasks
    from repsim.rl.train import RLConfig, make_policy, train

    cfg = RLConfig(env="2dnav", meta_batch=5, trajectories=10, iterations=8, save_every=4)
    env = make_env("2dnav")
    tasks = evaluation_tasks("2dnav", 10)

    def after_one_step(model):
        loop = InnerLoop.from_record(model, {"train": cfg.to_dict()})
        return float(adaptation_returns(model, loop, env, tasks, 10, 1, 0.99, 1.0)[1].mean())

    untrained = after_one_step(make_policy(cfg, env))
    model, record = load_policy(train(cfg, tmp_path, progress=False))
    trained = after_one_step(model)
    assert record["iteration"] == 8 and record["train"]["env"] == "2dnav"
    assert trained > untrained + 10, (untrained, trained)


def test_resume_repeats_the_uninterrupted_run(tmp_path):
    from repsim.checkpoint import read_checkpoint
    from repsim.rl.train import RLConfig, train

    cfg = RLConfig(meta_batch=2, trajectories=3, horizon=15, iterations=3, save_every=1)
    full, _ = read_checkpoint(train(cfg, tmp_path / "full", progress=False))
    train(cfg, tmp_path / "cut", progress=False, stop_at=2)
    resumed, record = read_checkpoint(train(cfg, tmp_path / "cut", resume=True, progress=False))
    assert record["iteration"] == 3
    for name, value in full.items():
        assert torch.equal(value, resumed[name]), name
    other = dataclasses.replace(cfg, max_kl=0.05)
    with pytest.raises(InputError, match="max_kl"):
        train(other, tmp_path / "cut", resume=True, progress=False)
    final = tmp_path / "cut" / "final.safetensors"  # done: resumed again, nothing is redone
    written = final.read_bytes()
    assert train(cfg, tmp_path / "cut", resume=True, progress=False) == final
    assert final.read_bytes() == written


def test_a_signal_stops_rl_training_saved_at_its_iteration_and_resume_continues_exactly(
    tmp_path, monkeypatch
):
    import os
    import signal

    import repsim.rl.train as rl_train
    from repsim.checkpoint import read_checkpoint
    from repsim.rl.train import RLConfig, train
    from repsim.run_log import Stopped

    cfg = RLConfig(meta_batch=2, trajectories=3, horizon=15, iterations=3, save_every=3)
    full, _ = read_checkpoint(train(cfg, tmp_path / "full", progress=False))
    postfix = rl_train._postfix

    def postfix_then_signal(row):
        if row["iteration"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return postfix(row)

    monkeypatch.setattr(rl_train, "_postfix", postfix_then_signal)
    with pytest.raises(Stopped, match="SIGINT after iteration 2"):
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "cut" / "last.safetensors")[1]["iteration"] == 2
    resumed, record = read_checkpoint(train(cfg, tmp_path / "cut", resume=True, progress=False))
    assert record["iteration"] == 3
    assert all(torch.equal(value, resumed[name]) for name, value in full.items())


def test_anil_policy_body_similarity_is_one_and_its_body_weights_do_not_move(tmp_path):
    from repsim.rl.similarity import policy_similarity
    from repsim.rl.train import RLConfig, train

    cfg = RLConfig(algorithm="anil", meta_batch=2, trajectories=4, horizon=30, iterations=1)
    path = train(cfg, tmp_path, progress=False)
    change, meta = policy_similarity(path, tasks=3, measures=("cka",))
    assert meta["states_per_task"] == 4 * 30
    summary = {r["layer"]: r["mean"] for r in change.summary()}
    assert summary["fc1"] == pytest.approx(1.0, abs=1e-12)
    assert summary["fc2"] == pytest.approx(1.0, abs=1e-12)
    assert summary["head"] < 1.0
    movement = {r["layer"]: r["abs_mean"] for r in change.movement_summary()}
    assert movement["fc1"] == 0 and movement["fc2"] == 0 and movement["head"] > 0
