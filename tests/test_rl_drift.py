"""The drift diagnostics of meta-RL learning curves (repsim.rl.drift): known values on a
constructed log, and the grouping, files and report section on real tiny runs."""

from __future__ import annotations

import shutil

import pytest

from repsim.rl.drift import QUANTITIES, checkpoint_groups, drift_rows, run_diagnostics


def _constructed_log() -> list[dict]:
    """40 iterations: the in-batch return rises by 1 a step to iteration 20 and falls by 1 a
    step after; log-std falls by 0.01 a step; every 10 iterations held-out returns and a
    fresh-batch check (gain 0.004 in the first half, 0.001 in the second)."""
    rows = []
    for it in range(1, 41):
        row = {
            "iteration": it,
            "return_after": float(it if it <= 20 else 40 - it),
            "loss_before": 0.0,
            "loss_after": -0.01,
            "log_std": -0.01 * (it - 1),
        }
        if it % 10 == 0:
            row.update(
                heldout_before=-30.0,
                heldout_after_1=-20.0 - it / 10,
                heldout_after_2=-15.0,
                heldout_ci95=[1.0, 2.0, 3.0],
                check_gain=0.004 if it <= 20 else 0.001,
            )
        rows.append(row)
    return rows


def test_the_diagnostics_of_a_constructed_log_are_its_known_values():
    d = run_diagnostics(_constructed_log(), window=5)
    assert set(d) == set(QUANTITIES)
    assert d["iterations"] == 40
    # the highest 5-iteration mean is iterations 18-22: (18 + 19 + 20 + 19 + 18) / 5
    assert d["in_batch_peak"] == pytest.approx(18.8) and d["in_batch_peak_iteration"] == 22
    assert d["in_batch_final"] == pytest.approx((4 + 3 + 2 + 1 + 0) / 5)
    assert d["heldout_peak"] == -21.0 and d["heldout_peak_iteration"] == 10
    assert d["heldout_final"] == -24.0 and d["heldout_final_ci95"] == 2.0
    assert d["heldout_late_mean"] == pytest.approx(-23.5)  # iterations 30 and 40
    assert d["heldout_first_step_gain"] == 6.0 and d["heldout_second_step_gain"] == 9.0
    assert d["log_std_first"] == 0.0 and d["log_std_final"] == pytest.approx(-0.39)
    # older logs have no surrogate_gain: loss_before - loss_after
    assert d["gain_in_batch_late"] == pytest.approx(0.01)
    assert d["gain_fresh_late"] == 0.001 and d["gain_fresh_early"] == 0.004
    rows = drift_rows({("2dnav", "MAML"): [_constructed_log(), _constructed_log()[:20]]})
    peak = next(r for r in rows if r["quantity"] == "in_batch_peak_iteration")
    # 10-iteration windows: 15-24 and 16-25 tie at 17.5 (the first is taken); the rising half
    # alone peaks at its last window, 11-20
    assert peak["runs"] == 2 and peak["per_run"] == [24, 20]
    assert peak["mean"] == 22.0 and peak["std"] == pytest.approx(8**0.5)


def test_a_log_without_monitoring_leaves_its_numbers_unknown():
    rows = [{"iteration": i, "return_after": -float(i)} for i in range(1, 4)]
    d = run_diagnostics(rows)
    assert d["in_batch_peak"] == pytest.approx(-2.0)  # one window shorter than WINDOW
    assert d["heldout_final"] is None and d["log_std_final"] is None
    assert run_diagnostics([])["iterations"] is None


def test_ablations_form_groups_of_their_own_in_the_files_and_the_report(tmp_path):
    from repsim.reproduce.report import _rl_drift_lines
    from repsim.rl.drift import write_drift
    from repsim.rl.train import RLConfig, train

    shipped = tmp_path / "rl"
    (shipped / "metrics").mkdir(parents=True)
    tiny = dict(meta_batch=2, trajectories=3, horizon=15, iterations=2, heldout_every=1)
    tiny.update(heldout_tasks=2, heldout_trajectories=2, step_check_every=1)
    for name, cfg in {
        "maml_2dnav_seed0": RLConfig(seed=0, **tiny),
        "maml_2dnav_seed1": RLConfig(seed=1, **tiny),
        "maml_2dnav_seed0_kl": RLConfig(seed=0, max_kl=0.005, **tiny),
    }.items():
        final = train(cfg, tmp_path / name, progress=False)
        shutil.copy(final, shipped / f"{name}.safetensors")
        shutil.copy(tmp_path / name / "metrics.jsonl", shipped / "metrics" / f"{name}.jsonl")
    groups = checkpoint_groups(sorted(shipped.glob("*.safetensors")))
    assert {k: len(v) for k, v in groups.items()} == {
        ("2dnav", "MAML"): 2,
        ("2dnav", "MAML (max_kl 0.005)"): 1,
    }
    data = write_drift(tmp_path / "out", groups)
    assert (tmp_path / "out" / "rl_drift.csv").exists() and "rl_drift.png" in data["figures"]
    final = next(
        r for r in data["rows"] if r["quantity"] == "heldout_final" and r["group"] == "MAML"
    )
    logged = [checkpoint_groups([shipped / f"maml_2dnav_seed{s}.safetensors"]) for s in (0, 1)]
    assert final["per_run"] == [g[("2dnav", "MAML")][0][-1]["heldout_after_1"] for g in logged]
    table = _rl_drift_lines(tmp_path / "out")
    assert sum(line.startswith("| 2dnav | MAML") for line in table) == 2
    assert "![RL drift diagnostics](rl/rl_drift.png)" in table
