"""analysis/bench_gpu.py runs end to end (tiny shapes on CPU, ``--smoke``), so the script that
only a GPU machine runs in full does not rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "bench_gpu.py"


def test_bench_gpu_smoke_prints_every_table(capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "Seconds per meta-training step" in out and "Loop vs vmap" in out
    for algorithm in ("maml", "fomaml", "anil"):
        assert f"| {algorithm} " in out
    assert "linear cka" in out and "| cca " in out
