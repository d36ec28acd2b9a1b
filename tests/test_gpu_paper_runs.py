"""analysis/gpu_paper_runs.sh on the CPU with a tiny setting: it trains the three runs within
its time budget, resumably, and prints each run's step time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "gpu_paper_runs.sh"


@pytest.mark.data
def test_gpu_paper_runs_script_trains_each_run_and_reports_step_times(tmp_path, omniglot_data_dir):
    env = {
        **os.environ,
        "REPSIM_DATA": str(omniglot_data_dir),
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "ITERATIONS": "2",
        "BUDGET_SECONDS": "240",
        "OMP_NUM_THREADS": "1",
        "EXTRA": "--ways 3 --meta-batch 1 --inner-steps 1 --test-inner-steps 1 "
        "--val-tasks 1 --val-every 2 --log-every 1 --threads 1",
    }
    out = tmp_path / "gpu"
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(out), "1"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    for name in (
        "maml_omniglot_20w1s_seed0",
        "anil_omniglot_20w1s_seed0",
        "maml_omniglot_5w1s_seed0",
    ):
        assert (out / name / "final.safetensors").exists(), proc.stderr
        assert f"{name}: iteration 2, " in proc.stdout
    from repsim.checkpoint import read_checkpoint

    _, record = read_checkpoint(out / "anil_omniglot_20w1s_seed0" / "final.safetensors")
    assert record["train"]["task_rotations"] and record["device"] == {"type": "cpu"}
