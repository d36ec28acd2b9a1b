"""Any nn.Module: the MetaLearner protocol's two worked examples (docs/checkpoints.md, "Any
nn.Module"), and ``repsim similarity --format ...`` end to end on foreign checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from repsim.cli import main
from repsim.data import TaskSampler, load_probe_classes
from repsim.data.probe import PROBE_PATH
from repsim.protocol import MetaLearner, no_adaptation
from repsim.representation import representation_change


def probe_tasks(n: int = 2, ways: int = 5):
    sampler = TaskSampler(load_probe_classes(), ways=ways, shots=1, queries=3, seed=0)
    return [sampler.task(i) for i in range(n)]


# --- example 1: a ProtoNet-style model, no inner loop ----------------------------------------


class ProtoEmbedding(nn.Module):
    """A ProtoNet embedding: four conv blocks; classes are scored by distance to prototypes,
    so there is no head and nothing adapts to the support set."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        for i in range(4):
            self.add_module(
                f"conv{i + 1}",
                nn.Sequential(
                    nn.Conv2d(1 if i == 0 else hidden, hidden, 3, padding=1),
                    nn.BatchNorm2d(hidden, track_running_stats=False),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                ),
            )

    def forward(self, x):
        for i in range(4):
            x = getattr(self, f"conv{i + 1}")(x)
        return x.flatten(1)


def test_protonet_example_has_no_representation_change():
    torch.manual_seed(0)
    learner = MetaLearner(
        module=ProtoEmbedding(),
        analysis_layers=["conv1", "conv2", "conv3", "conv4"],
        adapt=no_adaptation,  # (params, support_x, support_y) -> params, unchanged
        input_shape=(1, 28, 28),
        config={"algorithm": "protonet"},
    )
    change = representation_change(learner, probe_tasks(), measures=("cka",))
    values = [r["value"] for r in change.records]
    assert len(values) == 2 * 4
    assert values == pytest.approx([1.0] * len(values), abs=1e-6)
    assert all(r["abs"] == 0 for r in change.movement)


# --- example 2: a user's own MAML variant -----------------------------------------------------


class MyNet(nn.Module):
    """Names of the user's choosing: ``features.0``, ``features.3``, ``classify``."""

    def __init__(self, ways: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1),
            nn.GroupNorm(4, 8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.GroupNorm(4, 8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classify = nn.Linear(8, ways)

    def forward(self, x):
        return self.classify(self.features(x))


def meta_sgd_adapt(model: nn.Module, rates: dict[str, torch.Tensor], steps: int = 3):
    """A Meta-SGD-style inner loop: a learned rate per parameter element, convs and head only."""
    names = [n for n in rates]

    def adapt(params, support_x, support_y):
        fast = dict(params)
        with torch.enable_grad():
            for n in names:
                fast[n] = fast[n].detach().requires_grad_(True)
            for _ in range(steps):
                loss = F.cross_entropy(functional_call(model, fast, (support_x,)), support_y)
                grads = torch.autograd.grad(loss, [fast[n] for n in names])
                fast.update({n: fast[n] - rates[n] * g for n, g in zip(names, grads)})
        return {n: t.detach() for n, t in fast.items()}

    return adapt


def test_own_maml_variant_example():
    torch.manual_seed(0)
    model = MyNet()
    rates = {
        n: torch.full_like(p, 0.5)
        for n, p in model.named_parameters()
        if n.startswith(("features.0", "features.3", "classify"))
    }
    learner = MetaLearner(
        module=model,
        analysis_layers=["features.2", "features.5", "classify"],  # after each ReLU, logits
        adapt=meta_sgd_adapt(model, rates),
        input_shape=(1, 28, 28),
        config={"algorithm": "meta-sgd"},
    )
    change = representation_change(learner, probe_tasks(), measures=("cka",))
    assert change.layers == ["features.2", "features.5", "classify"]
    moved = {r["layer"]: r["abs"] for r in change.movement}
    assert moved["classify"] > 0  # (features.2 is a ReLU: it owns no parameters)
    for layer in ("features.2", "features.5", "classify"):  # body and head adapted
        values = [r["value"] for r in change.records if r["layer"] == layer]
        assert all(v < 1 - 1e-6 for v in values), layer


# --- repsim similarity on foreign checkpoints --------------------------------------------------


def test_similarity_cli_on_a_learn2learn_checkpoint(tmp_path, capsys):
    from test_adapters import L2LOmniglotCNN, MAMLWrapper, randomize

    src = randomize(L2LOmniglotCNN(hidden=8), 21)
    ckpt = tmp_path / "l2l_omniglot.pt"
    torch.save(MAMLWrapper(src).state_dict(), ckpt)
    out = tmp_path / "out"
    argv = [
        "similarity",
        str(ckpt),
        "--format",
        "learn2learn",
        "--tasks",
        "2",
        "--probe",
        str(PROBE_PATH),
        "--out",
        str(out),
        "--measures",
        "cka",
        "--inner-steps",
        "2",
        "--inner-lr",
        "0.3",
    ]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "2 inner steps" in stdout and "conv4" in stdout
    meta = json.loads((out / "similarity.json").read_text())["meta"]
    assert meta["checkpoint"]["format"] == "learn2learn"
    assert meta["checkpoint"]["config"]["adapt"]["inner_lr"] == 0.3
    assert meta["checkpoint"]["config"]["layout"] == "OmniglotCNN"


def test_similarity_cli_on_a_tf_checkpoint_sniffed(tmp_path, capsys):
    from test_adapters_tf import finn_variables, write_bundle

    prefix = tmp_path / "model60000"
    write_bundle(prefix, finn_variables(1, 8, 5, 8, seed=5))
    out = tmp_path / "out"
    argv = [
        "similarity",
        str(prefix) + ".index",
        "--format",
        "auto",
        "--tasks",
        "2",
        "--probe",
        str(PROBE_PATH),
        "--out",
        str(out),
        "--measures",
        "cka,cca",
        "--inner-steps",
        "1",
    ]
    assert main(argv) == 0
    result = json.loads((out / "similarity.json").read_text())
    assert result["meta"]["checkpoint"]["config"]["format"] == "tf-maml"
    assert result["layers"] == ["conv1", "conv2", "conv3", "conv4", "head"]
    assert (out / "similarity.png").stat().st_size > 0
