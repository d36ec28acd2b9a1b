"""MiniImageNet (Vinyals et al., 2016) in Ravi & Larochelle's (2017) split, supplied by the user.

Ravi & Larochelle's split has 64 train / 16 val / 20 test classes of 600 images; MAML uses it.
Two common layouts are read (``<data_dir>`` or ``<data_dir>/miniimagenet``):

1. CSV: ``images/<file>.jpg`` with ``train.csv`` / ``val.csv`` / ``test.csv`` (header
   ``filename,label``). Images are converted to RGB and resized to 84x84 with Lanczos when
   they are another size (as MAML's ``proc_images.py`` does).
2. Pickles: ``mini-imagenet-cache-{train,val,test}.pkl``, each a dict with ``image_data``
   uint8 ``[n, 84, 84, 3]`` and ``class_dict`` ``{label: [indices]}``, loaded with a
   numpy-only unpickler (:mod:`repsim.data.safe_pickle`; it never executes arbitrary code).

Classes are sorted by label; images keep their order in the CSV / index list, so both layouts
give identical arrays and tasks. Classes with fewer than 600 images are accepted: every class
is cut to the smallest count and the counts found are recorded in ``meta``.

Cache: ``<cache>/miniimagenet/miniimagenet84-<part>-<key>.npy`` (uint8
``[n_classes, n_per_class, 3, 84, 84]``, memory-mapped on load) plus a ``.json`` of the class
names; the key hashes the path, size and modification time of every source file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from repsim.data.classes import ClassImages
from repsim.data.locations import DATA_ENV, cache_root, data_root, dataset_folder
from repsim.errors import CorruptDataError, DataNotFoundError, InputError
from repsim.results import atomic_write

IMAGE_SIZE = 84
PARTS = ("train", "val", "test")
SPLITS = {"ravi": PARTS, "maml": PARTS}  # "maml" = the Ravi & Larochelle split MAML used
EXPECTED_CLASSES = {"train": 64, "val": 16, "test": 20}
EXPECTED_PER_CLASS = 600
CACHE_FORMAT = 1

MISSING_HELP = (
    "MiniImageNet is not downloaded by repsim. Put either images/ (all .jpg files) with "
    "train.csv, val.csv and test.csv (Ravi & Larochelle's split, columns filename,label), or "
    "mini-imagenet-cache-train.pkl, -val.pkl and -test.pkl, in one folder and pass it with "
    f"--data-dir DIR (Python: data_dir=DIR) or set {DATA_ENV}=DIR."
)


def _pickle_path(folder: Path, part: str) -> Path:
    return folder / f"mini-imagenet-cache-{part}.pkl"


def _layout(folder: Path, part: str) -> str | None:
    if (folder / f"{part}.csv").is_file() and (folder / "images").is_dir():
        return "csv"
    if _pickle_path(folder, part).is_file():
        return "pickle"
    return None


def check_split(split: str, part: str) -> None:
    """InputError for an unknown split or part, listing the valid ones."""
    if split not in SPLITS:
        raise InputError(
            f"unknown MiniImageNet split {split!r}; valid splits: {', '.join(SPLITS)} "
            f"(both are Ravi & Larochelle's, parts {', '.join(PARTS)})"
        )
    if part not in SPLITS[split]:
        raise InputError(
            f"unknown part {part!r} of MiniImageNet split {split!r}; valid parts: "
            f"{', '.join(PARTS)}"
        )


def find_folder(data_dir: str | Path | None, part: str) -> tuple[Path, str]:
    """The folder holding ``part`` and its layout ("csv" or "pickle")."""
    root, how = data_root("miniimagenet", data_dir)
    folder = dataset_folder(root, "miniimagenet", lambda f: _layout(f, part) is not None)
    layout = _layout(folder, part)
    if layout is None:
        raise DataNotFoundError(
            f"MiniImageNet part {part!r} not found in {folder} (data folder from {how}): "
            f"neither {part}.csv + images/ nor {_pickle_path(folder, part).name} exists. "
            + MISSING_HELP
        )
    return folder, layout


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptDataError(f"{path}: cannot read this CSV ({exc})") from exc
    if not rows or [c.strip() for c in rows[0][:2]] != ["filename", "label"]:
        raise CorruptDataError(f"{path}: expected the header 'filename,label'")
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise CorruptDataError(f"{path}: line {i} has no label: {row!r}")
        out.append((row[0].strip(), row[1].strip()))
    return out


def _content_key(folder: Path, layout: str, part: str) -> str:
    h = hashlib.sha256(f"miniimagenet-v{CACHE_FORMAT} {layout} {part} {IMAGE_SIZE}\n".encode())
    files = (
        [folder / f"{part}.csv"]
        + [folder / "images" / f for f, _ in _read_csv(folder / f"{part}.csv")]
        if layout == "csv"
        else [_pickle_path(folder, part)]
    )
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:
            raise DataNotFoundError(
                f"MiniImageNet image {f} is missing ({exc}). {MISSING_HELP}"
            ) from exc
        h.update(f"{f.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load_image(path: Path) -> np.ndarray:
    """An RGB image as uint8 ``[84, 84, 3]``, Lanczos-resized when it is another size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"MiniImageNet image {path} is missing. {MISSING_HELP}") from exc
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        raise CorruptDataError(f"{path}: cannot decode the image ({exc})") from exc


def _groups_to_array(
    groups: dict[str, list], get, where: Path
) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """``{label: [item]}`` -> uint8 ``[n_classes, min_count, 3, 84, 84]``, labels, counts."""
    if not groups:
        raise CorruptDataError(f"{where}: no classes found")
    labels = sorted(groups)
    counts = {lab: len(groups[lab]) for lab in labels}
    m = min(counts.values())
    if m == 0:
        empty = [lab for lab in labels if counts[lab] == 0]
        raise CorruptDataError(f"{where}: classes without images: {empty[:5]}")
    out = np.empty((len(labels), m, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for ci, lab in enumerate(labels):
        for j, item in enumerate(groups[lab][:m]):
            out[ci, j] = get(item).transpose(2, 0, 1)
    return out, labels, counts


def _build_csv(folder: Path, part: str):
    groups: dict[str, list[str]] = {}
    for fname, label in _read_csv(folder / f"{part}.csv"):
        groups.setdefault(label, []).append(fname)
    return _groups_to_array(groups, lambda f: _load_image(folder / "images" / f), folder)


def _build_pickle(folder: Path, part: str):
    from repsim.data.safe_pickle import load_numpy_pickle

    path = _pickle_path(folder, part)
    obj = load_numpy_pickle(path)
    if not isinstance(obj, dict) or "image_data" not in obj or "class_dict" not in obj:
        raise CorruptDataError(f"{path}: expected a dict with 'image_data' and 'class_dict'")
    data = np.asarray(obj["image_data"])
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (84, 84, 3):
        raise CorruptDataError(
            f"{path}: image_data should be uint8 [n, 84, 84, 3], got {data.dtype} {data.shape}"
        )
    groups = {str(k): [int(i) for i in v] for k, v in obj["class_dict"].items()}
    bad = [i for v in groups.values() for i in v if not 0 <= i < len(data)]
    if bad:
        raise CorruptDataError(f"{path}: class_dict indexes images that do not exist: {bad[:5]}")
    return _groups_to_array(groups, lambda i: data[i], path)


def load_miniimagenet(
    split: str = "ravi",
    part: str = "train",
    data_dir: str | Path | None = None,
    rotations: bool = False,
    cache_dir: str | Path | None = None,
) -> ClassImages:
    """One MiniImageNet part as uint8 ``[n_classes, n_per_class, 3, 84, 84]`` (memory-mapped)."""
    check_split(split, part)
    if rotations:
        raise InputError("rotations are an Omniglot augmentation; MiniImageNet has none")
    folder, layout = find_folder(data_dir, part)
    key = _content_key(folder, layout, part)
    base = cache_root(cache_dir) / "miniimagenet" / f"miniimagenet{IMAGE_SIZE}-{part}-{key[:24]}"
    npy, sidecar = base.with_suffix(".npy"), base.with_suffix(".json")
    info = None
    if npy.is_file() and sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
            images = np.load(npy, mmap_mode="r")
            if info.get("cache_key") != key or images.shape[0] != len(info["class_names"]):
                info = None
        except (OSError, ValueError, KeyError):
            info = None
    if info is None:
        build = _build_csv if layout == "csv" else _build_pickle
        arr, labels, counts = build(folder, part)
        info = {"cache_key": key, "class_names": labels, "counts": counts}
        atomic_write(npy, lambda fh: np.save(fh, arr))
        atomic_write(sidecar, lambda fh: fh.write(json.dumps(info).encode()))
        images = np.load(npy, mmap_mode="r")
    counts = info["counts"]
    if len(counts) != EXPECTED_CLASSES[part] or set(counts.values()) != {EXPECTED_PER_CLASS}:
        warnings.warn(
            f"MiniImageNet {part} in {folder} has {len(counts)} classes with "
            f"{min(counts.values())}..{max(counts.values())} images each; Ravi & Larochelle's "
            f"has {EXPECTED_CLASSES[part]} x {EXPECTED_PER_CLASS}",
            stacklevel=2,
        )
    meta = {
        "dataset": "miniimagenet",
        "split": "ravi",
        "part": part,
        "rotations": False,
        "n_classes": len(info["class_names"]),
        "n_per_class": int(images.shape[1]),
        "images_per_class_found": {"min": min(counts.values()), "max": max(counts.values())},
        "image_shape": [3, IMAGE_SIZE, IMAGE_SIZE],
        "source": str(folder),
        "source_kind": layout,
        "cache_key": key,
        "cache_file": str(npy),
    }
    return ClassImages(images, list(info["class_names"]), meta)
