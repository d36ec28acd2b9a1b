"""Representation change of a policy in the inner loop: the paper's Section 4 analysis for RL.

Per test task: sample ``B`` trajectories with the meta-policy, take the recorded inner step(s)
on them, sample ``B`` trajectories with the adapted policy, and feed *the states the adapted
policy visited* through both the meta-policy and the adapted one. Each analysis layer (``fc1``,
``fc2``, ``head``: the mean output) is compared before vs after with the measures of
:mod:`repsim.similarity`, through :func:`repsim.representation.representation_change`, which
also gives the weight movement per layer. ``freeze=k`` keeps fc1..fck fixed (test-time
freezing).

Example::

    change, meta = policy_similarity("checkpoints/rl/maml_2dnav_seed0.safetensors", tasks=20)
    change.summary()   # [{layer, measure, mean, ci_low, ci_high, ...}]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from repsim.representation import RepresentationChange, representation_change
from repsim.rl.envs import env_for
from repsim.rl.evaluate import TEST_SEED, evaluation_tasks
from repsim.rl.metalearn import task_advantages, task_target
from repsim.rl.sampling import Episodes, rollout


@dataclass
class PolicyTask:
    """One task for :func:`representation_change`: the inner loop's data (``support_x``: the
    meta-policy's states ``(H, B, obs_dim)``; ``support_y``: ``(actions, advantages)``) and
    ``states (n, obs_dim)``, those visited by the adapted policy (``H*B``, fewer when episodes
    end at the goal: only the steps inside them)."""

    support_x: torch.Tensor
    support_y: tuple[torch.Tensor, ...]
    states: torch.Tensor


def policy_tasks(learner, env, tasks: list[dict], trajectories: int, seed: int = 0) -> list:
    """Sample each task's inner-loop episodes and the adapted policy's states."""
    cfg = learner.config["train"]
    model, meta = learner.module, learner.meta_params()
    train = rollout(env, model, meta, tasks, trajectories, seed)
    adv = task_advantages(train, cfg["gamma"], cfg["gae_tau"])
    targets = [task_target(train, adv, t) for t in range(len(tasks))]
    fast = [learner.adapt(meta, train.observations[t], targets[t]) for t in range(len(tasks))]
    valid = rollout(env, model, fast, tasks, trajectories, seed + 1)
    return [
        PolicyTask(train.observations[t], targets[t], _visited(valid, t)) for t in range(len(tasks))
    ]


def _visited(episodes: Episodes, task: int) -> torch.Tensor:
    states = episodes.observations[task]
    if episodes.mask is None:
        return states.reshape(-1, states.shape[-1])
    return states[episodes.mask[task] > 0]


def policy_similarity(
    path: str | Path,
    tasks: int = 20,
    trajectories: int | None = None,
    measures=("cca", "cka"),
    freeze: int = 0,
    inner_steps: int | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
    chance: int = 0,
) -> tuple[RepresentationChange, dict]:
    """Per-layer similarity before vs after adaptation and weight movement, over ``tasks``
    fixed test tasks (``chance=k``: each measure's chance level too, ``k`` permutations per
    task). Returns the change and a description of what was measured."""
    from repsim.provenance import portable_path
    from repsim.rl.checkpoint import load_policy_learner

    learner = load_policy_learner(path, freeze=freeze, inner_steps=inner_steps)
    cfg = learner.config["train"]
    batch = trajectories or cfg["trajectories"]
    env = env_for(cfg, workers)
    try:
        chosen = policy_tasks(learner, env, evaluation_tasks(cfg["env"], tasks), batch, seed)
    finally:
        env.close()
    change = representation_change(
        learner,
        chosen,
        measures=measures,
        progress=progress,
        inputs=lambda task: task.states,
        chance=chance,
    )
    meta = {
        "env": cfg["env"],
        "algorithm": cfg["algorithm"],
        "seed": cfg["seed"],
        "tasks": tasks,
        "task_seed": TEST_SEED,
        "trajectories": batch,
        "states_per_task": int(chosen[0].states.shape[0]),
        "states": "visited by the adapted policy",
        "adapt": learner.config["adapt"],
        "checkpoint": portable_path(path),
    }
    return change, meta
