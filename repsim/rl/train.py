"""Meta-training MAML / ANIL policies with TRPO (the MAML-RL protocol of Finn et al. 2017, as
used in Table 2 of Raghu et al. 2020).

``train(RLConfig(...), out_dir)`` writes, as the classification trainer does:

- ``config.json``; ``metrics.jsonl``, one line per iteration (see :func:`meta_iteration` for
  its fields; the held-out returns join the line every ``heldout_every`` iterations);
- ``last.safetensors`` every ``save_every`` iterations (``resume=True`` continues from it;
  TRPO keeps no optimiser state); ``final.safetensors`` at the end.

The layers, as in the classification trainer (:mod:`repsim.train`): the configuration and
presets (:mod:`repsim.rl.config`); :func:`meta_iteration`, one meta-batch and one TRPO step;
:func:`heldout_returns`, the returns on fixed held-out tasks (through
:func:`repsim.rl.evaluate.adaptation_returns`); :func:`steps`, a loop that yields each
iteration's row; and :func:`train`, a thin driver that logs, shows progress and saves.

Determinism: the policy's init is drawn from ``seed``; task ``j`` of iteration ``i`` is
:func:`repsim.rl.envs.sample_task` ``(env, seed, i * meta_batch + j)`` and the rollouts of
iteration ``i`` are seeded from ``(seed, i)``, so a resumed run repeats the uninterrupted one.
The monitoring draws from streams of its own (the held-out tasks from ``heldout_seed``, the
step check from ``(seed, i, 1)``) and changes no training number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repsim.errors import InputError
from repsim.progress import training_bar
from repsim.rl.config import (
    ALGORITHMS,
    HELDOUT_STEPS,
    PRESETS,
    RESUME_FREE,
    RLConfig,
    as_trained,
    config_from_preset,
)
from repsim.run_log import (
    MetricsLog,
    Stopped,
    check_same_run,
    due,
    finished_checkpoint,
    graceful_stop,
    restart_metrics,
    write_config,
)

__all__ = [
    "ALGORITHMS",
    "PRESETS",
    "RLConfig",
    "config_from_preset",
    "heldout_returns",
    "heldout_tasks",
    "make_policy",
    "meta_iteration",
    "steps",
    "train",
    "training_tasks",
]


def make_policy(cfg: RLConfig, env):
    from repsim.rl.policy import GaussianMLPPolicy, PolicyConfig

    torch.manual_seed(cfg.seed)
    return GaussianMLPPolicy(
        PolicyConfig(
            env.observation_dim,
            env.action_dim,
            cfg.hidden,
            1.0,
            cfg.adapt_log_std,
            cfg.nonlinearity,
        )
    )


def training_tasks(cfg: RLConfig, iteration: int) -> list[dict]:
    """The tasks of (1-based) ``iteration``: a pure function of (env, seed, iteration)."""
    from repsim.rl.envs import sample_task

    first = (iteration - 1) * cfg.meta_batch
    return [sample_task(cfg.env, cfg.seed, first + j) for j in range(cfg.meta_batch)]


def heldout_tasks(cfg: RLConfig) -> list[dict]:
    """The fixed held-out tasks: ``0..heldout_tasks-1`` under ``heldout_seed``, which is
    neither the training seed nor the test tasks' (:class:`RLConfig` refuses both)."""
    from repsim.rl.evaluate import evaluation_tasks

    return evaluation_tasks(cfg.env, cfg.heldout_tasks, seed=cfg.heldout_seed)


def _rollout_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0] >> 1)


def meta_iteration(model, loop, env, cfg: RLConfig, iteration: int) -> dict:
    """Sample one meta-batch and take one TRPO step on ``model``; returns the log row.

    The row: ``return_before`` / ``return_after`` (mean return of the meta-batch before and
    after adaptation, in-batch); TRPO's ``loss_before``, ``loss_after``, ``kl``, ``accepted``,
    ``backtracks`` and ``surrogate_gain`` (``loss_before - loss_after``, the accepted step's
    gain on this batch); the sampling policy's ``log_std`` (mean over action dimensions),
    ``log_std_adapted`` (the adapted policies', mean over tasks too) and ``entropy`` (per
    action); ``sample_seconds`` and ``optimise_seconds``. Every ``step_check_every``
    iterations also ``check_gain`` and ``check_kl``: the step's surrogate gain and KL on a
    fresh meta-batch (the next iteration's tasks, new rollouts, sampled before the step), an
    out-of-sample check of the step, and ``check_seconds``.
    """
    from repsim.rl.metalearn import sample_meta_batch, surrogate_and_kl
    from repsim.rl.policy import entropy
    from repsim.rl.trpo import trpo_step

    t0 = time.perf_counter()
    tasks = training_tasks(cfg, iteration)
    seed = _rollout_seed(cfg.seed, iteration)
    batch = sample_meta_batch(
        env, model, loop, tasks, cfg.trajectories, cfg.gamma, cfg.gae_tau, seed
    )
    sample_seconds = time.perf_counter() - t0
    params = dict(model.named_parameters())

    def evaluate(on=batch) -> tuple[float, float]:
        detached = {n: p.detach() for n, p in params.items()}
        new_loss, new_kl = surrogate_and_kl(model, loop, detached, on, create_graph=False)
        return float(new_loss), float(new_kl)

    check = None
    if due(iteration, cfg.step_check_every):  # sampled with the parameters before the step
        check = _step_check(model, loop, env, cfg, iteration, evaluate)
    log_std = model.head.log_std.detach().clone()
    t1 = time.perf_counter()
    loss, kl = surrogate_and_kl(model, loop, params, batch, create_graph=True)
    trained = [p for n, p in params.items() if cfg.train_log_std or n != "head.log_std"]
    step = trpo_step(
        trained,
        loss,
        kl,
        evaluate,
        cfg.max_kl,
        cfg.cg_iterations,
        cfg.cg_damping,
        cfg.backtrack_steps,
        cfg.backtrack_ratio,
    )
    t2 = time.perf_counter()
    row = {
        "iteration": iteration,
        "return_before": float(batch.train.returns().mean()),
        "return_after": float(batch.valid.returns().mean()),
        **step,
        "surrogate_gain": step["loss_before"] - step["loss_after"],
        "log_std": float(log_std.mean()),
        "log_std_adapted": float(torch.stack([o[1] for o in batch.old_outputs]).mean()),
        "entropy": float(entropy(log_std)),
        "sample_seconds": sample_seconds,
        "optimise_seconds": t2 - t1,
    }
    if check is not None:
        row.update(check())
    return row


def _step_check(model, loop, env, cfg: RLConfig, iteration: int, evaluate):
    """The out-of-sample check of an iteration's TRPO step: a fresh meta-batch (the next
    iteration's tasks, new rollouts) sampled and scored with the parameters before the step.
    Returns the function to call after the step: it scores the batch again and gives
    ``check_gain``, ``check_kl`` and ``check_seconds``."""
    from repsim.rl.metalearn import sample_meta_batch

    t0 = time.perf_counter()
    tasks, seed = training_tasks(cfg, iteration + 1), _rollout_seed(cfg.seed, iteration, 1)
    fresh = sample_meta_batch(
        env, model, loop, tasks, cfg.trajectories, cfg.gamma, cfg.gae_tau, seed
    )
    before = evaluate(fresh)[0]
    spent = time.perf_counter() - t0

    def after() -> dict:
        t = time.perf_counter()
        loss, kl = evaluate(fresh)
        return {
            "check_gain": before - loss,
            "check_kl": kl,
            "check_seconds": spent + time.perf_counter() - t,
        }

    return after


def heldout_returns(model, cfg: RLConfig, env) -> dict:
    """Mean return on the held-out tasks (:func:`heldout_tasks`, ``heldout_trajectories``
    each) before adaptation and after 1 and 2 inner steps of the test-time inner loop, with
    the 95 % half-width over tasks; the rollouts are seeded by ``heldout_seed`` alone, so every
    evaluation of a run sees the same noise."""
    from repsim.inner_loop import InnerLoop
    from repsim.results import mean_ci
    from repsim.rl.evaluate import adaptation_returns

    t0 = time.perf_counter()
    loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="test")
    returns = adaptation_returns(
        model,
        loop,
        env,
        heldout_tasks(cfg),
        cfg.heldout_trajectories,
        HELDOUT_STEPS,
        cfg.gamma,
        cfg.gae_tau,
        seed=cfg.heldout_seed,
    )
    stats = [mean_ci(r.tolist()) for r in returns]
    return {
        "heldout_before": stats[0]["mean"],
        **{f"heldout_after_{k}": stats[k]["mean"] for k in range(1, HELDOUT_STEPS + 1)},
        "heldout_ci95": [s["half_width"] for s in stats],
        "heldout_seconds": time.perf_counter() - t0,
    }


@dataclass
class RLRun:
    """What the loop needs: the config, the policy, the training inner loop and the
    environments (the held-out one apart, so a HalfCheetah vector environment keeps its size)."""

    cfg: RLConfig
    model: torch.nn.Module
    loop: object
    env: object
    _heldout_env: object | None = None

    @classmethod
    def build(cls, cfg: RLConfig) -> RLRun:
        from repsim.inner_loop import InnerLoop
        from repsim.rl.envs import env_for
        from repsim.rl.policy import INNER_LOSSES

        env = env_for(cfg.to_dict())
        model = make_policy(cfg, env)
        loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train")
        loop = loop.replace(loss=INNER_LOSSES[cfg.inner_loss])
        return cls(cfg, model, loop, env)

    @property
    def heldout_env(self):
        from repsim.rl.envs import env_for

        if self._heldout_env is None:
            self._heldout_env = env_for(self.cfg.to_dict())
        return self._heldout_env

    def close(self) -> None:
        for env in (self.env, self._heldout_env):
            if env is not None:
                env.close()


def steps(run: RLRun, start: int, stop: int) -> Iterator[dict]:
    """Iterations ``start+1 .. stop``: each takes one meta-iteration and yields its row, with
    the held-out returns every ``heldout_every`` iterations and at the last (``cfg.iterations``)."""
    cfg = run.cfg
    for it in range(start + 1, stop + 1):
        row = meta_iteration(run.model, run.loop, run.env, cfg, it)
        if math.isfinite(row["return_after"]) and due(it, cfg.heldout_every, cfg.iterations):
            row.update(heldout_returns(run.model, cfg, run.heldout_env))
        yield row


def _record(cfg: RLConfig, model, iteration: int, row: dict | None) -> dict:
    from repsim.provenance import code_version, now_utc

    return {
        "model": model.config.to_dict(),
        "train": cfg.to_dict(),
        "iteration": iteration,
        "return_before": None if row is None else row["return_before"],
        "return_after": None if row is None else row["return_after"],
        "code_version": code_version(),
        "created": now_utc(),
    }


def _resume(cfg: RLConfig, model, out: Path) -> int:
    """Load ``out/last.safetensors`` into ``model`` after checking it is this run (keys a
    record lacks: :func:`~repsim.rl.config.as_trained`; the check:
    :func:`~repsim.run_log.check_same_run`); returns its iteration."""
    from repsim import checkpoint as ckpt

    tensors, record = ckpt.read_checkpoint(out / "last.safetensors")
    start = int(record["iteration"])
    check_same_run(out, cfg.to_dict(), as_trained(record["train"]), start, RESUME_FREE)
    ckpt.load_state_strict(model, tensors, str(out / "last.safetensors"))
    return start


def _postfix(row: dict) -> dict:
    """The bar's postfix: the meta-batch's returns before and after adaptation, and the
    held-out return after one step when the row has it."""
    postfix = {"before": f"{row['return_before']:.1f}", "after": f"{row['return_after']:.1f}"}
    if "heldout_after_1" in row:
        postfix["heldout"] = f"{row['heldout_after_1']:.1f}"
    return postfix


def train(
    cfg: RLConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Run ``cfg``; returns ``out_dir/final.safetensors`` (or ``last.safetensors`` when
    ``stop_at=k`` stops after iteration ``k`` as if killed there; ``resume=True`` continues).
    With in-process sampling (``workers=1``), a SIGINT or SIGTERM stops the run after the
    iteration it arrives in, saved, with :class:`~repsim.run_log.Stopped`."""
    from repsim import checkpoint as ckpt

    out = Path(out_dir)
    if resume and (final := finished_checkpoint(out, cfg.to_dict(), as_trained, RESUME_FREE)):
        return final  # nothing left to train
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    run = RLRun.build(cfg)
    write_config(out, cfg)
    try:
        resumed = resume and (out / "last.safetensors").exists()
        start = _resume(cfg, run.model, out) if resumed else 0
        rows = restart_metrics(out / "metrics.jsonl", start if resumed else None)
        row = rows[-1] if rows else None  # the record's returns if no iteration is left
        desc = f"{cfg.algorithm} {cfg.env}"
        with (
            training_bar(cfg.iterations, start, desc, progress) as bar,
            MetricsLog(out / "metrics.jsonl") as log,
            graceful_stop(enabled=cfg.workers == 1) as stop,  # sampling processes die at once
        ):
            for row in steps(run, start, cfg.iterations):
                it = row["iteration"]
                if not math.isfinite(row["return_after"]):
                    raise InputError(
                        f"training diverged at iteration {it}; lower --max-kl or --inner-lr. "
                        f"The last good checkpoint is {out / 'last.safetensors'}"
                    )
                log.write(row)
                bar.update(1)
                bar.set_postfix(_postfix(row))
                if due(it, cfg.save_every, cfg.iterations) or stop.signum is not None:
                    ckpt.save_checkpoint(
                        out / "last.safetensors", run.model, _record(cfg, run.model, it, row)
                    )
                if stop.signum is not None:
                    raise Stopped(out / "last.safetensors", it, stop.signum)
                if stop_at is not None and it >= stop_at:
                    return out / "last.safetensors"
    finally:
        run.close()
    final = out / "final.safetensors"
    ckpt.save_checkpoint(final, run.model, _record(cfg, run.model, cfg.iterations, row))
    return final
