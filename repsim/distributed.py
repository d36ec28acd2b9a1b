"""Data-parallel meta-training over tasks with PyTorch's own runtime (``torchrun``).

``torchrun --nproc_per_node=P -m repsim train ...`` starts P processes; each reads
``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``) from its
environment. Rank ``r`` meta-trains on its contiguous share of every iteration's tasks
(:func:`rank_task_indices`), computes the mean query loss of those tasks and its meta-gradient,
and then ONE explicit all-reduce of a flat buffer (every parameter's gradient plus the logged
loss and accuracy) averages them over the P ranks (:func:`all_reduce_gradients`). Every rank
then takes the same optimizer step, so the update equals the single-process one up to float
rounding. ``DistributedDataParallel`` is not used: its gradient hooks do not compose with
second-order functional inner loops (pytorch#47562, pytorch#63812).

Backends: gloo on CPU, NCCL on CUDA (device ``cuda:LOCAL_RANK``). Normalisation statistics stay
per task (the transductive norm of ``repsim.models``); nothing is synchronised across ranks but
the one buffer, so never SyncBN.

Without ``torchrun`` (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) every function here is a no-op for
a world of one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from repsim.errors import InputError


@dataclass(frozen=True)
class World:
    """The process group as seen by this process."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"environment variable {name}={text!r} is not an integer; "
            "launch with torchrun, which sets it"
        ) from None


def world() -> World:
    """Size, rank and local rank of this process (a world of one without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_world_size(), dist.get_rank(), _env_int("LOCAL_RANK", 0))
    return World()


def is_main() -> bool:
    """True on rank 0, the only rank that writes checkpoints, metrics and the progress bar."""
    return world().rank == 0


def init_from_env(device: torch.device) -> World:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    ``device`` picks the backend: NCCL for CUDA, gloo otherwise. Does nothing when
    ``WORLD_SIZE`` is unset or 1, or when a process group already exists.
    """
    size = _env_int("WORLD_SIZE", 1)
    if size > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise InputError(
                "WORLD_SIZE > 1 but this torch build has no torch.distributed; "
                "run one process or install a torch with distributed support"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        dist.init_process_group(backend=backend)
    return world()


def device_for_rank(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA device without an index in a multi-process run."""
    w = world()
    if device.type == "cuda" and device.index is None and w.is_distributed:
        return torch.device("cuda", w.local_rank)
    return device


def rank_task_indices(iteration: int, meta_batch: int, w: World | None = None) -> range:
    """This rank's training task indices for 0-based ``iteration``.

    The iteration's tasks are ``iteration * meta_batch ... + meta_batch - 1`` (a pure function
    of the index, see ``repsim.data.TaskSampler``); rank ``r`` of ``P`` takes the contiguous
    ``r``-th share of ``meta_batch / P`` of them, so P ranks together run exactly the tasks of
    one process.
    """
    w = w or world()
    if meta_batch % w.size:
        raise InputError(
            f"meta_batch={meta_batch} does not divide among {w.size} processes; "
            f"use a meta_batch that is a multiple of {w.size} or change "
            "--nproc_per_node"
        )
    share = meta_batch // w.size
    start = iteration * meta_batch + w.rank * share
    return range(start, start + share)


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (one broadcast of a flat buffer)."""
    if not world().is_distributed:
        return
    tensors = [t for t in (*model.parameters(), *model.buffers())]
    if not tensors:
        return
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.broadcast(flat, src=0)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def all_reduce_gradients(
    model: nn.Module, extras: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Average every parameter's ``.grad`` (and ``extras``) over the ranks in ONE all-reduce.

    Each rank's gradient is that of the mean loss of its own tasks, so the average is the
    gradient of the mean over all of the iteration's tasks. ``extras`` is a small 1-D tensor of
    scalars to average along (the logged loss and accuracy); the averaged copy is returned.
    Parameters without a gradient count as zero and receive the average. A world of one returns
    ``extras`` untouched and communicates nothing.
    """
    if not world().is_distributed:
        return extras
    params = [p for p in model.parameters() if p.requires_grad]
    parts = [
        p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
        for p in params
    ]
    dtype = params[0].dtype if params else torch.float32
    if extras is not None:
        parts.append(extras.detach().reshape(-1).to(dtype))
    flat = torch.cat(parts)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world().size
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset : offset + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += n
    if extras is None:
        return None
    return flat[offset:].to(extras.dtype).view_as(extras)


def barrier() -> None:
    """Wait for every rank (a no-op in a world of one)."""
    if world().is_distributed:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if this process is in one (end of a ``torchrun`` command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
