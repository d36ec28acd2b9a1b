"""The Omniglot probe set shipped in repsim/assets (usable without the dataset)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from repsim.data import TaskSampler, load_classes, load_probe_classes
from repsim.data.probe import PROBE_PATH
from repsim.errors import CorruptDataError

REPO = Path(__file__).resolve().parent.parent
OMNIGLOT = Path(os.environ.get("REPSIM_DATA") or REPO.parent / "shared" / "data" / "omniglot")
HAVE_DATA = (OMNIGLOT / "images_background.zip").is_file() or (
    OMNIGLOT / "images_background"
).is_dir()


def test_probe_set_loads_and_samples():
    c = load_probe_classes()
    assert c.images.shape == (20, 20, 1, 28, 28) and c.images.dtype == np.uint8
    assert c.meta["probe_set"] is True and c.meta["part"] == "test"
    assert len(set(c.class_names)) == 20
    assert PROBE_PATH.stat().st_size < 300_000
    assert "Copyright (c) 2015 Brenden Lake" in (PROBE_PATH.parent / "OMNIGLOT_LICENSE").read_text()
    t = TaskSampler(c, 20, 1, 5, seed=0).task(0)
    assert t.support_x.shape == (20, 1, 28, 28) and float(t.query_x.max()) == 1.0
    assert torch.equal(torch.bincount(t.query_y), torch.full((20,), 5))


@pytest.mark.data
@pytest.mark.skipif(not HAVE_DATA, reason=f"real Omniglot not found at {OMNIGLOT}")
def test_probe_set_is_the_first_maml_test_characters():
    c = load_classes(
        "omniglot", "maml", "test", data_dir=OMNIGLOT, cache_dir=REPO / ".cache" / "test-data"
    )
    p = load_probe_classes()
    assert p.class_names == c.class_names[:20]
    np.testing.assert_array_equal(p.images, c.images[:20])
    assert p.meta["source_digest"] == c.meta["source_digest"]


def test_user_npz_without_names_or_info(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(3, 4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", images=x)
    c = load_probe_classes(tmp_path / "mine.npz")
    assert c.images.shape == (3, 4, 1, 8, 8) and c.class_names[0] == "class000"
    assert c.meta["probe_set"] is True and c.meta["part"] == "mine"
    np.savez(tmp_path / "bad.npz", images=x.astype(np.float32))
    with pytest.raises(CorruptDataError, match="must be uint8"):
        load_probe_classes(tmp_path / "bad.npz")
    with pytest.raises(CorruptDataError, match="cannot be read"):
        load_probe_classes(tmp_path / "missing.npz")
