"""The meta-learning engine: exact meta-gradients, one inner loop for MAML / ANIL / freezing."""

from __future__ import annotations

import json

import pytest
import torch

from repsim.inner_loop import InnerLoop
from repsim.models import Conv4, Conv4Config, adapted_parameter_names


def tiny_model(seed: int = 0, ways: int = 3) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(Conv4Config(in_channels=1, image_size=8, hidden=4, ways=ways)).double()


def tiny_tasks(tasks: int = 3, ways: int = 3, shots: int = 2, queries: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.rand(tasks, ways * shots, 1, 8, 8, generator=g, dtype=torch.float64)
    qx = torch.rand(tasks, ways * queries, 1, 8, 8, generator=g, dtype=torch.float64)
    sy = torch.arange(ways).repeat(shots).repeat(tasks, 1)
    qy = torch.arange(ways).repeat(queries).repeat(tasks, 1)
    return sx, sy, qx, qy


def meta_loss(model, params, data, names, first_order=False, steps=2, lr=0.5):
    sx, sy, qx, qy = data
    total = 0.0
    for t in range(sx.shape[0]):
        loop = InnerLoop(names, lr, steps, first_order)
        loss, _ = loop.query_loss(model, params, sx[t], sy[t], qx[t], qy[t])
        total = total + loss
    return total / sx.shape[0]


def meta_grad(model, data, names, first_order=False):
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    loss = meta_loss(model, params, data, names, first_order)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_second_order_meta_gradient_equals_finite_differences(algorithm):
    model = tiny_model()
    data = tiny_tasks()
    names = adapted_parameter_names(model, algorithm)
    grad = meta_grad(model, data, names)
    base = {n: p.detach() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        d = {n: torch.randn(v.shape, generator=g, dtype=v.dtype) for n, v in base.items()}
        eps = 1e-6
        plus = meta_loss(model, {n: base[n] + eps * d[n] for n in base}, data, names)
        minus = meta_loss(model, {n: base[n] - eps * d[n] for n in base}, data, names)
        fd = float((plus - minus).detach()) / (2 * eps)
        analytic = sum(float((grad[n] * d[n]).sum()) for n in base)
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_first_order_differs_from_second_order():
    model = tiny_model()
    data = tiny_tasks()
    names = adapted_parameter_names(model, "maml")
    so = meta_grad(model, data, names)
    fo = meta_grad(model, data, names, first_order=True)
    diff = max(float((so[n] - fo[n]).abs().max()) for n in so)
    assert diff > 1e-4


def test_anil_meta_gradient_reaches_the_body():
    model = tiny_model()
    names = adapted_parameter_names(model, "anil")
    assert all(n.startswith("head.") for n in names)
    grad = meta_grad(model, tiny_tasks(), names)
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        assert float(grad[f"{layer}.conv.weight"].abs().sum()) > 0


def test_anil_body_once_equals_full_forward_inner_loop():
    """The body-once shortcut computes the same fast head as adapting through the full net."""
    model = tiny_model()
    sx, sy, _, _ = tiny_tasks()
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = adapted_parameter_names(model, "anil")
    loop = InnerLoop(names, 0.5, 3)
    fast = loop.adapt(model, params, sx[0], sy[0])
    model.supports_stages = False  # instance attribute: forces the generic path
    slow = loop.adapt(model, params, sx[0], sy[0])
    for n in names:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "algorithm,first_order", [("maml", False), ("maml", True), ("anil", False)]
)
def test_loop_and_vmap_meta_gradients_agree(algorithm, first_order):
    model = tiny_model()
    data = tiny_tasks(tasks=4)
    names = adapted_parameter_names(model, algorithm)
    loop = meta_grad(model, data, names, first_order)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    losses, _ = InnerLoop(names, 0.5, 2, first_order).batched_query_losses(model, params, *data)
    vm = dict(zip(params, torch.autograd.grad(losses.mean(), list(params.values()))))
    for n in params:
        torch.testing.assert_close(vm[n], loop[n], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("freeze", [1, 2, 3, 4])
def test_frozen_layers_stay_bit_identical_through_adaptation(freeze):
    model = tiny_model()
    sx, sy, _, _ = tiny_tasks()
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = adapted_parameter_names(model, "maml", freeze=freeze)
    fast = InnerLoop(names, 0.5, 5).adapt(model, params, sx[0], sy[0])
    for n, p in params.items():
        layer = n.split(".")[0]
        frozen = layer in {f"conv{k}" for k in range(1, freeze + 1)} or ".norm." in n
        if frozen:
            assert torch.equal(fast[n], p), n
        elif n in names:
            assert not torch.equal(fast[n], p), n


def test_adapted_parameter_sets():
    model = tiny_model()
    maml = adapted_parameter_names(model, "maml")
    assert not any(".norm." in n for n in maml)  # the norm's affine params are never adapted
    assert set(adapted_parameter_names(model, "anil")) == {"head.weight", "head.bias"}
    boil = adapted_parameter_names(model, "boil")
    assert "head.weight" not in boil and "conv1.conv.weight" in boil
    with pytest.raises(ValueError, match="freeze"):
        adapted_parameter_names(model, "maml", freeze=5)


def test_transductive_norm_uses_batch_statistics_even_in_eval_mode():
    model = tiny_model().eval()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    out_alone = model(x[:3])
    out_together = model(x)[:3]
    assert not torch.allclose(out_alone, out_together)  # statistics of the current batch
    model_running = (
        Conv4(Conv4Config(in_channels=1, image_size=8, hidden=4, ways=3, norm="running"))
        .double()
        .eval()
    )
    torch.testing.assert_close(model_running(x[:3]), model_running(x)[:3])


def test_nil_classifies_queries_identical_to_supports():
    from repsim.nil import nil_probabilities

    feats = torch.randn(5, 16, dtype=torch.float64)
    y = torch.tensor([2, 0, 4, 1, 3])
    probs = nil_probabilities(feats, y, feats[[1, 3]], ways=5)
    assert probs.argmax(-1).tolist() == [0, 1]
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, dtype=torch.float64))


def _small_cfg(tmp_data, **kw):
    from repsim.train import TrainConfig

    base = dict(
        algorithm="maml",
        ways=3,
        shots=1,
        queries=2,
        test_queries=2,
        meta_batch=2,
        inner_steps=1,
        test_inner_steps=1,
        iterations=4,
        val_every=2,
        val_tasks=2,
        save_every=2,
        log_every=1,
        seed=3,
        data_dir=str(tmp_data),
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.data
def test_resume_equals_an_uninterrupted_run(tmp_path, omniglot_data_dir):
    from repsim.checkpoint import read_checkpoint
    from repsim.train import read_metrics, train

    cfg = _small_cfg(omniglot_data_dir)
    full = train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "cut", progress=False, stop_at=2)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    a, b = read_checkpoint(full)[0], read_checkpoint(resumed)[0]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    la = [r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert la == pytest.approx(lb, rel=1e-6)
    assert len(la) == 4


@pytest.mark.data
def test_a_signal_stops_training_saved_at_its_iteration_and_resume_continues_exactly(
    tmp_path, omniglot_data_dir, monkeypatch
):
    """SIGTERM at iteration 3 of 5 (no save due there): the run finishes the iteration, saves
    it with its optimiser state, raises Stopped; resumed, it ends bit for bit where the
    uninterrupted run does."""
    import os
    import signal

    import repsim.train as train_module
    from repsim.checkpoint import optimizer_extra, read_checkpoint
    from repsim.run_log import Stopped
    from repsim.train import read_metrics, train

    cfg = _small_cfg(omniglot_data_dir, iterations=5, save_every=4)
    full = train(cfg, tmp_path / "full", progress=False)
    log_train = train_module._log_train

    def log_then_signal(log, bar, it, *rest):
        log_train(log, bar, it, *rest)
        if it == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_module, "_log_train", log_then_signal)
    with pytest.raises(Stopped, match="SIGTERM after iteration 3") as stopped:
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    last = tmp_path / "cut" / "last.safetensors"
    assert stopped.value.checkpoint == last and read_checkpoint(last)[1]["iteration"] == 3
    assert optimizer_extra(last)["iteration"] == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    a, b = read_checkpoint(full)[0], read_checkpoint(resumed)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)

    def curve(run):
        rows = read_metrics(tmp_path / run / "metrics.jsonl")
        return [(r["iteration"], r.get("loss"), r.get("val_accuracy")) for r in rows]

    assert (
        curve("cut") == curve("full") and len(curve("full")) == 8
    )  # 5 losses, validation at 2, 4, 5


@pytest.mark.data
def test_checkpoint_records_everything_needed_to_rebuild_the_run(tmp_path, omniglot_data_dir):
    from repsim.checkpoint import load_checkpoint, read_checkpoint
    from repsim.train import train

    cfg = _small_cfg(omniglot_data_dir, iterations=2, checkpoint_at=[1])
    final = train(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "iter_000001.safetensors").exists()
    model, record = load_checkpoint(final)
    assert record["train"]["algorithm"] == "maml" and record["iteration"] == 2
    assert record["model"]["ways"] == 3 and record["code_version"]["repsim"]
    assert record["data"]["train"]["split"] == "maml"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 3
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temp files
    tensors, _ = read_checkpoint(final)
    assert set(tensors) == set(model.state_dict())


@pytest.mark.data
def test_short_anil_training_on_real_omniglot_beats_chance(tmp_path, omniglot_data_dir):
    """Chance is 20 % (5-way). ~80 ANIL iterations on real characters reach far above it."""
    from repsim.evaluate import evaluate_checkpoint
    from repsim.train import TrainConfig, train

    cfg = TrainConfig(
        algorithm="anil",
        ways=5,
        shots=1,
        queries=3,
        meta_batch=8,
        inner_steps=3,
        test_inner_steps=10,
        iterations=80,
        val_tasks=0,
        log_every=20,
        save_every=80,
        outer_lr=3e-3,
        data_dir=str(omniglot_data_dir),
    )
    final = train(cfg, tmp_path, progress=False)
    r = evaluate_checkpoint(final, tasks=40, data_dir=omniglot_data_dir)
    assert r["accuracy"] > 0.6, r["accuracy"]


@pytest.mark.data
def test_a_finished_run_can_be_extended_but_not_changed(tmp_path, omniglot_data_dir):
    from repsim.checkpoint import read_checkpoint
    from repsim.errors import InputError
    from repsim.train import train

    cfg = _small_cfg(omniglot_data_dir, iterations=2)
    train(cfg, tmp_path, progress=False)
    longer = _small_cfg(omniglot_data_dir, iterations=4)
    final = train(longer, tmp_path, resume=True, progress=False)
    assert read_checkpoint(final)[1]["iteration"] == 4
    with pytest.raises(InputError, match="differs in"):
        train(
            _small_cfg(omniglot_data_dir, iterations=6, inner_lr=0.1),
            tmp_path,
            resume=True,
            progress=False,
        )
    with pytest.raises(InputError, match="already past"):
        train(_small_cfg(omniglot_data_dir, iterations=3), tmp_path, resume=True, progress=False)
    # resumed at its own length, a finished run (even without its resume state, as a finished
    # run is shipped) returns its final checkpoint untouched: nothing is trained again
    written, log = final.read_bytes(), (tmp_path / "metrics.jsonl").read_text()
    for name in ("last.safetensors", "last.optim.safetensors"):
        (tmp_path / name).unlink()
    assert train(longer, tmp_path, resume=True, progress=False) == final
    assert final.read_bytes() == written
    assert (tmp_path / "metrics.jsonl").read_text() == log
    with pytest.raises(InputError, match="differs in"):
        train(_small_cfg(omniglot_data_dir, iterations=4, seed=4), tmp_path, resume=True)


@pytest.mark.data
def test_a_checkpoint_and_an_optimiser_state_of_different_iterations_are_refused(
    tmp_path, omniglot_data_dir
):
    from repsim.errors import CheckpointError
    from repsim.train import train

    cfg = _small_cfg(omniglot_data_dir, iterations=4, save_every=1, val_tasks=0)
    train(cfg, tmp_path, progress=False, stop_at=1)
    optim = tmp_path / "last.optim.safetensors"
    at_one = optim.read_bytes()
    train(cfg, tmp_path, resume=True, progress=False, stop_at=2)
    optim.write_bytes(at_one)  # as if stopped between the two writes of the save at 2
    with pytest.raises(CheckpointError, match="optimiser state is of iteration 1"):
        train(cfg, tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("vmap", [False, True])
def test_task_by_task_backward_gives_the_summed_meta_gradient(vmap):
    from repsim.data import Task
    from repsim.train import TrainConfig, episodic_loss

    model = tiny_model()
    batch = Task(*tiny_tasks(tasks=3))
    cfg = TrainConfig(ways=3, inner_lr=0.5, inner_steps=2)
    loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train")
    loss, _ = episodic_loss(model, dict(model.named_parameters()), batch, loop, vmap)
    summed = torch.autograd.grad(loss, list(model.parameters()))
    model.zero_grad()
    streamed, _ = episodic_loss(
        model, dict(model.named_parameters()), batch, loop, vmap, backward=True
    )
    assert not streamed.requires_grad
    torch.testing.assert_close(streamed, loss.detach())
    for g, p in zip(summed, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)


def test_auto_vmap_batches_small_omniglot_tasks_and_loops_over_large_ones_on_cpu():
    from repsim.train import TrainConfig, use_vmap

    def cfg(**kw):
        return TrainConfig(**{"dataset": "omniglot", "device": "cpu", **kw})

    assert use_vmap(cfg(ways=5, shots=1))
    assert use_vmap(cfg(ways=10, shots=1))
    assert not use_vmap(cfg(ways=20, shots=1))  # the loop is faster and uses less memory
    assert not use_vmap(cfg(ways=5, shots=1, algorithm="anil"))
    assert not use_vmap(cfg(dataset="miniimagenet", ways=5, shots=1))
    assert use_vmap(cfg(ways=20, shots=1, vmap="on"))
