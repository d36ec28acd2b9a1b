"""Meta-RL environments: 2D-Navigation dynamics and rewards, HalfCheetah task rewards, tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repsim.errors import InputError
from repsim.rl.envs import (
    CONTROL_COST,
    HalfCheetahTasks,
    Navigation2D,
    cheetah_reward,
    make_cheetah,
    sample_task,
)


def test_navigation_follows_a_hand_computed_trajectory():
    env = Navigation2D(horizon=3)
    obs = env.reset([{"goal": [0.3, -0.2]}])
    assert obs.tolist() == [[0.0, 0.0]]
    # step 1: (0.05, 0.5) is clipped to (0.05, 0.1)
    obs, r = env.step(np.array([[0.05, 0.5]]))
    assert obs == pytest.approx(np.array([[0.05, 0.1]]))
    assert r[0] == pytest.approx(-math.hypot(0.3 - 0.05, -0.2 - 0.1))
    # step 2: (-1, -1) is clipped to (-0.1, -0.1)
    obs, r = env.step(np.array([[-1.0, -1.0]]))
    assert obs == pytest.approx(np.array([[-0.05, 0.0]]))
    assert r[0] == pytest.approx(-math.hypot(0.35, -0.2))
    # step 3: an action inside the box is taken as it is
    obs, r = env.step(np.array([[0.1, -0.1]]))
    assert obs == pytest.approx(np.array([[0.05, -0.1]]))
    assert r[0] == pytest.approx(-math.hypot(0.25, -0.1))


def test_navigation_steps_every_slot_in_one_call_with_its_own_goal():
    env = Navigation2D()
    goals = [[0.1, 0.1], [-0.4, 0.2], [0.0, -0.5]]
    env.reset([{"goal": g} for g in goals])
    obs, r = env.step(np.zeros((3, 2)))
    assert obs.shape == (3, 2)
    assert r == pytest.approx(-np.linalg.norm(np.array(goals), axis=1))
    with pytest.raises(InputError, match="shape"):
        env.step(np.zeros((2, 2)))


def test_an_agent_that_walks_straight_to_the_goal_stays_there_with_zero_reward():
    env = Navigation2D(horizon=10)
    goal = np.array([0.25, -0.15])
    obs = env.reset([{"goal": goal.tolist()}])
    rewards = []
    for _ in range(10):
        obs, r = env.step(goal[None] - obs)  # clipped to 0.1 per axis
        rewards.append(r[0])
    assert obs[0] == pytest.approx(goal)
    assert rewards[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(b >= a for a, b in zip(rewards, rewards[1:]))  # never farther from the goal


def test_navigation_ends_an_episode_within_a_hundredth_of_the_goal_as_maml_rl():
    """Finn et al.'s point_env_randgoal.py: done when |dx| < 0.01 and |dy| < 0.01 after the
    move; the step that arrives keeps its reward, and the slot then stays put and earns 0."""
    env = Navigation2D(horizon=10, goal_tolerance=0.01)
    assert env.terminates and not Navigation2D().terminates
    goals = np.array([[0.15, -0.05], [0.45, 0.45]])
    obs = env.reset([{"goal": g.tolist()} for g in goals])
    assert env.dones.tolist() == [False, False]
    obs, r = env.step(np.array([[0.1, -0.05], [0.1, 0.1]]))
    assert env.dones.tolist() == [False, False]
    obs, r = env.step(np.array([[0.045, 0.0], [0.1, 0.1]]))  # slot 0 lands 0.005 from the goal
    assert env.dones.tolist() == [True, False]
    assert r[0] == pytest.approx(-0.005) and r[1] < 0
    arrived = obs[0].copy()
    obs, r = env.step(np.array([[0.1, 0.1], [0.1, 0.1]]))
    assert np.array_equal(obs[0], arrived) and r[0] == 0.0 and r[1] < 0
    env.reset([{"goal": g.tolist()} for g in goals])
    assert env.dones.tolist() == [False, False]  # a reset starts every episode again
    with pytest.raises(InputError, match="goal_tolerance"):
        Navigation2D(goal_tolerance=-1)


def test_rollouts_mask_the_steps_after_the_goal_and_repeat_the_fixed_horizon_without_it():
    import torch

    from repsim.rl.policy import GaussianMLPPolicy, PolicyConfig
    from repsim.rl.sampling import rollout

    torch.manual_seed(0)
    model = GaussianMLPPolicy(PolicyConfig(2, 2, 8, init_std=0.05))
    with torch.no_grad():  # a mean action of 0.1 per axis: straight to the goal (0.2, 0.2)
        model.head.weight.zero_()
        model.head.bias.fill_(0.1)
    params = {n: p.detach() for n, p in model.named_parameters()}
    tasks = [{"goal": [0.2, 0.2]}, {"goal": [-0.5, 0.5]}]
    ended = rollout(Navigation2D(8, goal_tolerance=0.05), model, params, tasks, 3, seed=1)
    full = rollout(Navigation2D(8), model, params, tasks, 3, seed=1)
    assert full.mask is None and ended.mask.shape == (2, 8, 3)
    assert ended.mask[0, :2].eq(1).all() and ended.mask[0, 2:].eq(0).all()  # at the goal at 2
    assert ended.mask[1].eq(1).all()  # the far goal is never reached
    assert ended.rewards[0, 2:].eq(0).all()
    assert torch.equal(ended.actions, full.actions)  # the same noise either way
    assert torch.equal(ended.rewards[0, :2], full.rewards[0, :2])
    assert torch.equal(ended.rewards[1], full.rewards[1])


def test_tasks_are_a_pure_function_of_seed_and_index_in_the_documented_ranges():
    assert sample_task("2dnav", 3, 7) == sample_task("2dnav", 3, 7)
    assert sample_task("2dnav", 3, 7) != sample_task("2dnav", 3, 8)
    goals = np.array([sample_task("2dnav", 0, i)["goal"] for i in range(500)])
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and abs(goals.mean()) < 0.05
    velocities = [sample_task("cheetah-vel", 0, i)["velocity"] for i in range(500)]
    assert 0 <= min(velocities) and max(velocities) <= 2
    directions = {sample_task("cheetah-dir", 0, i)["direction"] for i in range(50)}
    assert directions == {1.0, -1.0}
    with pytest.raises(InputError, match="unknown environment"):
        sample_task("ant", 0, 0)


def test_cheetah_reward_formulas():
    a = np.array([0.5, -0.5, 0.0, 1.0, 0.0, 0.0])
    ctrl = CONTROL_COST * 1.5
    assert cheetah_reward("direction", {"direction": -1.0}, 2.0, a) == pytest.approx(-2.0 - ctrl)
    assert cheetah_reward("velocity", {"velocity": 1.5}, 0.5, a) == pytest.approx(-1.0 - ctrl)


@pytest.fixture(scope="module")
def cheetah_loads():
    try:
        make_cheetah("direction").close()
    except InputError as exc:
        pytest.skip(f"MuJoCo HalfCheetah cannot load here: {exc}")


def _fixed_actions(steps: int) -> np.ndarray:
    t = np.arange(steps)[:, None]
    return np.sin(0.3 * t + np.arange(6)[None]) * 1.4  # some components outside [-1, 1]


def test_cheetah_wrapper_gives_the_documented_reward_for_a_fixed_action_sequence(cheetah_loads):
    for kind, task in (("direction", {"direction": -1.0}), ("velocity", {"velocity": 0.7})):
        env = make_cheetah(kind)
        env.task = task
        env.reset(seed=5)
        x = float(env.unwrapped.data.qpos[0])
        dt = env.unwrapped.dt
        for action in _fixed_actions(20):
            _, reward, _, _, _ = env.step(action)
            x_next = float(env.unwrapped.data.qpos[0])
            velocity = (x_next - x) / dt  # the torso's forward velocity, from its positions
            clipped = np.clip(action, -1, 1)
            ctrl = 0.05 * float(np.sum(clipped**2))
            if kind == "direction":
                expected = task["direction"] * velocity - ctrl
            else:
                expected = -abs(velocity - task["velocity"]) - ctrl
            assert reward == pytest.approx(expected, abs=1e-6)
            x = x_next
        env.close()


def test_opposite_directions_see_opposite_progress_from_the_same_start(cheetah_loads):
    forward, backward = HalfCheetahTasks("direction"), HalfCheetahTasks("direction")
    start = forward.reset([{"direction": 1.0}], seed=3)
    assert np.array_equal(start, backward.reset([{"direction": -1.0}], seed=3))
    for action in _fixed_actions(10):
        _, r_forward = forward.step(action[None])
        _, r_backward = backward.step(action[None])
        ctrl = CONTROL_COST * float(np.sum(np.clip(action, -1, 1) ** 2))
        assert r_forward[0] + r_backward[0] == pytest.approx(-2 * ctrl, abs=1e-9)  # dv-c, -dv-c
    forward.close()
    backward.close()


def test_two_sampling_processes_give_the_same_episodes_as_one(cheetah_loads):
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}, {"velocity": 1.0}]  # 3 slots: 2 groups pad
    results = []
    for workers in (1, 2):
        env = HalfCheetahTasks("velocity", workers=workers)
        obs = [env.reset(tasks, seed=7)]
        rewards = []
        for action in _fixed_actions(5):
            o, r = env.step(np.stack([action, -action, 0.5 * action]))
            obs.append(o)
            rewards.append(r)
        env.close()
        results.append((np.stack(obs), np.stack(rewards)))
    assert results[0][0].shape == (6, 3, 17) and results[0][1].shape == (5, 3)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
