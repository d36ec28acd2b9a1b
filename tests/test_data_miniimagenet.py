"""MiniImageNet readers on a small synthetic fixture written in both common layouts."""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repsim.data import TaskSampler, load_classes
from repsim.errors import CorruptDataError, DataNotFoundError, InputError

N_CLASSES, N_PER_CLASS = 5, 20
pytestmark = pytest.mark.filterwarnings("ignore:MiniImageNet .* has:UserWarning")


def _fake_images(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """uint8 [N_CLASSES * N_PER_CLASS, 84, 84, 3] with a per-class tint, and their labels."""
    rng = np.random.default_rng(seed)
    labels = [f"n0{1000 + c}" for c in range(N_CLASSES)]
    x = rng.integers(0, 256, size=(N_CLASSES * N_PER_CLASS, 84, 84, 3), dtype=np.uint8)
    return x, [labels[i // N_PER_CLASS] for i in range(len(x))]


def write_csv_layout(folder: Path, part: str = "train", order_seed: int = 1) -> None:
    """``images/*.png`` + ``<part>.csv`` (filename,label) in a shuffled row order."""
    x, labels = _fake_images()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (img, lab) in enumerate(zip(x, labels)):
        name = f"{lab}{i:08d}.png"  # lossless, so both layouts hold identical pixels
        Image.fromarray(img).save(folder / "images" / name)
        rows.append((name, lab))
    # Interleave classes but keep each class's images in index order.
    perm = np.random.default_rng(order_seed).permutation(len(rows))
    by_class = {lab: [r for r in rows if r[1] == lab] for lab in sorted(set(labels))}
    order = [by_class[rows[i][1]].pop(0) for i in perm]
    with open(folder / f"{part}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "label"])
        w.writerows(order)


def write_pickle_layout(folder: Path, part: str = "train", protocol: int = 4) -> None:
    """``mini-imagenet-cache-<part>.pkl``: {'image_data': [n,84,84,3], 'class_dict': ...}."""
    x, labels = _fake_images()
    class_dict: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        class_dict.setdefault(lab, []).append(i)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"mini-imagenet-cache-{part}.pkl", "wb") as fh:
        pickle.dump({"image_data": x, "class_dict": class_dict}, fh, protocol=protocol)


def _load(folder: Path, cache: Path, part: str = "train"):
    return load_classes("miniimagenet", "maml", part, data_dir=folder, cache_dir=cache)


def test_both_layouts_give_identical_tasks(tmp_path):
    write_csv_layout(tmp_path / "a")
    write_pickle_layout(tmp_path / "b")
    a, b = _load(tmp_path / "a", tmp_path / "ca"), _load(tmp_path / "b", tmp_path / "cb")
    assert a.images.shape == (N_CLASSES, N_PER_CLASS, 3, 84, 84)
    assert a.class_names == b.class_names
    np.testing.assert_array_equal(a.images, b.images)
    assert a.meta["source_kind"] == "csv" and b.meta["source_kind"] == "pickle"
    assert a.meta["images_per_class_found"] == {"min": N_PER_CLASS, "max": N_PER_CLASS}
    sa, sb = TaskSampler(a, 3, 2, 4, seed=5), TaskSampler(b, 3, 2, 4, seed=5)
    for i in range(3):
        ta, tb = sa.task(i), sb.task(i)
        assert ta.support_x.shape == (6, 3, 84, 84) and ta.query_x.shape == (12, 3, 84, 84)
        assert torch.equal(ta.support_x, tb.support_x) and torch.equal(ta.query_y, tb.query_y)


def test_pixels_and_class_order_match_the_source(tmp_path):
    write_pickle_layout(tmp_path, protocol=2)  # protocol 2 stores bytes via _codecs.encode
    c = _load(tmp_path, tmp_path / "cache")
    x, labels = _fake_images()
    np.testing.assert_array_equal(c.images[1, 3], x[N_PER_CLASS + 3].transpose(2, 0, 1))
    assert c.class_names == sorted(set(labels))


def test_cache_is_reused_and_rebuilt_when_stale(tmp_path):
    write_pickle_layout(tmp_path)
    first = _load(tmp_path, tmp_path / "cache")
    assert _load(tmp_path, tmp_path / "cache").meta["cache_file"] == first.meta["cache_file"]
    pkl = tmp_path / "mini-imagenet-cache-train.pkl"
    os.utime(pkl, ns=(0, 10**9))  # the source changed (here: its time stamp)
    assert _load(tmp_path, tmp_path / "cache").meta["cache_key"] != first.meta["cache_key"]


def test_fewer_images_in_one_class_are_cut_and_recorded(tmp_path):
    x, labels = _fake_images()
    class_dict: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        class_dict.setdefault(lab, []).append(i)
    class_dict[labels[0]] = class_dict[labels[0]][:12]
    with open(tmp_path / "mini-imagenet-cache-val.pkl", "wb") as fh:
        pickle.dump({"image_data": x, "class_dict": class_dict}, fh)
    c = _load(tmp_path, tmp_path / "cache", part="val")
    assert c.n_per_class == 12
    assert c.meta["images_per_class_found"] == {"min": 12, "max": N_PER_CLASS}
    with pytest.raises(InputError, match="only 12"):
        TaskSampler(c, 5, 5, 8)


def test_other_sizes_are_resized(tmp_path):
    write_csv_layout(tmp_path)
    first = sorted((tmp_path / "images").iterdir())[0]
    Image.new("RGB", (120, 100), (10, 200, 30)).save(first)
    c = _load(tmp_path, tmp_path / "cache")
    assert c.images.shape[-2:] == (84, 84)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    with open(tmp_path / "mini-imagenet-cache-train.pkl", "wb") as fh:
        pickle.dump({"image_data": _Evil(), "class_dict": {}}, fh)
    with pytest.raises(CorruptDataError, match="refusing to load global"):
        _load(tmp_path, tmp_path / "cache")


def test_missing_and_unknown(tmp_path):
    with pytest.raises(DataNotFoundError, match="train.csv.*mini-imagenet-cache-train.pkl"):
        _load(tmp_path, tmp_path / "cache")
    with pytest.raises(InputError, match="valid parts: train, val, test"):
        load_classes("miniimagenet", "ravi", "background", data_dir=tmp_path)
    with pytest.raises(InputError, match="valid splits"):
        load_classes("miniimagenet", "vinyals", "train", data_dir=tmp_path)


def test_corrupt_image(tmp_path):
    write_csv_layout(tmp_path)
    first = sorted((tmp_path / "images").iterdir())[0]
    first.write_bytes(first.read_bytes()[:100])
    with pytest.raises(CorruptDataError, match=f"{first.name}: cannot decode"):
        _load(tmp_path, tmp_path / "cache")
