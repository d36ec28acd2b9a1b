"""The RL rows of Table 2: the paper's numbers beside ours, the claim's verdict, the curves."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from repsim.rl.report import PAPER_TABLE2, anil_matches_maml, write_rl_results


def test_the_papers_own_numbers_satisfy_anil_matches_maml():
    for env in ("2dnav", "cheetah-dir", "cheetah-vel"):
        assert (
            anil_matches_maml(PAPER_TABLE2[(env, "maml")], PAPER_TABLE2[(env, "anil")]) == "holds"
        )


def test_verdict_uses_mamls_std_over_seeds():
    assert anil_matches_maml((-20.0, 2.0), (-21.9, 0.5)) == "holds"
    assert anil_matches_maml((-20.0, 2.0), (-22.1, 0.5)) == "fails"
    assert anil_matches_maml((-20.0, math.nan), (-30.0, 0.5)) == "undecided (one seed)"


def test_write_rl_results_gives_rows_beside_the_paper_and_learning_curves(tmp_path):
    from repsim.rl.train import RLConfig, train

    shipped = tmp_path / "rl"
    (shipped / "metrics").mkdir(parents=True)
    for algorithm, seed in (("maml", 0), ("maml", 1), ("anil", 0)):
        cfg = RLConfig(algorithm=algorithm, seed=seed, meta_batch=2, trajectories=3, horizon=10)
        cfg.iterations = 2
        run = tmp_path / f"run_{algorithm}_{seed}"
        name = f"{algorithm}_2dnav_seed{seed}"
        shutil.copy(train(cfg, run, progress=False), shipped / f"{name}.safetensors")
        shutil.copy(run / "metrics.jsonl", shipped / "metrics" / f"{name}.jsonl")
    from repsim.rl.report import policy_checkpoints

    found = policy_checkpoints(shipped)
    assert len(found) == 3
    data = write_rl_results(tmp_path / "out", found, tasks=3, similarity_tasks=2, chance=1)
    rows = {r["algorithm"]: r for r in data["rows"]}
    assert rows["maml"]["seeds"] == [0, 1] and rows["anil"]["seeds"] == [0]
    assert rows["maml"]["paper_mean"] == -20.3 and rows["anil"]["paper_std"] == 2.3
    assert math.isfinite(rows["maml"]["return_after_std"])
    assert math.isnan(rows["anil"]["return_after_std"])
    assert data["verdicts"]["2dnav"]["paper"] == "holds"
    assert data["verdicts"]["2dnav"]["ours"] in ("holds", "fails")
    for name in ("rl_table2.json", "rl_table2.csv", "rl_learning_curves.png", "rl_drift.png"):
        assert (tmp_path / "out" / name).exists()
    # before and after 1..3 steps, the first step's being Table 2's; 2 iterations: reduced
    steps = rows["maml"]["returns_by_step"]
    assert [k["inner_steps"] for k in steps] == [0, 1, 2, 3]
    assert steps[1]["mean"] == pytest.approx(rows["maml"]["return_after_mean"])
    assert steps[0]["mean"] == pytest.approx(rows["maml"]["return_before_mean"])
    assert rows["maml"]["reduced_scale"] is True
    reference = {"meta_batch": 20, "trajectories": 20, "iterations": 500}
    assert rows["maml"]["reference_scale"] == reference
    # the RL Figure 2: ANIL adapts its head only, so its body's similarity is exactly 1 (CCA
    # refuses these 30 states of 100 features: NaN, with the reason printed)
    sim = json.loads((tmp_path / "out" / "rl_similarity.json").read_text())
    anil = {(r["layer"], r["measure"]): r for r in sim["summary"] if r["algorithm"] == "anil"}
    for layer in ("fc1", "fc2"):
        assert anil[layer, "cka"]["mean"] == pytest.approx(1.0, abs=1e-6)
        assert anil[layer, "cka"]["chance"] < 1.0
        for measure in ("cca", "cca98"):
            value = anil[layer, measure]["mean"]
            assert value is None or math.isnan(value) or value == pytest.approx(1.0, abs=1e-6)
    assert anil["head", "cka"]["mean"] < 1.0
    for name in ("rl_similarity_2dnav_maml.png", "rl_similarity_2dnav_anil.png"):
        assert (tmp_path / "out" / name).exists()
    from repsim.reproduce.report import _rl_section

    section = "\n".join(_rl_section(tmp_path / "out"))
    assert "| before adaptation | after 1 | after 2 | after 3 | paper |" in section
    assert "2 x 3, 2 (**reduced**)" in section
    assert "![rl_similarity_2dnav_anil.png](rl/rl_similarity_2dnav_anil.png)" in section
    assert "| 2dnav | MAML | 2 |" in section and "| 2dnav | ANIL | 1 |" in section  # drift
    assert "second-half mean" in section
    maml0 = next(r for r in data["runs"] if r["algorithm"] == "maml" and r["seed"] == 0)
    assert maml0["checkpoint"] == "maml_2dnav_seed0.safetensors"  # no machine path
    assert maml0["return_after"] == pytest.approx(
        write_rl_results(
            tmp_path / "again", [shipped / maml0["checkpoint"]], tasks=3, similarity_tasks=0
        )["runs"][0]["return_after"]
    )  # deterministic
    two = write_rl_results(tmp_path / "two", found, tasks=3, similarity_tasks=2, chance=1, jobs=2)
    assert two["runs"] == data["runs"]  # two policies at a time: the same numbers
    assert (
        json.loads((tmp_path / "two" / "rl_similarity.json").read_text())["summary"]
        == (sim["summary"])
    )
