"""Task distributions and batched environments of the MAML-RL benchmark.

A *task* is a small dict, a pure function of ``(seed, index)`` (:func:`sample_task`), as the
classification tasks are:

- ``2dnav``: ``{"goal": [gx, gy]}``, the goal uniform in [-0.5, 0.5]^2;
- ``cheetah-dir``: ``{"direction": +1 | -1}``, forward or backward with probability 1/2;
- ``cheetah-vel``: ``{"velocity": v}``, the target velocity uniform in [0, 2].

An environment steps a flat batch of ``n`` *slots* (one trajectory each, every slot with its
own task) in one call: ``reset(tasks, seed) -> observations (n, obs_dim)`` and
``step(actions (n, act_dim)) -> (observations (n, obs_dim), rewards (n,))``. Episodes last at
most ``horizon`` steps. An environment whose ``terminates`` is true can end a slot's episode
early: ``dones`` (n,) says which slots have ended (after the last step); an ended slot stays
where it is and earns 0 until the next ``reset``. HalfCheetah never terminates.

- :class:`Navigation2D`: numpy, the whole batch is one array operation. The agent starts at the
  origin, the action is clipped to [-0.1, 0.1]^2 and added to the position, and the reward is
  minus the distance to the goal after the move; the observation is the position. With
  ``goal_tolerance=d > 0`` an episode ends at the first step that leaves the agent within ``d``
  of the goal in both coordinates, as in MAML-RL (Finn et al.'s ``point_env_randgoal.py`` and
  pytorch-maml-rl's ``navigation.py``: ``|dx| < 0.01 and |dy| < 0.01``); ``0`` never ends it
  (see docs/meta-rl-protocol.md).
- :class:`HalfCheetahTasks`: gymnasium's ``HalfCheetah-v5`` (MuJoCo physics) in a gymnasium
  vector environment of groups of cheetahs, ``SyncVectorEnv`` with one process or
  ``AsyncVectorEnv`` (a process per group) with ``workers > 1``; a reward wrapper
  (``CheetahTaskReward``) replaces the reward. Actions are clipped to the action box
  [-1, 1]^6 and the control cost is taken on the clipped action.
"""

from __future__ import annotations

import numpy as np

from repsim.errors import InputError

ENVIRONMENTS = ("2dnav", "cheetah-dir", "cheetah-vel")
TEST_SEED = 1000  # the seed of the fixed test tasks (repsim.rl.evaluate)
CONTROL_COST = 0.05  # the weight of ||a||^2 in both HalfCheetah rewards


def sample_task(env: str, seed: int, index: int) -> dict:
    """Task ``index`` of environment ``env`` under ``seed``: the same dict every time."""
    rng = np.random.default_rng([int(seed), int(index), 104729])
    if env == "2dnav":
        return {"goal": [float(g) for g in rng.uniform(-0.5, 0.5, size=2)]}
    if env == "cheetah-dir":
        return {"direction": 1.0 if rng.random() < 0.5 else -1.0}
    if env == "cheetah-vel":
        return {"velocity": float(rng.uniform(0.0, 2.0))}
    raise InputError(f"unknown environment {env!r}; use one of {ENVIRONMENTS}")


class Navigation2D:
    """2D-Navigation, vectorised over every slot (tasks x trajectories) with numpy;
    ``goal_tolerance > 0`` ends a slot's episode at the goal (see the module docstring)."""

    observation_dim = 2
    action_dim = 2

    def __init__(self, horizon: int = 100, max_step: float = 0.1, goal_tolerance: float = 0.0):
        if goal_tolerance < 0:
            raise InputError(f"goal_tolerance must be >= 0 (0: never stop), got {goal_tolerance}")
        self.horizon = horizon
        self.max_step = max_step
        self.goal_tolerance = goal_tolerance
        self._position = np.zeros((0, 2))
        self._goal = np.zeros((0, 2))
        self._done = np.zeros(0, dtype=bool)

    @property
    def terminates(self) -> bool:
        return self.goal_tolerance > 0

    @property
    def dones(self) -> np.ndarray:
        """``(n,)`` bool: the slots whose episode has ended."""
        return self._done.copy()

    def reset(self, tasks: list[dict], seed: int = 0) -> np.ndarray:
        """Every slot at the origin; ``tasks[i]["goal"]`` is slot i's goal. ``seed`` is unused
        (the dynamics are deterministic) and kept for a common interface."""
        self._goal = np.asarray([t["goal"] for t in tasks], dtype=np.float64).reshape(-1, 2)
        self._position = np.zeros_like(self._goal)
        self._done = np.zeros(len(self._goal), dtype=bool)
        return self._position.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self._position.shape:
            raise InputError(
                f"actions have shape {actions.shape}; this batch needs {self._position.shape}"
            )
        move = np.clip(actions, -self.max_step, self.max_step)
        if self.terminates:
            move[self._done] = 0.0
        self._position = self._position + move
        reward = -np.linalg.norm(self._position - self._goal, axis=1)
        if self.terminates:
            reward[self._done] = 0.0
            near = np.all(np.abs(self._position - self._goal) < self.goal_tolerance, axis=1)
            self._done |= near
        return self._position.copy(), reward

    def close(self) -> None:
        pass


def cheetah_reward(kind: str, task: dict, velocity: float, action: np.ndarray) -> float:
    """The documented reward of one HalfCheetah step.

    ``direction``: ``d * v - 0.05 ||a||^2``; ``velocity``: ``-|v - v*| - 0.05 ||a||^2``, with
    ``v`` the forward velocity of the torso and ``a`` the (clipped) action.
    """
    ctrl = CONTROL_COST * float(np.square(action).sum())
    if kind == "direction":
        return float(task["direction"]) * velocity - ctrl
    if kind == "velocity":
        return -abs(velocity - float(task["velocity"])) - ctrl
    raise InputError(f"unknown HalfCheetah task kind {kind!r}; use 'direction' or 'velocity'")


def _cheetah_wrapper_class():
    import gymnasium as gym

    class CheetahTaskReward(gym.Wrapper):
        """``HalfCheetah-v5`` with a task (set through ``task``) and the task's reward."""

        def __init__(self, env, kind: str):
            super().__init__(env)
            self.kind = kind
            self.task: dict = {"direction": 1.0} if kind == "direction" else {"velocity": 1.0}

        def step(self, action):
            action = np.clip(action, self.action_space.low, self.action_space.high)
            obs, _, terminated, truncated, info = self.env.step(action)
            reward = cheetah_reward(self.kind, self.task, float(info["x_velocity"]), action)
            return obs, reward, terminated, truncated, info

    return CheetahTaskReward


def make_cheetah(kind: str):
    """One ``HalfCheetah-v5`` with the reward of ``kind`` ("direction" or "velocity")."""
    try:
        import gymnasium as gym

        env = gym.make("HalfCheetah-v5")
    except Exception as exc:  # gymnasium or mujoco missing, or MuJoCo failing to load
        raise InputError(
            f"HalfCheetah needs gymnasium and mujoco (pip install gymnasium mujoco): {exc}"
        ) from None
    return _cheetah_wrapper_class()(env, kind)


def _cheetah_group_class():
    import gymnasium as gym

    class CheetahGroup(gym.Env):
        """``size`` task-wrapped HalfCheetahs stepped together in one process: observations
        ``(size, 17)``, actions ``(size, 6)``; the per-cheetah rewards are ``info["rewards"]``
        (a vector environment stacks them to ``(groups, size)``). ``slots`` holds each
        cheetah's ``(task, reset seed)``."""

        def __init__(self, kind: str, size: int):
            self.envs = [make_cheetah(kind) for _ in range(size)]
            single = self.envs[0]
            low, high = single.observation_space.low, single.observation_space.high
            self.observation_space = gym.spaces.Box(
                np.stack([low] * size), np.stack([high] * size), dtype=low.dtype
            )
            a_low, a_high = single.action_space.low, single.action_space.high
            self.action_space = gym.spaces.Box(
                np.stack([a_low] * size), np.stack([a_high] * size), dtype=a_low.dtype
            )
            self.slots = [(env.task, None) for env in self.envs]

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            obs = []
            for env, (task, slot_seed) in zip(self.envs, self.slots):
                env.task = task
                obs.append(env.reset(seed=slot_seed)[0])
            return np.stack(obs), {}

        def step(self, actions):
            steps = [env.step(a) for env, a in zip(self.envs, actions)]
            rewards = np.array([s[1] for s in steps], dtype=np.float64)
            obs = np.stack([s[0] for s in steps])
            return obs, float(rewards.sum()), False, False, {"rewards": rewards}

        def close(self):
            for env in self.envs:
                env.close()

    return CheetahGroup


def _make_cheetah_group(kind: str, size: int):
    return _cheetah_group_class()(kind, size)


class HalfCheetahTasks:
    """A batch of HalfCheetah slots in one gymnasium vector environment.

    The slots are split into ``workers`` groups of equal size (the last group padded with
    copies of the last slot, whose results are dropped); each group is one gymnasium
    environment that steps its cheetahs in turn. ``workers=1``: one group in this process
    (``SyncVectorEnv``); ``workers>1``: ``AsyncVectorEnv``, one process per group, so the
    physics of the groups runs in parallel. The vector environment is built at the first
    ``reset`` and rebuilt when the batch size changes. Slot ``i`` resets with seed
    ``1000 * seed + i``, so the episodes do not depend on ``workers``.
    """

    action_dim = 6
    observation_dim = 17
    terminates = False  # HalfCheetah episodes always run to the horizon

    def __init__(self, kind: str, horizon: int = 200, workers: int = 1):
        if kind not in ("direction", "velocity"):
            raise InputError(f"HalfCheetah kind must be direction or velocity, got {kind!r}")
        if workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        self.kind = kind
        self.horizon = horizon
        self.workers = workers
        self._vec = None
        self._slots = 0

    def _vector_env(self, slots: int):
        groups = min(self.workers, slots)
        size = -(-slots // groups)
        if self._vec is not None and self._slots == slots:
            return self._vec, groups, size
        self.close()
        from functools import partial

        import gymnasium as gym

        make_cheetah(self.kind).close()  # fail here, with the reason, if MuJoCo is missing
        fns = [partial(_make_cheetah_group, self.kind, size) for _ in range(groups)]
        if groups > 1:
            self._vec = gym.vector.AsyncVectorEnv(fns, shared_memory=True)
        else:
            self._vec = gym.vector.SyncVectorEnv(fns)
        self._slots = slots
        return self._vec, groups, size

    def reset(self, tasks: list[dict], seed: int = 0) -> np.ndarray:
        vec, groups, size = self._vector_env(len(tasks))
        slots = [(dict(t), 1000 * int(seed) + i) for i, t in enumerate(tasks)]
        slots += [slots[-1]] * (groups * size - len(slots))
        vec.set_attr("slots", [slots[g * size : (g + 1) * size] for g in range(groups)])
        obs, _ = vec.reset()
        return np.asarray(obs, dtype=np.float64).reshape(groups * size, -1)[: len(tasks)]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(actions)
        groups, size = self._vec.num_envs, -(-self._slots // self._vec.num_envs)
        padded = np.concatenate([actions, np.repeat(actions[-1:], groups * size - n, axis=0)])
        obs, _, _, _, info = self._vec.step(padded.reshape(groups, size, -1))
        obs = np.asarray(obs, dtype=np.float64).reshape(groups * size, -1)[:n]
        return obs, np.asarray(info["rewards"], dtype=np.float64).reshape(-1)[:n]

    def close(self) -> None:
        if self._vec is not None:
            self._vec.close()
            self._vec = None


def make_env(name: str, horizon: int | None = None, workers: int = 1, goal_tolerance: float = 0.0):
    """The batched environment ``name`` (see :data:`ENVIRONMENTS`); ``horizon`` defaults to the
    benchmark's (100 for 2D-Navigation, 200 for HalfCheetah); ``goal_tolerance`` ends a
    2D-Navigation episode at the goal (0: never; HalfCheetah ignores it)."""
    if name == "2dnav":
        return Navigation2D(horizon or 100, goal_tolerance=goal_tolerance)
    if name in ("cheetah-dir", "cheetah-vel"):
        kind = "direction" if name == "cheetah-dir" else "velocity"
        return HalfCheetahTasks(kind, horizon or 200, workers)
    raise InputError(f"unknown environment {name!r}; use one of {ENVIRONMENTS}")


def env_for(train: dict, workers: int | None = None):
    """The environment a run's ``train`` record (:class:`~repsim.rl.train.RLConfig` as a dict)
    trained on: its environment, horizon and goal tolerance (0 in records older than the
    option: those episodes never ended early); ``workers`` defaults to the record's."""
    return make_env(
        train["env"],
        train.get("horizon") or None,
        train.get("workers", 1) if workers is None else workers,
        train.get("goal_tolerance", 0.0),
    )
