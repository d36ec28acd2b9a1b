"""One training objective per regime, all with one signature.

``objective(ctx, iteration) -> (loss, accuracy)``: the mean training loss (detached) and
accuracy of one iteration's batch, with its gradient already accumulated into the model's
``.grad``. :data:`OBJECTIVES` maps each algorithm to its objective (Table 5 of the paper):

- ``maml`` / ``fomaml`` / ``anil`` / ``boil``: episodic meta-learning through one
  :class:`~repsim.inner_loop.InnerLoop` (a different set of adapted parameters each);
- ``multiclass``: supervised classification over all training classes (one big head);
- ``multitask``: episodic labels, one shared N-way head, no inner loop;
- ``nil``: NIL training, queries classified by cosine similarity to the support features;
- ``random``: no training at all (no objective).

Training task ``j`` of iteration ``i`` is task ``i * meta_batch + j`` of the training sampler
(split over data-parallel ranks), so every batch is a pure function of the iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repsim.train_config import TrainConfig


@dataclass
class TrainingContext:
    """What every objective reads: the configuration, the model, the data and the inner loop."""

    cfg: TrainConfig
    model: nn.Module
    classes: object  # ClassImages of the training split
    sampler: object  # TaskSampler over ``classes``
    loop: object  # InnerLoop (training phase)
    vmap: bool
    world: object  # repsim.distributed.World
    device: torch.device

    def batch(self, iteration: int):
        """This rank's tasks of ``iteration`` (1-based), stacked ``[T, ...]`` on the device."""
        from repsim import distributed

        tasks = distributed.rank_task_indices(iteration - 1, self.cfg.meta_batch, self.world)
        return self.sampler.batch(tasks, self.device)


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


def _backward(loss: torch.Tensor, acc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss.backward()
    return loss.detach(), acc.detach()


def episodic(ctx: TrainingContext, iteration: int):
    """MAML, FOMAML, ANIL, BOIL: the query loss after the inner loop (task by task backward)."""
    params = dict(ctx.model.named_parameters())
    return episodic_loss(ctx.model, params, ctx.batch(iteration), ctx.loop, ctx.vmap, True)


def multitask(ctx: TrainingContext, iteration: int):
    """No inner loop: one shared N-way head on episodic labels (support and query)."""
    batch = ctx.batch(iteration)
    total, acc = 0.0, 0.0
    for t in range(len(batch)):
        x = torch.cat([batch.support_x[t], batch.query_x[t]])
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        logits = ctx.model(x)
        total = total + F.cross_entropy(logits, y)
        acc = acc + (logits.argmax(-1) == y).float().mean()
    return _backward(total / len(batch), acc / len(batch))


def nil_training(ctx: TrainingContext, iteration: int):
    """NIL training: queries classified by cosine similarity to support features, with the
    softmax temperature ``cfg.nil_train_scale``."""
    from repsim.nil import nil_probabilities

    batch = ctx.batch(iteration)
    total, acc = 0.0, 0.0
    for t in range(len(batch)):
        fs = ctx.model(batch.support_x[t], stage="body")
        fq = ctx.model(batch.query_x[t], stage="body")
        probs = nil_probabilities(fs, batch.support_y[t], fq, ctx.cfg.ways, ctx.cfg.nil_train_scale)
        total = total + F.nll_loss(torch.log(probs + 1e-8), batch.query_y[t])
        acc = acc + (probs.argmax(-1) == batch.query_y[t]).float().mean()
    return _backward(total / len(batch), acc / len(batch))


def multiclass_batch(classes, iteration: int, seed: int, batch_size: int, device):
    """A supervised minibatch over all training classes, a pure function of (seed, iteration)."""
    rng = np.random.default_rng([seed, iteration, 7919])
    c = rng.integers(0, classes.n_classes, size=batch_size)
    i = rng.integers(0, classes.n_per_class, size=batch_size)
    x = torch.from_numpy(classes.images[c, i].astype(np.float32) / 255.0).to(device)
    return x, torch.from_numpy(c).long().to(device)


def multiclass(ctx: TrainingContext, iteration: int):
    """Supervised classification over all training classes (one big head)."""
    cfg = ctx.cfg
    x, y = multiclass_batch(ctx.classes, iteration, cfg.seed, cfg.multiclass_batch, ctx.device)
    logits = ctx.model(x)
    return _backward(F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean())


Objective = Callable[[TrainingContext, int], tuple[torch.Tensor, torch.Tensor]]

OBJECTIVES: dict[str, Objective | None] = {
    "maml": episodic,
    "fomaml": episodic,
    "anil": episodic,
    "boil": episodic,
    "multitask": multitask,
    "nil": nil_training,
    "multiclass": multiclass,
    "random": None,  # random features: nothing to train
}
