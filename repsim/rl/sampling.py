"""Roll a policy out on a batch of tasks: ``B`` trajectories per task, all stepped together.

The ``T x B`` trajectories are flat *slots* of a batched environment (:mod:`repsim.rl.envs`),
task-major (slot ``i`` runs task ``i // B``). An environment that takes any number of slots
(2D-Navigation) steps them all in one array operation; one with ``max_slots`` (HalfCheetah in
worker processes) rolls them out in chunks of that many slots. Exploration noise comes from a
``torch.Generator`` seeded with ``seed``, and the environment's resets from ``seed`` too, so a
rollout is a pure function of (policy, tasks, seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from repsim.protocol import Params
from repsim.rl.policy import sample_actions


@dataclass
class Episodes:
    """Fixed-horizon episodes of ``T`` tasks, ``B`` trajectories each, time second.

    ``observations (T, H, B, obs_dim)`` (the state each action was taken in),
    ``actions (T, H, B, action_dim)`` (as sampled, before any clipping by the environment),
    ``rewards (T, H, B)``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor

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
    chunk = env.max_slots or slots
    generator = torch.Generator().manual_seed(int(seed))
    obs_all = torch.empty(horizon, slots, env.observation_dim)
    act_all = torch.empty(horizon, slots, env.action_dim)
    rew_all = torch.empty(horizon, slots)
    slot_tasks = [tasks[i // trajectories] for i in range(slots)]
    with torch.no_grad():
        for start in range(0, slots, chunk):
            stop = min(start + chunk, slots)
            obs = torch.as_tensor(
                env.reset(slot_tasks[start:stop], seed=int(seed) * 1009 + start),
                dtype=torch.float32,
            )
            for t in range(horizon):
                if per_task:
                    outs = [
                        functional_call(model, params[task], (obs[lo - start : hi - start],))
                        for task, lo, hi in _task_runs(start, stop, trajectories)
                    ]
                    output = (torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs]))
                else:
                    output = functional_call(model, params, (obs,))
                actions = sample_actions(output, generator)
                obs_all[t, start:stop] = obs
                act_all[t, start:stop] = actions
                next_obs, reward = env.step(actions.double().numpy())
                rew_all[t, start:stop] = torch.as_tensor(np.asarray(reward), dtype=torch.float32)
                obs = torch.as_tensor(next_obs, dtype=torch.float32)

    def by_task(x: torch.Tensor) -> torch.Tensor:  # (H, T*B, ...) -> (T, H, B, ...)
        x = x.reshape(horizon, n_tasks, trajectories, *x.shape[2:])
        return x.transpose(0, 1).contiguous()

    return Episodes(by_task(obs_all), by_task(act_all), by_task(rew_all))


def _task_runs(start: int, stop: int, trajectories: int):
    """``(task, lo, hi)`` for the contiguous runs of slots ``start..stop-1`` of one task."""
    lo = start
    while lo < stop:
        task = lo // trajectories
        hi = min(stop, (task + 1) * trajectories)
        yield task, lo, hi
        lo = hi
