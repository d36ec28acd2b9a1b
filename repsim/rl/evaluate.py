"""Average return of a meta-trained policy on fixed test tasks, before and after adaptation.

The test tasks are ``0..n-1`` of :func:`repsim.rl.envs.sample_task` with ``TEST_SEED``, the
same for every checkpoint (the trainer's held-out monitoring uses the same functions on tasks
of its own seed, ``RLConfig.heldout_seed``, so that the test tasks stay unseen). As in
MAML-RL's test protocol, every inner step takes fresh trajectories: sample ``B`` trajectories
with the current policy (its mean return is the "after k steps" number), take one
policy-gradient step on them with the recorded :class:`~repsim.inner_loop.InnerLoop`, and
repeat. Returns are the mean over a task's trajectories; the interval is the 95 % t-interval
over tasks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from repsim.inner_loop import InnerLoop
from repsim.results import mean_ci
from repsim.rl.envs import TEST_SEED, env_for, sample_task
from repsim.rl.metalearn import task_advantages, task_target
from repsim.rl.sampling import rollout

__all__ = ["TEST_SEED", "adaptation_returns", "evaluate_policy_checkpoint", "evaluation_tasks"]


def evaluation_tasks(env: str, n: int, seed: int = TEST_SEED) -> list[dict]:
    """The fixed tasks ``0..n-1`` of ``env`` under ``seed`` (default: the test tasks)."""
    return [sample_task(env, seed, i) for i in range(n)]


def adaptation_returns(
    model: nn.Module,
    loop: InnerLoop,
    env,
    tasks: list[dict],
    trajectories: int,
    max_steps: int,
    gamma: float,
    tau: float,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Mean return per task after ``0..max_steps`` inner steps: ``(max_steps + 1, T)``;
    ``progress``: a bar over the rollouts (one per step, every task at once) on a terminal."""
    from repsim.progress import bar

    one_step = loop.replace(steps=1)
    current = [{n: p.detach() for n, p in model.named_parameters()}] * len(tasks)
    rows = []
    for k in bar(range(max_steps + 1), "rollouts", unit="rollout", enabled=progress):
        episodes = rollout(env, model, current, tasks, trajectories, seed * 7919 + k)
        rows.append(episodes.returns().mean(dim=1))
        if k < max_steps:
            adv = task_advantages(episodes, gamma, tau)
            current = [
                one_step.adapt(
                    model, current[t], episodes.observations[t], task_target(episodes, adv, t)
                )
                for t in range(len(tasks))
            ]
    return torch.stack(rows)


def evaluate_policy_checkpoint(
    path: str | Path,
    tasks: int = 40,
    trajectories: int | None = None,
    max_steps: int = 3,
    freeze: int = 0,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
    inner_lr: float | None = None,
    log_std: float | None = None,
) -> dict:
    """Returns before and after 1..``max_steps`` inner steps, mean ± 95 % CI over ``tasks``
    fixed test tasks; ``trajectories`` defaults to the recorded per-task batch, ``freeze=k``
    keeps fc1..fck fixed in the inner loop, ``inner_lr`` overrides the recorded rate;
    ``progress`` shows a bar over the rollouts; ``log_std`` sets the policy's log-std to this
    value before adapting (the mean network stays the trained one)."""
    from repsim.rl.checkpoint import load_policy

    model, record = load_policy(path)
    if log_std is not None:
        with torch.no_grad():
            model.head.log_std.fill_(log_std)
    cfg = record["train"]
    loop = InnerLoop.from_record(model, record, freeze=freeze, lr=inner_lr)
    env = env_for(cfg, workers)
    try:
        returns = adaptation_returns(
            model,
            loop,
            env,
            evaluation_tasks(cfg["env"], tasks),
            trajectories or cfg["trajectories"],
            max_steps,
            cfg["gamma"],
            cfg["gae_tau"],
            seed,
            progress,
        )
    finally:
        env.close()
    steps = [{"inner_steps": k, **mean_ci(returns[k].tolist())} for k in range(max_steps + 1)]
    return {
        "checkpoint": str(path),
        "env": cfg["env"],
        "algorithm": cfg["algorithm"],
        "iteration": record.get("iteration"),
        "tasks": tasks,
        "trajectories": trajectories or cfg["trajectories"],
        "freeze": freeze,
        "inner_lr": loop.lr,
        "adapted": list(loop.names),
        "steps": steps,
        "per_task": returns.tolist(),
    }
