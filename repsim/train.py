"""Meta-training: MAML, first-order MAML, ANIL (and BOIL), plus the paper's baseline regimes.

``train(TrainConfig(...), out_dir)`` writes into ``out_dir``:

- ``config.json``: the full configuration (config as artifact);
- ``metrics.jsonl``: one line per ``log_every`` iterations (training loss and accuracy) and per
  validation (accuracy on fixed validation tasks), for learning curves;
- ``iter_XXXXXX.safetensors`` at the iterations in ``checkpoint_at`` (Figure 3 of the paper);
- ``last.safetensors`` + ``last.optim.safetensors`` every ``save_every`` iterations, for
  ``resume=True``; ``final.safetensors`` at the end.

Determinism: the model's init is drawn from ``seed``; training task ``j`` of iteration ``i`` is
task ``i * meta_batch + j`` of the training sampler, a pure function of (split, seed, index).
So a resumed run needs no RNG state beyond the iteration number and repeats the uninterrupted
run's losses exactly (on the same device and thread count).

Threads: on CPU ``threads`` defaults to 1. With 2 cores and another busy process, a
second-order MAML step measured 12x slower with 2 torch threads than with 1; on an idle
many-core machine raise it with ``--threads``.

Regimes (Table 5 of the paper):

- ``maml`` / ``fomaml`` / ``anil`` / ``boil``: episodic meta-learning, one inner loop
  (``repsim.inner_loop``) with a different set of adapted parameters;
- ``multiclass``: supervised classification over all training classes (one big head), then the
  head is replaced by a zero N-way head that evaluation adapts;
- ``multitask``: episodic labels, one shared N-way head, no inner loop;
- ``nil``: NIL training, cosine-similarity classification of queries against supports;
- ``random``: no training at all (random features).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repsim.errors import InputError

EPISODIC = ("maml", "fomaml", "anil", "boil")
ALGORITHMS = (*EPISODIC, "multiclass", "multitask", "nil", "random")


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint it writes."""

    algorithm: str = "maml"
    dataset: str = "omniglot"
    split: str = "maml"
    rotations: bool = False  # 90/180/270-degree copies as extra training classes
    task_rotations: bool = False  # each class of a task turned by k*90 deg, train and test
    ways: int = 5
    shots: int = 1
    queries: int = 5  # per class, training tasks
    test_queries: int = 15  # per class, validation / evaluation tasks
    inner_lr: float = 2.0  # on the mean cross-entropy; = N * the paper's alpha
    inner_steps: int = 5
    test_inner_steps: int = 10
    meta_batch: int = 16
    outer_lr: float = 1e-3
    iterations: int = 2000
    seed: int = 0
    norm: str = "transductive"
    norm_affine: str = "full"  # "full": norm scale and shift; "beta": shift only
    head_init: str = "xavier"  # "xavier" or "normal" (N(0, 1), the original Omniglot code)
    nil_train_scale: float = 1.0  # softmax temperature of NIL training (the paper states none)
    multiclass_batch: int = 64
    val_every: int = 250
    val_tasks: int = 100
    log_every: int = 10
    save_every: int = 250
    checkpoint_at: list[int] = field(default_factory=list)
    device: str = "auto"
    threads: int = 1
    vmap: str = "auto"  # auto | on | off
    data_dir: str | None = None

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"unknown algorithm {self.algorithm!r}; use one of {ALGORITHMS}")
        if self.vmap not in ("auto", "on", "off"):
            raise InputError(f"vmap must be auto, on or off, got {self.vmap!r}")
        for name in (
            "ways",
            "shots",
            "meta_batch",
            "iterations",
            "threads",
            "log_every",
            "save_every",
            "val_every",
        ):
            if getattr(self, name) < (0 if name == "iterations" else 1):
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def first_order(self) -> bool:
        return self.algorithm == "fomaml"

    def to_dict(self) -> dict:
        """The stored record: every field but ``data_dir`` (a path of this machine; the record's
        ``data`` section identifies the data by dataset, split and content digest)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "data_dir"}
        d["first_order"] = self.first_order
        return d


# The paper's settings (Finn et al. 2017 as used by Raghu et al. 2020), with inner_lr on the mean
# cross-entropy (N * alpha), and a CPU preset that trains a good model on 2 cores.
PRESETS: dict[str, dict] = {
    "omniglot-5way": dict(
        dataset="omniglot",
        ways=5,
        shots=1,
        queries=1,
        meta_batch=32,
        inner_lr=2.0,
        inner_steps=5,
        test_inner_steps=10,
        outer_lr=1e-3,
        iterations=60000,
    ),
    "omniglot-20way": dict(
        dataset="omniglot",
        ways=20,
        shots=1,
        queries=1,
        meta_batch=16,
        inner_lr=2.0,
        inner_steps=5,
        test_inner_steps=10,
        outer_lr=1e-3,
        iterations=60000,
    ),
    "miniimagenet-5way": dict(
        dataset="miniimagenet",
        ways=5,
        shots=1,
        queries=15,
        meta_batch=4,
        inner_lr=0.05,
        inner_steps=5,
        test_inner_steps=10,
        outer_lr=1e-3,
        iterations=60000,
    ),
    # The original code's Omniglot protocol (Finn et al.'s code as used by Raghu et al.): N(0, 1)
    # head, shift-only norm, every class of a task turned by a random multiple of 90 degrees at
    # training and at test, 5 inner steps in training and 10 at test, Adam 1e-3, one query per
    # class, alpha = 0.4 (5-way) / 0.1 (20-way) mapped to the mean loss (inner_lr = N * alpha).
    # One deviation: the 'maml' split keeps 100 of the 1,200 training characters for validation.
    "paper-omniglot-5way": dict(
        dataset="omniglot",
        ways=5,
        shots=1,
        queries=1,
        meta_batch=32,
        inner_lr=2.0,
        inner_steps=5,
        test_inner_steps=10,
        outer_lr=1e-3,
        iterations=60000,
        head_init="normal",
        norm_affine="beta",
        task_rotations=True,
    ),
    "paper-omniglot-20way": dict(
        dataset="omniglot",
        ways=20,
        shots=1,
        queries=1,
        meta_batch=16,
        inner_lr=2.0,
        inner_steps=5,
        test_inner_steps=10,
        outer_lr=1e-3,
        iterations=60000,
        head_init="normal",
        norm_affine="beta",
        task_rotations=True,
    ),
    "cpu": dict(
        dataset="omniglot",
        ways=5,
        shots=1,
        queries=5,
        meta_batch=16,
        inner_lr=2.0,
        inner_steps=2,
        test_inner_steps=10,
        outer_lr=2e-3,
        iterations=2000,
    ),
}


def config_from_preset(preset: str | None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a preset name and explicit overrides (``None`` = unset)."""
    base: dict = {}
    if preset:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        base.update(PRESETS[preset])
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but torch sees no CUDA device; use cpu")
    return torch.device(device)


def use_vmap(cfg: TrainConfig) -> bool:
    """vmap over tasks. ``auto``: on for Omniglot with algorithms that adapt the body (measured
    1.5x faster than the loop on CPU at 5-way), off for MiniImageNet (measured slower, and more
    memory), for ANIL (its loop runs the body once per task) and for running-statistics norm
    (stateful). See analysis/bench_engine.py and analysis/bench_gpu.py."""
    if cfg.vmap == "on":
        if cfg.norm != "transductive":
            raise InputError("vmap needs norm='transductive' (running statistics are stateful)")
        return True
    if cfg.vmap == "off":
        return False
    return (
        cfg.norm == "transductive"
        and cfg.algorithm in ("maml", "fomaml", "boil")
        and cfg.dataset == "omniglot"
    )


# --- objectives -------------------------------------------------------------------------------


def episodic_loss(model, params, batch, loop, vmap: bool, backward: bool = False):
    """Mean query loss and accuracy over a batch of tasks ``[T, ...]`` after the inner loop
    ``loop`` (a :class:`repsim.inner_loop.InnerLoop`).

    ``backward=True`` also accumulates the meta-gradient into ``.grad`` and returns the loss
    detached. On the loop path each task is back-propagated as soon as its loss exists, so only
    one task's second-order graph is alive at a time (several times less memory than summing
    the losses first; the gradient is the same up to float summation order).
    """
    if vmap:
        losses, logits = loop.batched_query_losses(
            model, params, batch.support_x, batch.support_y, batch.query_x, batch.query_y
        )
        loss = losses.mean()
        if backward:
            loss.backward()
            loss = loss.detach()
        return loss, (logits.argmax(-1) == batch.query_y).float().mean().detach()
    total, acc = 0.0, 0.0
    n = len(batch)
    for t in range(n):
        loss, logits = loop.query_loss(
            model,
            params,
            batch.support_x[t],
            batch.support_y[t],
            batch.query_x[t],
            batch.query_y[t],
        )
        if backward:
            (loss / n).backward()
            loss = loss.detach()
        total = total + loss
        acc = acc + (logits.argmax(-1) == batch.query_y[t]).float().mean().detach()  # no sync
    return total / n, acc / n


def multitask_loss(model, batch):
    """No inner loop: one shared N-way head on episodic labels (support and query)."""
    total, acc = 0.0, 0.0
    for t in range(len(batch)):
        x = torch.cat([batch.support_x[t], batch.query_x[t]])
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        logits = model(x)
        total = total + F.cross_entropy(logits, y)
        acc = acc + (logits.argmax(-1) == y).float().mean()
    return total / len(batch), acc / len(batch)


def nil_training_loss(model, batch, ways: int, scale: float):
    """NIL training: queries classified by cosine similarity to support features."""
    from repsim.nil import nil_probabilities

    total, acc = 0.0, 0.0
    for t in range(len(batch)):
        fs = model(batch.support_x[t], stage="body")
        fq = model(batch.query_x[t], stage="body")
        probs = nil_probabilities(fs, batch.support_y[t], fq, ways, scale)
        total = total + F.nll_loss(torch.log(probs + 1e-8), batch.query_y[t])
        acc = acc + (probs.argmax(-1) == batch.query_y[t]).float().mean()
    return total / len(batch), acc / len(batch)


def multiclass_batch(classes, iteration: int, seed: int, batch_size: int, device):
    """A supervised minibatch over all training classes, a pure function of (seed, iteration)."""
    rng = np.random.default_rng([seed, iteration, 7919])
    c = rng.integers(0, classes.n_classes, size=batch_size)
    i = rng.integers(0, classes.n_per_class, size=batch_size)
    x = torch.from_numpy(classes.images[c, i].astype(np.float32) / 255.0).to(device)
    return x, torch.from_numpy(c).long().to(device)


# --- validation -------------------------------------------------------------------------------


def validate(model, sampler, cfg: TrainConfig, n_tasks: int, device) -> float:
    """Mean query accuracy on the fixed tasks ``0..n_tasks-1`` of the validation sampler."""
    from repsim.evaluate import task_accuracy
    from repsim.inner_loop import InnerLoop

    head = "nil" if cfg.algorithm in ("nil",) else "adapt"
    loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="test")
    params = {n: p.detach() for n, p in model.named_parameters()}
    accs = [
        task_accuracy(model, params, sampler.task(i).to(device), loop, head) for i in range(n_tasks)
    ]
    return float(np.mean(accs))


# --- the loop ---------------------------------------------------------------------------------


def _fresh_head_for_evaluation(model, ways: int):
    """Replace a multiclass head by a zero N-way head (adapted at evaluation)."""
    from torch import nn

    from repsim.models import Conv4

    cfg = dataclasses.replace(model.config, ways=ways)
    out = Conv4(cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    out.load_state_dict({**out.state_dict(), **state})
    nn.init.zeros_(out.head.weight)
    nn.init.zeros_(out.head.bias)
    return out


def _record(
    cfg: TrainConfig, model, iteration: int, val_acc, split_meta: dict, device: torch.device
) -> dict:
    from repsim.distributed import world
    from repsim.provenance import code_version, now_utc

    trained_on = {"type": device.type}
    if device.type == "cuda":
        trained_on["name"] = torch.cuda.get_device_name(device)
    return {
        "device": trained_on,
        "model": {"arch": "conv4", **model.config.to_dict()},
        "train": cfg.to_dict(),
        "world_size": world().size,
        "iteration": iteration,
        "val_accuracy": val_acc,
        "data": split_meta,
        "code_version": code_version(),
        "created": now_utc(),
    }


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Run ``cfg`` and return the path of the final checkpoint (``out_dir/final.safetensors``).

    ``stop_at=k`` stops after iteration ``k`` as if the process were killed there (after the
    checkpoint of that iteration, if one is due) and returns ``out_dir/last.safetensors``;
    ``resume=True`` then continues the run.
    """
    from tqdm.auto import tqdm

    from repsim import checkpoint as ckpt
    from repsim import distributed
    from repsim.data import TaskSampler, load_classes
    from repsim.inner_loop import InnerLoop
    from repsim.models import Conv4, Conv4Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    world = distributed.init_from_env(device)  # torchrun: data-parallel over tasks
    device = distributed.device_for_rank(device)
    main = world.rank == 0  # only rank 0 writes files and shows progress
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    train_classes = load_classes(cfg.dataset, cfg.split, "train", cfg.data_dir, cfg.rotations)
    val_part = (
        "val" if cfg.split == "maml" else ("test" if cfg.split == "vinyals" else "evaluation")
    )
    val_classes = load_classes(cfg.dataset, cfg.split, val_part, cfg.data_dir)
    train_sampler = TaskSampler(
        train_classes, cfg.ways, cfg.shots, cfg.queries, cfg.seed, rotate=cfg.task_rotations
    )
    val_sampler = TaskSampler(
        val_classes, cfg.ways, cfg.shots, cfg.test_queries, seed=1000, rotate=cfg.task_rotations
    )
    split_meta = {
        "train": {
            k: train_classes.meta.get(k)
            for k in ("dataset", "split", "part", "rotations", "n_classes", "source_digest")
        },
        "val": {k: val_classes.meta.get(k) for k in ("dataset", "split", "part")},
        "val_task_seed": 1000,
    }

    model_ways = train_classes.n_classes if cfg.algorithm == "multiclass" else cfg.ways
    model_cfg = Conv4Config.for_dataset(
        cfg.dataset, model_ways, norm=cfg.norm, norm_affine=cfg.norm_affine, head_init=cfg.head_init
    )
    model = Conv4(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.outer_lr)
    loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train")
    vmap = use_vmap(cfg)
    if main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))

    start = 0
    metrics_path = out / "metrics.jsonl"
    if resume and (out / "last.safetensors").exists():
        tensors, record = ckpt.read_checkpoint(out / "last.safetensors")
        # a run may be extended (more iterations, more checkpoints along the way) and moved
        # (another data folder, device or thread count); a key an older record lacks has the
        # default it was trained with
        free = {"iterations", "checkpoint_at", "data_dir", "device", "threads"}
        before = {**TrainConfig().to_dict(), **record["train"]}
        diff = {
            k: (before.get(k), v)
            for k, v in cfg.to_dict().items()
            if before.get(k) != v and k not in free
        }
        if diff:
            raise InputError(f"cannot resume {out}: its config differs in {diff}")
        if cfg.iterations < int(record["iteration"]):
            raise InputError(
                f"cannot resume {out} at iteration {record['iteration']} with --iterations "
                f"{cfg.iterations}: it is already past that; give a larger --iterations"
            )
        if record.get("world_size", 1) != world.size:
            raise InputError(
                f"cannot resume {out}: it ran on {record.get('world_size', 1)} "
                f"processes, this run has {world.size}; resume with "
                f"--nproc_per_node={record.get('world_size', 1)}"
            )
        ckpt.load_state_strict(
            model, {k: v.to(device) for k, v in tensors.items()}, str(out / "last.safetensors")
        )
        ckpt.load_optimizer(out / "last.safetensors", optimizer)
        start = int(record["iteration"])
        if main and metrics_path.exists():  # drop log lines written after the checkpoint
            lines = [
                ln
                for ln in metrics_path.read_text().splitlines()
                if ln and json.loads(ln)["iteration"] <= start
            ]
            metrics_path.write_text("".join(ln + "\n" for ln in lines))
    elif main and metrics_path.exists():
        metrics_path.unlink()
    distributed.broadcast_parameters(model)

    def save(path: Path, iteration: int, val_acc, final: bool = False):
        if not main:
            return
        m = (
            _fresh_head_for_evaluation(model, cfg.ways)
            if (final and cfg.algorithm == "multiclass")
            else model
        )
        ckpt.save_checkpoint(path, m, _record(cfg, m, iteration, val_acc, split_meta, device))

    val_acc = None
    log = open(metrics_path, "a") if main else open(os.devnull, "w")
    run, n_run, t0 = torch.zeros(2, dtype=torch.float64, device=device), 0, time.perf_counter()
    bar = tqdm(
        range(start + 1, cfg.iterations + 1),
        initial=start,
        total=cfg.iterations,
        disable=not (progress and main),
        dynamic_ncols=True,
        desc=f"{cfg.algorithm} {cfg.dataset} {cfg.ways}-way",
    )
    try:
        for it in bar:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            tasks = distributed.rank_task_indices(it - 1, cfg.meta_batch, world)
            if cfg.algorithm in EPISODIC:  # back-propagates task by task (see episodic_loss)
                batch = train_sampler.batch(tasks, device)
                params = dict(model.named_parameters())
                loss, acc = episodic_loss(model, params, batch, loop, vmap, backward=True)
            elif cfg.algorithm == "multitask":
                batch = train_sampler.batch(tasks, device)
                loss, acc = multitask_loss(model, batch)
            elif cfg.algorithm == "nil":
                batch = train_sampler.batch(tasks, device)
                loss, acc = nil_training_loss(model, batch, cfg.ways, cfg.nil_train_scale)
            elif cfg.algorithm == "multiclass":
                x, y = multiclass_batch(train_classes, it, cfg.seed, cfg.multiclass_batch, device)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                acc = (logits.argmax(-1) == y).float().mean()
            else:  # random: no training
                break
            if loss.requires_grad:
                loss.backward()
            # One all-reduce: meta-gradients plus (loss, accuracy) averaged over ranks.
            stats = distributed.all_reduce_gradients(
                model, torch.stack([loss.detach(), acc.detach().to(loss.dtype)])
            )
            optimizer.step()
            run += stats.double()  # on-device; the host reads it only at log / save time
            n_run += 1
            logging = it % cfg.log_every == 0 or it == cfg.iterations
            if logging or it % cfg.save_every == 0 or it in cfg.checkpoint_at:
                mean_loss, mean_acc = (run / n_run).tolist()
                if not math.isfinite(mean_loss):
                    raise InputError(
                        f"training diverged by iteration {it} (loss {mean_loss}); lower "
                        f"inner_lr ({cfg.inner_lr}) or outer_lr ({cfg.outer_lr}). The last "
                        f"good checkpoint is {out / 'last.safetensors'}"
                    )
            if logging:
                row = {
                    "iteration": it,
                    "loss": mean_loss,
                    "accuracy": mean_acc,
                    "seconds": time.perf_counter() - t0,
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(
                    loss=f"{row['loss']:.3f}",
                    acc=f"{row['accuracy']:.3f}",
                    val="-" if val_acc is None else f"{val_acc:.3f}",
                )
                run.zero_()
                n_run = 0
            if main and cfg.val_tasks and (it % cfg.val_every == 0 or it == cfg.iterations):
                model.eval()
                eval_model = (
                    _fresh_head_for_evaluation(model, cfg.ways).to(device)
                    if cfg.algorithm == "multiclass"
                    else model
                )
                val_acc = validate(eval_model, val_sampler, cfg, cfg.val_tasks, device)
                log.write(json.dumps({"iteration": it, "val_accuracy": val_acc}) + "\n")
                log.flush()
            if it in cfg.checkpoint_at:
                save(out / f"iter_{it:06d}.safetensors", it, val_acc, final=True)
            if it % cfg.save_every == 0 or it == cfg.iterations:
                save(out / "last.safetensors", it, val_acc)
                if main:
                    ckpt.save_optimizer(out / "last.safetensors", optimizer, {"iteration": it})
            if stop_at is not None and it >= stop_at:
                distributed.barrier()
                return out / "last.safetensors"
    finally:
        bar.close()
        log.close()
    if main and cfg.algorithm == "random" and cfg.val_tasks:
        val_acc = validate(
            model.eval(),
            val_sampler,
            dataclasses.replace(cfg, algorithm="anil"),
            cfg.val_tasks,
            device,
        )
    final = out / "final.safetensors"
    save(final, cfg.iterations, val_acc, final=True)
    distributed.barrier()  # the final checkpoint exists when any rank returns
    return final


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` learning-curve log."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
