"""The command line: shared options declared once and applied once, train options made from
TrainConfig's fields, and ``repsim similarity`` over many checkpoints on one task set."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from repsim.cli import COMMANDS, build_parser, main
from repsim.data.probe import PROBE_PATH

REPO = Path(__file__).resolve().parent.parent
ALONG_TRAINING = REPO / "checkpoints" / "along_training"


def _declarations(flag: str) -> list[str]:
    pattern = re.compile(rf"[\"']{re.escape(flag)}[\"']")
    return [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "repsim").rglob("*.py"))
        for _ in pattern.finditer(p.read_text())
    ]


@pytest.mark.parametrize("flag", ["--threads", "--data-dir", "--measures"])
def test_each_shared_option_is_declared_once(flag):
    assert len(_declarations(flag)) == 1, _declarations(flag)


def _command_parsers():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        nested = [a for a in parser._actions if a.dest == "action"]
        if nested:
            yield from ((f"{name} {n}", p) for n, p in nested[0].choices.items())
        else:
            yield name, parser


def test_every_command_takes_the_shared_options():
    names = []
    for name, parser in _command_parsers():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert {"--threads", "--data-dir"} <= flags, name
        names.append(name.split()[0])
    assert set(names) == {c.replace("_", "-") for c in COMMANDS}


def test_threads_come_from_the_option_else_the_environment(monkeypatch):
    from repsim.cli import _set_threads
    from repsim.errors import InputError

    monkeypatch.setenv("REPSIM_THREADS", "2")
    assert _set_threads(None) == 2 and torch.get_num_threads() == 2
    assert _set_threads(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("REPSIM_THREADS", "many")
    with pytest.raises(InputError, match="REPSIM_THREADS"):
        _set_threads(None)


def test_train_passes_every_option_and_the_shared_ones_into_its_config(tmp_path, monkeypatch):
    import repsim.train

    seen = {}

    def fake_train(cfg, out, resume=False, progress=True):
        seen["cfg"] = cfg
        return Path(out) / "final.safetensors"

    monkeypatch.setattr(repsim.train, "train", fake_train)
    argv = ["train", "--out", str(tmp_path), "--threads", "2", "--data-dir", str(tmp_path)]
    argv += ["--ways", "3", "--rotations", "--checkpoint-at", "10,20", "--log-every", "5"]
    assert main(argv) == 0
    cfg = seen["cfg"]
    assert (cfg.threads, cfg.data_dir, cfg.ways, cfg.rotations) == (2, str(tmp_path), 3, True)
    assert cfg.checkpoint_at == [10, 20] and cfg.log_every == 5
    assert cfg.meta_batch == repsim.train.PRESETS["cpu"]["meta_batch"]  # the preset's


def test_a_new_trainconfig_field_is_a_new_train_option(monkeypatch):
    import repsim.train

    extended = dataclasses.make_dataclass(
        "TrainConfig",
        [
            ("new_text", str, dataclasses.field(default="zero")),
            ("new_flag", bool, dataclasses.field(default=True)),
            ("new_list", list[int], dataclasses.field(default_factory=list)),
        ],
        bases=(repsim.train.TrainConfig,),
    )
    monkeypatch.setattr(repsim.train, "TrainConfig", extended)
    args = build_parser().parse_args(
        ["train", "--out", "x", "--new-text", "unicorn", "--no-new-flag"] + ["--new-list", "0,90"]
    )
    assert (args.new_text, args.new_flag, args.new_list) == ("unicorn", False, [0, 90])
    assert {"new_text", "new_flag", "new_list", "ways"} <= set(args.config_fields)
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "TrainConfig.new_text (default: zero)" in train_help


def test_similarity_of_a_folder_runs_every_checkpoint_on_one_task_set(tmp_path, monkeypatch):
    from repsim.checkpoint import read_checkpoint
    from repsim.commands import _sources

    loads = []
    real_load = _sources.load_learner
    monkeypatch.setattr(
        _sources, "load_learner", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k)
    )
    out = tmp_path / "out"
    argv = ["similarity", str(ALONG_TRAINING), "--tasks", "2", "--out", str(out)]
    assert main(argv + ["--probe", str(PROBE_PATH)]) == 0

    files = sorted(ALONG_TRAINING.glob("*.safetensors"))
    assert sorted(loads) == [str(f) for f in files]  # each inner loop set up once
    with (out / "similarity_summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(files) * 5 * 2  # checkpoint x layer x measure
    iterations = {f.name: read_checkpoint(f)[1]["iteration"] for f in files}
    for r in rows:
        assert int(r["iteration"]) == iterations[r["checkpoint"]]
        assert float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"])
        if r["checkpoint"].startswith("anil") and r["layer"] != "head":
            assert float(r["mean"]) == pytest.approx(1.0, abs=1e-6)  # ANIL: body unchanged
    with (out / "similarity_tasks.csv").open() as fh:
        tasks = {(r["checkpoint"], r["task"]) for r in csv.DictReader(fh)}
    assert tasks == {(f.name, t) for f in files for t in ("0", "1")}
    meta = json.loads((out / "similarity.json").read_text())["meta"]
    assert [c["name"] for c in meta["checkpoints"]] == [f.name for f in files]
    assert (out / "similarity_vs_iteration.png").stat().st_size > 0


def test_a_folder_without_checkpoints_is_a_clean_error(tmp_path, capsys):
    assert main(["similarity", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "holds no *.safetensors checkpoint" in capsys.readouterr().err


@pytest.mark.data
def test_the_inner_rate_can_be_overridden_at_test_and_a_zero_rate_makes_freezing_irrelevant(
    tmp_path, omniglot_data_dir, capsys
):
    """``--inner-lr`` replaces the recorded rate: at rate 0 no parameter moves, so every
    freezing setting scores exactly as 0 inner steps do; a negative rate is a clear error."""
    from test_similarity_cli import tiny_checkpoint  # tests/ is on sys.path under pytest

    from repsim.evaluate import evaluate_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "t.safetensors", algorithm="maml")
    data = ["--data-dir", str(omniglot_data_dir)]
    unmoved = evaluate_checkpoint(ckpt, tasks=3, inner_steps=0, data_dir=omniglot_data_dir)
    out = tmp_path / "sweep"
    argv = ["freeze-sweep", str(ckpt), "--tasks", "3", "--inner-lr", "0", "--out", str(out)]
    assert main(argv + data) == 0
    rows = json.loads((out / "freeze_sweep.json").read_text())["rows"]
    assert [r["frozen"] for r in rows] == ["none", "conv1", "conv1-2", "conv1-3", "conv1-4"]
    assert all(r["inner_lr"] == 0.0 and r["accuracy"] == unmoved["accuracy"] for r in rows)
    assert "at rate 0" in capsys.readouterr().out

    assert main(["evaluate", str(ckpt), "--tasks", "3", "--inner-lr", "0.5", "--json"] + data) == 0
    assert json.loads(capsys.readouterr().out)["inner_lr"] == 0.5
    assert main(["evaluate", str(ckpt), "--tasks", "3", "--inner-lr", "-1"] + data) == 2
    assert "learning rate must be finite and >= 0" in capsys.readouterr().err
