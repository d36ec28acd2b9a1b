"""Returns, the linear feature baseline and generalised advantage estimation (GAE).

Every array is one task's batch of fixed-horizon episodes, time first: observations
``(H, B, obs_dim)``, rewards ``(H, B)``. As in MAML-RL (Finn et al. 2017, after rllab), the
baseline is a ridge regression of the discounted returns on hand-made features of the state
and the time step, fitted anew on each batch of episodes, and the advantages are normalised
to zero mean and unit variance over the batch before they weight the policy gradient.

``mask (H, B)`` (episodes that end before the horizon, :mod:`repsim.rl.sampling`): the
baseline is fitted on the steps inside the episodes, its value is 0 after an episode's end (so
the last step's TD residual has no bootstrap), and the normalisation runs over those steps;
the advantages of the steps after the end are 0. Without a mask every step counts.
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``R_t = sum_k gamma^k r_{t+k}`` for rewards ``(H, B)``: ``(H, B)``."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def baseline_features(observations: torch.Tensor) -> torch.Tensor:
    """``[s, s^2, t, t^2, t^3, 1]`` with ``t`` the step / 100: ``(H, B, 2 obs_dim + 4)``."""
    h, b, _ = observations.shape
    t = torch.arange(h, dtype=observations.dtype).div(100.0).view(h, 1, 1).expand(h, b, 1)
    ones = torch.ones_like(t)
    return torch.cat([observations, observations.pow(2), t, t.pow(2), t.pow(3), ones], dim=-1)


def fit_linear_baseline(
    observations: torch.Tensor,
    returns: torch.Tensor,
    reg: float = 1e-5,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Values ``(H, B)`` of the ridge regression of ``returns`` on :func:`baseline_features`,
    fitted on the steps where ``mask`` is 1 (all steps without one).

    The ridge coefficient starts at ``reg`` and grows tenfold while the normal equations are
    singular (as rllab's ``LinearFeatureBaseline`` does).
    """
    x = baseline_features(observations).reshape(-1, 2 * observations.shape[-1] + 4).double()
    y = returns.reshape(-1, 1).double()
    fit_x, fit_y = x, y
    if mask is not None:
        keep = mask.reshape(-1) > 0
        fit_x, fit_y = x[keep], y[keep]
    xtx, xty = fit_x.T @ fit_x, fit_x.T @ fit_y
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    for _ in range(6):
        weights, info = torch.linalg.solve_ex(xtx + reg * eye, xty)
        if int(info) == 0 and torch.isfinite(weights).all():
            break
        reg *= 10
    return (x @ weights).reshape(returns.shape).to(returns.dtype)


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, tau: float) -> torch.Tensor:
    """Generalised advantage estimates ``(H, B)``: ``A_t = sum_k (gamma tau)^k delta_{t+k}``
    with ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``V_H = 0`` (fixed-horizon episodes).
    With ``tau = 1`` this is the return minus the baseline."""
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])])
    deltas = rewards + gamma * next_values - values
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * tau * running
        out[t] = running
    return out


def normalise(
    advantages: torch.Tensor, eps: float = 1e-8, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Zero mean, unit variance over the whole batch (over the steps where ``mask`` is 1, the
    others set to 0)."""
    if mask is None:
        return (advantages - advantages.mean()) / (advantages.std(unbiased=False) + eps)
    n = mask.sum()
    mean = (advantages * mask).sum() / n
    std = (((advantages - mean) ** 2) * mask).sum().div(n).sqrt()
    return (advantages - mean) / (std + eps) * mask


def advantages(
    observations: torch.Tensor,
    rewards: torch.Tensor,
    gamma: float,
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised GAE advantages ``(H, B)`` of one task's episodes, with the linear baseline
    fitted to these episodes (``mask``: see the module docstring)."""
    values = fit_linear_baseline(observations, discounted_returns(rewards, gamma), mask=mask)
    if mask is None:
        return normalise(gae(rewards, values, gamma, tau))
    return normalise(gae(rewards * mask, values * mask, gamma, tau), mask=mask)
