"""Meta-training: MAML, first-order MAML, ANIL (and BOIL), plus the paper's baseline regimes.

``train(TrainConfig(...), out_dir)`` writes into ``out_dir``:

- ``config.json``: the full configuration (config as artifact);
- ``metrics.jsonl``: one line per ``log_every`` iterations (training loss and accuracy) and per
  validation (accuracy on fixed validation tasks), for learning curves;
- ``iter_XXXXXX.safetensors`` at the iterations in ``checkpoint_at`` (Figure 3 of the paper);
- ``last.safetensors`` + ``last.optim.safetensors`` every ``save_every`` iterations, for
  ``resume=True``; ``final.safetensors`` at the end.

The layers, as in pytorch-maml's trainer: the configuration and presets
(:mod:`repsim.train_config`), one objective per regime with one signature
(:mod:`repsim.objectives`), :func:`steps`, a loop that yields each iteration's statistics, and
:func:`train`, a thin driver that logs, validates and saves.

Determinism: the model's init is drawn from ``seed``; training task ``j`` of iteration ``i`` is
task ``i * meta_batch + j`` of the training sampler, a pure function of (split, seed, index).
So a resumed run needs no RNG state beyond the iteration number and repeats the uninterrupted
run's losses exactly (on the same device and thread count).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from repsim.errors import InputError
from repsim.objectives import OBJECTIVES, TrainingContext, episodic_loss, multiclass_batch
from repsim.train_config import (
    ALGORITHMS,
    EPISODIC,
    PRESETS,
    TrainConfig,
    config_from_preset,
    resolve_device,
    use_vmap,
)

__all__ = [
    "ALGORITHMS",
    "EPISODIC",
    "PRESETS",
    "TrainConfig",
    "config_from_preset",
    "episodic_loss",
    "multiclass_batch",
    "read_metrics",
    "resolve_device",
    "steps",
    "train",
    "use_vmap",
    "validate",
]


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


def steps(ctx: TrainingContext, optimizer, start: int, stop: int) -> Iterator[tuple]:
    """Iterations ``start+1 .. stop``: each takes the regime's objective, averages the gradient
    and the (loss, accuracy) over data-parallel ranks in one all-reduce, steps the optimiser
    and yields ``(iteration, stats)`` (stats stays on the device until someone reads it)."""
    from repsim import distributed

    objective = OBJECTIVES[ctx.cfg.algorithm]
    for it in range(start + 1, stop + 1):
        if objective is None:  # random features: nothing to train
            return
        ctx.model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, acc = objective(ctx, it)
        stats = distributed.all_reduce_gradients(
            ctx.model, torch.stack([loss.detach(), acc.detach().to(loss.dtype)])
        )
        optimizer.step()
        yield it, stats


def _check_resumable(cfg: TrainConfig, record: dict, out: Path, world) -> None:
    """Refuse to resume a run whose record differs from ``cfg`` in anything but its length
    (more iterations, more checkpoints along the way) and where it runs (data folder, device,
    threads); a key an older record lacks has the default it was trained with."""
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
    from repsim.progress import shown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    world = distributed.init_from_env(device)  # torchrun: data-parallel over tasks
    device = distributed.device_for_rank(device)
    main = world.rank == 0  # only rank 0 writes files and shows progress
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    train_classes = load_classes(
        cfg.dataset, cfg.split, "train", cfg.data_dir, cfg.rotations, image_mode=cfg.image_mode
    )
    val_part = (
        "val" if cfg.split == "maml" else ("test" if cfg.split == "vinyals" else "evaluation")
    )
    val_classes = load_classes(
        cfg.dataset, cfg.split, val_part, cfg.data_dir, image_mode=cfg.image_mode
    )
    train_sampler = TaskSampler(
        train_classes, cfg.ways, cfg.shots, cfg.queries, cfg.seed, rotate=cfg.task_rotations
    )
    val_sampler = TaskSampler(
        val_classes, cfg.ways, cfg.shots, cfg.test_queries, seed=1000, rotate=cfg.task_rotations
    )
    split_meta = {
        "train": {
            k: train_classes.meta.get(k)
            for k in (
                "dataset",
                "split",
                "part",
                "rotations",
                "n_classes",
                "source_digest",
                "image_mode",
            )
        },
        "val": {k: val_classes.meta.get(k) for k in ("dataset", "split", "part")},
        "val_task_seed": 1000,
    }

    model_ways = train_classes.n_classes if cfg.algorithm == "multiclass" else cfg.ways
    model_cfg = Conv4Config.for_dataset(
        cfg.dataset,
        model_ways,
        norm=cfg.norm,
        norm_affine=cfg.norm_affine,
        head_init=cfg.head_init,
        norm_eps=cfg.norm_eps,
        padding=cfg.padding,
    )
    model = Conv4(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.outer_lr)
    ctx = TrainingContext(
        cfg=cfg,
        model=model,
        classes=train_classes,
        sampler=train_sampler,
        loop=InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train"),
        vmap=use_vmap(cfg),
        world=world,
        device=device,
    )
    if main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))

    start = 0
    metrics_path = out / "metrics.jsonl"
    if resume and (out / "last.safetensors").exists():
        tensors, record = ckpt.read_checkpoint(out / "last.safetensors")
        _check_resumable(cfg, record, out, world)
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

    def validation() -> float:
        model.eval()
        eval_model = (
            _fresh_head_for_evaluation(model, cfg.ways).to(device)
            if cfg.algorithm == "multiclass"
            else model
        )
        return validate(eval_model, val_sampler, cfg, cfg.val_tasks, device)

    val_acc = None
    log = open(metrics_path, "a") if main else open(os.devnull, "w")
    run, n_run, t0 = torch.zeros(2, dtype=torch.float64, device=device), 0, time.perf_counter()
    bar = tqdm(
        total=cfg.iterations,
        initial=start,
        disable=not shown(progress and main),  # a terminal only: logs get no bar
        dynamic_ncols=True,
        desc=f"{cfg.algorithm} {cfg.dataset} {cfg.ways}-way",
    )
    try:
        for it, stats in steps(ctx, optimizer, start, cfg.iterations):
            bar.update(1)
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
                val_acc = validation()
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
        model.eval()
        anil = dataclasses.replace(cfg, algorithm="anil")  # random features, an adapted head
        val_acc = validate(model, val_sampler, anil, cfg.val_tasks, device)
    final = out / "final.safetensors"
    save(final, cfg.iterations, val_acc, final=True)
    distributed.barrier()  # the final checkpoint exists when any rank returns
    return final


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` learning-curve log."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
