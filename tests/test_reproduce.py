"""`repsim reproduce --quick` runs the whole pipeline end to end and writes every artifact."""

from __future__ import annotations

import csv
import json

import pytest

from repsim.cli import main

TABLES = [
    "table1_freezing",
    "figure2_similarity",
    "figure3_training",
    "weight_movement",
    "table2_maml_vs_anil",
    "table3_seed_similarity",
    "speed",
    "table4_nil",
    "table5_regimes",
    "supplementary_linear_probe",
]
SETTING = "omniglot-5w1s-cpu"  # the quick runs: repsim's CPU protocol, 5-way 1-shot
FIGURES = [
    "table1_freezing",
    "figure2_maml",
    "figure2_anil",
    "figure3_training",
    "weight_movement",
    "figure5_learning_curves",
    "table3_seed_similarity",
    "supplementary_linear_probe_maml",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, omniglot_data_dir):
    out = tmp_path_factory.mktemp("reproduce")
    assert (
        main(["reproduce", "--quick", "--out", str(out), "--data-dir", str(omniglot_data_dir)]) == 0
    )
    return out


@pytest.mark.data
def test_quick_reproduction_writes_every_table_figure_and_the_report(quick_run):
    from repsim.reproduce.analyses import RESULT_FILES
    from repsim.reproduce.claims import CLAIMS

    written = {p.stem for p in (quick_run / "results" / SETTING).glob("*.json")}
    # what a skipped analysis removes is exactly what the analyses write
    assert written == {n for names in RESULT_FILES.values() for n in names} == set(TABLES)
    for name in TABLES:
        data = json.loads((quick_run / "results" / SETTING / f"{name}.json").read_text())
        assert data["provenance"]["code_version"]["repsim"]
        assert data["setting"] == SETTING
        assert (quick_run / "results" / SETTING / f"{name}.csv").stat().st_size > 0
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (quick_run / "figures" / SETTING / f"{name}.{ext}").stat().st_size > 1000
    report = (quick_run / "results" / "report.md").read_text()
    assert "| claim (source) | clause | setting | ours | band | paper | verdict |" in report
    assert "## Claims along training" in report

    claims = json.loads((quick_run / "results" / "claims.json").read_text())["claims"]
    assert len(claims) == sum(len(c.clauses) for c in CLAIMS)  # every clause once
    assert {c["verdict"] for c in claims} <= {"holds", "fails", "not tested here"}
    mini = [c for c in claims if c["clause"].startswith("MiniImageNet")]
    assert mini and all(c["verdict"] == "not tested here" and c["reason"] for c in mini)
    # Omniglot 5-way stands in for the paper's MiniImageNet and 20-way settings: a proxy
    assert all(c["proxy"] for c in claims if c["setting"] == SETTING)


@pytest.mark.data
def test_every_claim_is_traced_at_each_iteration_that_all_runs_share(quick_run):
    """The quick runs keep checkpoints at 2 and 3 of 6 iterations: the along-training table
    evaluates each clause there with every run at the same iteration."""
    from repsim.reproduce.analyses import ALONG

    along = quick_run / "results" / SETTING / "along"
    assert sorted(p.name for p in along.iterdir()) == ["000002", "000003", "000006"]
    for it in (2, 3, 6):
        files = {p.stem: json.loads(p.read_text()) for p in (along / f"{it:06d}").glob("*.json")}
        assert len(files) == len(ALONG)  # Figure 3, weight movement and speed are not repeated
        assert files["table2_maml_vs_anil"]["iteration"] == it
        regimes = files["table5_regimes"]["summary"]
        assert regimes["multiclass"]["iterations"] == it  # the baselines at the same iteration
    data = json.loads((quick_run / "results" / "claims_along.json").read_text())
    assert {r["iteration"] for r in data["rows"]} == {2, 3, 6}
    assert {r["setting"] for r in data["rows"]} == {SETTING}
    assert data["sizes"][SETTING] == {"accuracy_tasks": 6, "similarity_tasks": 2}
    for r in data["summary"]:
        assert r["iterations"] == [2, 3, 6]
        assert r["holds_from"] in ("never held", "held, not at the end", "not tested") or (
            r["holds_from"].startswith("from ") and r["verdicts"][-1] == "holds"
        )
    numbered = {r["key"] for r in data["rows"] if r["value"] is not None}
    assert {"freezing", "before_after", "anil_vs_maml"} <= numbered
    for key in numbered:
        assert (quick_run / "figures" / "claims_along" / f"{key}.png").stat().st_size > 1000


@pytest.mark.data
def test_quick_checkpoints_evaluate_from_the_cli(quick_run, omniglot_data_dir, capsys):
    ckpt = quick_run / "checkpoints" / "anil_seed0" / "final.safetensors"
    assert (
        main(
            ["evaluate", str(ckpt), "--tasks", "3", "--json", "--data-dir", str(omniglot_data_dir)]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["tasks"] == 3 and 0.0 <= result["accuracy"] <= 1.0
    assert result["adapted"] == ["head.weight", "head.bias"]


@pytest.mark.data
def test_anil_adaptation_leaves_the_body_unchanged_in_the_similarity_results(quick_run):
    """ANIL adapts only the head, so every body layer's similarity is exactly 1."""
    path = quick_run / "results" / SETTING / "figure2_similarity.json"
    summary = json.loads(path.read_text())
    assert {r["measure"] for r in summary["summary"]["anil"]} == {"cca", "cca98", "svcca", "cka"}
    for row in summary["summary"]["anil"]:
        if row["layer"] != "head":
            assert row["mean"] == pytest.approx(1.0, abs=1e-9), row
            assert row["chance"] < 0.9, row  # permuted data is far from identical


@pytest.mark.data
def test_freeze_sweep_cli_writes_table_and_plot(quick_run, omniglot_data_dir, tmp_path, capsys):
    ckpt = quick_run / "checkpoints" / "maml_seed0" / "final.safetensors"
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "freeze-sweep",
                str(ckpt),
                "--tasks",
                "2",
                "--out",
                str(out),
                "--data-dir",
                str(omniglot_data_dir),
            ]
        )
        == 0
    )
    assert "| conv1-4 |" in capsys.readouterr().out
    rows = json.loads((out / "freeze_sweep.json").read_text())["rows"]
    assert [r["frozen"] for r in rows] == ["none", "conv1", "conv1-2", "conv1-3", "conv1-4"]
    assert rows[4]["adapted"] == ["head.weight", "head.bias"]
    for ext in ("csv", "png", "pdf"):
        assert (out / f"freeze_sweep.{ext}").stat().st_size > 0


@pytest.mark.data
def test_results_folders_that_no_claim_reads_are_not_settings(quick_run, tmp_path):
    """results/bench (benchmark tables) sits beside the settings: the report must not list it."""
    import shutil

    from repsim.reproduce import evaluate_and_report

    shutil.copytree(quick_run / "results", tmp_path / "results")
    (tmp_path / "results" / "bench").mkdir()
    (tmp_path / "results" / "bench" / "similarity_anchors.json").write_text('{"rows": []}')
    report = evaluate_and_report(tmp_path, progress=False).read_text()
    assert f"`{SETTING}`" in report
    assert "bench" not in report


@pytest.mark.data
def test_table5_pools_every_seed_of_a_regime(quick_run):
    data = json.loads((quick_run / "results" / SETTING / "table5_regimes.json").read_text())
    maml = data["summary"]["maml"]
    assert maml["seeds"] == [0, 1]  # the quick runs train two MAML seeds
    with (quick_run / "results" / SETTING / "table5_regimes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    per_seed = [float(r["mean"]) for r in rows if r["regime"] == "maml" and r["head"] == "nil"]
    assert len(per_seed) == 2
    assert maml["nil"]["mean"] == pytest.approx(sum(per_seed) / 2)  # same tasks for each seed
    assert maml["seed_std"]["nil"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)


@pytest.mark.data
def test_two_analysis_processes_give_the_same_results_as_one(
    quick_run, omniglot_data_dir, tmp_path
):
    from repsim.reproduce import Settings, reproduce

    settings = Settings.quick(str(omniglot_data_dir))
    reproduce([quick_run / "checkpoints"], tmp_path, settings, progress=False, jobs=2)
    for name in TABLES:
        if name == "speed":  # timings differ from run to run; everything else is deterministic
            continue
        one, two = (
            json.loads((root / "results" / SETTING / f"{name}.json").read_text())
            for root in (quick_run, tmp_path)
        )
        one.pop("provenance"), two.pop("provenance")
        assert one == two, name
    one, two = (
        json.loads((root / "results" / "claims_along.json").read_text())["rows"]
        for root in (quick_run, tmp_path)
    )
    assert one == two  # along training too
    assert (tmp_path / "results" / "report.md").exists()


def test_every_analysis_runs_in_exactly_one_parallel_group():
    from repsim.reproduce.analyses import ALONE, ANALYSES, PARALLEL_GROUPS

    prefixes = [p for group in (*PARALLEL_GROUPS, ALONE) for p in group]
    for title, *_ in ANALYSES:
        assert sum(title.startswith(p) for p in prefixes) == 1, title


@pytest.mark.data
def test_two_processes_from_a_script_on_stdin_fall_back_to_one(
    quick_run, omniglot_data_dir, tmp_path
):
    """A spawned process re-imports __main__; `python - < script` has no file to import."""
    import subprocess
    import sys

    script = (
        "from repsim.reproduce import Settings, reproduce\n"
        f"reproduce([{str(quick_run / 'checkpoints')!r}], {str(tmp_path)!r}, "
        f"Settings.quick({str(omniglot_data_dir)!r}), jobs=2, along=False)\n"
    )
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "one process" in done.stdout
    assert (tmp_path / "results" / SETTING / "table5_regimes.json").exists()


@pytest.mark.data
def test_a_maml_only_folder_runs_what_maml_decides_and_removes_stale_tables(
    quick_run, omniglot_data_dir, tmp_path
):
    """E.g. the 5-shot folder (one MAML run, for Table 1's 5-shot band): Tables 2, 3 and 5 need
    other runs, so they are skipped, and the tables an earlier reproduction of the same setting
    left behind are removed rather than reported beside runs that are no longer there."""
    import shutil

    from repsim.reproduce import Settings, read_manifest, reproduce, write_manifest

    src = quick_run / "checkpoints"
    folder = tmp_path / "maml_only"
    run = next(r for r in read_manifest(src) if r.algorithm == "maml" and r.seed == 0)
    shutil.copytree(src / run.name, folder / run.name)
    write_manifest(folder, [run])
    shutil.copytree(quick_run / "results", tmp_path / "results")  # the same setting, all runs
    reproduce([folder], tmp_path, Settings.quick(str(omniglot_data_dir)), progress=False)
    results = tmp_path / "results" / SETTING
    along = json.loads((tmp_path / "results" / "claims_along.json").read_text())["rows"]
    assert along and not any(r["key"] == "anil_vs_maml" for r in along)  # the MAML run alone
    for name in ("table2_maml_vs_anil", "table3_seed_similarity", "table5_regimes"):
        assert not (results / f"{name}.json").exists() and not (results / f"{name}.csv").exists()
    fig2 = json.loads((results / "figure2_similarity.json").read_text())
    assert list(fig2["summary"]) == ["maml"] and list(fig2["runs"]) == [run.name]
    assert json.loads((results / "table1_freezing.json").read_text())["runs"] == fig2["runs"]
    assert not (tmp_path / "figures" / SETTING / "figure2_anil.png").exists()

    def table2_rows(root):
        claims = json.loads((root / "results" / "claims.json").read_text())["claims"]
        return [c for c in claims if c["key"] == "anil_vs_maml" and c["setting"] == SETTING]

    assert table2_rows(quick_run)  # with MAML and ANIL runs the setting tests Table 2 ...
    assert table2_rows(tmp_path) == []  # ... without them its clauses are not evaluated there


def test_the_fit_rows_put_training_query_accuracy_beside_validation_from_the_shipped_logs():
    """Table 2's fit rows (underfitting or overfitting) read a run's metrics log: the training
    query accuracy is the mean over the last 10 % of the iterations up to the common one, the
    validation accuracy the last one logged there; checked against the log read directly."""
    from pathlib import Path
    from types import SimpleNamespace

    from repsim.reproduce.analyses import _fit
    from repsim.reproduce.report import _fit_lines
    from repsim.reproduce.runs import read_manifest

    root = Path(__file__).resolve().parents[1] / "checkpoints" / "paper20"
    runs = [r for r in read_manifest(root) if r.algorithm in ("maml", "anil")]
    common = min(r.iterations for r in runs)
    rp = SimpleNamespace(root=root, common=common)
    fits = [_fit(rp, r) for r in runs]
    for run, fit in zip(runs, fits):
        rows = [json.loads(ln) for ln in (root / run.metrics).read_text().splitlines() if ln]
        late = [r["accuracy"] for r in rows if "accuracy" in r and 0.9 * common < r["iteration"]]
        val = [r for r in rows if "val_accuracy" in r and r["iteration"] <= common][-1]
        assert fit["train_query_accuracy"] == pytest.approx(sum(late) / len(late), rel=1e-12)
        assert (fit["val_accuracy"], fit["val_iteration"]) == (val["val_accuracy"], common)
        assert fit["gap"] == pytest.approx(fit["train_query_accuracy"] - fit["val_accuracy"])
    text = "\n".join(_fit_lines({"iteration": common, "fit": fits}))
    assert text.count("| MAML seed ") == 3 and text.count("| ANIL seed ") == 3
    assert _fit_lines({"iteration": common, "fit": []}) == []  # no logs: no table
