"""The original code's protocol as options: N(0, 1) head, shift-only norm, per-task rotations,
the NIL-training temperature, the paper presets, and one inner loop built from a record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from repsim.data import ClassImages, TaskSampler
from repsim.errors import InputError
from repsim.inner_loop import InnerLoop
from repsim.models import Conv4, Conv4Config
from repsim.train import PRESETS, TrainConfig, config_from_preset


def _classes(n_classes: int = 8, per_class: int = 6, side: int = 6) -> ClassImages:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_classes, per_class, 1, side, side), dtype=np.uint8)
    names = [f"c{i}" for i in range(n_classes)]
    meta = {"dataset": "synthetic", "split": "s", "part": "train", "rotations": False}
    return ClassImages(images, names, meta)


def test_normal_head_init_draws_unit_variance_weights_and_xavier_stays_the_default():
    torch.manual_seed(0)
    normal = Conv4(Conv4Config.omniglot(20, head_init="normal"))
    xavier = Conv4(Conv4Config.omniglot(20))
    assert normal.head.weight.std().item() == pytest.approx(1.0, abs=0.05)
    bound = (6 / (64 + 20)) ** 0.5  # Xavier-uniform bound for a 64 -> 20 layer
    assert xavier.head.weight.abs().max().item() <= bound
    assert torch.all(normal.head.bias == 0)


def test_beta_norm_has_a_shift_and_no_scale():
    model = Conv4(Conv4Config.omniglot(5, norm_affine="beta"))
    names = {n for n, _ in model.named_parameters()}
    assert "conv1.norm.bias" in names and "conv1.norm.weight" not in names
    x = torch.rand(10, 64, 3, 3, dtype=torch.float64)
    norm = model.conv2.norm.double()
    with torch.no_grad():
        norm.bias.fill_(0.5)
    y = norm(x)  # per channel: mean 0.5 (the shift), variance 1 (no scale)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.full((64,), 0.5, dtype=x.dtype))
    var = (y - 0.5).pow(2).mean(dim=(0, 2, 3))
    torch.testing.assert_close(var, torch.ones(64, dtype=x.dtype), rtol=1e-4, atol=1e-4)


def test_unknown_protocol_values_are_refused_by_name():
    with pytest.raises(InputError, match="norm_affine"):
        Conv4Config.omniglot(5, norm_affine="gamma")
    with pytest.raises(InputError, match="head_init"):
        Conv4Config.omniglot(5, head_init="kaiming")


def test_rotated_tasks_turn_every_image_of_a_class_by_the_same_quarter_turns():
    classes = _classes()
    plain = TaskSampler(classes, 4, 2, 3, seed=5)
    turned = TaskSampler(classes, 4, 2, 3, seed=5, rotate=True)
    seen = set()
    for i in range(12):
        a, b = plain.task(i), turned.task(i)
        assert torch.equal(a.support_y, b.support_y) and torch.equal(a.query_y, b.query_y)
        for label in range(4):
            xs = torch.cat([a.support_x[a.support_y == label], a.query_x[a.query_y == label]])
            ys = torch.cat([b.support_x[b.support_y == label], b.query_x[b.query_y == label]])
            ks = [k for k in range(4) if torch.equal(torch.rot90(xs, k, (-2, -1)), ys)]
            assert len(ks) == 1  # one turn for the whole class, support and query alike
            seen.add(ks[0])
    assert seen == {0, 1, 2, 3}


def test_rotation_is_a_pure_function_of_the_task_index():
    classes = _classes()
    a = TaskSampler(classes, 4, 1, 2, seed=3, rotate=True)
    b = TaskSampler(classes, 4, 1, 2, seed=3, rotate=True)
    assert torch.equal(a.task(9).support_x, b.task(9).support_x)
    assert torch.equal(a.batch([2, 9]).query_x[1], b.task(9).query_x)


def test_paper_presets_record_the_original_protocol():
    for name, ways in (("paper-omniglot-20way", 20), ("paper-omniglot-5way", 5)):
        cfg = config_from_preset(name)
        assert (cfg.ways, cfg.shots, cfg.queries) == (ways, 1, 1)
        # Finn et al. A.1 / main.py: 1 training step at 5-way, 5 at 20-way; 10 at test
        train_steps = 1 if ways == 5 else 5
        assert (cfg.inner_steps, cfg.test_inner_steps, cfg.outer_lr) == (train_steps, 10, 1e-3)
        assert config_from_preset(f"omniglot-{ways}way").inner_steps == train_steps
        assert cfg.head_init == "normal" and cfg.norm_affine == "beta" and cfg.task_rotations
        # TF's epsilon and 'SAME' padding, and resize_images.py's binary strokes
        assert (cfg.norm_eps, cfg.padding, cfg.image_mode) == (1e-3, "tf-same", "binary")
        plain = config_from_preset(f"omniglot-{ways}way")
        assert (plain.norm_eps, plain.padding, plain.image_mode) == (1e-5, "symmetric", "grey")
        # alpha (0.4 at 5-way, 0.1 at 20-way, on the summed loss / K) mapped to the mean loss
        assert cfg.inner_lr == pytest.approx(ways * (0.4 if ways == 5 else 0.1))
    assert PRESETS["paper-omniglot-20way"]["meta_batch"] == 16
    assert TrainConfig().nil_train_scale == 1.0  # the paper states none: 1 is the primary row


def test_inner_loop_from_record_reads_algorithm_rate_steps_and_freezing():
    model = Conv4(Conv4Config.omniglot(5))
    record = {"train": {"algorithm": "anil", "inner_lr": 0.7, "inner_steps": 3}}
    test = InnerLoop.from_record(model, record)
    assert test.names == ("head.weight", "head.bias") and test.steps == 10 and test.lr == 0.7
    assert InnerLoop.from_record(model, record, phase="train").steps == 3
    frozen = InnerLoop.from_record(model, {"train": {"algorithm": "maml"}}, freeze=2, steps=4)
    assert frozen.steps == 4 and not any(n.startswith(("conv1.", "conv2.")) for n in frozen.names)
    assert "conv3.conv.weight" in frozen.names
    assert InnerLoop.from_record(model, {"train": {"algorithm": "fomaml"}}).first_order
    adapter = {"adapt": {"adapted": ["head.weight"], "inner_lr": 0.1, "inner_steps": 2}}
    assert InnerLoop.from_record(model, adapter).names == ("head.weight",)


def test_tf_same_padding_pads_one_pixel_after_and_none_before_at_stride_two():
    torch.manual_seed(0)
    tf = Conv4(Conv4Config.omniglot(5, padding="tf-same")).double()
    sym = Conv4(Conv4Config.omniglot(5)).double()
    sym.load_state_dict(tf.state_dict())  # same parameter names and shapes
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    conv = tf.conv1.conv
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(F.pad(x, (0, 1, 0, 1))), expected)
    torch.testing.assert_close(tf.conv1.norm(expected).relu(), tf.conv1(x))
    # 7 -> 4 at stride 2 needs 2 pixels: TF puts one on each side, like the symmetric padding
    h7 = torch.rand(3, 64, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(tf.conv3(h7), sym.conv3(h7))
    assert not torch.allclose(tf.conv1(x), sym.conv1(x))
    for model in (tf, sym):  # 28 -> 14 -> 7 -> 4 -> 2 either way
        assert model.body(x).shape == (3, 64)
    with pytest.raises(InputError, match="padding"):
        Conv4Config.omniglot(5, padding="valid")


def test_norm_eps_is_the_models_epsilon():
    model = Conv4(Conv4Config.omniglot(5, norm_eps=1e-3)).double()
    x = torch.rand(4, 64, 3, 3, dtype=torch.float64) * 0.01  # variance comparable to eps
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-3)  # shift 0, scale 1 at initialisation
    torch.testing.assert_close(model.conv2.norm(x), expected)


def test_the_image_mode_of_a_record_decides_the_test_images(monkeypatch):
    from repsim.evaluate import test_sampler_for

    seen = {}

    def fake_load(dataset, split, part, data_dir=None, rotations=False, cache_dir=None, **kw):
        seen.update(kw, part=part)
        return _classes(n_classes=8, per_class=6, side=28)

    monkeypatch.setattr("repsim.data.load_classes", fake_load)
    test_sampler_for({"train": {"image_mode": "binary", "ways": 3}}, queries=2)
    assert seen == {"image_mode": "binary", "part": "test"}
    test_sampler_for({"train": {"ways": 3}}, queries=2)  # records from before the option: grey
    assert seen["image_mode"] == "grey"


def _train_tiny(tmp_path, monkeypatch, **options):
    """Real second-order MAML steps on synthetic classes; ``options`` set TrainConfig."""
    import repsim.train as train_mod

    classes = _classes(n_classes=12, per_class=6, side=28)
    monkeypatch.setattr(
        "repsim.data.load_classes", lambda *a, **k: classes, raising=True
    )  # the trainer imports load_classes from repsim.data at call time
    tiny = dict(ways=3, shots=1, queries=2, test_queries=2, meta_batch=2, inner_steps=1)
    tiny.update(test_inner_steps=2, iterations=4, log_every=2, val_tasks=2, val_every=4)
    return train_mod.train(TrainConfig(**{**tiny, **options}), tmp_path, progress=False)


def test_the_original_codes_eps_padding_and_images_are_recorded_and_rebuilt(tmp_path, monkeypatch):
    from repsim.checkpoint import load_checkpoint

    final = _train_tiny(
        tmp_path, monkeypatch, norm_eps=1e-3, padding="tf-same", image_mode="binary"
    )
    model, record = load_checkpoint(final)
    assert record["model"]["norm_eps"] == 1e-3 and record["model"]["padding"] == "tf-same"
    assert record["train"]["image_mode"] == "binary"
    assert model.conv1.norm.eps == 1e-3 and model.conv1.tf_same


@pytest.mark.parametrize("norm_affine", ["beta", "full"])
def test_training_with_the_paper_protocol_runs_and_is_recorded(tmp_path, norm_affine, monkeypatch):
    """Real second-order MAML steps on synthetic classes with the original protocol."""
    from repsim.checkpoint import load_checkpoint
    from repsim.train import read_metrics

    final = _train_tiny(
        tmp_path,
        monkeypatch,
        iterations=6,
        log_every=3,
        val_every=6,
        head_init="normal",
        norm_affine=norm_affine,
        task_rotations=True,
    )
    model, record = load_checkpoint(final)
    assert (
        record["model"]["norm_affine"] == norm_affine and record["model"]["head_init"] == "normal"
    )
    assert record["train"]["task_rotations"] is True
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
