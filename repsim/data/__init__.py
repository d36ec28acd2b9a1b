"""Few-shot data: real Omniglot / MiniImageNet classes and episodic tasks.

- :func:`load_classes` -> :class:`ClassImages` (uint8 ``[n_classes, n_per_class, C, H, W]``);
- :class:`TaskSampler` (``classes, ways, shots, queries, seed``) -> :class:`Task` (float
  support / query tensors, labels ``0..N-1``), each task a pure function of its index;
- :func:`held_out_part`: the part of a split that validates or tests;
- :func:`load_probe_classes`: 20 real Omniglot test characters shipped with repsim.
"""

from __future__ import annotations

from pathlib import Path

from repsim.data.classes import ClassImages, stable_hash, with_rotations
from repsim.data.probe import load_probe_classes
from repsim.data.tasks import Task, TaskSampler

DATASETS = ("omniglot", "miniimagenet")

__all__ = [
    "DATASETS",
    "ClassImages",
    "Task",
    "TaskSampler",
    "held_out_part",
    "load_classes",
    "load_probe_classes",
    "stable_hash",
    "with_rotations",
]


def held_out_part(dataset: str, split: str, role: str) -> str:
    """The part of ``split`` that serves as its validation (``role="val"``) or test
    (``role="test"``) classes: the middle of three parts (``val``) or the last part.

    Omniglot: ``maml`` -> ``val`` / ``test``, ``vinyals`` -> ``test`` / ``test``,
    ``background`` -> ``evaluation`` / ``evaluation``; MiniImageNet -> ``val`` / ``test``.
    An unknown dataset or split gives ``role`` itself, for :func:`load_classes` to reject
    with the valid names.
    """
    if role not in ("val", "test"):
        raise ValueError(f"role must be 'val' or 'test', not {role!r}")
    if dataset == "omniglot":
        from repsim.data.omniglot import SPLITS
    elif dataset == "miniimagenet":
        from repsim.data.miniimagenet import SPLITS
    else:
        return role
    parts = SPLITS.get(split)
    if parts is None:
        return role
    return parts[1] if role == "val" and len(parts) > 2 else parts[-1]


def load_classes(
    dataset: str = "omniglot",
    split: str = "maml",
    part: str = "train",
    data_dir: str | Path | None = None,
    rotations: bool = False,
    cache_dir: str | Path | None = None,
    image_mode: str = "grey",
) -> ClassImages:
    """The images of one split part of a dataset, grouped by class.

    ``dataset="omniglot"``: splits ``maml`` (train/val/test = 1,100/100/423 characters),
    ``vinyals`` (train/test = 1,200/423) and ``background`` (background/evaluation = 964/659);
    uint8 ``[n, 20, 1, 28, 28]``, strokes 255. ``rotations=True`` adds 90/180/270-degree
    copies as extra classes (4x). ``image_mode``: ``"grey"`` (Lanczos grey levels) or
    ``"binary"`` (the original code's nearest-neighbour strokes); see
    :mod:`repsim.data.omniglot`.
    ``dataset="miniimagenet"`` (user-supplied): split ``maml`` = ``ravi`` (Ravi & Larochelle's
    64/16/20 classes), uint8 ``[n, 600, 3, 84, 84]``, memory-mapped.
    Data from ``data_dir``, else ``$REPSIM_DATA``; decoded once
    into a cache under ``cache_dir``, else ``$REPSIM_CACHE``, else ``~/.cache/repsim``.
    """
    from repsim.errors import InputError

    if dataset == "omniglot":
        from repsim.data.omniglot import load_omniglot

        return load_omniglot(split, part, data_dir, rotations, cache_dir, image_mode)
    if dataset == "miniimagenet":
        if image_mode != "grey":
            raise InputError(f"image_mode {image_mode!r} is for Omniglot; MiniImageNet has none")
        from repsim.data.miniimagenet import load_miniimagenet

        return load_miniimagenet(split, part, data_dir, rotations, cache_dir)
    raise InputError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}")
