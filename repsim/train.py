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
(:mod:`repsim.objectives`), :class:`TrainRun` (everything built once from the config),
:func:`steps`, a loop that yields each iteration's statistics, and :func:`train`, a thin driver
over that loop: it logs (``_log_train``), validates (``_validation``) and saves (``_save``,
``_finish``; on a signal, ``_stopped``), each in a small function of its own; the run
folder's ``config.json`` and ``metrics.jsonl`` are kept by :mod:`repsim.run_log`, as for the
meta-RL trainer.

Determinism: the model's init is drawn from ``seed``; training task ``j`` of iteration ``i`` is
task ``i * meta_batch + j`` of the training sampler, a pure function of (split, seed, index).
So a resumed run needs no RNG state beyond the iteration number and repeats the uninterrupted
run's losses exactly (on the same device and thread count).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repsim.errors import CheckpointError, InputError
from repsim.objectives import OBJECTIVES, TrainingContext, episodic_loss, multiclass_batch
from repsim.progress import training_bar
from repsim.run_log import (
    MetricsLog,
    Stopped,
    check_same_run,
    due,
    finished_checkpoint,
    graceful_stop,
    read_metrics,
    restart_metrics,
    write_config,
)
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


@dataclass
class TrainRun:
    """What the loop and the driver need, built once from the config: the training context
    (the model, the training data and tasks, the inner loop, the device and the process group),
    the optimiser, the fixed validation tasks and the ``data`` section of every record."""

    ctx: TrainingContext
    optimizer: torch.optim.Optimizer
    val_sampler: object
    data: dict

    @property
    def cfg(self) -> TrainConfig:
        return self.ctx.cfg

    @property
    def model(self) -> torch.nn.Module:
        return self.ctx.model

    @property
    def main(self) -> bool:
        """Rank 0, the only one that validates, writes files and shows progress."""
        return self.ctx.world.rank == 0

    @classmethod
    def build(cls, cfg: TrainConfig) -> TrainRun:
        """The device and the process group (torchrun: data-parallel over tasks), the threads,
        then the seed, the data and the model, whose init is drawn from the seed."""
        from repsim import distributed
        from repsim.inner_loop import InnerLoop

        device = resolve_device(cfg.device)
        world = distributed.init_from_env(device)
        device = distributed.device_for_rank(device)
        if device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        train_classes, train_sampler, val_sampler, data = _data(cfg)
        model = _model(cfg, train_classes.n_classes).to(device)
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
        return cls(ctx, optimizer, val_sampler, data)


VAL_TASK_SEED = 1000
TRAIN_DATA_KEYS = (
    "dataset",
    "split",
    "part",
    "rotations",
    "n_classes",
    "source_digest",
    "image_mode",
)


def _data(cfg: TrainConfig) -> tuple:
    """The training classes and their task sampler, the sampler of the fixed validation tasks
    (the split's held-out part, seed :data:`VAL_TASK_SEED`) and the record's ``data`` section."""
    from repsim.data import TaskSampler, held_out_part, load_classes

    train_classes = load_classes(
        cfg.dataset, cfg.split, "train", cfg.data_dir, cfg.rotations, image_mode=cfg.image_mode
    )
    val_part = held_out_part(cfg.dataset, cfg.split, "val")
    val_classes = load_classes(
        cfg.dataset, cfg.split, val_part, cfg.data_dir, image_mode=cfg.image_mode
    )
    train_sampler = TaskSampler(
        train_classes, cfg.ways, cfg.shots, cfg.queries, cfg.seed, rotate=cfg.task_rotations
    )
    val_sampler = TaskSampler(
        val_classes,
        cfg.ways,
        cfg.shots,
        cfg.test_queries,
        seed=VAL_TASK_SEED,
        rotate=cfg.task_rotations,
    )
    data = {
        "train": {k: train_classes.meta.get(k) for k in TRAIN_DATA_KEYS},
        "val": {k: val_classes.meta.get(k) for k in ("dataset", "split", "part")},
        "val_task_seed": VAL_TASK_SEED,
    }
    return train_classes, train_sampler, val_sampler, data


def _model(cfg: TrainConfig, n_train_classes: int):
    """A fresh Conv4: an N-way head, or for ``multiclass`` one over every training class."""
    from repsim.models import Conv4, Conv4Config

    ways = n_train_classes if cfg.algorithm == "multiclass" else cfg.ways
    return Conv4(
        Conv4Config.for_dataset(
            cfg.dataset,
            ways,
            norm=cfg.norm,
            norm_affine=cfg.norm_affine,
            head_init=cfg.head_init,
            norm_eps=cfg.norm_eps,
            padding=cfg.padding,
        )
    )


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


_RESUME_FREE = {"iterations", "checkpoint_at", "data_dir", "device", "threads"}


def _as_trained(train: dict) -> dict:
    """A record's ``train`` section with the defaults of the keys an older record lacks."""
    return {**TrainConfig().to_dict(), **train}


def _check_resumable(cfg: TrainConfig, record: dict, out: Path, world) -> None:
    """Refuse to resume a run whose record differs from ``cfg`` in anything but its length
    (more iterations, more checkpoints along the way) and where it runs (data folder, device,
    threads, :func:`~repsim.run_log.check_same_run`); a key an older record lacks has the
    default it was trained with."""
    trained = _as_trained(record["train"])
    check_same_run(out, cfg.to_dict(), trained, int(record["iteration"]), _RESUME_FREE)
    if record.get("world_size", 1) != world.size:
        raise InputError(
            f"cannot resume {out}: it ran on {record.get('world_size', 1)} "
            f"processes, this run has {world.size}; resume with "
            f"--nproc_per_node={record.get('world_size', 1)}"
        )


def _resume(run: TrainRun, out: Path) -> int:
    """Load ``out/last.safetensors`` and the optimiser state beside it into ``run`` after
    checking that it is this run (:func:`_check_resumable`); returns its iteration."""
    from repsim import checkpoint as ckpt

    last = out / "last.safetensors"
    tensors, record = ckpt.read_checkpoint(last)
    _check_resumable(run.cfg, record, out, run.ctx.world)
    ckpt.load_state_strict(
        run.model, {k: v.to(run.ctx.device) for k, v in tensors.items()}, str(last)
    )
    saved = ckpt.load_optimizer(last, run.optimizer).get("iteration")
    if saved != record["iteration"]:  # stopped between the two writes of a save
        raise CheckpointError(
            f"cannot resume {out}: its optimiser state is of iteration {saved} and "
            f"{last.name} of iteration {record['iteration']} (the run was stopped while "
            "saving); continue from a copy of the run taken before, or start it again"
        )
    return int(record["iteration"])


class _RunningMean:
    """The sum of the yielded (loss, accuracy) since the last log line, kept on the device:
    the host reads it (one synchronisation) only when a log line or a checkpoint is due."""

    def __init__(self, device: torch.device):
        self.total, self.n = torch.zeros(2, dtype=torch.float64, device=device), 0

    def add(self, stats: torch.Tensor) -> None:
        self.total += stats.double()
        self.n += 1

    def read(self, it: int, cfg: TrainConfig, out: Path) -> tuple[float, float]:
        """The mean (loss, accuracy); a loss that is not finite stops the run."""
        loss, acc = (self.total / self.n).tolist()
        if not math.isfinite(loss):
            raise InputError(
                f"training diverged by iteration {it} (loss {loss}); lower "
                f"inner_lr ({cfg.inner_lr}) or outer_lr ({cfg.outer_lr}). The last "
                f"good checkpoint is {out / 'last.safetensors'}"
            )
        return loss, acc

    def reset(self) -> None:
        self.total.zero_()
        self.n = 0


def _validation(run: TrainRun) -> float:
    """:func:`validate` on ``cfg.val_tasks`` fixed validation tasks (multiclass: through a
    fresh N-way head, as evaluation sees it)."""
    run.model.eval()
    model = (
        _fresh_head_for_evaluation(run.model, run.cfg.ways).to(run.ctx.device)
        if run.cfg.algorithm == "multiclass"
        else run.model
    )
    return validate(model, run.val_sampler, run.cfg, run.cfg.val_tasks, run.ctx.device)


def _write_checkpoint(
    run: TrainRun, path: Path, iteration: int, val_acc, for_evaluation: bool = False
) -> None:
    """The model and its record at ``path``; ``for_evaluation`` gives a multiclass model the
    fresh N-way head that evaluation adapts."""
    from repsim import checkpoint as ckpt

    model = run.model
    if for_evaluation and run.cfg.algorithm == "multiclass":
        model = _fresh_head_for_evaluation(model, run.cfg.ways)
    record = _record(run.cfg, model, iteration, val_acc, run.data, run.ctx.device)
    ckpt.save_checkpoint(path, model, record)


def _save(run: TrainRun, out: Path, it: int, val_acc) -> None:
    """The checkpoints due after iteration ``it`` (rank 0 only): ``iter_XXXXXX`` at the
    ``checkpoint_at`` iterations, for evaluation, and ``last`` with the optimiser state
    beside it every ``save_every`` iterations and at the end."""
    cfg = run.cfg
    if not run.main:
        return
    if it in cfg.checkpoint_at:
        _write_checkpoint(run, out / f"iter_{it:06d}.safetensors", it, val_acc, for_evaluation=True)
    if due(it, cfg.save_every, cfg.iterations):
        _save_last(run, out, it, val_acc)


def _save_last(run: TrainRun, out: Path, it: int, val_acc) -> None:
    """``last.safetensors`` and the optimiser state beside it, at iteration ``it``."""
    from repsim import checkpoint as ckpt

    _write_checkpoint(run, out / "last.safetensors", it, val_acc)
    ckpt.save_optimizer(out / "last.safetensors", run.optimizer, {"iteration": it})


def _stopped(run: TrainRun, out: Path, it: int, val_acc, signum: int) -> Stopped:
    """The :class:`~repsim.run_log.Stopped` to raise after iteration ``it`` on a signal, once
    ``last.safetensors`` holds that iteration (saved here unless :func:`_save` just did)."""
    if run.main and not due(it, run.cfg.save_every, run.cfg.iterations):
        _save_last(run, out, it, val_acc)
    return Stopped(out / "last.safetensors", it, signum)


def _finish(run: TrainRun, out: Path, val_acc) -> Path:
    """``final.safetensors``, for evaluation (rank 0 only). Random features, which nothing
    trained or validated, get their validation here: an adapted head on the initial body."""
    cfg = run.cfg
    final = out / "final.safetensors"
    if not run.main:
        return final
    if cfg.algorithm == "random" and cfg.val_tasks:
        run.model.eval()
        anil = dataclasses.replace(cfg, algorithm="anil")
        val_acc = validate(run.model, run.val_sampler, anil, cfg.val_tasks, run.ctx.device)
    _write_checkpoint(run, final, cfg.iterations, val_acc, for_evaluation=True)
    return final


def _log_train(log: MetricsLog, bar, it: int, loss: float, acc: float, seconds: float, val_acc):
    """One training line of the log (the mean loss and accuracy since the last one) and the
    bar's postfix (with the last validation accuracy)."""
    log.write({"iteration": it, "loss": loss, "accuracy": acc, "seconds": seconds})
    val = "-" if val_acc is None else f"{val_acc:.3f}"
    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", val=val)


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
    ``resume=True`` then continues the run. A SIGINT or SIGTERM (single process) stops the run
    after the iteration it arrives in, saved, with :class:`~repsim.run_log.Stopped`
    (:func:`~repsim.run_log.graceful_stop`).
    """
    from repsim import distributed

    out = Path(out_dir)
    if resume and (final := finished_checkpoint(out, cfg.to_dict(), _as_trained, _RESUME_FREE)):
        return final  # nothing left to train
    out.mkdir(parents=True, exist_ok=True)
    run = TrainRun.build(cfg)
    if run.main:
        write_config(out, cfg)
    resumed = resume and (out / "last.safetensors").exists()
    start = _resume(run, out) if resumed else 0
    if run.main:
        restart_metrics(out / "metrics.jsonl", start if resumed else None)
    distributed.broadcast_parameters(run.model)
    val_acc, window, t0 = None, _RunningMean(run.ctx.device), time.perf_counter()
    desc = f"{cfg.algorithm} {cfg.dataset} {cfg.ways}-way"
    with (
        MetricsLog(out / "metrics.jsonl", run.main) as log,
        training_bar(cfg.iterations, start, desc, progress and run.main) as bar,
        graceful_stop(enabled=run.ctx.world.size == 1) as stop,
    ):
        for it, stats in steps(run.ctx, run.optimizer, start, cfg.iterations):
            bar.update(1)
            window.add(stats)
            logging = due(it, cfg.log_every, cfg.iterations)
            if logging or due(it, cfg.save_every, cfg.iterations) or it in cfg.checkpoint_at:
                loss, acc = window.read(it, cfg, out)  # checked before any checkpoint
            if logging:
                _log_train(log, bar, it, loss, acc, time.perf_counter() - t0, val_acc)
                window.reset()
            if run.main and cfg.val_tasks and due(it, cfg.val_every, cfg.iterations):
                val_acc = _validation(run)
                log.write({"iteration": it, "val_accuracy": val_acc})
            _save(run, out, it, val_acc)
            if stop.signum is not None:
                raise _stopped(run, out, it, val_acc, stop.signum)
            if stop_at is not None and it >= stop_at:
                distributed.barrier()
                return out / "last.safetensors"
    final = _finish(run, out, val_acc)
    distributed.barrier()  # the final checkpoint exists when any rank returns
    return final
