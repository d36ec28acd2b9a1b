"""The run folder's learning-curve log, as both trainers keep it (repsim.run_log)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from repsim.run_log import (
    MetricsLog,
    Stopped,
    due,
    graceful_stop,
    read_metrics,
    restart_metrics,
)


def _log_of_six_iterations(path) -> list[str]:
    lines = []
    for it in range(1, 7):
        lines.append(json.dumps({"iteration": it, "loss": 1 / (3 * it), "accuracy": 0.1 * it}))
        if it % 3 == 0:
            lines.append(json.dumps({"iteration": it, "val_accuracy": float("nan")}))
    path.write_text("".join(ln + "\n" for ln in lines))
    return lines


def test_a_resumed_run_keeps_the_log_up_to_its_checkpoint_as_written(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = _log_of_six_iterations(path)
    rows = restart_metrics(path, resumed_at=4)  # the checkpoint of iteration 4
    assert path.read_text() == "".join(ln + "\n" for ln in lines[:5])  # byte for byte
    assert [r["iteration"] for r in rows] == [1, 2, 3, 3, 4] and rows == read_metrics(path)
    with MetricsLog(path) as log:  # the resumed run writes iteration 5 on
        log.write({"iteration": 5, "loss": 1 / 15, "accuracy": 0.5})
        assert read_metrics(path)[-1]["iteration"] == 5  # flushed as written
    assert restart_metrics(path, resumed_at=0) == [] and path.read_text() == ""


def test_a_fresh_run_starts_the_log_anew(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _log_of_six_iterations(path)
    assert restart_metrics(path, resumed_at=None) == [] and not path.exists()
    assert restart_metrics(path, resumed_at=4) == [] and not path.exists()  # none to trim


def test_a_rank_other_than_zero_writes_no_log(tmp_path):
    with MetricsLog(tmp_path / "metrics.jsonl", enabled=False) as log:
        log.write({"iteration": 1})
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_periodic_step_falls_on_its_multiples_and_the_last_iteration():
    assert [it for it in range(1, 11) if due(it, 4, last=10)] == [4, 8, 10]
    assert [it for it in range(1, 11) if due(it, 4)] == [4, 8]
    assert not any(due(it, 0, last=10) for it in range(1, 11))  # every=0: never


def _wait_for(condition) -> None:
    """A signal sent to this process runs its Python handler at the next bytecode; wait."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.001)
    raise AssertionError("the signal handler never ran")


def test_graceful_stop_records_the_first_signal_interrupts_on_the_second_and_restores():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with graceful_stop() as stop:
        assert stop.signum is None
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(lambda: stop.signum is not None)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt) as second:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # interrupted by the handler
        assert type(second.value) is KeyboardInterrupt
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with graceful_stop(enabled=False) as off:  # the handlers stay the process's own
        assert {sig: signal.getsignal(sig) for sig in before} == before and off.signum is None


def test_a_stopped_training_command_says_where_it_saved_and_exits_as_the_signal_would(
    monkeypatch, capsys, tmp_path
):
    import repsim.train
    from repsim.cli import main

    def stopped(cfg, out, **_):
        raise Stopped(tmp_path / "last.safetensors", 7, signal.SIGTERM)

    monkeypatch.setattr(repsim.train, "train", stopped)
    assert main(["train", "--preset", "cpu", "--out", str(tmp_path)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after iteration 7" in err and "continue with --resume" in err

    def interrupted(cfg, out, **_):  # a Ctrl-C outside the training loop
        raise KeyboardInterrupt

    monkeypatch.setattr(repsim.train, "train", interrupted)
    assert main(["train", "--preset", "cpu", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "repsim train: interrupted"
