"""Optional checks against the real libraries, where they install here: ``higher`` (pure
Python) and torchmeta's ``MetaModule`` classes (installed with ``--no-deps``; its package
``__init__`` imports torchvision, so only ``torchmeta.modules`` and
``torchmeta/utils/gradient_based.py`` are loaded). Skipped with a reason otherwise."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repsim import adapters
from repsim.capture import capture_raw


def _torchmeta(monkeypatch):
    """``(torchmeta.modules, gradient_update_parameters)`` without running the package's
    ``__init__`` (which needs torchvision)."""
    spec = importlib.util.find_spec("torchmeta")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchmeta is not installed (pip install --no-deps torchmeta)")
    root = list(spec.submodule_search_locations)[0]
    for name in [n for n in sys.modules if n == "torchmeta" or n.startswith("torchmeta.")]:
        monkeypatch.delitem(sys.modules, name)
    pkg = types.ModuleType("torchmeta")
    pkg.__path__ = [root]
    monkeypatch.setitem(sys.modules, "torchmeta", pkg)
    try:
        modules = importlib.import_module("torchmeta.modules")
        gb_spec = importlib.util.spec_from_file_location(
            "torchmeta_gradient_based", f"{root}/utils/gradient_based.py"
        )
        gb = importlib.util.module_from_spec(gb_spec)
        gb_spec.loader.exec_module(gb)
    except ImportError as exc:
        pytest.skip(f"torchmeta.modules does not import here: {exc}")
    return modules, gb.gradient_update_parameters


def test_real_torchmeta_meta_conv_model(tmp_path, monkeypatch):
    tm, gradient_update_parameters = _torchmeta(monkeypatch)

    def conv_block(cin, cout):
        return tm.MetaSequential(
            OrderedDict(
                [
                    (
                        "conv",
                        tm.MetaConv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True),
                    ),
                    ("norm", nn.BatchNorm2d(cout, momentum=1.0, track_running_stats=False)),
                    ("relu", nn.ReLU()),
                    ("pool", nn.MaxPool2d(2)),
                ]
            )
        )

    class MetaConvModel(tm.MetaModule):  # torchmeta's examples/maml/model.py, hidden 16
        def __init__(self):
            super().__init__()
            self.features = tm.MetaSequential(
                OrderedDict(
                    (f"layer{i + 1}", conv_block(1 if i == 0 else 16, 16)) for i in range(4)
                )
            )
            self.classifier = tm.MetaLinear(16, 5)

        def forward(self, x, params=None):
            f = self.features(x, params=self.get_subdict(params, "features"))
            return self.classifier(
                f.view(f.size(0), -1), params=self.get_subdict(params, "classifier")
            )

    torch.manual_seed(0)
    model = MetaConvModel()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    path = tmp_path / "model.th"
    torch.save(model.state_dict(), path)
    learner = adapters.load(path)
    x = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(5).repeat(2)
    torch.testing.assert_close(learner.module(x), model(x), atol=1e-5, rtol=1e-4)

    # torchmeta's own inner loop: one step of step_size 0.4 on the MetaModule parameters
    loss = F.cross_entropy(model(x), y)
    params = gradient_update_parameters(model, loss, step_size=0.4, first_order=True)
    fast = learner.adapt(learner.meta_params(), x, y)
    with torch.no_grad():
        ours = torch.func.functional_call(learner.module, fast, (x,))
        theirs = model(x, params=params)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_real_higher_inner_loop(tmp_path):
    higher = pytest.importorskip("higher", reason="higher is not installed (pip install higher)")
    torch.manual_seed(0)
    layers = []
    for i in range(3):
        layers += [
            nn.Conv2d(1 if i == 0 else 16, 16, 3),
            nn.BatchNorm2d(16, momentum=1, affine=True),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        ]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16, 5)).train()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    learner = adapters.load(path, format="higher")
    x = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.arange(5).repeat(2)
    inner_opt = torch.optim.SGD(net.parameters(), lr=1e-1)
    with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, diffopt):
        for _ in range(5):  # the example's n_inner_iter
            diffopt.step(F.cross_entropy(fnet(x), y))
        theirs = fnet(x).detach()
    fast = learner.adapt(learner.meta_params(), x, y)
    ours = capture_raw(learner.module, x, ["head"], fast)["head"]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
