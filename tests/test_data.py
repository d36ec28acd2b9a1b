"""Real Omniglot: counts, splits, task determinism and shapes, corrupt and missing data.

Skipped (with the reason) when the Omniglot folder is absent: ``$REPSIM_DATA``, else
``<repo>/../shared/data/omniglot``. The decoded cache is built once per session under
``<repo>/.cache/test-data`` (gitignored), so only the first run pays the ~10 s decode.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from repsim.data import TaskSampler, load_classes
from repsim.data.omniglot import SPLITS, decode_drawing, load_all
from repsim.errors import CorruptDataError, DataNotFoundError, InputError

REPO = Path(__file__).resolve().parent.parent
OMNIGLOT = Path(os.environ.get("REPSIM_DATA") or REPO.parent / "shared" / "data" / "omniglot")
HAVE_DATA = (OMNIGLOT / "images_background.zip").is_file() or (
    OMNIGLOT / "images_background"
).is_dir()

needs_data = pytest.mark.skipif(
    not HAVE_DATA,
    reason=f"real Omniglot not found at {OMNIGLOT} (set REPSIM_DATA to the folder that holds "
    "images_background.zip and images_evaluation.zip)",
)
pytestmark = [pytest.mark.data, needs_data]


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    return REPO / ".cache" / "test-data"


@pytest.fixture(scope="module")
def all_chars(cache_dir):
    built, prov = load_all(OMNIGLOT, cache_dir)
    return built, prov


def load(split, part, cache_dir, **kw):
    return load_classes("omniglot", split, part, data_dir=OMNIGLOT, cache_dir=cache_dir, **kw)


def test_counts_and_verification(all_chars):
    built, prov = all_chars
    names = built["class_names"]
    assert built["images"].shape == (1623, 20, 28, 28)
    assert built["images"].dtype == np.uint8
    assert len(set(names)) == 1623
    assert len({n.split("/")[1] for n in names}) == 50
    assert prov["verified"] is True
    assert prov["members_digest"]["images_background"].startswith("deaa02f7")


def test_images_are_strokes_high(cache_dir):
    c = load("maml", "val", cache_dir)
    x = TaskSampler(c, 5, 1, 2, seed=0).task(0).support_x
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) == 1.0
    ink = float(c.images.astype(np.float64).mean() / 255)
    assert 0.02 < ink < 0.3, ink  # strokes are a small part of the picture
    border = np.concatenate([c.images[..., 0, :].ravel(), c.images[..., -1, :].ravel()])
    assert border.mean() < c.images.mean()  # background (edges) is dark


@pytest.mark.parametrize(
    ("split", "sizes"),
    [
        ("maml", {"train": 1100, "val": 100, "test": 423}),
        ("vinyals", {"train": 1200, "test": 423}),
        ("background", {"background": 964, "evaluation": 659}),
    ],
)
def test_split_sizes_and_disjoint(split, sizes, cache_dir):
    assert tuple(sizes) == SPLITS[split]
    parts = {p: load(split, p, cache_dir) for p in sizes}
    seen: set[str] = set()
    for p, c in parts.items():
        assert c.n_classes == sizes[p] == c.meta["n_classes"]
        assert c.images.shape[1:] == (20, 1, 28, 28)
        assert c.meta["split"] == split and c.meta["part"] == p
        assert not seen & set(c.class_names), f"{split}/{p} shares classes with another part"
        seen |= set(c.class_names)
    assert len(seen) == 1623


def test_vinyals_test_is_maml_test(cache_dir):
    assert (
        load("vinyals", "test", cache_dir).class_names
        == load("maml", "test", cache_dir).class_names
    )


def test_background_split_follows_folders(cache_dir):
    c = load("background", "evaluation", cache_dir)
    assert all(n.startswith("images_evaluation/") for n in c.class_names)


def test_rotations_are_extra_classes(cache_dir):
    plain = load("maml", "val", cache_dir)
    rot = load("maml", "val", cache_dir, rotations=True)
    assert rot.n_classes == 4 * plain.n_classes
    np.testing.assert_array_equal(rot.images[:100], plain.images)
    np.testing.assert_array_equal(rot.images[100], np.rot90(plain.images[0], 1, axes=(-2, -1)))
    assert rot.class_names[100] == plain.class_names[0] + "/rot90"
    assert rot.class_names[300] == plain.class_names[0] + "/rot270"


def test_same_seed_and_index_same_task(cache_dir):
    c = load("maml", "train", cache_dir)
    a, b = TaskSampler(c, 5, 1, 15, seed=7), TaskSampler(c, 5, 1, 15, seed=7)
    t1, t2 = a.task(3), b.task(3)
    for f in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(t1, f), getattr(t2, f))
    assert not torch.equal(t1.support_x, a.task(4).support_x)
    assert not torch.equal(t1.support_x, TaskSampler(c, 5, 1, 15, seed=8).task(3).support_x)


def test_task_shapes_and_labels(cache_dir):
    c = load("maml", "test", cache_dir)
    n, k, q = 20, 5, 15
    s = TaskSampler(c, n, k, q, seed=0)
    for i in range(3):
        t = s.task(i)
        assert t.support_x.shape == (n * k, 1, 28, 28)
        assert t.query_x.shape == (n * q, 1, 28, 28)
        assert t.support_y.dtype == torch.int64
        assert torch.equal(torch.bincount(t.support_y, minlength=n), torch.full((n,), k))
        assert torch.equal(torch.bincount(t.query_y, minlength=n), torch.full((n,), q))
    b = s.batch([0, 1, 2, 3])
    assert b.support_x.shape == (4, n * k, 1, 28, 28) and b.query_y.shape == (4, n * q)
    assert torch.equal(b.query_x[2], s.task(2).query_x)
    assert s.meta["ways"] == n and s.meta["split"] == "maml" and s.meta["part"] == "test"


def test_support_and_query_images_are_distinct_drawings(cache_dir):
    c = load("maml", "test", cache_dir)
    t = TaskSampler(c, 5, 5, 15, seed=1).task(0)
    for label in range(5):
        sup = t.support_x[t.support_y == label].reshape(5, -1)
        qry = t.query_x[t.query_y == label].reshape(15, -1)
        both = torch.cat([sup, qry])
        # 20 picks of 20 drawings without replacement: every drawing once.
        assert len({tuple(r.tolist()) for r in both}) >= 19  # Braille 0192_03 == 0192_19


def test_too_many_ways_or_shots(cache_dir):
    c = load("maml", "val", cache_dir)
    with pytest.raises(InputError, match="101 is more than the 100 classes"):
        TaskSampler(c, 101, 1, 1)
    with pytest.raises(InputError, match="only 20"):
        TaskSampler(c, 5, 10, 11)


def test_unknown_split_or_part(cache_dir):
    with pytest.raises(InputError, match="valid splits: maml, vinyals, background"):
        load("lake", "train", cache_dir)
    with pytest.raises(InputError, match="valid parts: train, val, test"):
        load("maml", "evaluation", cache_dir)
    with pytest.raises(InputError, match="valid datasets"):
        load_classes("cifar")


def test_truncated_zip(tmp_path, cache_dir):
    shutil.copy(OMNIGLOT / "images_evaluation.zip", tmp_path / "images_evaluation.zip")
    data = (OMNIGLOT / "images_background.zip").read_bytes()
    (tmp_path / "images_background.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match="images_background.zip is not a readable zip"):
        load_classes(data_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_missing_data_says_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_classes(data_dir=tmp_path / "nowhere", cache_dir=tmp_path)
    msg = str(err.value)
    for needed in ("images_background.zip", "REPSIM_DATA", "--data-dir", "repsim data download"):
        assert needed in msg
    shutil.copy(OMNIGLOT / "images_background.zip", tmp_path / "images_background.zip")
    with pytest.raises(DataNotFoundError, match="images_evaluation.zip"):
        load_classes(data_dir=tmp_path, cache_dir=tmp_path)


def test_corrupt_image_bytes():
    png = (OMNIGLOT / "LICENSE").read_bytes()  # not an image at all
    with pytest.raises(CorruptDataError, match="x.png: cannot decode"):
        decode_drawing(png, "x.png")


def test_binary_images_are_the_original_codes_strokes_and_cached_apart(cache_dir):
    grey = load("maml", "test", cache_dir)
    binary = load("maml", "test", cache_dir, image_mode="binary")
    g, b = np.asarray(grey.images[:40], np.float64), np.asarray(binary.images[:40], np.float64)
    assert set(np.unique(b)) == {0.0, 255.0}  # nearest-neighbour of a mode-"1" image
    assert np.unique(g).size > 100  # Lanczos grey levels
    assert np.corrcoef(g.ravel(), b.ravel())[0, 1] > 0.8  # the same strokes
    assert grey.class_names == binary.class_names
    assert binary.meta["image_mode"] == "binary" and grey.meta["image_mode"] == "grey"
    assert binary.meta["cache_file"] != grey.meta["cache_file"]
    with pytest.raises(InputError, match="image mode"):
        load("maml", "test", cache_dir, image_mode="sepia")
