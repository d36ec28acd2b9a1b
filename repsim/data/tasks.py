"""Episodic few-shot tasks: N-way K-shot support sets and Q-per-class query sets.

Every task is a pure function of ``(dataset, split, part, rotations, seed, index)``: its
random generator is ``np.random.default_rng([seed, index, stable_hash(dataset, split, part,
rotations)])``, never global state, so task 17 is the same in every process, worker and run,
and different split parts never share a stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from repsim.data.classes import ClassImages, stable_hash
from repsim.errors import InputError


@dataclass
class Task:
    """One task, or a batch of tasks with a leading ``[T]`` dimension.

    ``support_x``: float32 ``[N*K, C, H, W]`` (batch: ``[T, N*K, C, H, W]``), values in [0, 1]
    with strokes/foreground high; ``support_y``: int64 ``[N*K]`` labels ``0..N-1``;
    ``query_x``: ``[N*Q, C, H, W]``; ``query_y``: ``[N*Q]``. Which class gets which label, and
    the order of the examples, are random per task.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def to(self, device: torch.device | str) -> Task:
        """The same task with every tensor on ``device``."""
        return Task(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
        )

    @property
    def is_batch(self) -> bool:
        return self.support_x.dim() == 5

    def __len__(self) -> int:
        """Number of tasks in a batch (1 for a single task)."""
        return int(self.support_x.shape[0]) if self.is_batch else 1


def _check_positive(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class TaskSampler:
    """Samples N-way K-shot tasks with Q queries per class from ``classes``.

    ``task(i)`` picks ``ways`` distinct classes (their order gives the labels ``0..N-1``), then
    ``shots + queries`` distinct images of each class (the first ``shots`` are support), and
    shuffles the order of the support and of the query examples.

    ``rotate=True`` turns every image of a class in a task by the same random multiple of 90
    degrees (counter-clockwise), drawn per class per task after the other draws, as the original
    MAML code does for Omniglot at meta-training and at meta-testing. Without it the tasks are
    unchanged, image for image.
    """

    def __init__(
        self,
        classes: ClassImages,
        ways: int,
        shots: int,
        queries: int,
        seed: int = 0,
        rotate: bool = False,
    ) -> None:
        self.classes = classes
        self.ways = _check_positive("ways", ways)
        self.shots = _check_positive("shots", shots)
        self.queries = _check_positive("queries", queries, minimum=0)
        self.seed = _check_positive("seed", seed, minimum=0)
        self.rotate = bool(rotate)
        m = classes.meta
        if self.rotate and classes.images.shape[-1] != classes.images.shape[-2]:
            raise InputError(f"rotate needs square images, got {classes.images.shape[-2:]}")
        if self.ways > classes.n_classes:
            raise InputError(
                f"ways={self.ways} is more than the {classes.n_classes} classes of "
                f"{m.get('dataset', '?')} split {m.get('split', '?')}/{m.get('part', '?')}; "
                "use fewer ways or a larger split"
            )
        if self.shots + self.queries > classes.n_per_class:
            raise InputError(
                f"shots + queries = {self.shots} + {self.queries} needs that many distinct "
                f"images per class, but the classes of {m.get('dataset', '?')} have only "
                f"{classes.n_per_class}; use fewer shots or queries"
            )
        self._stream = stable_hash(
            m.get("dataset"), m.get("split"), m.get("part"), bool(m.get("rotations", False))
        )
        self._images = classes.images  # uint8 [n_classes, n_per_class, C, H, W]
        self.meta = {
            "ways": self.ways,
            "shots": self.shots,
            "queries": self.queries,
            "seed": self.seed,
            "rotate": self.rotate,
            **{k: v for k, v in m.items()},
        }

    def __repr__(self) -> str:
        return (
            f"TaskSampler({self.ways}-way {self.shots}-shot, {self.queries} queries, "
            f"seed={self.seed}{', rotate' if self.rotate else ''}, {self.classes!r})"
        )

    def _choose(self, index: int) -> tuple[np.ndarray, ...]:
        """Class ids ``[N]``, image ids ``[N, K+Q]``, the support / query orders of a task and
        the quarter turns ``[N]`` of each class (zeros unless ``rotate``)."""
        if isinstance(index, bool) or int(index) != index or index < 0:
            raise InputError(f"task index must be an integer >= 0, got {index!r}")
        rng = np.random.default_rng([self.seed, int(index), self._stream])
        n, k, q = self.ways, self.shots, self.queries
        cls = rng.choice(self.classes.n_classes, size=n, replace=False)
        # K+Q distinct images per class: the first K+Q of a random ordering of each row.
        img = np.argsort(rng.random((n, self.classes.n_per_class)), axis=1)[:, : k + q]
        s_perm, q_perm = rng.permutation(n * k), rng.permutation(n * q)
        turns = rng.integers(0, 4, size=n) if self.rotate else np.zeros(n, dtype=np.int64)
        return cls, img, s_perm, q_perm, turns

    def _assemble(self, indices: Sequence[int]) -> Task:
        """Tasks for ``indices`` stacked as ``[T, ...]``: one gather, one float conversion."""
        n, k, q = self.ways, self.shots, self.queries
        picks = [self._choose(i) for i in indices]
        cls = np.stack([p[0] for p in picks])  # [T, N]
        img = np.stack([p[1] for p in picks])  # [T, N, K+Q]
        x = self._images[cls[:, :, None], img]  # uint8 [T, N, K+Q, C, H, W], a copy
        for (ti, ci), turns in np.ndenumerate(np.stack([p[4] for p in picks])):
            if turns:
                x[ti, ci] = np.rot90(x[ti, ci], int(turns), axes=(-2, -1))
        t, shape = len(picks), x.shape[3:]
        # Reorder within the task: support = [:, :, :K] in its permuted order, likewise query.
        s_perm = np.stack([p[2] for p in picks])  # [T, N*K] positions in class-major order
        q_perm = np.stack([p[3] for p in picks])
        sup = x[:, :, :k].reshape(t, n * k, *shape)
        qry = x[:, :, k:].reshape(t, n * q, *shape)
        rows = np.arange(t)[:, None]
        sup, qry = sup[rows, s_perm], qry[rows, q_perm]
        s_lab = s_perm // k
        q_lab = q_perm // q if q else q_perm
        # One conversion of the gathered uint8 block to float in [0, 1].
        both = torch.from_numpy(np.concatenate([sup, qry], axis=1)).float().div_(255.0)
        return Task(
            both[:, : n * k],
            torch.from_numpy(s_lab.astype(np.int64)),
            both[:, n * k :],
            torch.from_numpy(q_lab.astype(np.int64)),
        )

    def task(self, index: int) -> Task:
        """Task ``index``: support ``[N*K, C, H, W]``, query ``[N*Q, C, H, W]``, labels int64."""
        b = self._assemble([index])
        return Task(b.support_x[0], b.support_y[0], b.query_x[0], b.query_y[0])

    def batch(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Task:
        """Tasks ``indices`` stacked: ``support_x [T, N*K, C, H, W]`` ..., on ``device``."""
        indices = list(indices)
        if not indices:
            raise InputError("batch needs at least one task index")
        out = self._assemble(indices)
        return out if str(device) == "cpu" else out.to(device)
