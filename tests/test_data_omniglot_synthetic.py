"""Omniglot reader on a tiny synthetic copy in the official layout (runs without the data).

Covers what the real-data tests cannot do cheaply: zip vs extracted folders, the content-keyed
cache (reused, rebuilt when stale), damaged members, and task sampling properties.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from repsim.data import ClassImages, TaskSampler, held_out_part, load_classes
from repsim.data import omniglot as og
from repsim.errors import CorruptDataError, InputError

LAYOUT = {"images_background": ["Alpha", "Beta"], "images_evaluation": ["Gamma"]}
CHARS_PER_ALPHABET = 2


def _png(rng: np.random.Generator) -> bytes:
    """A 105x105 mode-"1" PNG: white background (1), a black (0) block as the stroke."""
    bits = np.ones((105, 105), dtype=bool)
    r, c = rng.integers(10, 60, size=2)
    bits[r : r + 30, c : c + 8] = False
    buf = io.BytesIO()
    Image.fromarray(bits).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_fake_omniglot(folder: Path, as_zip: bool = True, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    char_id = 1
    for name, alphabets in LAYOUT.items():
        members = {}
        for alpha in alphabets:
            for k in range(1, CHARS_PER_ALPHABET + 1):
                for d in range(1, 21):
                    members[f"{name}/{alpha}/character{k:02d}/{char_id:04d}_{d:02d}.png"] = _png(
                        rng
                    )
                char_id += 1
        if as_zip:
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
                for m, data in members.items():
                    zf.writestr(m, data)
        else:
            for m, data in members.items():
                (folder / m).parent.mkdir(parents=True, exist_ok=True)
                (folder / m).write_bytes(data)


@pytest.fixture(autouse=True)
def small_counts(monkeypatch):
    """Make the count check expect the fake layout (the digests will not match: a warning)."""
    monkeypatch.setattr(
        og,
        "EXPECTED",
        {n: (len(a), len(a) * CHARS_PER_ALPHABET, og.EXPECTED[n][2]) for n, a in LAYOUT.items()},
    )
    og._MEMO.clear()
    og._ZIP_LISTINGS.clear()


pytestmark = pytest.mark.filterwarnings("ignore:Omniglot images differ:UserWarning")


def _all(folder: Path, cache: Path):
    """Load as a fresh process would (no in-process memo of arrays or zip listings)."""
    og._MEMO.clear()
    og._ZIP_LISTINGS.clear()  # files rewritten within one clock tick may keep size and mtime
    return og.load_all(folder, cache)


def test_zip_and_folder_give_the_same_images(tmp_path):
    write_fake_omniglot(tmp_path / "z", as_zip=True)
    write_fake_omniglot(tmp_path / "f", as_zip=False)
    (bz, pz), (bf, pf) = _all(tmp_path / "z", tmp_path / "c"), _all(tmp_path / "f", tmp_path / "c")
    assert bz["images"].shape == (6, 20, 28, 28)
    np.testing.assert_array_equal(bz["images"], bf["images"])
    assert bz["class_names"] == bf["class_names"]
    assert bz["members_digest"] == bf["members_digest"]  # digests are of contents
    assert pz["source_kind"] == "zip" and pf["source_kind"] == "folder"
    assert pz["verified"] is False


def test_strokes_high_after_decoding(tmp_path):
    write_fake_omniglot(tmp_path)
    images = _all(tmp_path, tmp_path / "c")[0]["images"]
    assert images.max() == 255 and np.median(images) == 0  # background 0, strokes high


def test_cache_reused_then_rebuilt_when_a_member_changes(tmp_path):
    write_fake_omniglot(tmp_path / "d")
    built, prov = _all(tmp_path / "d", tmp_path / "c")
    assert "cache_build_seconds" in prov
    again = _all(tmp_path / "d", tmp_path / "c")[1]
    assert "cache_build_seconds" not in again and again["cache_key"] == prov["cache_key"]
    write_fake_omniglot(tmp_path / "d", seed=1)  # same names, different drawings
    changed = _all(tmp_path / "d", tmp_path / "c")[1]
    assert changed["cache_key"] != prov["cache_key"] and "cache_build_seconds" in changed


def test_damaged_cache_is_rebuilt(tmp_path):
    write_fake_omniglot(tmp_path / "d")
    prov = _all(tmp_path / "d", tmp_path / "c")[1]
    Path(prov["cache_file"]).write_bytes(b"garbage")
    assert "cache_build_seconds" in _all(tmp_path / "d", tmp_path / "c")[1]


def test_corrupt_member_is_named(tmp_path):
    write_fake_omniglot(tmp_path, as_zip=False)
    bad = tmp_path / "images_evaluation/Gamma/character02/0006_07.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(CorruptDataError, match="0006_07.png: cannot decode"):
        _all(tmp_path, tmp_path / "c")


def test_missing_drawing_is_named(tmp_path):
    write_fake_omniglot(tmp_path, as_zip=False)
    (tmp_path / "images_background/Beta/character01/0003_20.png").unlink()
    with pytest.raises(CorruptDataError, match="Beta/character01 has 19"):
        _all(tmp_path, tmp_path / "c")


def test_background_split_on_fake_data(tmp_path):
    write_fake_omniglot(tmp_path)
    og._MEMO.clear()
    c = load_classes("omniglot", "background", "evaluation", data_dir=tmp_path, cache_dir=tmp_path)
    assert c.n_classes == 2 and c.images.shape == (2, 20, 1, 28, 28)
    with pytest.raises(InputError, match="ways=3 is more than the 2 classes"):
        TaskSampler(c, 3, 1, 1)


@pytest.mark.parametrize(
    ("dataset", "split", "val", "test"),
    [
        ("omniglot", "maml", "val", "test"),
        ("omniglot", "vinyals", "test", "test"),
        ("omniglot", "background", "evaluation", "evaluation"),
        ("miniimagenet", "maml", "val", "test"),
        ("miniimagenet", "ravi", "val", "test"),
    ],
)
def test_each_split_names_its_validation_and_test_part(dataset, split, val, test):
    assert held_out_part(dataset, split, "val") == val
    assert held_out_part(dataset, split, "test") == test


def test_maml_order_is_fixed():
    names = [f"set/a/character{i:02d}" for i in range(30)]
    rev = list(reversed(names))
    # The order depends on the set of names only, not on how they were listed.
    assert [names[i] for i in og.maml_order(names)] == [rev[i] for i in og.maml_order(rev)]
    order = og.maml_order(names)
    assert sorted(order) == list(range(30)) and order != list(range(30))
    assert order == og.maml_order(names)


def _classes(n_classes: int, n_per: int) -> ClassImages:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n_classes, n_per, 1, 4, 4), dtype=np.uint8)
    x[:, :, 0, 0, 0] = np.arange(n_classes)[:, None]  # pixel (0,0) encodes the class
    x[:, :, 0, 0, 1] = np.arange(n_per)[None, :]  # pixel (0,1) encodes the drawing
    return ClassImages(x, [f"c{i}" for i in range(n_classes)], {"dataset": "fake"})


@settings(max_examples=40, deadline=None)
@given(
    ways=st.integers(1, 6),
    shots=st.integers(1, 4),
    queries=st.integers(0, 4),
    seed=st.integers(0, 2**32),
    index=st.integers(0, 10**6),
)
def test_task_properties(ways, shots, queries, seed, index):
    s = TaskSampler(_classes(8, 9), ways, shots, queries, seed=seed)
    t = s.task(index)
    assert torch.equal(torch.bincount(t.support_y, minlength=ways), torch.full((ways,), shots))
    assert torch.equal(torch.bincount(t.query_y, minlength=ways), torch.full((ways,), queries))
    cls_s = torch.round(t.support_x[:, 0, 0, 0] * 255).long()
    cls_q = torch.round(t.query_x[:, 0, 0, 0] * 255).long()
    # One class per label, and different labels are different classes.
    label_to_class = {}
    for y, c in zip(torch.cat([t.support_y, t.query_y]).tolist(), torch.cat([cls_s, cls_q])):
        assert label_to_class.setdefault(y, int(c)) == int(c)
    assert len(set(label_to_class.values())) == len(label_to_class)
    # Within a class, support and query drawings are all distinct.
    for y in range(ways):
        draw = torch.cat([t.support_x[t.support_y == y], t.query_x[t.query_y == y]])[:, 0, 0, 1]
        assert len(set(draw.tolist())) == shots + queries
    again = TaskSampler(_classes(8, 9), ways, shots, queries, seed=seed).task(index)
    assert torch.equal(t.support_x, again.support_x) and torch.equal(t.query_y, again.query_y)


def test_batch_equals_stacked_tasks():
    s = TaskSampler(_classes(10, 6), 4, 2, 3, seed=1)
    b = s.batch(range(5, 9))
    assert len(b) == 4 and b.is_batch
    for j, i in enumerate(range(5, 9)):
        t = s.task(i)
        assert torch.equal(b.support_x[j], t.support_x) and torch.equal(b.query_y[j], t.query_y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": 0}, "ways must be an integer >= 1"),
        ({"shots": 0}, "shots must be"),
        ({"queries": -1}, "queries must be an integer >= 0"),
        ({"seed": -3}, "seed must be"),
        ({"shots": 5, "queries": 2}, "only 6"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, message):
    args = {"ways": 2, "shots": 1, "queries": 1, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        TaskSampler(_classes(4, 6), **args)


def test_bad_index():
    s = TaskSampler(_classes(4, 6), 2, 1, 1)
    with pytest.raises(InputError, match="task index"):
        s.task(-1)
    with pytest.raises(InputError, match="at least one"):
        s.batch([])


# --- the ``repsim data`` command ---------------------------------------------------------------


def test_cli_info(tmp_path, capsys):
    from repsim.cli import main

    write_fake_omniglot(tmp_path / "d")
    rc = main(["data", "info", "--data-dir", str(tmp_path / "d"), "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "images_background: 2 alphabets, 4 characters" in out
    assert "DIFFER from the official" in out and "maml" in out


def test_cli_download_verifies_existing_and_reports_network_errors(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    from repsim.cli import main

    write_fake_omniglot(tmp_path / "d")
    assert main(["data", "download", "--data-dir", str(tmp_path / "d")]) == 0
    assert "WARNING: members digest" in capsys.readouterr().out

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["data", "download", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "could not download https://github.com/brendenlake/omniglot" in err
    assert "images_background.zip" in err
    assert not list((tmp_path / "empty").iterdir())  # no partial file left behind


def test_cli_missing_data(tmp_path, capsys):
    from repsim.cli import main

    assert main(["data", "info", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == 2
    assert "repsim data download" in capsys.readouterr().err
