"""analysis/rl_runs.sh with tiny sizes: it lists every run of the plan, trains in two lanes with
--resume and one torch thread, logs to files, continues a finished set without repeating it,
and draws the learning curves from the run folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "rl_runs.sh"
TINY = (
    "--meta-batch 2 --trajectories 2 --horizon 4 --heldout-tasks 2 --heldout-trajectories 2 "
    "--heldout-every 1 --step-check-every 1"
)


def _run(out: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=600
    )


def test_the_plan_lists_every_run_resumable_with_one_thread(tmp_path):
    proc = _run(tmp_path / "plan", DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 * 3 + 2 * 2 * 3 + 2 * 4 + 2  # 2D-Nav, HalfCheetah x 2, ablations
    assert all("--resume" in ln and "--threads 1" in ln for ln in lines)
    nav = [ln for ln in lines if "/2dnav/" in ln]
    assert len(nav) == 6 and all(
        "--preset rl-2dnav " in ln and "--iterations 500" in ln for ln in nav
    )
    cheetah = [ln for ln in lines if "/cheetah-" in ln]
    assert all("--meta-batch 10 --trajectories 20 --horizon 200" in ln for ln in cheetah)
    assert sum("--log-std meta" in ln for ln in lines) == 2
    assert sum("--meta-batch 40" in ln for ln in lines) == 2
    assert sum("--log-std fixed" in ln for ln in lines) == 2
    assert sum("--inner-loss lvc" in ln for ln in lines) == 4  # MAML x 3 seeds, ANIL x 1
    # MAML's ablations before HalfCheetah, ANIL's (which the issue does not ask for) last
    order = [ln.split("--out ")[-1] for ln in lines]
    assert order.index(str(tmp_path / "plan/ablations/2dnav_lvc_maml_s0")) < min(
        i for i, name in enumerate(order) if "/cheetah-" in name
    )
    assert all("_anil_" in name for name in order[-4:])
    assert not (tmp_path / "plan").exists()  # a dry run writes nothing


def test_the_script_trains_in_lanes_logs_and_continues_without_repeating(tmp_path):
    out = tmp_path / "rl"
    settings = dict(SEEDS="0", NAV_ITERATIONS="2", ONLY="2dnav/|logstd-meta_anil", EXTRA=TINY)
    proc = _run(out, **settings)
    assert proc.returncode == 0, proc.stderr
    runs = ["2dnav/maml_s0", "2dnav/anil_s0", "ablations/2dnav_logstd-meta_anil_s0"]
    assert "[lane 1]" in proc.stderr and "[lane 2]" in proc.stderr
    for name in runs:
        assert (out / name / "final.safetensors").exists(), proc.stderr
        assert (out / "logs" / f"{name.replace('/', '__')}.log").exists()
        assert f"| {name} | 2 |" in proc.stdout
    config = json.loads((out / "ablations/2dnav_logstd-meta_anil_s0/config.json").read_text())
    assert config["adapt_log_std"] is False and config["threads"] == 1
    rows = [json.loads(ln) for ln in (out / "2dnav/maml_s0/metrics.jsonl").open()]
    assert [r["iteration"] for r in rows] == [1, 2] and "heldout_after_2" in rows[-1]
    assert (out / "rl_learning_curves.png").exists()
    again = _run(out, **{**settings, "NAV_ITERATIONS": "3"})  # continue every run to 3
    assert again.returncode == 0, again.stderr
    rows_again = [json.loads(ln) for ln in (out / "2dnav/maml_s0/metrics.jsonl").open()]
    assert [r["iteration"] for r in rows_again] == [1, 2, 3]
    assert rows_again[:2] == rows  # the first two iterations were not trained again
    # shipped: the seeds where Table 2 reads them, the ablation apart, each with its curve
    collect = Path(__file__).resolve().parent.parent / "analysis" / "collect_rl.py"
    shipped = tmp_path / "shipped"
    proc = subprocess.run(
        [sys.executable, str(collect), str(out), str(shipped)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 2dnav/maml_s0 | maml_2dnav_seed0 | 3 |" in proc.stdout
    from repsim.rl.drift import checkpoint_groups
    from repsim.rl.report import policy_checkpoints

    main = [p.name for p in policy_checkpoints(shipped)]
    assert main == ["anil_2dnav_seed0.safetensors", "maml_2dnav_seed0.safetensors"]
    ablation = policy_checkpoints(shipped / "ablations")
    assert [p.name for p in ablation] == ["anil_2dnav_seed0_logstd-meta.safetensors"]
    assert (shipped / "ablations" / "metrics" / "anil_2dnav_seed0_logstd-meta.jsonl").exists()
    groups = checkpoint_groups([*policy_checkpoints(shipped), *ablation])
    assert set(groups) == {
        ("2dnav", "ANIL"),
        ("2dnav", "MAML"),
        ("2dnav", "ANIL (adapt_log_std False)"),
    }
