"""What ``repsim similarity`` and ``repsim compare`` share: loading a meta-learner (repsim's own
checkpoint or another library's) and choosing the tasks to run it on.

Tasks come from, in this order: ``--probe DIR_OR_NPZ`` (the user's own images), the real
dataset when ``--data-dir`` / ``$REPSIM_DATA`` names a folder that exists, else the small probe
set shipped with repsim (real Omniglot test-split images), so the commands run on a fresh
machine with no dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from repsim.errors import InputError


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        default="repsim",
        help="checkpoint format: 'repsim' (default), 'auto' (sniffed), or another library's "
        "(learn2learn, torchmeta, boil, mamlpp, higher, dragen1860, tf-maml), read by "
        "repsim.adapters",
    )
    parser.add_argument(
        "--inner-lr",
        type=float,
        default=None,
        help="inner-loop learning rate on the mean support loss (default: the checkpoint's, or "
        "the source library's documented default for --format)",
    )


def add_task_args(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    parser.add_argument(
        "--split", default=None, help="class split (default: the checkpoint's, else 'maml')"
    )
    parser.add_argument("--part", default="test", help="part of the split (default test)")
    parser.add_argument(
        "--probe",
        default=None,
        metavar="DIR_OR_NPZ",
        help="use your own images: a folder of class sub-folders of images, or "
        "an .npz like the shipped probe set",
    )
    parser.add_argument(
        "--invert",
        action="store_true",
        help="invert --probe images (dark strokes on white, like raw Omniglot PNGs)",
    )
    parser.add_argument("--tasks", type=int, default=20, help="number of test tasks (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="task sampling seed (default 0)")
    parser.add_argument("--ways", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--shots", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument(
        "--queries",
        type=int,
        default=None,
        help="query examples per class (default: the checkpoint's test queries)",
    )
    parser.add_argument(
        "--conv-mode",
        choices=("channels", "flatten"),
        default="channels",
        help="conv activations as (N*H*W, C) 'channels' (default, the paper's) "
        "or (N, C*H*W) 'flatten'",
    )


def add_analysis_args(parser: argparse.ArgumentParser, default_out: str) -> None:
    """What ``similarity`` and ``compare`` share: measures, tasks and checkpoint loading."""
    from repsim.commands._options import add_measures

    add_measures(parser)
    add_task_args(parser, default_out)
    add_checkpoint_args(parser)


@dataclass
class Analysis:
    """A command's opening, done once: the measures, a learner per checkpoint (each with its
    inner loop set up), and one task set for all of them."""

    measures: list[str]
    learners: list
    source: TaskSource


def open_analysis(
    args: argparse.Namespace, checkpoints: list[tuple[str | None, str]], inner_steps=None
) -> Analysis:
    """Parse ``--measures``, load every ``(path, format)`` in ``checkpoints`` and build the
    tasks once, from the first learner's settings. Every learner must take the same images."""
    measures = parse_measures(args.measures)
    learners = [
        load_learner(path, fmt, inner_steps, getattr(args, "inner_lr", None))
        for path, fmt in checkpoints
    ]
    shape = tuple(learners[0].input_shape)
    for (path, _), learner in zip(checkpoints[1:], learners[1:]):
        if tuple(learner.input_shape) != shape:
            raise InputError(
                f"{checkpoint_label(path)} takes images {tuple(learner.input_shape)}, "
                f"{checkpoint_label(checkpoints[0][0])} takes {shape}: analyse checkpoints of "
                "the same dataset together"
            )
    import torch

    torch.manual_seed(args.seed)
    return Analysis(measures, learners, build_tasks(args, learners[0].config, shape))


def parse_measures(text: str) -> list[str]:
    measures = [m.strip() for m in text.split(",") if m.strip()]
    if not measures:
        raise InputError("--measures is empty: give e.g. --measures cca,cka")
    from repsim.similarity import get_measure

    for m in measures:
        get_measure(m)  # an unknown name raises InputError listing the known ones
    return measures


def load_learner(
    path: str | Path | None,
    fmt: str = "repsim",
    inner_steps: int | None = None,
    inner_lr: float | None = None,
):
    """A :class:`repsim.protocol.MetaLearner` from ``path`` (default: the shipped checkpoint),
    through :func:`repsim.load`."""
    import repsim

    return repsim.load(path, format=fmt, inner_steps=inner_steps, inner_lr=inner_lr)


@dataclass
class TaskSource:
    """The tasks to analyse and a JSON-able record of where they came from."""

    tasks: list
    meta: dict = field(default_factory=dict)


def setting(config: dict, key: str, default=None):
    """A training setting of a learner's config: top level, else under ``"train"`` (repsim
    checkpoints keep algorithm, dataset, ways, shots, ... there)."""
    if config.get(key) is not None:
        return config[key]
    train = config.get("train")
    if isinstance(train, dict) and train.get(key) is not None:
        return train[key]
    return default


def _real_data_dir(data_dir: str | None) -> str | None:
    chosen = data_dir or os.environ.get("REPSIM_DATA")
    if data_dir and not Path(data_dir).expanduser().exists():
        raise InputError(
            f"--data-dir {data_dir} does not exist: give the folder that holds the "
            "dataset, or leave --data-dir out to use the shipped probe set"
        )
    if chosen and Path(chosen).expanduser().exists():
        return chosen
    return None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def load_probe(path: str | Path, image_shape=(1, 28, 28), invert: bool = False):
    """The user's probe images as :class:`repsim.data.ClassImages`.

    ``path``: an ``.npz`` like the shipped probe set, or a folder with one sub-folder of images
    per class. Images are converted to ``image_shape`` ``(C, H, W)`` (grey for C=1, RGB for
    C=3, resized with Lanczos); ``invert=True`` maps x -> 255 - x (dark strokes on a light
    background, like raw Omniglot PNGs, become the bright strokes repsim's models were trained
    on). Every class keeps as many images as the smallest class has (first in name order).
    """
    from repsim import data

    path = Path(path).expanduser()
    if path.is_file():
        classes = data.load_probe_classes(path)
        if invert:
            classes = data.ClassImages(255 - classes.images, classes.class_names, classes.meta)
        return classes
    if not path.is_dir():
        raise InputError(
            f"--probe {path} does not exist: give a folder of class sub-folders of "
            "images, or an .npz like repsim/assets/omniglot_probe.npz"
        )
    import numpy as np
    from PIL import Image

    c, h, w = image_shape
    if c not in (1, 3):
        raise InputError(f"probe images can be made grey (1) or RGB (3) channels, not {c}")
    folders = sorted(d for d in path.iterdir() if d.is_dir())
    files = {
        d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for d in folders
    }
    files = {name: fs for name, fs in files.items() if fs}
    if len(files) < 2:
        raise InputError(
            f"--probe {path} has {len(files)} class folder(s) with images "
            f"({', '.join(IMAGE_SUFFIXES)}): put each class's images in a sub-folder of its "
            "own, at least as many classes as ways"
        )
    per_class = min(len(fs) for fs in files.values())
    if any(len(fs) != per_class for fs in files.values()):
        print(
            f"note: probe classes have different numbers of images; using the first "
            f"{per_class} of each",
            file=sys.stderr,
        )
    mode = "L" if c == 1 else "RGB"
    images = np.empty((len(files), per_class, c, h, w), dtype=np.uint8)
    for i, fs in enumerate(files.values()):
        for j, f in enumerate(fs[:per_class]):
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert(mode).resize((w, h), Image.LANCZOS))
            except OSError as exc:
                from repsim.errors import CorruptDataError

                raise CorruptDataError(
                    f"cannot read probe image {f} ({exc}): fix or remove it"
                ) from exc
            images[i, j] = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    if invert:
        images = 255 - images
    meta = {
        "dataset": "probe",
        "split": "probe",
        "part": str(path),
        "probe_folder": str(path),
        "n_classes": len(files),
        "n_per_class": per_class,
        "inverted": invert,
    }
    return data.ClassImages(images, list(files), meta)


def build_tasks(
    args: argparse.Namespace, config: dict, image_shape: tuple[int, int, int] = (1, 28, 28)
) -> TaskSource:
    """``args.tasks`` tasks from the probe set or dataset (see the module docstring)."""
    from repsim import data

    if args.tasks < 1:
        raise InputError(f"--tasks must be at least 1, got {args.tasks}")
    dataset = setting(config, "dataset", "omniglot")
    split = args.split or setting(config, "split", "maml")
    ways = args.ways or int(setting(config, "ways", 5))
    shots = args.shots or int(setting(config, "shots", 1))
    queries = args.queries or int(setting(config, "test_queries") or setting(config, "queries", 15))
    classes, source = _task_classes(
        args, dataset, split, setting(config, "image_mode", "grey"), image_shape
    )
    available = classes.n_per_class - shots
    if available < 1:
        raise InputError(
            f"the images have {classes.n_per_class} per class, too few for {shots} shots plus "
            "queries: use fewer --shots or a larger set"
        )
    if queries > available:
        print(
            f"note: {classes.n_per_class} images per class: using {available} queries per "
            f"class instead of {queries}",
            file=sys.stderr,
        )
        queries = available
    if ways > classes.n_classes:
        raise InputError(
            f"{ways}-way tasks need {ways} classes, the images have "
            f"{classes.n_classes}: use --ways {classes.n_classes} or more classes"
        )
    rotate = bool(setting(config, "task_rotations", False))  # the protocol it was trained with
    sampler = data.TaskSampler(classes, ways, shots, queries, seed=args.seed, rotate=rotate)
    tasks = [sampler.task(i) for i in range(args.tasks)]
    meta = {**source, "ways": ways, "shots": shots, "queries": queries, "seed": args.seed}
    meta |= {"tasks": args.tasks, "sampler": sampler.meta}  # with the class set's provenance
    return TaskSource(tasks=tasks, meta=meta)


def _task_classes(args, dataset: str, split: str, image_mode: str, image_shape) -> tuple:
    """The classes the tasks come from, and where from: ``--probe``'s images, else the dataset
    (``--data-dir`` / ``$REPSIM_DATA``), else the shipped probe set (with a note)."""
    from repsim import data

    data_dir = _real_data_dir(args.data_dir)
    if args.probe:
        classes = load_probe(args.probe, image_shape, invert=args.invert)
        return classes, {"source": "probe", "probe": str(args.probe)}
    if data_dir is not None:
        classes = data.load_classes(
            dataset, split, args.part, data_dir, rotations=False, image_mode=image_mode
        )
        source = {"source": "dataset", "data_dir": str(data_dir), "dataset": dataset}
        return classes, source | {"split": split, "part": args.part, "image_mode": image_mode}
    print(
        "note: no dataset configured (--data-dir / $REPSIM_DATA); using the shipped probe "
        "set of Omniglot test-split images",
        file=sys.stderr,
    )
    return data.load_probe_classes(), {"source": "shipped probe set"}


def checkpoint_label(path: str | Path | None) -> str:
    """A short name for titles: the file name, with its run folder when the name alone says
    little (``maml_cpu_seed0/iter_000250.safetensors``)."""
    if path is None:
        from repsim import checkpoint

        path = checkpoint.DEFAULT_CHECKPOINT
    path = Path(path)
    if path.name.startswith(("iter_", "last", "final", "best")) and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


def checkpoint_identity(path, learner, fmt: str) -> dict:
    """What names a checkpoint in a result: its file name and content digest, never a path of
    this machine (``results.provenance`` makes the path portable)."""
    import hashlib

    if path is None:
        from repsim.checkpoint import DEFAULT_CHECKPOINT

        path = DEFAULT_CHECKPOINT
    file = Path(path)
    digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None
    config = {k: v for k, v in learner.config.items() if k != "checkpoint"}
    return {"name": file.name, "path": str(path), "sha256": digest, "format": fmt, "config": config}
