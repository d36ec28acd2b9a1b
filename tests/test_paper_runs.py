"""analysis/paper_runs.sh with tiny sizes: it lists a setting's campaign (MAML, ANIL and every
baseline x 3 seeds, the same checkpoints along training, resumable, one thread), starts a run
from a committed resume state, trains in two lanes and continues without repeating."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "paper_runs.sh"
TINY = (
    "--ways 3 --meta-batch 1 --inner-steps 1 --test-inner-steps 1 --val-tasks 1 --val-every 2 "
    "--log-every 1 --save-every 1 --multiclass-batch 4"
)


def _run(out: Path, data: Path | None = None, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    if data is not None:
        env["REPSIM_DATA"] = str(data)
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=600
    )


def test_the_plan_is_every_20_way_run_with_the_same_checkpoints_along_training(tmp_path):
    proc = _run(tmp_path / "plan", DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6 * 3  # MAML, ANIL, multiclass, multitask, NIL, random x 3 seeds
    assert all("--preset paper-omniglot-20way" in ln and "--resume" in ln for ln in lines)
    assert all("--threads 1" in ln for ln in lines)
    trained = [ln for ln in lines if "--algorithm random" not in ln]
    assert len(trained) == 15
    assert all("--checkpoint-at 1000,3000,5000,7500,10000" in ln for ln in trained)
    assert all("--iterations 10000" in ln for ln in trained)
    names = [ln.rsplit("/", 1)[1] for ln in lines]
    # the first MAML seed, ANIL and multiclass beside it, the other MAML seeds (the longest),
    # then the hour-long baselines that fill the lanes at the end
    assert names[0] == "maml_omniglot_20w1s_seed0"
    assert {n.split("_")[0] for n in names[1:7]} == {"anil", "multiclass"}
    assert names[7:9] == ["maml_omniglot_20w1s_seed1", "maml_omniglot_20w1s_seed2"]
    assert {n.split("_")[0] for n in names[9:]} == {"multitask", "nil", "random"}
    assert not (tmp_path / "plan").exists()


def test_the_5_way_plan_is_the_paper_5_way_preset_to_15000_iterations(tmp_path):
    proc = _run(tmp_path / "plan5", DRY_RUN="1", SETTING="5way")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6 * 3
    assert all("--preset paper-omniglot-5way" in ln for ln in lines)
    trained = [ln for ln in lines if "--algorithm random" not in ln]
    assert all("--iterations 15000" in ln for ln in trained)
    assert all("--checkpoint-at 1000,3000,5000,10000,15000" in ln for ln in trained)
    assert lines[0].endswith("/maml_omniglot_5w1s_seed0") and "--vmap" not in lines[0]
    bad = _run(tmp_path / "bad", DRY_RUN="1", SETTING="10way")
    assert bad.returncode == 2 and "SETTING must be 20way or 5way" in bad.stderr


@pytest.mark.data
def test_a_run_starts_from_its_committed_resume_state_and_the_lanes_continue(
    tmp_path, omniglot_data_dir
):
    first = tmp_path / "first"
    settings = dict(ONLY="maml_.*seed0|random_.*seed0", ITERATIONS="2", CHECKPOINTS="1")
    none = str(tmp_path / "no-resume-states")  # not the repository's own
    proc = _run(first, omniglot_data_dir, EXTRA=TINY, RESUME_DIR=none, **settings)
    assert proc.returncode == 0, proc.stderr
    assert "from the state in" not in proc.stderr
    assert "[lane 1]" in proc.stderr and "[lane 2]" in proc.stderr
    maml = first / "maml_omniglot_20w1s_seed0"
    assert (maml / "final.safetensors").exists() and (maml / "iter_000001.safetensors").exists()
    assert (first / "random_omniglot_20w1s_seed0" / "final.safetensors").exists()
    assert "| maml_omniglot_20w1s_seed0 | 2 |" in proc.stdout
    # a session's committed resume state (here: the run at iteration 2) seeds a new OUT
    resume = tmp_path / "resume"
    shutil.copytree(maml, resume / maml.name)
    again = tmp_path / "again"
    longer = {**settings, "ITERATIONS": "3"}
    proc = _run(again, omniglot_data_dir, EXTRA=TINY, RESUME_DIR=str(resume), **longer)
    assert proc.returncode == 0, proc.stderr
    assert "from the state in" in proc.stderr
    rows = [json.loads(ln) for ln in (again / maml.name / "metrics.jsonl").open()]
    steps = [r["iteration"] for r in rows if "loss" in r]
    assert steps == [1, 2, 3]  # 1 and 2 from the resume state, 3 trained here


@pytest.mark.data
def test_stopping_the_script_leaves_every_training_saved_at_the_iteration_it_stopped(
    tmp_path, omniglot_data_dir
):
    """SIGTERM to the campaign: the lanes stop, each training finishes its iteration and saves
    it (no save is due: --save-every 100000), and the script returns only when they have."""
    import signal
    import time

    from repsim.checkpoint import optimizer_extra, read_checkpoint

    out = tmp_path / "stopped"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "REPSIM_DATA": str(omniglot_data_dir),
        "ONLY": "maml_.*seed0|anil_.*seed0",
        "ITERATIONS": "100000",
        "CHECKPOINTS": "100000",
        "RESUME_DIR": str(tmp_path / "no-resume-states"),
        "EXTRA": TINY + " --save-every 100000",
    }
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), str(out)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    runs = [out / "maml_omniglot_20w1s_seed0", out / "anil_omniglot_20w1s_seed0"]
    deadline = time.monotonic() + 300
    while not all(
        (r / "metrics.jsonl").exists() and (r / "metrics.jsonl").stat().st_size for r in runs
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    for run in runs:
        last = run / "last.safetensors"
        logged = [json.loads(ln)["iteration"] for ln in (run / "metrics.jsonl").open()]
        assert read_checkpoint(last)[1]["iteration"] == max(logged) > 0, run.name
        assert optimizer_extra(last)["iteration"] == max(logged)
        assert (
            "stopped by SIGTERM after iteration" in (out / "logs" / f"{run.name}.log").read_text()
        )
