"""Checkpoints: round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import pickle

import pytest
import torch

from repsim.checkpoint import (
    load_checkpoint,
    load_meta_learner,
    read_checkpoint,
    read_record,
    save_checkpoint,
)
from repsim.errors import CheckpointError
from repsim.models import Conv4, Conv4Config

META = {"train": {"algorithm": "anil", "inner_lr": 2.0, "test_inner_steps": 3, "ways": 3}}


def small_model() -> Conv4:
    torch.manual_seed(0)
    return Conv4(Conv4Config(in_channels=1, image_size=8, hidden=4, ways=3))


def test_round_trip_restores_weights_config_and_metadata(tmp_path):
    model = small_model()
    path = save_checkpoint(tmp_path / "m.safetensors", model, META)
    loaded, record = load_checkpoint(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert record["train"]["algorithm"] == "anil"
    learner = load_meta_learner(path)
    assert learner.config["adapt"]["inner_steps"] == 3
    assert learner.config["adapt"]["adapted"] == ["head.weight", "head.bias"]
    assert learner.analysis_layers == ["conv1", "conv2", "conv3", "conv4", "head"]


def test_truncated_file_is_reported_as_corrupt(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", small_model(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(path)


def test_read_record_gives_the_record_with_the_same_checks(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", small_model(), META)
    assert read_record(path) == read_checkpoint(path)[1]
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")  # the header is the first 8 + n bytes
    (tmp_path / "cut.safetensors").write_bytes(data[: 8 + n + 4])  # tensor data cut short
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_record(tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_record(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="not a repsim checkpoint"):
        read_record(tmp_path / "x.pt" if (tmp_path / "x.pt").write_bytes(b"0") else None)


def test_pickled_file_is_refused_without_being_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a repsim checkpoint"):
        read_checkpoint(tmp_path / "x.pt" if (tmp_path / "x.pt").write_bytes(b"0") else None)


def test_missing_file_and_foreign_safetensors_say_what_to_do(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="adapters"):
        read_checkpoint(tmp_path / "foreign.safetensors")


def test_mismatched_and_nan_tensors_name_the_layer(tmp_path):
    from safetensors.torch import save_file

    model = small_model()
    path = save_checkpoint(tmp_path / "m.safetensors", model, META)
    tensors, record = read_checkpoint(path)
    import json

    bad = dict(tensors)
    bad["conv2.conv.weight"] = torch.zeros(5, 4, 3, 3)
    save_file(bad, str(tmp_path / "shape.safetensors"), metadata={"repsim": json.dumps(record)})
    with pytest.raises(CheckpointError, match="conv2"):
        load_checkpoint(tmp_path / "shape.safetensors")
    bad = dict(tensors)
    del bad["head.bias"]
    save_file(bad, str(tmp_path / "missing.safetensors"), metadata={"repsim": json.dumps(record)})
    with pytest.raises(CheckpointError, match="head.bias"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = dict(tensors)
    bad["head.weight"] = torch.full_like(bad["head.weight"], float("nan"))
    save_file(bad, str(tmp_path / "nan.safetensors"), metadata={"repsim": json.dumps(record)})
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tmp_path / "nan.safetensors")
