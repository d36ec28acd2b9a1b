"""The inner loop: adapt a set of parameters to a task's support set, functionally.

One function serves MAML, first-order MAML, ANIL, BOIL-style body-only adaptation and test-time
freezing: they differ only in *which* parameters adapt (``repsim.models.adapted_parameter_names``).
Parameters are plain dicts ``{name: tensor}`` used with ``torch.func.functional_call``, so the
model stays an ordinary ``nn.Module``.

Loss scale. The inner loss is the *mean* cross-entropy over the support set. The original MAML
code (Finn et al. 2017) differentiates the *sum* over the N*K support examples of the
cross-entropy divided by K, i.e. N times the gradient of the mean. The paper's inner learning rate
alpha therefore maps to ``inner_lr = N * alpha`` here: Omniglot 5-way alpha=0.4 -> 2.0,
Omniglot 20-way alpha=0.1 -> 2.0, MiniImageNet 5-way alpha=0.01 -> 0.05.

ANIL. When only head parameters adapt and the model can run its body and head separately
(``forward(x, stage="body"|"head")``, as ``Conv4`` does), the body runs once per task and the
inner loop touches only the head: this is why ANIL is much cheaper than MAML.

Two paths compute the same meta-gradient:

- :func:`adapt` (a Python loop over tasks, ``torch.autograd.grad``): the default on CPU;
- :func:`batched_query_losses` (``torch.func.vmap`` over tasks with ``torch.func.grad`` in the
  inner loop). Exact only with a norm written from mean/var ops (``BatchStatNorm``), never with
  ``nn.BatchNorm`` (pytorch/functorch#534).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from repsim.errors import InputError
from repsim.protocol import Params


def _supports_stages(model: nn.Module) -> bool:
    return bool(getattr(model, "supports_stages", False))


def _head_only(names: Iterable[str]) -> bool:
    names = list(names)
    return bool(names) and all(n.split(".", 1)[0] == "head" for n in names)


def body_features(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features ``(N, feature_dim)`` of a model that runs its body separately."""
    return functional_call(model, params, (x,), {"stage": "body"})


def forward(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, ways)`` of ``model`` with parameters ``params``."""
    return functional_call(model, params, (x,))


def adapt(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    adapted_names: Iterable[str],
    inner_lr: float,
    steps: int,
    first_order: bool = False,
    create_graph: bool = False,
) -> Params:
    """Fast weights after ``steps`` of gradient descent on the support set's mean cross-entropy.

    Args:
        params: every parameter of ``model`` (the meta-init, or any starting point).
        support_x: ``(N*K, C, H, W)`` images; support_y: ``(N*K,)`` labels in ``0..N-1``.
        adapted_names: the parameters that change; all others are passed through untouched
            (the very same tensor objects, so frozen layers stay bit-identical).
        create_graph: keep the graph of the inner loop for a second-order meta-gradient
            (MAML). With ``first_order=True`` the inner gradients are treated as constants.

    Returns:
        a dict with the same keys as ``params``.
    """
    names = list(adapted_names)
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(
            f"cannot adapt unknown parameters {missing}; the model has {sorted(params)}"
        )
    if steps < 0:
        raise InputError(f"inner steps must be >= 0, got {steps}")
    fast = dict(params)
    if steps == 0 or not names:
        return fast
    keep_graph = create_graph and not first_order
    for n in names:  # at test time the meta-init does not require grad: make it a leaf that does
        if not fast[n].requires_grad:
            fast[n] = fast[n].detach().requires_grad_(True)

    with torch.enable_grad():
        if _head_only(names) and _supports_stages(model):
            feats = body_features(model, params, support_x)
            if not keep_graph:
                feats = feats.detach()

            def loss_fn(p: Params) -> torch.Tensor:
                return F.cross_entropy(
                    functional_call(model, p, (feats,), {"stage": "head"}), support_y
                )
        else:

            def loss_fn(p: Params) -> torch.Tensor:
                return F.cross_entropy(forward(model, p, support_x), support_y)

        for _ in range(steps):
            loss = loss_fn(fast)
            grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=keep_graph)
            for n, g in zip(names, grads):
                fast[n] = fast[n] - inner_lr * g
    if not keep_graph and not any(p.requires_grad for p in params.values()):
        fast = {n: t.detach() for n, t in fast.items()}
    return fast


def task_query_loss(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    adapted_names: Iterable[str],
    inner_lr: float,
    steps: int,
    first_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAML's outer objective for one task: (query loss after adaptation, query accuracy)."""
    fast = adapt(
        model,
        params,
        support_x,
        support_y,
        adapted_names,
        inner_lr,
        steps,
        first_order=first_order,
        create_graph=True,
    )
    logits = forward(model, fast, query_x)
    loss = F.cross_entropy(logits, query_y)
    acc = (logits.argmax(-1) == query_y).float().mean()
    return loss, acc.detach()


def _adapt_one_task(
    model: nn.Module,
    params: Params,
    names: list[str],
    inner_lr: float,
    steps: int,
    first_order: bool,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
) -> Params:
    """The inner loop with ``torch.func.grad`` (composable with vmap); returns the full dict."""
    fixed = {n: t for n, t in params.items() if n not in names}
    fast = {n: params[n] for n in names}
    if _head_only(names) and _supports_stages(model):
        inputs, kwargs = body_features(model, params, support_x), {"stage": "head"}
    else:
        inputs, kwargs = support_x, {}

    def support_loss(adapted: Params) -> torch.Tensor:
        return F.cross_entropy(
            functional_call(model, {**fixed, **adapted}, (inputs,), kwargs), support_y
        )

    for _ in range(steps):
        grads = torch.func.grad(support_loss)(fast)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        fast = {n: fast[n] - inner_lr * grads[n] for n in names}
    return {**fixed, **fast}


def batched_query_losses(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    adapted_names: Iterable[str],
    inner_lr: float,
    steps: int,
    first_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The vmap path: query losses and accuracies ``(tasks,)`` for a batch of tasks.

    Inputs carry a leading task dimension: ``support_x [T, N*K, C, H, W]`` etc. The result is
    differentiable with respect to ``params`` (second order unless ``first_order``).
    """
    names = list(adapted_names)

    def one_task(sx, sy, qx, qy):
        fast = _adapt_one_task(model, params, names, inner_lr, steps, first_order, sx, sy)
        logits = forward(model, fast, qx)
        return F.cross_entropy(logits, qy), (logits.argmax(-1) == qy).float().mean()

    losses, accs = torch.func.vmap(one_task)(support_x, support_y, query_x, query_y)
    return losses, accs.detach()
