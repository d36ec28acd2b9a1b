"""``repsim similarity`` and ``repsim compare`` end to end on tiny checkpoints."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from repsim.cli import main
from repsim.models import Conv4, Conv4Config
from repsim.provenance import machine_paths

TRAIN = {
    "algorithm": "anil",
    "dataset": "omniglot",
    "split": "maml",
    "ways": 5,
    "shots": 1,
    "queries": 5,
    "inner_lr": 2.0,
    "inner_steps": 1,
    "test_inner_steps": 3,
    "seed": 0,
}


def tiny_checkpoint(path: Path, seed: int = 0, algorithm: str = "anil") -> Path:
    from repsim.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = Conv4(Conv4Config.omniglot(5, hidden=8))
    return save_checkpoint(path, model, {"train": {**TRAIN, "algorithm": algorithm, "seed": seed}})


def task_args() -> list[str]:
    """The shipped probe set of real Omniglot test-split drawings, named explicitly (fast)."""
    from repsim.data.probe import PROBE_PATH

    return ["--probe", str(PROBE_PATH)]


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_similarity_cli_writes_every_output(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "tiny_anil.safetensors")
    out = tmp_path / "out"
    argv = ["similarity", str(ckpt), "--out", str(out), "--tasks", "3", "--seed", "1"]
    assert main(argv + ["--measures", "cca,cka"] + task_args()) == 0
    stdout = capsys.readouterr().out
    for layer in ("conv1", "conv2", "conv3", "conv4", "head"):
        assert layer in stdout
    assert "±" in stdout and "tiny_anil.safetensors" in stdout

    for name in (
        "similarity.json",
        "similarity_tasks.csv",
        "similarity_summary.csv",
        "weight_movement.csv",
        "similarity.png",
        "similarity.pdf",
    ):
        assert (out / name).stat().st_size > 0, name

    result = json.loads((out / "similarity.json").read_text())
    meta = result["meta"]
    assert meta["checkpoint"]["name"] == ckpt.name and not machine_paths(meta)
    assert meta["checkpoint"]["config"]["train"]["algorithm"] == "anil"
    assert meta["code_version"]["repsim"]
    assert meta["seed"] == 1 and meta["inner_steps"] == 3
    assert meta["tasks"]["tasks"] == 3 and meta["tasks"]["ways"] == 5

    # ANIL adapts only the head: the body's representations are exactly those of the meta-init.
    summary = {(r["layer"], r["measure"]): r for r in read_csv(out / "similarity_summary.csv")}
    assert len(summary) == 5 * 2
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        for m in ("cca", "cka"):
            assert float(summary[layer, m]["mean"]) == pytest.approx(1.0, abs=1e-9)
    assert float(summary["head", "cka"]["mean"]) < 1.0
    per_task = read_csv(out / "similarity_tasks.csv")
    assert len(per_task) == 3 * 5 * 2
    movement = {r["layer"]: float(r["abs_mean"]) for r in read_csv(out / "weight_movement.csv")}
    assert movement["conv1"] == 0.0 and movement["head"] > 0.0


def test_compare_cli_of_a_checkpoint_with_itself_has_a_diagonal_of_one(tmp_path, capsys):
    a = tiny_checkpoint(tmp_path / "a.safetensors", seed=0)
    b = tiny_checkpoint(tmp_path / "b.safetensors", seed=1, algorithm="maml")
    out = tmp_path / "same"
    argv = ["compare", str(a), str(a), "--out", str(out), "--tasks", "2", "--measures", "cka"]
    assert main(argv + task_args()) == 0
    diag = read_csv(out / "compare_layers.csv")
    assert [r["layer_a"] for r in diag] == ["conv1", "conv2", "conv3", "conv4", "head"]
    assert all(float(r["mean"]) == pytest.approx(1.0, abs=1e-9) for r in diag)

    out = tmp_path / "diff"
    argv = ["compare", str(a), str(b), "--out", str(out), "--tasks", "2"]
    assert main(argv + task_args()) == 0
    for name in ("compare.json", "compare_layers.csv", "compare_matrix.csv"):
        assert (out / name).stat().st_size > 0
    meta = json.loads((out / "compare.json").read_text())["meta"]
    for key, ckpt in (("checkpoint_a", a), ("checkpoint_b", b)):  # named as similarity names it
        assert meta[key]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        assert meta[key]["name"] == ckpt.name and not Path(meta[key]["path"]).is_absolute()
    for m in ("cca", "cka"):
        assert (out / f"heatmap_{m}.png").stat().st_size > 0
        assert (out / f"heatmap_{m}.pdf").stat().st_size > 0
    matrix = read_csv(out / "compare_matrix.csv")
    assert len(matrix) == 5 * 5 * 2
    cka = [float(r["mean"]) for r in matrix if r["measure"] == "cka"]
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in cka) and not any(math.isnan(v) for v in cka)
    assert "conv1" in capsys.readouterr().out


def test_an_unknown_measure_is_a_clean_error(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "t.safetensors")
    code = main(["similarity", str(ckpt), "--out", str(tmp_path), "--measures", "cca,nope"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_similarity_records_and_prints_the_seconds_of_each_stage(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "t.safetensors")
    out = tmp_path / "out"
    argv = ["similarity", str(ckpt), str(ckpt), "--out", str(out), "--tasks", "2", "--timings"]
    assert main(argv + task_args()) == 0
    seconds = json.loads((out / "similarity.json").read_text())["seconds"]
    assert list(seconds) == ["load", "adapt", "capture", "similarity", "write"]
    assert all(s > 0 for s in seconds.values())
    assert "seconds per stage: load " in capsys.readouterr().out


def test_without_a_dataset_the_shipped_probe_set_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("REPSIM_DATA", raising=False)
    ckpt = tiny_checkpoint(tmp_path / "t.safetensors")
    out = tmp_path / "out"
    assert main(["similarity", str(ckpt), "--out", str(out), "--tasks", "2"]) == 0
    meta = json.loads((out / "similarity.json").read_text())["meta"]
    assert meta["tasks"]["source"] == "shipped probe set"
    assert meta["tasks"]["sampler"]["probe_set"] is True


def test_a_probe_folder_of_the_users_own_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    probe = tmp_path / "probe"
    for c in range(5):
        (probe / f"class{c}").mkdir(parents=True)
        for i in range(4):
            pixels = (rng.random((40, 40)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(probe / f"class{c}" / f"img{i}.png")
    ckpt = tiny_checkpoint(tmp_path / "t.safetensors")
    out = tmp_path / "out"
    argv = ["similarity", str(ckpt), "--out", str(out), "--tasks", "2", "--probe", str(probe)]
    assert main(argv + ["--invert"]) == 0
    meta = json.loads((out / "similarity.json").read_text())["meta"]["tasks"]
    assert meta["source"] == "probe" and meta["queries"] == 3  # 4 images: 1 shot + 3 queries
    assert meta["sampler"]["n_classes"] == 5 and meta["sampler"]["inverted"] is True


def test_another_format_is_loaded_through_repsim_adapters(tmp_path, monkeypatch):
    import sys
    import types

    from repsim.protocol import MetaLearner

    calls = []

    def load(path, format, **settings):
        calls.append((str(path), format))
        torch.manual_seed(0)
        model = Conv4(Conv4Config.omniglot(5, hidden=8))
        return MetaLearner(model, list(model.analysis_layers), config={"train": TRAIN})

    monkeypatch.setitem(sys.modules, "repsim.adapters", types.SimpleNamespace(load=load))
    monkeypatch.setattr("repsim.adapters", sys.modules["repsim.adapters"], raising=False)
    out = tmp_path / "out"
    argv = ["similarity", "their.pt", "--format", "learn2learn", "--out", str(out), "--tasks", "2"]
    assert main(argv + task_args()) == 0
    assert calls == [("their.pt", "learn2learn")]
    rows = read_csv(out / "similarity_summary.csv")
    assert all(float(r["mean"]) == pytest.approx(1.0, abs=1e-9) for r in rows)  # no inner loop
