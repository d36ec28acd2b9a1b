"""The configuration of a meta-RL run and the presets (the protocol of docs/meta-rl-protocol.md).

:class:`RLConfig` is stored in every checkpoint and ``config.json`` a run writes; ``PRESETS``
are the settings ``repsim train --preset rl-*`` starts from. Example::

    cfg = config_from_preset("rl-2dnav", algorithm="anil", seed=1)
    cfg.meta_batch, cfg.goal_tolerance, cfg.hidden, cfg.nonlinearity   # 20, 0.01, 100, 'relu'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from repsim.errors import InputError
from repsim.rl.envs import ENVIRONMENTS, TEST_SEED

ALGORITHMS = ("maml", "anil")
HELDOUT_STEPS = 2  # held-out returns before adaptation and after 1 and 2 inner steps


@dataclass
class RLConfig:
    """Everything that defines a meta-RL run; stored in every checkpoint it writes."""

    env: str = "2dnav"
    algorithm: str = "maml"
    horizon: int = 0  # 0: the benchmark's (100 for 2D-Navigation, 200 for HalfCheetah)
    goal_tolerance: float = 0.0  # 2D-Navigation ends at |dx|, |dy| < this (0: never)
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
    nonlinearity: str = "relu"  # of the hidden layers (pytorch-maml-rl: tanh)
    adapt_log_std: bool = True  # the log-std counts as head (see repsim.rl.policy)
    # False: no loop trains the log-std, which stays at log 1 = 0 (--log-std fixed: a diagnostic
    # of the 2D-Navigation drift, docs/meta-rl.md; MAML-RL trains it)
    train_log_std: bool = True
    # The inner loss the meta-gradient differentiates: "reinforce" (MAML-RL's) or "lvc"
    # (ProMP's, repsim.rl.policy.lvc_loss: the same inner step, plus the pre-update sampling
    # term in the meta-gradient; a test of the 2D-Navigation drift, docs/meta-rl.md)
    inner_loss: str = "reinforce"
    iterations: int = 500
    seed: int = 0
    workers: int = 1  # sampling processes for HalfCheetah (gymnasium AsyncVectorEnv when > 1)
    save_every: int = 10
    threads: int = 1
    # Monitoring only (it changes no training number): every heldout_every iterations (and at
    # the last) the returns on heldout_tasks fixed tasks of heldout_seed, before and after 1
    # and 2 inner steps; every step_check_every iterations the TRPO step's surrogate gain
    # re-measured on a fresh meta-batch. 0 turns either off.
    heldout_every: int = 10
    heldout_tasks: int = 20
    heldout_trajectories: int = 10
    heldout_seed: int = 2000
    step_check_every: int = 10

    def __post_init__(self):
        from repsim.rl.policy import INNER_LOSSES, NONLINEARITIES

        if self.env not in ENVIRONMENTS:
            raise InputError(f"unknown environment {self.env!r}; use one of {ENVIRONMENTS}")
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"RL algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.nonlinearity not in NONLINEARITIES:
            raise InputError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {self.nonlinearity!r}"
            )
        for name in ("meta_batch", "trajectories", "save_every", "threads", "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("heldout_every", "step_check_every", "goal_tolerance"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 (0: off), got {getattr(self, name)}")
        if self.trajectories < 2 or self.heldout_trajectories < 2:
            raise InputError(
                "trajectories and heldout_trajectories must be at least 2 (advantages are "
                "normalised)"
            )
        if self.inner_loss not in INNER_LOSSES:
            raise InputError(
                f"inner_loss must be one of {sorted(INNER_LOSSES)}, got {self.inner_loss!r}"
            )
        if self.adapt_log_std and not self.train_log_std:
            raise InputError(
                "a log-std that the outer loop does not train cannot be adapted in the inner "
                "loop: set adapt_log_std=False with train_log_std=False (--log-std fixed)"
            )
        if self.heldout_tasks < 1:
            raise InputError(f"heldout_tasks must be at least 1, got {self.heldout_tasks}")
        if self.heldout_seed in (self.seed, TEST_SEED):
            raise InputError(
                f"heldout_seed {self.heldout_seed} is the training seed or the test tasks' "
                f"seed ({TEST_SEED}): the held-out tasks would not be unseen; train with another "
                "--seed or give RLConfig another heldout_seed"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# What a key that an older record lacks was when that record was written (resume and
# evaluation read old records with these), and the keys a resumed run may change.
LEGACY = {"goal_tolerance": 0.0, "nonlinearity": "relu"}
RESUME_FREE = {"iterations", "save_every", "threads", "workers"}
RESUME_FREE |= {"heldout_every", "heldout_tasks", "heldout_trajectories", "step_check_every"}


def as_trained(train: dict) -> dict:
    """A run's recorded settings (a checkpoint's ``train`` section, or its ``config.json``) with
    every key of :class:`RLConfig`: a key an older record lacks has :data:`LEGACY`'s value, or
    else the default."""
    return {**RLConfig().to_dict(), **LEGACY, **train}


# The protocol (docs/meta-rl-protocol.md): MAML-RL's 100 x 100 ReLU policy, 20 trajectories per
# task, one inner step of 0.1, TRPO with max KL 0.01, 500 meta-iterations; 2D-Navigation with
# 20 tasks per meta-batch (Finn et al. 2017, appendix A.2) whose episodes end within 0.01 of the
# goal, the locomotion tasks with 40. HalfCheetah samples with 8 processes. The -cpu presets
# are sized for 2 cores (see README, "Meta-RL").
_PAPER = dict(trajectories=20, inner_lr=0.1, inner_steps=1, iterations=500)
_NAV = dict(env="2dnav", meta_batch=20, goal_tolerance=0.01)
# the shipped HalfCheetah checkpoints' scale: 10 % of the paper's 40 x 20 x 500, keeping its 20
# trajectories per task (the inner step's own batch) and its horizon of 200
_CHEETAH_CPU = dict(
    meta_batch=10,
    trajectories=20,
    iterations=200,
    heldout_tasks=10,
    heldout_trajectories=10,
    save_every=5,
)
PRESETS: dict[str, dict] = {
    "rl-2dnav": dict(**_NAV, **_PAPER),
    "rl-cheetah-dir": dict(env="cheetah-dir", meta_batch=40, workers=8, **_PAPER),
    "rl-cheetah-vel": dict(env="cheetah-vel", meta_batch=40, workers=8, **_PAPER),
    "rl-2dnav-cpu": dict(**_NAV, trajectories=20, iterations=80),
    "rl-cheetah-dir-cpu": dict(env="cheetah-dir", **_CHEETAH_CPU),
    "rl-cheetah-vel-cpu": dict(env="cheetah-vel", **_CHEETAH_CPU),
}


def config_from_preset(preset: str, **overrides) -> RLConfig:
    """An :class:`RLConfig` from a preset name and explicit overrides (``None`` = unset)."""
    if preset not in PRESETS:
        raise InputError(f"unknown RL preset {preset!r}; presets: {', '.join(PRESETS)}")
    return RLConfig(**{**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})
