"""Every file reader, fed damaged files: a named error or a correct load, never a traceback, and
never code execution.

Each reader gets a valid file, then (seeded with hypothesis, ``derandomize=True``) truncations
at random points, random byte flips, random bytes of random length, and an empty file. The
outcome must be a :class:`CheckpointError` / :class:`DataError` whose message names the file,
or a load that is correct: for safetensors, flips that touch only tensor payload bytes load
exactly the tensors those bytes now hold. The number of cases is in each test's name.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

# The source-format writers of the adapter tests: each library's network in its own layout.
from test_adapters import (  # noqa: E402 - tests/ is on sys.path under pytest
    OMNIGLOT_CONFIG,
    DragenMeta,
    L2LOmniglotCNN,
    TorchmetaConvModel,
    higher_net,
    randomize,
    save_mamlpp,
)
from test_adapters_tf import finn_variables, write_bundle
from test_data_miniimagenet import write_csv_layout, write_pickle_layout
from test_data_omniglot_synthetic import CHARS_PER_ALPHABET, LAYOUT, write_fake_omniglot

import repsim
from repsim.errors import CheckpointError, DataError

# --- damage -----------------------------------------------------------------------------------

DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(
        st.just("flip"),
        st.lists(
            st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
            min_size=1,
            max_size=8,
        ),
    ),
    st.tuples(st.just("random"), st.binary(min_size=0, max_size=2048)),
)
EMPTY = ("truncate", 0.0)


def damage(data: bytes, how) -> tuple[bytes, list[int]]:
    """The damaged bytes and the positions of changed bytes (only for ``flip``)."""
    kind, arg = how
    if kind == "truncate":
        return data[: int(arg * len(data))], []
    if kind == "random":
        return arg, []
    out = bytearray(data)
    for where, xor in arg:
        out[int(where * len(out))] ^= xor
    return bytes(out), [i for i, (a, b) in enumerate(zip(data, out)) if a != b]


def fuzz(cases: int):
    """Seeded hypothesis settings: ``cases`` damaged files, then the empty file."""

    def wrap(test):
        test = example(how=EMPTY)(test)
        test = given(how=DAMAGE)(test)
        return settings(
            max_examples=cases,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )(test)

    return wrap


def outcome(read, path: Path, errors=(CheckpointError, DataError)):
    """``read(path)``, or None when it raised a named error that names the file. Any other
    exception propagates: that is the traceback this module exists to rule out."""
    try:
        result = read(path)
    except errors as exc:
        assert path.name in str(exc), f"the error does not name the file: {exc}"
        event(f"{type(exc).__name__}")
        return None
    event("loaded")
    return result


# --- repsim safetensors -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One valid file per format."""
    from repsim.checkpoint import save_checkpoint
    from repsim.models import Conv4, Conv4Config

    d = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    files = {
        "repsim": save_checkpoint(
            d / "repsim.safetensors",
            Conv4(Conv4Config.omniglot(5, hidden=8)),
            {"train": {"algorithm": "maml", "inner_lr": 2.0, "test_inner_steps": 1}},
        )
    }
    torch.save(randomize(L2LOmniglotCNN(), 6).state_dict(), d / "learn2learn.pth")
    files["learn2learn"] = d / "learn2learn.pth"
    torch.save(randomize(TorchmetaConvModel(), 1).state_dict(), d / "torchmeta.th")
    files["torchmeta"] = d / "torchmeta.th"
    torch.save(higher_net().state_dict(), d / "higher.pt")
    files["higher"] = d / "higher.pt"
    dragen = DragenMeta(OMNIGLOT_CONFIG)
    randomize(dragen.net.vars, 2)
    torch.save(dragen.state_dict(), d / "dragen1860.pth")
    files["dragen1860"] = d / "dragen1860.pth"
    files["mamlpp"] = save_mamlpp(d, 3)[1]
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in randomize(TorchmetaConvModel(), 4).state_dict().items()}
    save_file(state, str(d / "torchmeta.safetensors"))
    files["torchmeta-safetensors"] = d / "torchmeta.safetensors"
    write_bundle(d / "model60000", finn_variables(1, 8, 5, 8, 5))
    files["tf-index"] = d / "model60000.index"
    files["tf-data"] = d / "model60000.data-00000-of-00001"
    return files


def _payload_start(data: bytes) -> int:
    (n,) = struct.unpack("<Q", data[:8])
    return 8 + n


@fuzz(cases=300)
def test_repsim_safetensors_300_cases(sources, tmp_path, how):
    from safetensors.torch import load_file

    from repsim.checkpoint import load_meta_learner

    data = sources["repsim"].read_bytes()
    bad, flipped = damage(data, how)
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bad)
    learner = outcome(load_meta_learner, path)
    if learner is None:
        return
    assert flipped or bad == data, "a truncated or random file loaded"
    # A correct load: exactly the tensors the file's bytes now hold; when only the record's
    # text changed (a digit of a setting, still valid), those are the original tensors.
    expected = load_file(str(path))
    original = load_file(str(sources["repsim"]))
    payload_intact = bad[_payload_start(data) :] == data[_payload_start(data) :]
    for name, value in learner.module.state_dict().items():
        assert value.dtype == expected[name].dtype and torch.equal(value, expected[name]), name
        if payload_intact:
            assert torch.equal(value, original[name]), name


# --- each foreign format through auto ---------------------------------------------------------

# boil shares torchmeta's files (only the adapted layers differ), so auto reads it as torchmeta.
FOREIGN = ["learn2learn", "torchmeta", "higher", "dragen1860", "mamlpp", "torchmeta-safetensors"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("fmt", FOREIGN)
@fuzz(cases=150)
def test_foreign_format_through_auto_150_cases(sources, tmp_path, fmt, how):
    source = sources[fmt]
    bad, flipped = damage(source.read_bytes(), how)
    path = tmp_path / source.name
    path.write_bytes(bad)
    learner = outcome(lambda p: repsim.load(p, format="auto"), path)
    if learner is None or bad == source.read_bytes():
        return
    assert flipped, "a truncated or random file loaded"
    for name, value in learner.module.state_dict().items():
        assert torch.isfinite(value).all() or value.dtype == torch.bool, name
    if source.suffix == ".safetensors":
        data = source.read_bytes()
        assert min(flipped) >= _payload_start(data), "a damaged safetensors header loaded"


# --- the TF bundle: .index and .data ----------------------------------------------------------


@pytest.mark.parametrize("part", ["tf-index", "tf-data"])
@fuzz(cases=150)
def test_tf_bundle_150_cases(sources, tmp_path, part, how):
    index, shard = sources["tf-index"], sources["tf-data"]
    prefix = tmp_path / "model60000"
    damaged = index if part == "tf-index" else shard
    for f in (index, shard):
        target = prefix.with_name(f.name)
        bad, _ = damage(f.read_bytes(), how) if f == damaged else (f.read_bytes(), [])
        target.write_bytes(bad)
    learner = outcome(lambda p: repsim.load(p, format="auto"), prefix.with_name(index.name))
    if learner is None:
        return
    for name, value in learner.module.state_dict().items():
        assert torch.isfinite(value).all(), name


# --- MiniImageNet: the pickle and the csv -----------------------------------------------------


@pytest.fixture(scope="module")
def mini_sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mini")
    write_pickle_layout(d / "pickle")
    write_csv_layout(d / "csv")
    return {"pickle": d / "pickle", "csv": d / "csv"}


def _copy_tree(src: Path, dst: Path) -> None:
    import shutil

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def _load_mini(folder: Path, cache: Path):
    from repsim.data import load_classes

    return load_classes("miniimagenet", "maml", "train", data_dir=folder, cache_dir=cache)


@pytest.mark.filterwarnings("ignore:MiniImageNet train:UserWarning")
@pytest.mark.parametrize(
    "layout, name", [("pickle", "mini-imagenet-cache-train.pkl"), ("csv", "train.csv")]
)
@fuzz(cases=100)
def test_miniimagenet_100_cases(mini_sources, tmp_path, layout, name, how):
    folder = tmp_path / layout
    _copy_tree(mini_sources[layout], folder)
    bad, _ = damage((folder / name).read_bytes(), how)
    (folder / name).write_bytes(bad)
    classes = outcome(lambda p: _load_mini(folder, tmp_path / "cache"), folder / name)
    if classes is not None:
        assert classes.images.dtype == np.uint8 and classes.n_classes >= 1


# --- Omniglot zips ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def omniglot_source(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("omniglot")
    write_fake_omniglot(d)
    return d


@pytest.fixture
def fake_counts(monkeypatch):
    from repsim.data import omniglot as og

    monkeypatch.setattr(
        og,
        "EXPECTED",
        {n: (len(a), len(a) * CHARS_PER_ALPHABET, og.EXPECTED[n][2]) for n, a in LAYOUT.items()},
    )
    return og


@pytest.mark.filterwarnings("ignore:Omniglot images differ:UserWarning")
@pytest.mark.parametrize("zip_name", ["images_background.zip", "images_evaluation.zip"])
@fuzz(cases=60)
def test_omniglot_zip_60_cases(omniglot_source, fake_counts, tmp_path, zip_name, how):
    og = fake_counts
    folder = tmp_path / "omniglot"
    _copy_tree(omniglot_source, folder)
    bad, _ = damage((folder / zip_name).read_bytes(), how)
    (folder / zip_name).write_bytes(bad)
    og._MEMO.clear()
    og._ZIP_LISTINGS.clear()
    built = outcome(lambda p: og.load_all(folder, tmp_path / "cache")[0], folder / zip_name)
    if built is not None:
        assert built["images"].dtype == np.uint8


# --- never code execution ---------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_calls_os_system_is_refused_naming_what_it_found(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.ones(1), "x": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        repsim.load(path, format="auto")
    message = str(info.value)
    assert "evil.pt" in message and "system" in message and "nn.Module" not in message
    assert not marker.exists()


def test_a_miniimagenet_pickle_that_calls_os_system_is_refused(tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "mini"
    folder.mkdir()
    with open(folder / "mini-imagenet-cache-train.pkl", "wb") as fh:
        pickle.dump({"image_data": _RunsCode(marker), "class_dict": {}}, fh)
    with pytest.raises(DataError, match="system"):
        _load_mini(folder, tmp_path / "cache")
    assert not marker.exists()


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_on_the_command_line_30_cases(tmp_path, capsys, data):
    from repsim.cli import main

    path = tmp_path / "random.pt"
    path.write_bytes(data)
    argv = ["similarity", str(path), "--format", "auto", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "repsim similarity: error:" in err and "random.pt" in err
    assert "Traceback" not in err
