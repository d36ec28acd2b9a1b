"""Trust-region policy optimisation (Schulman et al. 2015) as MAML-RL's outer optimiser.

The step solves ``F s = g`` with conjugate gradient, where ``g`` is the gradient of the
surrogate loss and ``F`` the Hessian of the mean KL divergence between the old and the new
(adapted) policies, applied as Fisher-vector products by double back-propagation, scales ``s``
so that ``0.5 s^T F s = max_kl``, and then halves it (by ``backtrack_ratio``) until the loss
improves and the KL stays under ``max_kl``. Parameters travel as one flat vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Vector = torch.Tensor


def flatten(tensors: Sequence[torch.Tensor]) -> Vector:
    return torch.cat([t.reshape(-1) for t in tensors])


def conjugate_gradient(
    matvec: Callable[[Vector], Vector], b: Vector, iterations: int = 10, tol: float = 1e-10
) -> Vector:
    """Approximate solution of ``A x = b`` for a symmetric positive-definite ``A`` given as
    ``matvec(v) = A v``, after at most ``iterations`` steps (exact after ``len(b)`` in exact
    arithmetic); stops early when the squared residual falls below ``tol``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iterations):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x


def fisher_vector_product(
    kl: torch.Tensor, params: Sequence[torch.Tensor], damping: float
) -> Callable[[Vector], Vector]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``kl`` (a scalar whose graph reaches
    ``params``) with respect to ``params``. At the old policy the KL's Hessian is the Fisher
    information. The gradient graph is built once and reused for every product."""
    grads = flatten(torch.autograd.grad(kl, list(params), create_graph=True))

    def product(v: Vector) -> Vector:
        hv = torch.autograd.grad(grads @ v, list(params), retain_graph=True)
        return flatten(hv) + damping * v

    return product


def trpo_step(
    params: Sequence[torch.Tensor],
    loss: torch.Tensor,
    kl: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    max_kl: float = 0.01,
    cg_iterations: int = 10,
    damping: float = 1e-5,
    backtrack_steps: int = 15,
    backtrack_ratio: float = 0.8,
) -> dict:
    """One TRPO update of ``params`` (leaf tensors, changed in place).

    ``loss`` and ``kl`` are scalars of the current ``params`` with their graphs (``kl`` zero at
    the old policy); ``evaluate()`` recomputes ``(loss, kl)`` at whatever values ``params``
    hold, without a graph. Returns ``{loss_before, loss_after, kl, accepted, backtracks}``;
    when no step of the line search is accepted the parameters are left as they were.
    """
    params = list(params)
    grad = flatten(torch.autograd.grad(loss, params, retain_graph=True)).detach()
    fvp = fisher_vector_product(kl, params, damping)
    direction = conjugate_gradient(fvp, grad, cg_iterations)
    shs = 0.5 * float(direction @ fvp(direction))
    old = flatten([p.detach() for p in params]).clone()
    loss_before = float(loss.detach())
    result = {"loss_before": loss_before, "loss_after": loss_before, "kl": 0.0}
    result.update(accepted=False, backtracks=backtrack_steps)
    if not (shs > 0 and math.isfinite(shs)):
        return result
    full_step = direction * math.sqrt(max_kl / shs)
    for k in range(backtrack_steps):
        _assign(params, old - backtrack_ratio**k * full_step)
        new_loss, new_kl = evaluate()
        if new_loss < loss_before and new_kl < max_kl:
            result.update(loss_after=new_loss, kl=new_kl, accepted=True, backtracks=k)
            return result
    _assign(params, old)
    return result


def _assign(params: Sequence[torch.Tensor], flat: Vector) -> None:
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n
