"""Linear probes per layer (``repsim.representation.linear_probe``, ``repsim probe``): the probe
reads separable features perfectly and shuffled labels at chance, and the command works on the
shipped checkpoint and on another library's."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_adapters import L2LOmniglotCNN, randomize  # tests/ is on sys.path under pytest
from test_similarity_cli import task_args, tiny_checkpoint

from repsim.cli import main
from repsim.errors import InputError
from repsim.provenance import machine_paths
from repsim.representation import linear_probe, per_example_features, probe_accuracy
from repsim.results import mean_ci

WAYS, LAYERS = 5, ["conv1", "conv2", "conv3", "conv4", "head"]


def clustered(ways: int, per_class: int, dim: int, rng, spread: float = 0.1):
    """Features around one far-apart centre per class: linearly separable."""
    centres = 5.0 * rng.standard_normal((ways, dim))
    y = np.repeat(np.arange(ways), per_class)
    return centres[y] + spread * rng.standard_normal((y.size, dim)), y


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("shots", [1, 5])
def test_the_probe_reads_linearly_separable_features_perfectly(standardize, shots):
    rng = np.random.default_rng(0)
    centres = 5.0 * rng.standard_normal((WAYS, 32))
    ys, yq = np.repeat(np.arange(WAYS), shots), np.repeat(np.arange(WAYS), 15)
    xs = centres[ys] + 0.1 * rng.standard_normal((ys.size, 32))
    xq = centres[yq] + 0.1 * rng.standard_normal((yq.size, 32))
    fit = probe_accuracy(xs, ys, xq, yq, standardize=standardize)
    assert fit == {"accuracy": 1.0, "converged": True}


def test_on_shuffled_labels_the_probe_sits_at_chance_within_its_ci():
    rng = np.random.default_rng(1)
    accuracies = []
    for _ in range(40):
        x, y = clustered(WAYS, 20, 16, rng)
        support, query = np.arange(x.shape[0]) % 20 < 5, np.arange(x.shape[0]) % 20 >= 5
        shuffled = rng.permutation(y[support])  # the support labels say nothing of the classes
        accuracies.append(probe_accuracy(x[support], shuffled, x[query], y[query])["accuracy"])
    r = mean_ci(accuracies)
    assert r["ci_low"] <= 1 / WAYS <= r["ci_high"]
    assert r["half_width"] < 0.05  # and the interval is tight enough to mean something


def test_a_class_without_support_examples_is_refused_with_what_to_do():
    rng = np.random.default_rng(2)
    x, y = clustered(WAYS, 4, 8, rng)
    keep = y != 3  # no support example of class 3, which the query holds
    with pytest.raises(InputError, match=r"class\(es\) \[3\] have \[0\] support.*--shots"):
        probe_accuracy(x[keep], y[keep], x, y)
    with pytest.raises(InputError, match="at least 2 of every class"):
        probe_accuracy(x[::4], y[::4], x, y, min_per_class=2)
    with pytest.raises(InputError, match="C must be a positive number"):
        probe_accuracy(x, y, x, y, C=0.0)
    with pytest.raises(InputError, match="one row per image"):
        probe_accuracy(x[:, :, None], y, x, y)


def test_conv_maps_give_one_row_per_image():
    a = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert per_example_features(a, "channels").shape == (2, 3)
    torch.testing.assert_close(per_example_features(a, "channels"), a.mean(dim=(2, 3)))
    assert per_example_features(a, "flatten").shape == (2, 48)
    assert per_example_features(a[:, :, 0, 0]).shape == (2, 3)


def probe_tasks(n: int = 3, shots: int = 1):
    from repsim import data

    sampler = data.TaskSampler(data.load_probe_classes(), WAYS, shots, 5, seed=0)
    return [sampler.task(i) for i in range(n)]


def test_adapting_only_the_head_leaves_every_body_probe_unchanged(tmp_path):
    import repsim

    learner = repsim.load(tiny_checkpoint(tmp_path / "anil.safetensors", algorithm="anil"))
    probe = linear_probe(learner, probe_tasks())
    acc = {(r["task"], r["layer"], r["stage"]): r["accuracy"] for r in probe.records}
    for task in range(3):
        for layer in LAYERS[:4]:
            assert acc[task, layer, "before"] == acc[task, layer, "after"]
    stages = [(r["classifier"], r["layer"], r["stage"]) for r in probe.summary()]
    assert stages[:2] == [("probe", "conv1", "before"), ("probe", "conv1", "after")]
    assert stages[-2:] == [("nil", "penultimate", "before"), ("nil", "penultimate", "after")]


def test_unknown_layers_and_one_class_tasks_are_refused(tmp_path):
    import repsim

    learner = repsim.load(tiny_checkpoint(tmp_path / "t.safetensors"))
    with pytest.raises(InputError, match="unknown layer.*conv9.*its layers are"):
        linear_probe(learner, probe_tasks(1), layers=["conv9"])
    task = probe_tasks(1)[0]
    one_class = SimpleNamespace(
        support_x=task.support_x[:1],
        support_y=task.support_y[:1],
        query_x=task.query_x,
        query_y=task.query_y,
    )
    with pytest.raises(InputError, match="1 class.*at least two"):
        linear_probe(learner, [one_class])
    with pytest.raises(InputError, match="no tasks"):
        linear_probe(learner, [])


def read_csv(path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def check_outputs(out, tasks: int) -> dict:
    """Every file is there and every number means what it says; returns probe.json."""
    data = json.loads((out / "probe.json").read_text())
    for name in ("probe_tasks.csv", "probe_summary.csv", "probe.png", "probe.pdf"):
        assert (out / name).stat().st_size > 0
    assert machine_paths(data["meta"]) == []  # no path of this machine in a result
    assert data["meta"]["probe"] == {
        "C": 1.0,
        "standardize": True,
        "conv_mode": "channels",
        "solver": "lbfgs",
        "penalty": "l2",
        "max_iter": 1000,
        "seed": 0,
    }
    assert data["n_tasks"] == tasks == data["meta"]["tasks"]["tasks"]
    assert data["chance"] == pytest.approx(1 / WAYS)
    per_task = read_csv(out / "probe_tasks.csv")
    assert len(per_task) == tasks * (len(data["layers"]) + 2) * 2  # probes, model, NIL x 2
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in per_task)
    for r in data["summary"]:
        assert 0.0 <= r["mean"] <= 1.0 and r["n"] == tasks
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    return data


def test_probe_cli_on_the_shipped_checkpoint(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["probe", "--tasks", "4", "--out", str(out), *task_args()]) == 0
    stdout = capsys.readouterr().out
    assert "probe on conv1" in stdout and "NIL head" in stdout and "±" in stdout
    data = check_outputs(out, 4)
    assert data["layers"] == LAYERS
    assert data["meta"]["checkpoint"]["name"] == "maml_omniglot_5w1s_seed0.safetensors"
    cell = {(r["classifier"], r["layer"], r["stage"]): r["mean"] for r in data["summary"]}
    chance = data["chance"]
    assert cell["probe", "head", "after"] > chance  # the adapted logits separate the classes
    assert cell["model", "head", "after"] > cell["model", "head", "before"]  # MAML learns
    assert cell["nil", "penultimate", "before"] > chance  # the meta-init body is a feature


def test_probe_cli_on_a_learn2learn_checkpoint(tmp_path):
    path = tmp_path / "l2l_omniglot.pth"
    torch.save(randomize(L2LOmniglotCNN(), 2).state_dict(), path)
    out = tmp_path / "out"
    argv = ["probe", str(path), "--format", "auto", "--tasks", "2", "--out", str(out)]
    assert main(argv + task_args()) == 0
    data = check_outputs(out, 2)
    assert data["layers"] == LAYERS
    assert data["meta"]["checkpoint"]["format"] == "auto"
    assert data["meta"]["inner_loop"]["inner_lr"] == 0.4  # learn2learn's Omniglot example


def test_bad_input_gives_a_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["probe", str(bad), "--out", str(tmp_path / "o"), *task_args()]) == 2
    err = capsys.readouterr().err
    assert "repsim probe: error:" in err and "Traceback" not in err
    ckpt = tiny_checkpoint(tmp_path / "t.safetensors")
    argv = ["probe", str(ckpt), "--layers", "conv9", "--tasks", "1", *task_args()]
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    assert "unknown layer(s) ['conv9']" in capsys.readouterr().err
