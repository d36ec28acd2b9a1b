"""analysis/collect_checkpoints.py ships finished runs and runs still training: the latest
checkpoint, the along-training iterations every run shares, and what --resume needs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

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
    assert sorted(by["anil", 0].checkpoints) == [4]  # others: the latest every run shares
    assert by["anil", 1].checkpoints == {}  # its latest (4) is the iteration all runs share
    assert common_iteration(list(by.values()), out) == 4
    resume = out / "resume" / "anil_omniglot_3w1s_seed1"
    assert (resume / "last.optim.safetensors").exists()
    assert not (out / "resume" / "maml_omniglot_3w1s_seed0").exists()  # finished: no optimiser
    # the shipped folder continues the run exactly where it stopped
    final = train(cfg, resume, resume=True)
    lines = [json.loads(x) for x in (resume / "metrics.jsonl").read_text().splitlines()]
    assert final.name == "final.safetensors" and lines[-1]["iteration"] == 6
