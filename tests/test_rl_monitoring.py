"""The meta-RL trainer's layers and monitoring: monitoring (on or off) changes no training
number and the old trainer's first returns hold, held-out returns (before, after 1 and 2
inner steps) on a fixed task set that training never sees, the per-iteration diagnostics,
and the protocol's presets and options."""

from __future__ import annotations

import json
import math

import pytest
import torch

from repsim.errors import InputError
from repsim.rl.train import RLConfig, config_from_preset, heldout_tasks, train, training_tasks

# The trainer before it was split (repsim/rl/train.py before commit 49927e0), on
# RLConfig(algorithm=..., meta_batch=3, trajectories=4, horizon=20, iterations=2, seed=3): the
# first iteration's sampled returns before and after adaptation. Only these are pinned: they
# come before any TRPO step. The step itself (conjugate gradient on a 3-task Fisher) moves by
# up to 2x in its surrogate loss when the CPU kernels change (measured: ATEN_CPU_CAPABILITY=
# default against avx512 on the same machine; a CI host with other kernels failed the old
# pin), so the later numbers are checked on the same machine, monitors on against off.
OLD_FIRST = {
    "maml": [-9.587322235107422, -10.146224021911621],
    "anil": [-9.587322235107422, -10.177022933959961],
}
TRAINING_FIELDS = ("return_before", "return_after", "loss_before", "loss_after", "kl")


def _rows(folder) -> list[dict]:
    return [json.loads(ln) for ln in (folder / "metrics.jsonl").read_text().splitlines() if ln]


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_monitoring_changes_no_training_number_and_the_old_trainers_first_returns_hold(
    algorithm, tmp_path
):
    from repsim.checkpoint import read_checkpoint

    runs = {}
    for every in (1, 0):  # every monitor at every iteration, then none
        cfg = RLConfig(algorithm=algorithm, meta_batch=3, trajectories=4, horizon=20, iterations=2)
        cfg.seed, cfg.heldout_every, cfg.step_check_every, cfg.heldout_tasks = 3, every, every, 3
        tensors, _ = read_checkpoint(train(cfg, tmp_path / str(every), progress=False))
        runs[every] = (tensors, _rows(tmp_path / str(every)))
    (on, rows_on), (off, rows_off) = runs[1], runs[0]
    assert all("heldout_after_2" in r and "check_gain" in r for r in rows_on)
    assert not any("heldout_before" in r or "check_gain" in r for r in rows_off)
    assert [[r[k] for k in TRAINING_FIELDS] for r in rows_on] == [
        [r[k] for k in TRAINING_FIELDS] for r in rows_off
    ]
    assert on.keys() == off.keys() and all(torch.equal(on[k], off[k]) for k in on)
    first = [rows_on[0]["return_before"], rows_on[0]["return_after"]]
    assert first == pytest.approx(OLD_FIRST[algorithm], rel=1e-6)


def test_heldout_returns_and_step_checks_appear_at_their_iterations_with_finite_fields(tmp_path):
    cfg = RLConfig(meta_batch=2, trajectories=3, horizon=10, iterations=5, heldout_every=2)
    cfg.heldout_tasks, cfg.heldout_trajectories, cfg.step_check_every = 3, 2, 2
    train(cfg, tmp_path, progress=False)
    rows = _rows(tmp_path)
    assert [r["iteration"] for r in rows if "heldout_before" in r] == [2, 4, 5]  # and the last
    assert [r["iteration"] for r in rows if "check_gain" in r] == [2, 4]
    for r in rows:
        for key in ("log_std", "log_std_adapted", "entropy", "surrogate_gain"):
            assert math.isfinite(r[key]), (key, r)
        assert r["surrogate_gain"] >= 0  # an accepted step improves its own batch's surrogate
        assert r["surrogate_gain"] == pytest.approx(r["loss_before"] - r["loss_after"])
        # the Gaussian's entropy: sum over the 2 action dimensions of log_std + (1 + log 2 pi)/2
        assert r["entropy"] == pytest.approx(2 * r["log_std"] + (1 + math.log(2 * math.pi)))
    for r in rows:
        if "heldout_before" in r:
            values = [r["heldout_before"], r["heldout_after_1"], r["heldout_after_2"]]
            assert all(
                math.isfinite(v) and v < 0 for v in values
            )  # 2D-Navigation: minus a distance
            assert len(r["heldout_ci95"]) == 3 and r["heldout_seconds"] > 0
        if "check_gain" in r:
            assert math.isfinite(r["check_gain"]) and 0 <= r["check_kl"] < 1
            assert r["check_seconds"] > 0


def test_heldout_tasks_are_fixed_and_never_among_the_training_tasks(tmp_path, monkeypatch):
    """The held-out evaluation goes through repsim.rl.evaluate.adaptation_returns, on the same
    tasks at every evaluation, none of them a training task; the seeds that would make them
    overlap the training or the test tasks are refused."""
    import repsim.rl.evaluate as evaluate

    seen = []
    original = evaluate.adaptation_returns

    def spy(model, loop, env, tasks, trajectories, max_steps, *args, **kwargs):
        seen.append((tasks, trajectories, max_steps, kwargs.get("seed")))
        return original(model, loop, env, tasks, trajectories, max_steps, *args, **kwargs)

    monkeypatch.setattr(evaluate, "adaptation_returns", spy)
    cfg = RLConfig(meta_batch=3, trajectories=2, horizon=6, iterations=4, heldout_every=1)
    cfg.heldout_tasks, cfg.heldout_trajectories, cfg.step_check_every = 4, 2, 0
    train(cfg, tmp_path, progress=False)
    assert len(seen) == 4
    assert all(s == seen[0] for s in seen)  # the same tasks, batch, steps and noise every time
    tasks, trajectories, max_steps, seed = seen[0]
    assert (len(tasks), trajectories, max_steps, seed) == (4, 2, 2, cfg.heldout_seed)
    other_run = RLConfig(seed=7, iterations=50, meta_batch=20, heldout_tasks=4)
    assert tasks == heldout_tasks(cfg) == heldout_tasks(other_run)  # whatever the run
    training = [t for it in range(1, 200) for t in training_tasks(cfg, it)]
    assert not any(t in training for t in tasks)
    assert cfg.heldout_seed not in (cfg.seed, evaluate.TEST_SEED)
    test = evaluate.evaluation_tasks("2dnav", 40)
    assert not any(t in test for t in tasks)
    with pytest.raises(InputError, match="heldout_seed"):
        RLConfig(seed=2000)
    with pytest.raises(InputError, match="heldout_seed"):
        RLConfig(heldout_seed=evaluate.TEST_SEED)


def test_the_presets_record_the_protocol_and_keep_the_alternatives_as_options():
    nav = config_from_preset("rl-2dnav")
    assert (nav.meta_batch, nav.trajectories, nav.iterations) == (20, 20, 500)
    assert (nav.goal_tolerance, nav.hidden, nav.nonlinearity) == (0.01, 100, "relu")
    assert config_from_preset("rl-2dnav-cpu").goal_tolerance == 0.01
    cheetah = config_from_preset("rl-cheetah-dir")
    assert (cheetah.meta_batch, cheetah.goal_tolerance) == (40, 0.0)
    other = config_from_preset(
        "rl-2dnav", meta_batch=40, goal_tolerance=0.0, hidden=64, nonlinearity="tanh"
    )
    assert (other.meta_batch, other.goal_tolerance, other.hidden) == (40, 0.0, 64)
    with pytest.raises(InputError, match="nonlinearity"):
        RLConfig(nonlinearity="sigmoid")


def test_pytorch_maml_rl_policy_option_trains_a_tanh_policy_and_old_records_read_as_relu(
    tmp_path,
):
    from repsim.checkpoint import save_checkpoint
    from repsim.cli import main
    from repsim.rl.checkpoint import load_policy

    argv = ["train", "--preset", "rl-2dnav-cpu", "--iterations", "1", "--meta-batch", "2"]
    argv += ["--trajectories", "2", "--horizon", "6", "--hidden", "8", "--nonlinearity", "tanh"]
    argv += ["--goal-tolerance", "0", "--heldout-tasks", "2", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "tanh")]) == 0
    model, record = load_policy(tmp_path / "tanh" / "final.safetensors")
    assert record["model"]["nonlinearity"] == "tanh" and model.fc1.out_features == 8
    assert record["train"]["goal_tolerance"] == 0.0 and record["train"]["heldout_tasks"] == 2
    obs = torch.randn(5, 2)
    assert torch.allclose(model.body(obs), torch.tanh(model.fc2(torch.tanh(model.fc1(obs)))))
    # a record written before these options: ReLU, episodes to the horizon; it still resumes
    cfg = RLConfig(meta_batch=2, trajectories=2, horizon=6, iterations=2, hidden=8, save_every=1)
    last = train(cfg, tmp_path / "old", progress=False, stop_at=1)
    model, record = load_policy(last)
    record["model"].pop("nonlinearity")
    for key in ("goal_tolerance", "nonlinearity", "heldout_every", "heldout_tasks"):
        record["train"].pop(key)
    save_checkpoint(last, model, record)
    assert load_policy(last)[0].config.nonlinearity == "relu"
    _, resumed = load_policy(train(cfg, tmp_path / "old", resume=True, progress=False))
    assert resumed["iteration"] == 2
