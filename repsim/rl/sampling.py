"""Roll a policy out on a batch of tasks: ``B`` trajectories per task, all stepped together.

The ``T x B`` trajectories are flat *slots* of a batched environment (:mod:`repsim.rl.envs`),
task-major (slot ``i`` runs task ``i // B``), all stepped by one call per time step (one numpy
operation for 2D-Navigation, one gymnasium vector step for HalfCheetah). The policy runs once
per step on all slots (the meta-policy) or once per task (fast weights). Exploration noise
comes from a ``torch.Generator`` seeded with ``seed``, and the environment's resets from
``seed`` too, so a rollout is a pure function of (policy, tasks, seed).

An environment that ends episodes early (``env.terminates``, 2D-Navigation at the goal) keeps
the fixed ``(T, H, B)`` layout: ``Episodes.mask`` marks the steps inside each episode, and the
steps after its end earn 0 and count for nothing downstream (:mod:`repsim.rl.returns`, the
losses of :mod:`repsim.rl.policy` and :mod:`repsim.rl.metalearn`). The noise drawn for every
slot at every step is the same either way, so a run without termination repeats the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from repsim.params import Params
from repsim.rl.policy import sample_actions


@dataclass
class Episodes:
    """Fixed-horizon episodes of ``T`` tasks, ``B`` trajectories each, time second.

    ``observations (T, H, B, obs_dim)`` (the state each action was taken in),
    ``actions (T, H, B, action_dim)`` (as sampled, before any clipping by the environment),
    ``rewards (T, H, B)``; ``mask (T, H, B)``, 1.0 for the steps inside an episode and 0.0
    after it ended, or ``None`` when every episode runs to the horizon.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.rewards.shape[0]

    def returns(self) -> torch.Tensor:
        """Undiscounted return of every trajectory: ``(T, B)``."""
        return self.rewards.sum(dim=1)


def rollout(
    env,
    model: nn.Module,
    params: Params | Sequence[Params],
    tasks: Sequence[dict],
    trajectories: int,
    seed: int,
) -> Episodes:
    """Sample ``trajectories`` episodes of ``env.horizon`` steps on each task.

    ``params``: one parameter dict for every task (the meta-init), or a list with one dict per
    task (each task's fast weights). Runs without autograd.
    """
    per_task = not isinstance(params, dict)
    if per_task and len(params) != len(tasks):
        from repsim.errors import InputError

        raise InputError(f"{len(params)} parameter sets for {len(tasks)} tasks: give one per task")
    n_tasks, horizon = len(tasks), env.horizon
    slots = n_tasks * trajectories
    generator = torch.Generator().manual_seed(int(seed))
    observations = torch.empty(horizon, slots, env.observation_dim)
    actions = torch.empty(horizon, slots, env.action_dim)
    rewards = torch.empty(horizon, slots)
    mask = torch.ones(horizon, slots) if getattr(env, "terminates", False) else None
    slot_tasks = [task for task in tasks for _ in range(trajectories)]
    with torch.no_grad():
        obs = torch.as_tensor(env.reset(slot_tasks, seed=int(seed)), dtype=torch.float32)
        for t in range(horizon):
            if per_task:
                outs = [
                    functional_call(model, p, (o,)) for p, o in zip(params, obs.split(trajectories))
                ]
                output = (torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]))
            else:
                output = functional_call(model, params, (obs,))
            observations[t] = obs
            if mask is not None:  # the slots still inside their episode at step t
                mask[t] = torch.as_tensor(~env.dones, dtype=torch.float32)
            actions[t] = sample_actions(output, generator)
            next_obs, reward = env.step(actions[t].double().numpy())
            rewards[t] = torch.as_tensor(np.asarray(reward), dtype=torch.float32)
            obs = torch.as_tensor(next_obs, dtype=torch.float32)

    def by_task(x: torch.Tensor) -> torch.Tensor:  # (H, T*B, ...) -> (T, H, B, ...)
        x = x.reshape(horizon, n_tasks, trajectories, *x.shape[2:])
        return x.transpose(0, 1).contiguous()

    if mask is not None:
        rewards *= mask  # an ended episode earns nothing
    return Episodes(
        by_task(observations),
        by_task(actions),
        by_task(rewards),
        None if mask is None else by_task(mask),
    )
