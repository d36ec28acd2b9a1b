"""Data-parallel meta-training: 2 gloo processes under torchrun equal 1 process (same tasks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from repsim.distributed import World, rank_task_indices
from repsim.errors import InputError

TINY = dict(
    algorithm="maml",
    ways=3,
    shots=1,
    queries=2,
    inner_steps=1,
    meta_batch=4,
    iterations=3,
    val_tasks=0,
    save_every=3,
    seed=5,
    device="cpu",
    threads=1,
)


def test_ranks_split_each_iteration_into_contiguous_shares():
    shares = [list(rank_task_indices(2, 8, World(size=4, rank=r))) for r in range(4)]
    assert shares == [[16, 17], [18, 19], [20, 21], [22, 23]]
    assert sum(shares, []) == list(rank_task_indices(2, 8))  # a world of one: all tasks


def test_meta_batch_that_does_not_divide_among_ranks_is_refused():
    with pytest.raises(InputError, match="multiple of 3"):
        rank_task_indices(0, 8, World(size=3, rank=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_args(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


@pytest.mark.data
def test_two_gloo_processes_equal_one_process(tmp_path, omniglot_data_dir):
    """After 3 meta-steps of MAML the 2-process parameters equal the 1-process ones (1e-6),
    the logged global-mean loss matches, only rank 0 wrote files, and resume with another
    world size is refused.

    Conv biases are the exception that proves the rule: a batch-statistics norm follows each
    conv, so their meta-gradient is analytically zero and numerically float32 rounding noise
    (~1e-7, different for any summation order), which Adam normalises into updates of up to
    ``outer_lr``. They cannot change the network's function, so for them the test checks the
    logits instead. For the same reason (Adam divides by the gradient's own size) a weight whose
    meta-gradient is near zero can move by much more than the rounding: measured, 2 of 36864
    conv3 weights differ by 1.4e-6 with the mean/var norm, and 2 of 36864 conv2 weights by
    2.4e-5 with the native batch-norm kernel (whose reductions round differently at another
    task count). Adam moves a weight by at most about ``outer_lr`` per step whatever its
    gradient, so that is the bound everywhere; every other tensor must agree to 1e-6 in at least
    99.9 % of its entries, and the logits to 1e-5."""
    from repsim.checkpoint import read_checkpoint
    from repsim.models import Conv4, Conv4Config
    from repsim.train import config_from_preset, read_metrics, train

    cfg = dict(TINY, data_dir=str(omniglot_data_dir))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "repsim",
        "train",
        "--preset",
        "cpu",
        *_cli_args(cfg),
        "--out",
        str(tmp_path / "two"),
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # The single-process reference runs meanwhile (2 cores, 3 processes of 1 thread each).
    one = train(config_from_preset("cpu", **cfg), tmp_path / "one", progress=False)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log

    a, rec_a = read_checkpoint(one)
    b, rec_b = read_checkpoint(tmp_path / "two" / "final.safetensors")
    assert rec_a["train"] == rec_b["train"]
    assert (rec_a["world_size"], rec_b["world_size"]) == (1, 2)
    for k in a:
        if not k.endswith(".conv.bias"):
            bound = config_from_preset("cpu", **cfg).outer_lr * cfg["iterations"]
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=bound, msg=k)
            assert ((b[k] - a[k]).abs() > 1e-6).float().mean() < 1e-3, k
    net_a, net_b = (Conv4(Conv4Config.omniglot(cfg["ways"])) for _ in "ab")
    net_a.load_state_dict(a)
    net_b.load_state_dict(b)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net_b(x), net_a(x), rtol=0, atol=1e-5)
    torch.manual_seed(cfg["seed"])  # the run's init: training moved it far beyond 1e-6
    init = Conv4(Conv4Config.omniglot(cfg["ways"])).state_dict()
    assert (a["conv2.conv.weight"] - init["conv2.conv.weight"]).abs().max() > 1e-3
    la = [r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl")]
    assert len(lb) == 1 and lb == pytest.approx(la, rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )

    # Finished, the run is returned untouched wherever it is resumed; continued, it must run on
    # the processes it ran on.
    final = tmp_path / "two" / "final.safetensors"
    before = final.read_bytes()
    train(config_from_preset("cpu", **cfg), tmp_path / "two", resume=True, progress=False)
    assert final.read_bytes() == before
    longer = dict(cfg, iterations=cfg["iterations"] + 1)
    with pytest.raises(InputError, match="ran on 2 processes"):
        train(config_from_preset("cpu", **longer), tmp_path / "two", resume=True, progress=False)
