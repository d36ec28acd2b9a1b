"""repsim's meta-gradients equal those of the same MAML written with ``higher`` (float64).

``higher`` is the common peer library (and the reference of ``analysis/bench_engine.py``); this
test is skipped where it is not installed (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repsim.inner_loop import InnerLoop
from repsim.models import Conv4, Conv4Config, adapted_parameter_names

higher = pytest.importorskip("higher")

WAYS, SHOTS, QUERIES, TASKS, STEPS, LR = 3, 2, 2, 2, 3, 0.4


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = Conv4(Conv4Config(in_channels=1, image_size=8, hidden=4, ways=WAYS)).double()
    g = torch.Generator().manual_seed(seed)
    sx = torch.rand(TASKS, WAYS * SHOTS, 1, 8, 8, generator=g, dtype=torch.float64)
    qx = torch.rand(TASKS, WAYS * QUERIES, 1, 8, 8, generator=g, dtype=torch.float64)
    sy = torch.arange(WAYS).repeat(SHOTS).repeat(TASKS, 1)
    qy = torch.arange(WAYS).repeat(QUERIES).repeat(TASKS, 1)
    return model, (sx, sy, qx, qy)


def _higher_grads(model, data, names, first_order):
    """Per task: innerloop_ctx with SGD adapting ``names`` (others at lr 0), query backward."""
    sx, sy, qx, qy = data
    adapted = [p for n, p in model.named_parameters() if n in names]
    others = [p for n, p in model.named_parameters() if n not in names]
    opt = torch.optim.SGD([{"params": adapted, "lr": LR}, {"params": others, "lr": 0.0}], lr=LR)
    model.zero_grad(set_to_none=True)
    for t in range(TASKS):
        with higher.innerloop_ctx(
            model, opt, copy_initial_weights=False, track_higher_grads=not first_order
        ) as (fmodel, diffopt):
            for _ in range(STEPS):
                diffopt.step(F.cross_entropy(fmodel(sx[t]), sy[t]))
            loss = F.cross_entropy(fmodel(qx[t]), qy[t]) / TASKS
            if first_order:
                for p, g in zip(model.parameters(), torch.autograd.grad(loss, fmodel.parameters())):
                    p.grad = g if p.grad is None else p.grad + g
            else:
                loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _repsim_grads(model, data, names, first_order, vmap):
    sx, sy, qx, qy = data
    params = dict(model.named_parameters())
    loop = InnerLoop(names, LR, STEPS, first_order)
    if vmap:
        losses, _ = loop.batched_query_losses(model, params, sx, sy, qx, qy)
        loss = losses.mean()
    else:
        loss = (
            sum(loop.query_loss(model, params, sx[t], sy[t], qx[t], qy[t])[0] for t in range(TASKS))
            / TASKS
        )
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


@pytest.mark.parametrize("vmap", [False, True], ids=["loop", "vmap"])
@pytest.mark.parametrize("first_order", [False, True], ids=["maml", "fomaml"])
def test_meta_gradient_equals_higher(first_order, vmap):
    model, data = _setup()
    names = adapted_parameter_names(model, "maml")
    ours = _repsim_grads(model, data, names, first_order, vmap)
    theirs = _higher_grads(model, data, names, first_order)
    assert max(float(g.abs().max()) for g in theirs.values()) > 1e-3  # a real gradient
    for n in ours:
        torch.testing.assert_close(ours[n], theirs[n], rtol=1e-9, atol=1e-11, msg=n)


def test_anil_meta_gradient_equals_higher_with_only_the_head_adapting():
    model, data = _setup(seed=1)
    names = adapted_parameter_names(model, "anil")
    ours = _repsim_grads(model, data, names, first_order=False, vmap=False)
    theirs = _higher_grads(model, data, names, first_order=False)
    for n in ours:
        torch.testing.assert_close(ours[n], theirs[n], rtol=1e-9, atol=1e-11, msg=n)
