"""Other libraries' checkpoints: each source's architecture is written here as plain nn.Module
code (independent of repsim), saved in the source's exact layout and container, loaded with
repsim.adapters, and compared with the source model: logits and every block's output to 1e-5.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repsim import adapters
from repsim.capture import capture_raw
from repsim.errors import CheckpointError

ATOL = 1e-5


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random values everywhere (norm scales near 1) so that a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or name.split(".")[-1] == "weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def images(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_model(learner, source_model, x: torch.Tensor) -> None:
    """The learner's logits and conv1..convK outputs equal the source model's ``trace(x)``."""
    source_model.train()  # these libraries run BatchNorm with batch statistics
    with torch.no_grad():
        acts, logits = source_model.trace(x)
    layers = list(learner.analysis_layers)
    assert layers == [f"conv{i + 1}" for i in range(len(acts))] + ["head"]
    ours = capture_raw(learner.module, x, layers)
    for i, act in enumerate(acts):
        torch.testing.assert_close(ours[f"conv{i + 1}"], act, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(ours["head"], logits, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(learner.module(x), logits, atol=ATOL, rtol=1e-4)


# --- learn2learn ------------------------------------------------------------------------------


class L2LConvBlock(nn.Module):
    """learn2learn.vision.models.ConvBlock: conv(pad 1) -> BatchNorm2d -> ReLU [-> pool 2]."""

    def __init__(self, cin, cout, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.normalize = nn.BatchNorm2d(cout, affine=True)
        self.conv = nn.Conv2d(cin, cout, 3, stride=1 if max_pool else 2, padding=1)

    def forward(self, x):
        x = F.relu(self.normalize(self.conv(x)))
        return F.max_pool2d(x, 2, 2) if self.max_pool else x


class L2LMiniImagenetCNN(nn.Module):
    def __init__(self, ways=5, hidden=16, channels=3, image=84):
        super().__init__()
        self.features = nn.Sequential(
            *[L2LConvBlock(channels if i == 0 else hidden, hidden, True) for i in range(4)]
        )
        side = image
        for _ in range(4):
            side //= 2
        self.classifier = nn.Linear(hidden * side * side, ways)

    def trace(self, x):
        acts = []
        for block in self.features:
            x = block(x)
            acts.append(x)
        return acts, self.classifier(x.reshape(x.size(0), -1))


class MeanHW(nn.Module):
    def forward(self, x):
        return x.mean(dim=[2, 3])


class L2LOmniglotCNN(nn.Module):
    """OmniglotCNN: ``base`` is registered again as ``features[1]``."""

    def __init__(self, ways=5, hidden=16):
        super().__init__()
        self.base = nn.Sequential(
            *[L2LConvBlock(1 if i == 0 else hidden, hidden, False) for i in range(4)]
        )
        self.features = nn.Sequential(nn.Identity(), self.base, MeanHW(), nn.Flatten())
        self.classifier = nn.Linear(hidden, ways)

    def trace(self, x):
        acts = []
        for block in self.base:
            x = block(x)
            acts.append(x)
        return acts, self.classifier(x.mean(dim=[2, 3]))


class MAMLWrapper(nn.Module):
    """Like learn2learn.algorithms.MAML (and DataParallel/DDP): the model under ``module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_learn2learn_miniimagenet_cnn(tmp_path):
    src = randomize(L2LMiniImagenetCNN(), 1)
    path = tmp_path / "l2l_mini.pt"
    torch.save(src.state_dict(), path)
    assert adapters.sniff(path) == "learn2learn"
    learner = adapters.load(path)
    assert learner.input_shape == (3, 84, 84)
    assert learner.config["adapt"]["inner_lr"] == 0.5  # learn2learn's MiniImageNet example
    assert_same_model(learner, src, images(6, 3, 84))


def test_learn2learn_omniglot_cnn_deduplicated_and_wrapped(tmp_path):
    src = randomize(L2LOmniglotCNN(), 2)
    keys = src.state_dict().keys()
    assert any(k.startswith("base.") for k in keys) and any(
        k.startswith("features.1.") for k in keys
    )
    wrapped = MAMLWrapper(MAMLWrapper(src))  # DDP around MAML: module.module.
    path = tmp_path / "l2l_omni.pth"
    torch.save(wrapped.state_dict(), path)
    learner = adapters.load(path, format="l2l")
    assert learner.config["layout"] == "OmniglotCNN"
    assert learner.config["adapt"]["inner_lr"] == 0.4
    assert_same_model(learner, src, images(10, 1, 28))


def test_learn2learn_copies_that_differ_are_refused(tmp_path):
    state = randomize(L2LOmniglotCNN(), 2).state_dict()
    state["features.1.0.conv.weight"] = state["features.1.0.conv.weight"] + 1
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="not a copy"):
        adapters.load(path)


def test_learn2learn_lightning_ckpt(tmp_path):
    src = randomize(L2LOmniglotCNN(), 3)
    state = {f"model.{k}": v for k, v in MAMLWrapper(src).state_dict().items()}
    ckpt = {
        "state_dict": state,
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.1.0",
        "loops": {"fit_loop": {"epoch": 3}},
    }
    path = tmp_path / "epoch=3.ckpt"
    torch.save(ckpt, path)
    learner = adapters.load(path)
    assert learner.config["file_extras"]["global_step"] == 120
    assert_same_model(learner, src, images(10, 1, 28))


def test_learn2learn_anil_body_and_maml_head(tmp_path):
    """ANIL: body ``{i}.normalize.weight`` ... and the MAML-wrapped head ``module.weight``;
    FC100-sized images (32x32, head reads 64*2*2 features)."""
    body = nn.Sequential(*[L2LConvBlock(3 if i == 0 else 16, 16, True) for i in range(4)])
    head = MAMLWrapper(nn.Linear(16 * 2 * 2, 5))
    randomize(body, 4)
    randomize(head, 5)
    state = {**body.state_dict(), **head.state_dict()}
    assert "0.normalize.weight" in state and "module.weight" in state
    path = tmp_path / "anil.pt"
    torch.save(state, path)
    learner = adapters.load(path)
    assert learner.config["algorithm"] == "anil"
    assert learner.config["adapt"]["adapted"] == ["head.weight", "head.bias"]
    assert learner.input_shape == (3, 32, 32)

    class Source(nn.Module):
        def trace(self, x):
            acts = []
            for block in body:
                x = block(x)
                acts.append(x)
            return acts, head.module(x.reshape(x.size(0), -1))

    body.train()
    assert_same_model(learner, Source(), images(6, 3, 32))


def test_learn2learn_safetensors_and_compiled(tmp_path):
    from safetensors.torch import save_file

    src = randomize(L2LOmniglotCNN(), 6)
    state = {
        f"_orig_mod.{k}": v.contiguous()
        for k, v in src.state_dict().items()
        if not k.startswith("features.")
    }  # safetensors refuses shared tensors
    path = tmp_path / "l2l.safetensors"
    save_file(state, str(path))
    learner = adapters.load(path, format="auto")
    assert_same_model(learner, src, images(10, 1, 28))


# --- torchmeta / pytorch-maml / BOIL ---------------------------------------------------------


def torchmeta_block(cin, cout):
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(cin, cout, 3, stride=1, padding=1)),
                ("norm", nn.BatchNorm2d(cout, momentum=1.0, track_running_stats=False)),
                ("relu", nn.ReLU()),
                ("pool", nn.MaxPool2d(2)),
            ]
        )
    )


class TorchmetaConvModel(nn.Module):
    """torchmeta's MetaConvModel (ModelConvOmniglot) with plain nn layers."""

    def __init__(self, ways=5, hidden=16, channels=1, feature_size=16):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                (f"layer{i + 1}", torchmeta_block(channels if i == 0 else hidden, hidden))
                for i in range(4)
            )
        )
        self.classifier = nn.Linear(feature_size, ways)

    def trace(self, x):
        acts = []
        for block in self.features:
            x = block(x)
            acts.append(x)
        return acts, self.classifier(x.view(x.size(0), -1))


class TorchmetaExampleModel(TorchmetaConvModel):
    """torchmeta's examples/maml/model.py: ``features.{i}.{0,1}`` (conv, norm)."""

    def __init__(self, ways=5, hidden=16, channels=3):
        super().__init__(ways, hidden, channels, hidden * 25)
        self.features = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(channels if i == 0 else hidden, hidden, 3, padding=1),
                    nn.BatchNorm2d(hidden, momentum=1.0, track_running_stats=False),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                )
                for i in range(4)
            ]
        )


def test_torchmeta_conv_model(tmp_path):
    src = randomize(TorchmetaConvModel(), 7)
    assert "features.layer1.norm.weight" in src.state_dict()
    path = tmp_path / "maml_omniglot.th"
    torch.save(src.state_dict(), path)
    assert adapters.sniff(path) == "torchmeta"
    learner = adapters.load(path, format="pytorch-maml")
    assert all(".norm." not in n for n in learner.config["adapt"]["adapted"])
    assert_same_model(learner, src, images(10, 1, 28))


def test_torchmeta_example_layout_miniimagenet_and_boil(tmp_path):
    src = randomize(TorchmetaExampleModel(), 8)
    assert "features.0.1.weight" in src.state_dict()
    path = tmp_path / "model.th"
    torch.save(src.state_dict(), path)
    learner = adapters.load(path, format="boil")
    assert learner.config["algorithm"] == "boil"
    assert not any(n.startswith("head.") for n in learner.config["adapt"]["adapted"])
    assert_same_model(learner, src, images(6, 3, 84))


# --- higher / torch.func ---------------------------------------------------------------------


def higher_net(ways=5, hidden=16, track_running_stats=True):
    """The net of higher's (and torch.func's) maml-omniglot example."""
    layers = []
    for i in range(3):
        layers += [
            nn.Conv2d(1 if i == 0 else hidden, hidden, 3),
            nn.BatchNorm2d(
                hidden, momentum=1, affine=True, track_running_stats=track_running_stats
            ),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        ]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(hidden, ways))


class SequentialSource(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def trace(self, x):
        acts = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                acts.append(x)
        return acts, x


@pytest.mark.parametrize("track", [True, False], ids=["higher", "torch.func"])
def test_higher_and_torch_func_sequential(tmp_path, track):
    net = randomize(higher_net(track_running_stats=track), 9)
    keys = list(net.state_dict())
    assert keys[0] == "0.weight" and keys[-1] == "13.bias"
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    assert adapters.sniff(path) == "higher"
    learner = adapters.load(path)
    assert_same_model(learner, SequentialSource(net), images(10, 1, 28))


def test_higher_inner_loop_matches_sgd_on_the_source(tmp_path):
    """The adapted model equals the source after the example's inner loop (SGD lr 0.1 on
    every parameter, 5 steps, mean cross-entropy)."""
    net = randomize(higher_net(), 10).train()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    learner = adapters.load(path, format="torch.func")
    x, y = images(10, 1, 28, seed=1), torch.arange(5).repeat(2)
    fast = learner.adapt(learner.meta_params(), x, y)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    with torch.no_grad():
        ours = torch.func.functional_call(learner.module, fast, (x,))
        torch.testing.assert_close(ours, net(x), atol=1e-4, rtol=1e-4)


# --- dragen1860 MAML-Pytorch -----------------------------------------------------------------


class DragenLearner(nn.Module):
    """dragen1860's Learner: vars / vars_bn ParameterLists run through a config list."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.vars = nn.ParameterList()
        self.vars_bn = nn.ParameterList()
        for name, param in config:
            if name == "conv2d":
                self.vars.append(nn.Parameter(torch.ones(*param[:4])))
                self.vars.append(nn.Parameter(torch.zeros(param[0])))
            elif name == "linear":
                self.vars.append(nn.Parameter(torch.ones(*param)))
                self.vars.append(nn.Parameter(torch.zeros(param[0])))
            elif name == "bn":
                self.vars.append(nn.Parameter(torch.ones(param[0])))
                self.vars.append(nn.Parameter(torch.zeros(param[0])))
                self.vars_bn.extend(
                    [
                        nn.Parameter(torch.zeros(param[0]), requires_grad=False),
                        nn.Parameter(torch.ones(param[0]), requires_grad=False),
                    ]
                )

    def trace(self, x):
        idx, bn_idx, acts = 0, 0, []
        for name, param in self.config:
            if name == "conv2d":
                w, b = self.vars[idx], self.vars[idx + 1]
                x = F.conv2d(x, w, b, stride=param[4], padding=param[5])
                idx += 2
            elif name == "relu":
                x = F.relu(x)
            elif name == "bn":
                w, b = self.vars[idx], self.vars[idx + 1]
                rm, rv = self.vars_bn[bn_idx], self.vars_bn[bn_idx + 1]
                x = F.batch_norm(x, rm, rv, weight=w, bias=b, training=True)
                idx, bn_idx = idx + 2, bn_idx + 2
                acts.append(x)
            elif name == "max_pool2d":
                x = F.max_pool2d(x, param[0], param[1], param[2])
                acts[-1] = x
            elif name == "flatten":
                x = x.view(x.size(0), -1)
            elif name == "linear":
                x = F.linear(x, self.vars[idx], self.vars[idx + 1])
        return acts, x


class DragenMeta(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.net = DragenLearner(config)

    def trace(self, x):
        return self.net.trace(x)


OMNIGLOT_CONFIG = [
    ("conv2d", [16, 1, 3, 3, 2, 0]),
    ("relu", [True]),
    ("bn", [16]),
    ("conv2d", [16, 16, 3, 3, 2, 0]),
    ("relu", [True]),
    ("bn", [16]),
    ("conv2d", [16, 16, 3, 3, 2, 0]),
    ("relu", [True]),
    ("bn", [16]),
    ("conv2d", [16, 16, 2, 2, 1, 0]),
    ("relu", [True]),
    ("bn", [16]),
    ("flatten", []),
    ("linear", [5, 16]),
]
MINI_CONFIG = [
    ("conv2d", [8, 3, 3, 3, 1, 0]),
    ("relu", [True]),
    ("bn", [8]),
    ("max_pool2d", [2, 2, 0]),
    ("conv2d", [8, 8, 3, 3, 1, 0]),
    ("relu", [True]),
    ("bn", [8]),
    ("max_pool2d", [2, 2, 0]),
    ("conv2d", [8, 8, 3, 3, 1, 0]),
    ("relu", [True]),
    ("bn", [8]),
    ("max_pool2d", [2, 2, 0]),
    ("conv2d", [8, 8, 3, 3, 1, 0]),
    ("relu", [True]),
    ("bn", [8]),
    ("max_pool2d", [2, 1, 0]),
    ("flatten", []),
    ("linear", [5, 8 * 5 * 5]),
]


@pytest.mark.parametrize(
    "config,channels,size",
    [(OMNIGLOT_CONFIG, 1, 28), (MINI_CONFIG, 3, 84)],
    ids=["omniglot", "miniimagenet"],
)
def test_dragen1860(tmp_path, config, channels, size):
    src = DragenMeta(config)
    randomize(src.net.vars, 11)
    path = tmp_path / "maml.pth"
    torch.save(src.state_dict(), path)
    assert "net.vars.0" in src.state_dict() and "net.vars_bn.0" in src.state_dict()
    assert adapters.sniff(path) == "dragen1860"
    # default config: the repository's own for that channel count (same strides/pads/pools)
    learner = adapters.load(path)
    assert learner.module.spec.order == "conv-act-norm"
    assert_same_model(learner, src, images(8, channels, size))
    # an explicit config list gives the same model
    assert_same_model(adapters.load(path, config=config), src, images(8, channels, size))


def test_dragen1860_wrong_config_names_the_layer(tmp_path):
    src = DragenMeta(OMNIGLOT_CONFIG)
    path = tmp_path / "maml.pth"
    torch.save(src.state_dict(), path)
    with pytest.raises(CheckpointError, match="conv4"):
        adapters.load(
            path,
            config=[(n, list(p)) for n, p in OMNIGLOT_CONFIG[:9]]
            + [
                ("conv2d", [16, 16, 3, 3, 1, 0]),
                ("relu", [True]),
                ("bn", [16]),
                ("flatten", []),
                ("linear", [5, 16]),
            ],
        )


# --- MAML++ ----------------------------------------------------------------------------------

STEPS = 3


class MAMLPPConv(nn.Module):
    """MetaConvNormLayerReLU with per-step BatchNorm (MetaBatchNormLayer)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Module()
        self.conv.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.conv.bias = nn.Parameter(torch.zeros(cout))
        self.norm_layer = nn.Module()
        nl = self.norm_layer
        nl.running_mean = nn.Parameter(torch.zeros(STEPS, cout), requires_grad=False)
        nl.running_var = nn.Parameter(torch.ones(STEPS, cout), requires_grad=False)
        nl.bias = nn.Parameter(torch.zeros(STEPS, cout))
        nl.weight = nn.Parameter(torch.ones(STEPS, cout))

    def forward(self, x, num_step, params=None):
        w = params["conv.weight"] if params else self.conv.weight
        b = params["conv.bias"] if params else self.conv.bias
        x = F.conv2d(x, w, b, stride=1, padding=1)
        nl = self.norm_layer
        x = F.batch_norm(
            x,
            nl.running_mean[num_step].clone(),
            nl.running_var[num_step].clone(),
            nl.weight[num_step],
            nl.bias[num_step],
            training=True,
            momentum=0.1,
            eps=1e-5,
        )
        return F.leaky_relu(x)


class MAMLPlusPlus(nn.Module):
    """MAMLFewShotClassifier: classifier (VGGReLUNormNetwork) + LSLR inner-loop optimiser."""

    def __init__(self, ways=5, hidden=16, channels=1):
        super().__init__()
        self.classifier = nn.Module()
        self.classifier.layer_dict = nn.ModuleDict()
        for i in range(4):
            self.classifier.layer_dict[f"conv{i}"] = MAMLPPConv(
                channels if i == 0 else hidden, hidden
            )
        linear = nn.Module()
        linear.weights = nn.Parameter(torch.randn(ways, hidden))
        linear.bias = nn.Parameter(torch.zeros(ways))
        self.classifier.layer_dict["linear"] = linear
        self.inner_loop_optimizer = nn.Module()
        names = [f"layer_dict-conv{i}-conv-{p}" for i in range(4) for p in ("weight", "bias")]
        names += ["layer_dict-linear-weights", "layer_dict-linear-bias"]
        self.inner_loop_optimizer.names_learning_rates_dict = nn.ParameterDict(
            {n: nn.Parameter(0.1 + 0.05 * torch.rand(STEPS + 1)) for n in names}
        )

    def trace(self, x, num_step=0, params=None):
        acts = []
        for i in range(4):
            sub = {
                k.split(".", 1)[1]: v
                for k, v in (params or {}).items()
                if k.startswith(f"conv{i}.")
            }
            x = self.classifier.layer_dict[f"conv{i}"](x, num_step, sub or None)
            x = F.max_pool2d(x, 2, 2, 0)
            acts.append(x)
        lin = self.classifier.layer_dict["linear"]
        w = params["linear.weights"] if params else lin.weights
        b = params["linear.bias"] if params else lin.bias
        return acts, F.linear(x.view(x.size(0), -1), w, b)


def save_mamlpp(tmp_path, seed):
    src = randomize(MAMLPlusPlus(), seed)
    state = {
        "network": src.state_dict(),
        "best_val_acc": np.float64(0.61),
        "best_val_iter": np.int64(500),
        "current_iter": 1000,
        "per_epoch_statistics": {"val_accuracy_mean": [np.float64(0.5), np.float64(0.6)]},
    }
    path = tmp_path / "train_model_latest"
    torch.save(state, path)
    return src, path


def test_mamlpp_per_step_norm_and_numpy_scalars(tmp_path):
    src, path = save_mamlpp(tmp_path, 12)
    with pytest.raises(Exception, match="(?i)numpy"):  # plain weights_only needs the allow-list
        torch.load(path, weights_only=True)
    assert adapters.sniff(path) == "mamlpp"
    x = images(10, 1, 28)
    for step in (0, 2):
        learner = adapters.load(path, bn_step=step)
        assert learner.config["bn_step"] == step
        assert learner.config["file_extras"]["best_val_acc"] == pytest.approx(0.61)

        class AtStep(nn.Module):
            def trace(self, x, step=step):
                return src.trace(x, num_step=step)

        assert_same_model(learner, AtStep(), x)
    with pytest.raises(CheckpointError, match="bn_step"):
        adapters.load(path, bn_step=STEPS)


def test_mamlpp_inner_loop_uses_learned_per_step_rates(tmp_path):
    src, path = save_mamlpp(tmp_path, 13)
    learner = adapters.load(path)
    assert learner.config["adapt"]["inner_steps"] == STEPS  # rates learned for STEPS steps
    x, y = images(10, 1, 28, seed=2), torch.arange(5).repeat(2)
    fast = learner.adapt(learner.meta_params(), x, y)
    # MAML++'s own loop on the source model
    names = [f"conv{i}.conv.{p}" for i in range(4) for p in ("weight", "bias")]
    names += ["linear.weights", "linear.bias"]
    mods = src.classifier.layer_dict
    params = {
        n: (
            getattr(mods[n.split(".")[0]].conv, n.split(".")[-1])
            if n.startswith("conv")
            else getattr(mods["linear"], n.split(".")[1])
        ).detach()
        for n in names
    }
    rates = src.inner_loop_optimizer.names_learning_rates_dict
    for step in range(STEPS):
        params = {n: p.requires_grad_(True) for n, p in params.items()}
        _, logits = src.trace(x, num_step=step, params=params)
        grads = torch.autograd.grad(F.cross_entropy(logits, y), list(params.values()))
        params = {
            n: (p - rates["layer_dict-" + n.replace(".", "-")][step] * g).detach()
            for (n, p), g in zip(params.items(), grads)
        }
    torch.testing.assert_close(fast["conv1.conv.weight"], params["conv0.conv.weight"])
    torch.testing.assert_close(fast["head.weight"], params["linear.weights"])


# --- safety and errors -----------------------------------------------------------------------


def test_pickled_module_is_refused_with_an_explanation(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(higher_net(), path)
    with pytest.raises(CheckpointError, match=r"state_dict\(\)") as info:
        adapters.load(path, format="higher")
    assert "Sequential" in str(info.value) or "torch.nn" in str(info.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = randomize(TorchmetaConvModel(), 14).state_dict()
    path = tmp_path / "m.pt"
    torch.save({k: v for k, v in state.items() if k != "features.layer3.conv.bias"}, path)
    with pytest.raises(CheckpointError, match="features.layer3.conv.bias|conv.bias"):
        adapters.load(path, format="torchmeta")
    torch.save({**state, "features.layer2.extra": torch.ones(3)}, path)
    with pytest.raises(CheckpointError, match="features.layer2.extra"):
        adapters.load(path, format="torchmeta")


def test_shape_mismatch_names_the_layer(tmp_path):
    state = randomize(TorchmetaConvModel(), 15).state_dict()
    state["features.layer3.conv.weight"] = torch.zeros(16, 8, 3, 3)
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="conv3.*features.layer3.conv.weight"):
        adapters.load(path, format="torchmeta")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file_says_so(tmp_path, suffix):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in randomize(TorchmetaConvModel(), 16).state_dict().items()}
    path = tmp_path / f"m{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        adapters.load(path, format="torchmeta")


def test_unknown_layout_and_format(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"encoder.weight": torch.ones(2, 2)}, path)
    with pytest.raises(CheckpointError, match="--format"):
        adapters.load(path)
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        adapters.load(path, format="keras")


def test_repsim_checkpoint_through_auto(tmp_path):
    from repsim.checkpoint import save_checkpoint
    from repsim.models import Conv4, Conv4Config

    path = save_checkpoint(
        tmp_path / "r.safetensors",
        Conv4(Conv4Config.omniglot(5, hidden=8)),
        {"train": {"algorithm": "maml", "inner_lr": 2.0}},
    )
    assert adapters.sniff(path) == "repsim"
    learner = adapters.load(path, inner_steps=2)
    assert learner.config["adapt"]["inner_steps"] == 2
