"""The front door: ``repsim.load`` and the lazily exported modules, the packaged default
checkpoint, and records and results that hold no machine paths."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import repsim
from repsim.errors import CheckpointError
from repsim.packaged import DEFAULT_CHECKPOINT_NAME, packaged_file
from repsim.provenance import machine_paths

REPO = Path(__file__).resolve().parent.parent


def test_repsim_load_is_the_adapters_load_and_reads_the_packaged_checkpoint():
    from repsim import adapters

    assert repsim.load is adapters.load
    learner = repsim.load()
    assert learner.config["train"]["algorithm"] == "maml"
    assert list(learner.analysis_layers) == ["conv1", "conv2", "conv3", "conv4", "head"]
    same = repsim.load(packaged_file(DEFAULT_CHECKPOINT_NAME), format="repsim")
    for a, b in zip(learner.module.parameters(), same.module.parameters()):
        assert torch.equal(a, b)


def test_repsim_load_names_a_missing_file():
    with pytest.raises(CheckpointError, match="nowhere.pt does not exist"):
        repsim.load("nowhere.pt")


def test_import_repsim_is_cheap_and_exports_the_readme_modules_lazily():
    code = (
        "import sys, repsim; assert 'torch' not in sys.modules, 'import repsim pulled in torch';"
        "from repsim import load, similarity, capture, representation;"
        "assert callable(load) and callable(similarity.linear_cka)"
        " and callable(capture.capture_before_after)"
        " and callable(representation.representation_change)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert {"load", "similarity", "capture", "representation"} <= set(dir(repsim))


@pytest.mark.parametrize(
    "module, upstream",
    [
        ("repsim.inner_loop", ["repsim.protocol"]),  # MetaLearner holds an InnerLoop, not back
        ("repsim.capture", ["repsim.protocol", "repsim.inner_loop", "repsim.checkpoint"]),
    ],
)
def test_the_import_arrows_run_one_way_and_params_is_one_type(module, upstream):
    """``repsim.protocol`` imports ``repsim.inner_loop``, never the reverse, and capture takes
    params without knowing who adapted them: ``Params`` lives in ``repsim.params``."""
    code = (
        f"import sys, {module};"
        f"back = [m for m in {upstream!r} if m in sys.modules];"
        f"assert not back, f'importing {module} imported {{back}}';"
        "import repsim.params, repsim.protocol, repsim.inner_loop, repsim.capture;"
        "assert repsim.protocol.Params is repsim.params.Params is repsim.capture.Params;"
        "assert repsim.protocol.InnerLoop is repsim.inner_loop.InnerLoop"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_packaged_default_checkpoint_is_the_repositorys_copy_byte_for_byte():
    shipped = REPO / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    packaged = packaged_file(DEFAULT_CHECKPOINT_NAME)
    assert packaged.read_bytes() == shipped.read_bytes(), (
        f"{packaged} differs from {shipped}: copy checkpoints/{DEFAULT_CHECKPOINT_NAME} into "
        "repsim/assets/ after retraining"
    )


def _record(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(json.loads(raw[8 : 8 + n])["__metadata__"]["repsim"])


SHIPPED_CHECKPOINTS = sorted(
    p
    for p in (REPO / "checkpoints").rglob("*.safetensors")
    if not p.name.endswith(".optim.safetensors")
) + sorted((REPO / "repsim" / "assets").glob("*.safetensors"))
SHIPPED_RESULTS = sorted((REPO / "results").rglob("*.json")) + sorted(
    (REPO / "checkpoints").rglob("manifest.json")
)


def test_no_shipped_record_or_result_holds_a_machine_path():
    assert len(SHIPPED_CHECKPOINTS) >= 20 and len(SHIPPED_RESULTS) >= 10
    found = {}
    for path in SHIPPED_CHECKPOINTS:
        record = _record(path)
        if record["model"].get("arch") == "conv4":  # a classifier names its data by digest
            assert record["data"]["train"]["source_digest"], f"{path}: the data digest is missing"
        found[path] = machine_paths(record)
    for path in SHIPPED_RESULTS:
        found[path] = machine_paths(json.loads(path.read_text()))
    for path in sorted((REPO / "results").rglob("*.csv")) + [REPO / "results/report.md"]:
        found[path] = machine_paths(path.read_text().split())
    found = {str(p.relative_to(REPO)): v for p, v in found.items() if v}
    assert not found, f"machine paths: {found} (run analysis/portable_records.py)"


def test_a_new_record_stores_no_data_dir(tmp_path):
    from repsim.train import TrainConfig

    record = TrainConfig(data_dir=str(tmp_path)).to_dict()
    assert "data_dir" not in record and not machine_paths(record)


@pytest.mark.parametrize(
    "text, is_path",
    [
        ("/home/me/data/omniglot", True),
        ("~/data", True),
        ("C:\\data", True),
        ("checkpoints", False),
        ("along_training/maml_iter_000100.safetensors", False),
        ("https://github.com/brendenlake/omniglot", False),
        ("conv1/conv2", False),
    ],
)
def test_machine_paths_finds_absolute_and_home_paths_only(text, is_path):
    assert bool(machine_paths({"k": [text]})) is is_path


def test_result_provenance_holds_no_machine_path(tmp_path, monkeypatch):
    from repsim.results import provenance

    monkeypatch.chdir(tmp_path)
    meta = provenance(
        checkpoint={"path": str(tmp_path / "runs" / "a.safetensors")},
        elsewhere="/somewhere/else/b.safetensors",
        note="read from /data/omniglot at 10 it/s, see https://github.com/brendenlake/omniglot",
    )
    assert not machine_paths(meta)
    assert meta["checkpoint"]["path"] == "runs/a.safetensors"
    assert meta["elsewhere"] == "b.safetensors"
    assert (
        meta["note"] == "read from omniglot at 10 it/s, see https://github.com/brendenlake/omniglot"
    )
