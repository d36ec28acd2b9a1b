"""MAML-RL's meta-objective on one meta-batch of tasks.

For each task: sample ``B`` trajectories with the meta-policy (the *train* episodes), fit the
baseline and take the inner policy-gradient step (``InnerLoop.adapt`` with the REINFORCE loss),
sample ``B`` trajectories with the adapted policy (the *valid* episodes). The outer loss is
TRPO's surrogate on the valid episodes, ``-mean(pi'(a|s) / pi'_old(a|s) * A)``, where ``pi'`` is
the policy adapted from the current meta-parameters (the graph runs through the inner step:
second-order meta-gradient) and ``pi'_old`` the adapted policy that sampled them; the trust
region is the mean KL between the two. When episodes end early (``Episodes.mask``) every mean
runs over the steps inside a task's episodes, as MAML-RL's (cbfinn/maml_rl ``maml_npo.py``
averages the concatenated steps of a task's paths; pytorch-maml-rl's ``weighted_mean`` would
average each trajectory over its own length first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from repsim.inner_loop import InnerLoop
from repsim.params import Params
from repsim.rl.policy import kl_divergence, log_prob, masked_mean
from repsim.rl.returns import advantages
from repsim.rl.sampling import Episodes, rollout


@dataclass
class MetaBatch:
    """What one meta-iteration samples: episodes before and after adaptation, their normalised
    advantages ``(T, H, B)``, and the sampling adapted policy's ``(mean, log_std)`` on the valid
    states, one pair per task."""

    tasks: list[dict]
    train: Episodes
    train_advantages: torch.Tensor
    valid: Episodes
    valid_advantages: torch.Tensor
    old_outputs: list[tuple[torch.Tensor, torch.Tensor]]


def task_advantages(episodes: Episodes, gamma: float, tau: float) -> torch.Tensor:
    """Normalised advantages of every task's episodes: ``(T, H, B)``."""
    mask = episodes.mask
    return torch.stack(
        [
            advantages(
                episodes.observations[t],
                episodes.rewards[t],
                gamma,
                tau,
                None if mask is None else mask[t],
            )
            for t in range(len(episodes))
        ]
    )


def task_target(episodes: Episodes, advantages_: torch.Tensor, task: int) -> tuple:
    """What :func:`repsim.rl.policy.reinforce_loss` takes for task ``task``: ``(actions,
    advantages)``, and the mask when episodes end early."""
    target = (episodes.actions[task], advantages_[task])
    return target if episodes.mask is None else (*target, episodes.mask[task])


def adapt_to_task(
    loop: InnerLoop,
    model: nn.Module,
    params: Params,
    episodes: Episodes,
    advantages_: torch.Tensor,
    task: int,
    create_graph: bool = False,
) -> Params:
    """Fast weights of task ``task`` after the inner loop on its episodes."""
    target = task_target(episodes, advantages_, task)
    return loop.adapt(model, params, episodes.observations[task], target, create_graph)


def sample_meta_batch(
    env,
    model: nn.Module,
    loop: InnerLoop,
    tasks: Sequence[dict],
    trajectories: int,
    gamma: float,
    tau: float,
    seed: int,
) -> MetaBatch:
    """Sample the train episodes, adapt, and sample the valid episodes of every task."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    train = rollout(env, model, params, tasks, trajectories, seed)
    train_adv = task_advantages(train, gamma, tau)
    fast = [adapt_to_task(loop, model, params, train, train_adv, t) for t in range(len(tasks))]
    valid = rollout(env, model, fast, tasks, trajectories, seed + 1)
    valid_adv = task_advantages(valid, gamma, tau)
    with torch.no_grad():
        old = [functional_call(model, fast[t], (valid.observations[t],)) for t in range(len(tasks))]
    return MetaBatch(list(tasks), train, train_adv, valid, valid_adv, old)


def surrogate_and_kl(
    model: nn.Module, loop: InnerLoop, params: Params, batch: MetaBatch, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """TRPO's surrogate loss and the mean KL(old || new) over the meta-batch, each a scalar
    averaged over tasks. ``create_graph=True`` keeps the graph through the inner step."""
    losses, kls = [], []
    for t in range(len(batch.tasks)):
        fast = adapt_to_task(
            loop, model, params, batch.train, batch.train_advantages, t, create_graph
        )
        output = functional_call(model, fast, (batch.valid.observations[t],))
        old = batch.old_outputs[t]
        actions = batch.valid.actions[t]
        ratio = torch.exp(log_prob(output, actions) - log_prob(old, actions))
        mask = None if batch.valid.mask is None else batch.valid.mask[t]
        losses.append(-masked_mean(ratio * batch.valid_advantages[t], mask))
        kls.append(masked_mean(kl_divergence(old, output), mask))
    return torch.stack(losses).mean(), torch.stack(kls).mean()
