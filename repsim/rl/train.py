"""Meta-training MAML / ANIL policies with TRPO (the MAML-RL protocol of Finn et al. 2017, as
used in Table 2 of Raghu et al. 2020).

``train(RLConfig(...), out_dir)`` writes, as the classification trainer does:

- ``config.json``; ``metrics.jsonl``, one line per iteration: mean return before and after
  adaptation, TRPO's loss, KL and backtracks, and the seconds spent sampling and optimising;
- ``last.safetensors`` every ``save_every`` iterations (``resume=True`` continues from it;
  TRPO keeps no optimiser state); ``final.safetensors`` at the end.

Determinism: the policy's init is drawn from ``seed``; task ``j`` of iteration ``i`` is
:func:`repsim.rl.envs.sample_task` ``(env, seed, i * meta_batch + j)`` and the rollouts of
iteration ``i`` are seeded from ``(seed, i)``, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repsim.errors import InputError
from repsim.rl.envs import ENVIRONMENTS

ALGORITHMS = ("maml", "anil")


@dataclass
class RLConfig:
    """Everything that defines a meta-RL run; stored in every checkpoint it writes."""

    env: str = "2dnav"
    algorithm: str = "maml"
    horizon: int = 0  # 0: the benchmark's (100 for 2D-Navigation, 200 for HalfCheetah)
    meta_batch: int = 40  # tasks per meta-update
    trajectories: int = 20  # per task, before and after adaptation
    inner_lr: float = 0.1
    inner_steps: int = 1
    test_inner_steps: int = 1
    gamma: float = 0.99
    gae_tau: float = 1.0
    max_kl: float = 1e-2
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    backtrack_steps: int = 15
    backtrack_ratio: float = 0.8
    hidden: int = 100
    adapt_log_std: bool = True  # the log-std counts as head (see repsim.rl.policy)
    iterations: int = 500
    seed: int = 0
    workers: int = 1  # sampling processes for HalfCheetah (gymnasium AsyncVectorEnv when > 1)
    save_every: int = 10
    threads: int = 1

    def __post_init__(self):
        if self.env not in ENVIRONMENTS:
            raise InputError(f"unknown environment {self.env!r}; use one of {ENVIRONMENTS}")
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"RL algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        for name in ("meta_batch", "trajectories", "save_every", "threads", "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.trajectories < 2:
            raise InputError("trajectories must be at least 2 (advantages are normalised)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_PAPER = dict(meta_batch=40, trajectories=20, inner_lr=0.1, inner_steps=1)
# Paper scale (MAML-RL): 40 tasks x 20 trajectories, 500 meta-iterations; HalfCheetah samples
# with 8 processes. The -cpu presets are sized for 2 cores (see README, "Meta-RL").
PRESETS: dict[str, dict] = {
    "rl-2dnav": dict(env="2dnav", iterations=500, **_PAPER),
    "rl-cheetah-dir": dict(env="cheetah-dir", iterations=500, workers=8, **_PAPER),
    "rl-cheetah-vel": dict(env="cheetah-vel", iterations=500, workers=8, **_PAPER),
    "rl-2dnav-cpu": dict(env="2dnav", meta_batch=20, trajectories=20, iterations=80),
    "rl-cheetah-dir-cpu": dict(
        env="cheetah-dir", meta_batch=6, trajectories=10, iterations=100, save_every=5
    ),
    "rl-cheetah-vel-cpu": dict(
        env="cheetah-vel", meta_batch=6, trajectories=10, iterations=100, save_every=5
    ),
}


def config_from_preset(preset: str, **overrides) -> RLConfig:
    """An :class:`RLConfig` from a preset name and explicit overrides (``None`` = unset)."""
    if preset not in PRESETS:
        raise InputError(f"unknown RL preset {preset!r}; presets: {', '.join(PRESETS)}")
    return RLConfig(**{**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})


def make_policy(cfg: RLConfig, env):
    from repsim.rl.policy import GaussianMLPPolicy, PolicyConfig

    torch.manual_seed(cfg.seed)
    return GaussianMLPPolicy(
        PolicyConfig(env.observation_dim, env.action_dim, cfg.hidden, 1.0, cfg.adapt_log_std)
    )


def training_tasks(cfg: RLConfig, iteration: int) -> list[dict]:
    """The tasks of (1-based) ``iteration``: a pure function of (env, seed, iteration)."""
    from repsim.rl.envs import sample_task

    first = (iteration - 1) * cfg.meta_batch
    return [sample_task(cfg.env, cfg.seed, first + j) for j in range(cfg.meta_batch)]


def meta_iteration(model, loop, env, cfg: RLConfig, iteration: int) -> dict:
    """Sample one meta-batch and take one TRPO step on ``model``; returns the log row."""
    from repsim.rl.metalearn import sample_meta_batch, surrogate_and_kl
    from repsim.rl.trpo import trpo_step

    t0 = time.perf_counter()
    tasks = training_tasks(cfg, iteration)
    seed = int(np.random.SeedSequence([cfg.seed, iteration]).generate_state(1)[0] >> 1)
    batch = sample_meta_batch(
        env, model, loop, tasks, cfg.trajectories, cfg.gamma, cfg.gae_tau, seed
    )
    t1 = time.perf_counter()
    params = dict(model.named_parameters())
    loss, kl = surrogate_and_kl(model, loop, params, batch, create_graph=True)

    def evaluate() -> tuple[float, float]:
        detached = {n: p.detach() for n, p in params.items()}
        new_loss, new_kl = surrogate_and_kl(model, loop, detached, batch, create_graph=False)
        return float(new_loss), float(new_kl)

    step = trpo_step(
        list(params.values()),
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
    return {
        "iteration": iteration,
        "return_before": float(batch.train.returns().mean()),
        "return_after": float(batch.valid.returns().mean()),
        **step,
        "sample_seconds": t1 - t0,
        "optimise_seconds": t2 - t1,
    }


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


def train(
    cfg: RLConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Run ``cfg``; returns ``out_dir/final.safetensors`` (or ``last.safetensors`` when
    ``stop_at=k`` stops after iteration ``k`` as if killed there; ``resume=True`` continues)."""
    from tqdm.auto import tqdm

    from repsim import checkpoint as ckpt
    from repsim.inner_loop import InnerLoop
    from repsim.rl.envs import make_env

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    env = make_env(cfg.env, cfg.horizon or None, cfg.workers)
    model = make_policy(cfg, env)
    loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train")
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    metrics_path = out / "metrics.jsonl"
    start, row = 0, None
    if resume and (out / "last.safetensors").exists():
        tensors, record = ckpt.read_checkpoint(out / "last.safetensors")
        free = {"iterations", "save_every", "threads", "workers"}
        diff = {
            k: (record["train"].get(k), v)
            for k, v in cfg.to_dict().items()
            if record["train"].get(k) != v and k not in free
        }
        if diff:
            raise InputError(f"cannot resume {out}: its config differs in {diff}")
        start = int(record["iteration"])
        if cfg.iterations < start:
            raise InputError(
                f"cannot resume {out} at iteration {start} with iterations {cfg.iterations}: "
                "give a larger --iterations"
            )
        ckpt.load_state_strict(model, tensors, str(out / "last.safetensors"))
        if metrics_path.exists():  # drop rows written after the checkpoint
            rows = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln]
            rows = [r for r in rows if r["iteration"] <= start]
            metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            row = rows[-1] if rows else None
    elif metrics_path.exists():
        metrics_path.unlink()

    bar = tqdm(
        range(start + 1, cfg.iterations + 1),
        initial=start,
        total=cfg.iterations,
        disable=not progress,
        dynamic_ncols=True,
        desc=f"{cfg.algorithm} {cfg.env}",
    )
    try:
        with open(metrics_path, "a") as log:
            for it in bar:
                row = meta_iteration(model, loop, env, cfg, it)
                if not math.isfinite(row["return_after"]):
                    raise InputError(
                        f"training diverged at iteration {it}; lower --max-kl or --inner-lr. "
                        f"The last good checkpoint is {out / 'last.safetensors'}"
                    )
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(
                    before=f"{row['return_before']:.1f}", after=f"{row['return_after']:.1f}"
                )
                if it % cfg.save_every == 0 or it == cfg.iterations:
                    ckpt.save_checkpoint(
                        out / "last.safetensors", model, _record(cfg, model, it, row)
                    )
                if stop_at is not None and it >= stop_at:
                    return out / "last.safetensors"
    finally:
        bar.close()
        env.close()
    final = out / "final.safetensors"
    ckpt.save_checkpoint(final, model, _record(cfg, model, cfg.iterations, row))
    return final
