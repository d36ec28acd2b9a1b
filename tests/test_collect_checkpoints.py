"""analysis/collect_checkpoints.py ships finished runs and runs still training: the latest
checkpoint, the along-training iterations every run shares, and what --resume needs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from repsim.data import ClassImages

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "collect_checkpoints.py"


def _collect_module():
    spec = importlib.util.spec_from_file_location("collect_checkpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def synthetic_classes(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 6, 1, 28, 28), dtype=np.uint8)
    classes = ClassImages(images, [f"c{i}" for i in range(12)], {"dataset": "omniglot"})
    monkeypatch.setattr("repsim.data.load_classes", lambda *a, **k: classes)


def test_a_finished_and_a_running_run_are_shipped_comparably_and_resumably(
    tmp_path, synthetic_classes
):
    from repsim.reproduce import read_manifest
    from repsim.reproduce.analyses import common_iteration
    from repsim.train import TrainConfig, train

    base = dict(ways=3, shots=1, queries=1, test_queries=2, meta_batch=1, inner_steps=1)
    base.update(val_tasks=0, save_every=2)
    runs = tmp_path / "runs"
    train(TrainConfig(algorithm="maml", iterations=6, checkpoint_at=[2, 4], **base), runs / "m")
    train(TrainConfig(algorithm="anil", iterations=6, checkpoint_at=[2, 4], **base), runs / "a")
    cfg = TrainConfig(algorithm="anil", seed=1, iterations=6, checkpoint_at=[2, 4], **base)
    train(cfg, runs / "a1", stop_at=4)  # still training: last.safetensors at iteration 4

    out = tmp_path / "ckpt"
    collect = _collect_module()
    shipped = collect.collect(runs, out, resumable=True)
    collect.write_manifest(out, shipped)
    by = {(r.algorithm, r.seed): r for r in read_manifest(out)}
    assert by["maml", 0].iterations == 6 and by["anil", 1].iterations == 4
    assert sorted(by["maml", 0].checkpoints) == [2, 4]  # MAML seed 0: every one (Figure 3)
    assert sorted(by["anil", 0].checkpoints) == [2, 4]  # others: those every run shares
    assert sorted(by["anil", 1].checkpoints) == [2]  # its latest (4) is shipped as its own
    assert common_iteration(list(by.values()), out) == 4
    resume = out / "resume" / "anil_omniglot_3w1s_seed1"
    assert (resume / "last.optim.safetensors").exists()
    assert not (out / "resume" / "maml_omniglot_3w1s_seed0").exists()  # finished: no optimiser
    # the shipped folder continues the run exactly where it stopped
    final = train(cfg, resume, resume=True)
    lines = [json.loads(x) for x in (resume / "metrics.jsonl").read_text().splitlines()]
    assert final.name == "final.safetensors" and lines[-1]["iteration"] == 6


def test_a_snapshot_of_a_training_run_continues_it_and_waits_out_a_save_in_progress(
    tmp_path, synthetic_classes
):
    import subprocess
    import sys

    from repsim.checkpoint import read_checkpoint
    from repsim.errors import CheckpointError
    from repsim.run_log import snapshot_run
    from repsim.train import TrainConfig, train

    base = dict(ways=3, shots=1, queries=1, test_queries=2, meta_batch=1, inner_steps=1)
    cfg = TrainConfig(iterations=6, val_tasks=0, save_every=2, checkpoint_at=[2, 4, 6], **base)
    full, _ = read_checkpoint(train(cfg, tmp_path / "full"))
    run = tmp_path / "runs" / "m"
    train(cfg, run, stop_at=4)
    states = tmp_path / "states"
    assert snapshot_run(run, states / "m") == 4
    kept = sorted(p.name for p in (states / "m").iterdir())
    assert kept == [
        "config.json",
        "iter_000002.safetensors",
        "iter_000004.safetensors",
        "last.optim.safetensors",
        "last.safetensors",
        "metrics.jsonl",
    ]
    resumed, _ = read_checkpoint(train(cfg, states / "m", resume=True))
    for name, value in full.items():  # the snapshot continues the run exactly
        assert torch.equal(value, resumed[name]), name
    # finished: the final checkpoint, no optimiser state; resumed, nothing is trained again
    assert snapshot_run(states / "m", tmp_path / "again" / "m") == 6
    assert not (tmp_path / "again" / "m" / "last.optim.safetensors").exists()
    assert train(cfg, tmp_path / "again" / "m", resume=True).name == "final.safetensors"
    # a last checkpoint (4) whose optimiser state is of another iteration (2): a save caught
    # between its two writes, which never completes here
    train(cfg, tmp_path / "two", stop_at=2)
    (tmp_path / "two" / "last.optim.safetensors").replace(run / "last.optim.safetensors")
    with pytest.raises(CheckpointError, match="never agreed"):
        snapshot_run(run, states / "m", tries=2)
    assert (states / "m" / "final.safetensors").exists()  # the earlier snapshot is untouched
    # the command line: every run folder under a campaign folder
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT.with_name("snapshot_runs.py")),
            str(tmp_path / "again"),
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| m | finished | 6 |" in proc.stdout
