"""Every meta-RL command end to end on tiny configurations: train (and resume), evaluate and
similarity on 2D-Navigation, and train + evaluate on HalfCheetah when MuJoCo loads."""

from __future__ import annotations

import json

import pytest
import torch

from repsim.cli import main
from repsim.errors import InputError

TINY = ["--meta-batch", "2", "--trajectories", "3", "--horizon", "12", "--no-progress"]


@pytest.fixture(scope="module")
def nav_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl_nav")
    argv = ["train", "--preset", "rl-2dnav-cpu", "--algorithm", "anil", "--iterations", "2"]
    assert main(argv + TINY + ["--save-every", "1", "--out", str(out)]) == 0
    return out / "final.safetensors"


def test_train_writes_a_policy_checkpoint_with_every_hyper_parameter(nav_checkpoint):
    from repsim.rl.checkpoint import load_policy

    model, record = load_policy(nav_checkpoint)
    train = record["train"]
    assert record["model"]["arch"] == "gaussian-mlp" and record["iteration"] == 2
    assert train["env"] == "2dnav" and train["algorithm"] == "anil"
    assert (train["meta_batch"], train["trajectories"], train["horizon"]) == (2, 3, 12)
    for key in ("inner_lr", "gamma", "gae_tau", "max_kl", "cg_iterations", "cg_damping"):
        assert key in train
    assert train["backtrack_steps"] == 15 and train["backtrack_ratio"] == 0.8
    rows = [json.loads(ln) for ln in (nav_checkpoint.parent / "metrics.jsonl").open()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert all(r["sample_seconds"] > 0 and r["optimise_seconds"] > 0 for r in rows)


def test_train_resume_extends_a_run(nav_checkpoint, tmp_path, capsys):
    out = nav_checkpoint.parent
    argv = ["train", "--preset", "rl-2dnav-cpu", "--algorithm", "anil", "--iterations", "3"]
    assert main(argv + TINY + ["--save-every", "1", "--out", str(out), "--resume"]) == 0
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").open()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    argv[-1] = "4"
    assert main(argv + TINY + ["--max-kl", "0.5", "--out", str(out), "--resume"]) == 2
    assert "max_kl" in capsys.readouterr().err


def test_evaluate_reports_returns_before_and_after_one_to_three_steps(nav_checkpoint, capsys):
    assert main(["evaluate", str(nav_checkpoint), "--tasks", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [s["inner_steps"] for s in r["steps"]] == [0, 1, 2, 3]
    assert all(s["n"] == 3 and s["mean"] < 0 for s in r["steps"])
    assert main(["evaluate", str(nav_checkpoint), "--tasks", "3", "--freeze", "2"]) == 0
    assert "frozen=fc1-2" in capsys.readouterr().out


def test_similarity_on_a_policy_writes_per_layer_results(nav_checkpoint, tmp_path, capsys):
    out = tmp_path / "sim"
    argv = ["similarity", str(nav_checkpoint), "--tasks", "3", "--out", str(out)]
    assert main(argv + ["--measures", "cka,cca"]) == 0
    stdout = capsys.readouterr().out
    assert "fc1" in stdout and "fc2" in stdout and "head" in stdout
    data = json.loads((out / "similarity.json").read_text())
    assert data["layers"] == ["fc1", "fc2", "head"]
    assert data["meta"]["states"] == "visited by the adapted policy"
    cka = {r["layer"]: r["mean"] for r in data["summary"] if r["measure"] == "cka"}
    assert cka["fc1"] == pytest.approx(1.0) and cka["fc2"] == pytest.approx(1.0)  # ANIL
    assert (out / "similarity.png").exists() and (out / "weight_movement.csv").exists()


def test_rl_options_are_checked():
    from repsim.rl.train import config_from_preset

    with pytest.raises(InputError, match="maml"):
        config_from_preset("rl-2dnav-cpu", algorithm="boil")
    with pytest.raises(InputError, match="trajectories"):
        config_from_preset("rl-2dnav-cpu", trajectories=1)
    with pytest.raises(InputError, match="lvc"):
        config_from_preset("rl-2dnav-cpu", inner_loss="dice")


def test_the_cpu_halfcheetah_presets_are_the_shipped_checkpoints_configuration():
    """`--preset rl-cheetah-*-cpu` retrains a shipped HalfCheetah policy: its recorded training
    configuration is the preset's, but for the seed and the algorithm."""
    from repsim.checkpoint import read_record
    from repsim.rl.config import as_trained, config_from_preset
    from repsim.rl.report import RL_CHECKPOINT_DIR

    shipped = sorted(RL_CHECKPOINT_DIR.glob("*_cheetah-*_seed*.safetensors"))
    assert shipped, f"no HalfCheetah checkpoints in {RL_CHECKPOINT_DIR}"
    for path in shipped:
        train = as_trained(read_record(path)["train"])
        preset = f"rl-{train['env']}-cpu"
        expected = config_from_preset(
            preset, algorithm=train["algorithm"], seed=train["seed"], horizon=200
        ).to_dict()
        assert train == expected, (
            path.name,
            {k: train[k] for k in train if train[k] != expected[k]},
        )


@pytest.mark.parametrize("preset", ["rl-cheetah-dir-cpu", "rl-cheetah-vel-cpu"])
def test_halfcheetah_trains_and_evaluates_end_to_end(preset, tmp_path, capsys):
    from repsim.rl.envs import make_cheetah

    try:
        make_cheetah("direction").close()
    except InputError as exc:
        pytest.skip(f"MuJoCo HalfCheetah cannot load here: {exc}")
    out = tmp_path / "run"
    argv = ["train", "--preset", preset, "--iterations", "1", "--horizon", "5"]
    assert main(argv + TINY[:4] + ["--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = str(out / "final.safetensors")
    assert main(["evaluate", ckpt, "--tasks", "2", "--inner-steps", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["env"] == preset.removeprefix("rl-").removesuffix("-cpu")
    assert len(r["steps"]) == 2


def test_log_std_meta_option_keeps_the_log_std_out_of_the_inner_loop(tmp_path):
    from repsim.rl.checkpoint import load_policy_learner

    argv = ["train", "--preset", "rl-2dnav-cpu", "--algorithm", "anil", "--iterations", "1"]
    assert main(argv + TINY + ["--log-std", "meta", "--out", str(tmp_path)]) == 0
    learner = load_policy_learner(tmp_path / "final.safetensors")
    assert learner.config["model"]["adapt_log_std"] is False
    assert learner.inner_loop.names == ("head.weight", "head.bias")
    assert learner.inner_loop.head_only


def test_log_std_fixed_option_trains_everything_but_the_log_std(tmp_path):
    from repsim.checkpoint import read_checkpoint

    argv = ["train", "--preset", "rl-2dnav-cpu", "--algorithm", "maml", "--iterations", "2"]
    assert main(argv + TINY + ["--log-std", "fixed", "--out", str(tmp_path)]) == 0
    tensors, record = read_checkpoint(tmp_path / "final.safetensors")
    assert record["train"]["train_log_std"] is False
    assert record["train"]["adapt_log_std"] is False
    assert torch.equal(tensors["head.log_std"], torch.zeros(2))  # log 1, as initialised
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").open()]
    assert any(r["accepted"] for r in rows)  # the TRPO steps moved the other weights
    assert all(r["log_std"] == 0.0 and r["log_std_adapted"] == 0.0 for r in rows)


def test_inner_loss_lvc_is_recorded_and_changes_the_meta_gradient_not_the_first_samples(tmp_path):
    from repsim.checkpoint import read_checkpoint

    argv = ["train", "--preset", "rl-2dnav-cpu", "--algorithm", "maml", "--iterations", "1"]
    rows, tensors = {}, {}
    for loss in ("reinforce", "lvc"):
        out = tmp_path / loss
        assert main(argv + TINY + ["--inner-loss", loss, "--out", str(out)]) == 0
        tensors[loss], record = read_checkpoint(out / "final.safetensors")
        assert record["train"]["inner_loss"] == loss
        rows[loss] = json.loads((out / "metrics.jsonl").open().readline())
    # the same pre-update samples and the same inner step: the same returns before and after
    for key in ("return_before", "return_after"):
        assert rows["lvc"][key] == pytest.approx(rows["reinforce"][key], abs=1e-6)
    # a different meta-gradient: a different TRPO step
    assert any(
        not torch.allclose(tensors["lvc"][k], tensors["reinforce"][k]) for k in tensors["lvc"]
    )


def test_train_refuses_options_that_the_preset_does_not_use(tmp_path, capsys):
    argv = ["train", "--preset", "rl-2dnav-cpu", "--ways", "5", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--ways" in capsys.readouterr().err
    argv = ["train", "--preset", "cpu", "--trajectories", "5", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--trajectories" in capsys.readouterr().err
