"""Task distributions and batched environments of the MAML-RL benchmark.

A *task* is a small dict, a pure function of ``(seed, index)`` (:func:`sample_task`), as the
classification tasks are:

- ``2dnav``: ``{"goal": [gx, gy]}``, the goal uniform in [-0.5, 0.5]^2;
- ``cheetah-dir``: ``{"direction": +1 | -1}``, forward or backward with probability 1/2;
- ``cheetah-vel``: ``{"velocity": v}``, the target velocity uniform in [0, 2].

An environment steps a flat batch of ``n`` *slots* (one trajectory each, every slot with its
own task) in one call: ``reset(tasks, seed) -> observations (n, obs_dim)`` and
``step(actions (n, act_dim)) -> (observations (n, obs_dim), rewards (n,))``. Episodes have a
fixed ``horizon`` and no early termination (HalfCheetah never terminates; 2D-Navigation is not
stopped at the goal: the issue's protocol is 100 steps).

- :class:`Navigation2D`: numpy, the whole batch is one array operation. The agent starts at the
  origin, the action is clipped to [-0.1, 0.1]^2 and added to the position, and the reward is
  minus the distance to the goal after the move; the observation is the position.
- :class:`HalfCheetahTasks`: gymnasium's ``HalfCheetah-v5`` (MuJoCo physics) in a gymnasium
  vector environment, ``SyncVectorEnv`` with one process or ``AsyncVectorEnv`` (a process per
  slot) with ``workers > 1``; :class:`CheetahTaskReward` replaces the reward. Actions are
  clipped to the action box [-1, 1]^6 and the control cost is taken on the clipped action.
"""

from __future__ import annotations

import numpy as np

from repsim.errors import InputError

ENVIRONMENTS = ("2dnav", "cheetah-dir", "cheetah-vel")
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
    """2D-Navigation, vectorised over every slot (tasks x trajectories) with numpy."""

    observation_dim = 2
    action_dim = 2
    max_slots = None  # any batch size in one array step

    def __init__(self, horizon: int = 100, max_step: float = 0.1):
        self.horizon = horizon
        self.max_step = max_step
        self._position = np.zeros((0, 2))
        self._goal = np.zeros((0, 2))

    def reset(self, tasks: list[dict], seed: int = 0) -> np.ndarray:
        """Every slot at the origin; ``tasks[i]["goal"]`` is slot i's goal. ``seed`` is unused
        (the dynamics are deterministic) and kept for a common interface."""
        self._goal = np.asarray([t["goal"] for t in tasks], dtype=np.float64).reshape(-1, 2)
        self._position = np.zeros_like(self._goal)
        return self._position.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self._position.shape:
            raise InputError(
                f"actions have shape {actions.shape}; this batch needs {self._position.shape}"
            )
        self._position = self._position + np.clip(actions, -self.max_step, self.max_step)
        reward = -np.linalg.norm(self._position - self._goal, axis=1)
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


class HalfCheetahTasks:
    """A batch of HalfCheetah slots in one gymnasium vector environment.

    The vector environment has as many sub-environments as the batch has slots; it is built at
    the first ``reset`` and rebuilt when the batch size changes. ``workers=1``: every slot in
    this process (``SyncVectorEnv``); ``workers>1``: ``AsyncVectorEnv``, a process per slot (so
    keep the batch near the number of cores: the sampler rolls the tasks out in chunks of
    ``max_slots``).
    """

    action_dim = 6
    observation_dim = 17

    def __init__(self, kind: str, horizon: int = 200, workers: int = 1, max_slots: int = 0):
        if kind not in ("direction", "velocity"):
            raise InputError(f"HalfCheetah kind must be direction or velocity, got {kind!r}")
        if workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        self.kind = kind
        self.horizon = horizon
        self.workers = workers
        self.max_slots = max_slots or (workers if workers > 1 else None)
        self._vec = None

    def _vector_env(self, n: int):
        if self._vec is not None and self._vec.num_envs == n:
            return self._vec
        self.close()
        from functools import partial

        import gymnasium as gym

        fns = [partial(make_cheetah, self.kind) for _ in range(n)]
        if self.workers > 1:
            self._vec = gym.vector.AsyncVectorEnv(fns, shared_memory=True)
        else:
            make_cheetah(self.kind).close()  # fail here, with the reason, if MuJoCo is missing
            self._vec = gym.vector.SyncVectorEnv(fns)
        return self._vec

    def reset(self, tasks: list[dict], seed: int = 0) -> np.ndarray:
        vec = self._vector_env(len(tasks))
        vec.set_attr("task", [dict(t) for t in tasks])
        obs, _ = vec.reset(seed=int(seed))
        return np.asarray(obs, dtype=np.float64)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs, reward, _, _, _ = self._vec.step(np.asarray(actions, dtype=np.float64))
        return np.asarray(obs, dtype=np.float64), np.asarray(reward, dtype=np.float64)

    def close(self) -> None:
        if self._vec is not None:
            self._vec.close()
            self._vec = None


def make_env(name: str, horizon: int | None = None, workers: int = 1):
    """The batched environment ``name`` (see :data:`ENVIRONMENTS`); ``horizon`` defaults to the
    benchmark's (100 for 2D-Navigation, 200 for HalfCheetah)."""
    if name == "2dnav":
        return Navigation2D(horizon or 100)
    if name in ("cheetah-dir", "cheetah-vel"):
        kind = "direction" if name == "cheetah-dir" else "velocity"
        return HalfCheetahTasks(kind, horizon or 200, workers)
    raise InputError(f"unknown environment {name!r}; use one of {ENVIRONMENTS}")
