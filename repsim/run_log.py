"""What a trainer keeps in its run folder beside the checkpoints, and when it writes.

Both trainers (:mod:`repsim.train`, :mod:`repsim.rl.train`) keep a run folder the same way:

- ``config.json``: the run's configuration (:func:`write_config`; config as artifact);
- ``metrics.jsonl``: the learning curve, one JSON object a line, each with its ``iteration``.
  :class:`MetricsLog` appends and flushes every row, so a killed run loses no line it wrote.
  A fresh run starts the log anew; a resumed one first drops the lines written after its
  checkpoint, which the resumed run writes again (:func:`restart_metrics`);
- :func:`due`: whether a periodic step (a log line, a checkpoint, an evaluation) falls on an
  iteration;
- :func:`check_same_run`: whether ``--resume`` may continue the run in a folder (the same
  config but for its length and where it runs), and :func:`finished_checkpoint`: whether the
  run is already done (its ``final.safetensors`` at the requested length), so that running a
  campaign again repeats no finished run;
- :func:`snapshot_run`: a consistent copy of a run folder while it trains (what continuing it
  needs), for a session that stops before its runs do;
- :func:`graceful_stop`: the first SIGINT or SIGTERM asks a trainer to finish its iteration, save
  ``last.safetensors`` there and raise :class:`Stopped`, so a stopped run loses no iteration
  (a second signal interrupts at once).

Example::

    rows = restart_metrics(out / "metrics.jsonl", resumed_at=4)  # the lines up to iteration 4
    with MetricsLog(out / "metrics.jsonl") as log:
        log.write({"iteration": 5, "loss": 0.7})
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MetricsLog",
    "StopRequest",
    "Stopped",
    "check_same_run",
    "due",
    "finished_checkpoint",
    "graceful_stop",
    "read_metrics",
    "restart_metrics",
    "snapshot_run",
    "write_config",
]


def due(iteration: int, every: int, last: int | None = None) -> bool:
    """Whether a step taken every ``every`` iterations (and at the ``last``) falls on
    ``iteration``; ``every=0`` is never."""
    return every > 0 and (iteration % every == 0 or iteration == last)


def write_config(out: Path, cfg) -> None:
    """``out/config.json``: ``cfg.to_dict()``, indented, keys sorted."""
    (Path(out) / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))


def check_same_run(out: Path, cfg: dict, trained: dict, iteration: int, free: set[str]) -> None:
    """Refuse (:class:`~repsim.errors.InputError`) to continue the run in ``out``, trained with
    config ``trained`` up to ``iteration``, as the run ``cfg``: when the two differ in a key
    outside ``free`` (its length and where it runs), or when ``cfg["iterations"]`` is short
    of ``iteration``. ``trained`` has the defaults filled in for keys its record lacks."""
    from repsim.errors import InputError

    diff = {k: (trained.get(k), v) for k, v in cfg.items() if trained.get(k) != v and k not in free}
    if diff:
        raise InputError(f"cannot resume {out}: its config differs in {diff}")
    if cfg["iterations"] < iteration:
        raise InputError(
            f"cannot resume {out} at iteration {iteration} with --iterations "
            f"{cfg['iterations']}: it is already past that; give a larger --iterations"
        )


def finished_checkpoint(
    out: Path, cfg: dict, as_trained: Callable[[dict], dict], free: set[str]
) -> Path | None:
    """``out/final.safetensors`` when the run in ``out`` ended at ``cfg["iterations"]`` (a
    resumed run then has nothing left to train; it must be the same run,
    :func:`check_same_run`, with ``as_trained`` filling in the defaults of its record's
    ``train`` section), else ``None``."""
    from repsim.checkpoint import read_record

    final = Path(out) / "final.safetensors"
    if not final.exists():
        return None
    record = read_record(final)
    if int(record["iteration"]) != cfg["iterations"]:
        return None
    check_same_run(out, cfg, as_trained(record["train"]), cfg["iterations"], free)
    return final


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` learning-curve log."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def restart_metrics(path: str | Path, resumed_at: int | None) -> list[dict]:
    """Start the log at ``path`` for a run: a fresh run (``resumed_at=None``) removes it; a run
    resumed from its checkpoint of iteration ``resumed_at`` keeps the lines of iterations up to
    that one, as written, and returns their rows."""
    path = Path(path)
    if not path.exists():
        return []
    if resumed_at is None:
        path.unlink()
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln]
    kept = [(ln, row) for ln in lines if (row := json.loads(ln))["iteration"] <= resumed_at]
    path.write_text("".join(ln + "\n" for ln, _ in kept))
    return [row for _, row in kept]


class MetricsLog:
    """``metrics.jsonl`` open for appending, one row a line, each flushed as it is written.
    ``enabled=False`` (a data-parallel rank other than 0) writes nothing and opens no file."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self._file = open(path, "a") if enabled else None  # noqa: SIM115 (closed by close())

    def write(self, row: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def snapshot_run(run: str | Path, dst: str | Path, tries: int = 40) -> int:
    """Copy into ``dst`` (replacing it) what continuing the run in folder ``run`` needs, even
    while it trains: ``config.json``; a finished run's ``final.safetensors``, or else its
    ``last.safetensors`` with the optimiser state of the same iteration when it has one (a
    save in progress is waited out, up to ``tries`` half-second retries); ``metrics.jsonl`` up
    to that iteration and the checkpoints along training up to it. Returns the iteration.
    ``repsim train --resume --out dst`` then continues the run (or, finished, returns it)."""
    from repsim.checkpoint import optim_path, optimizer_extra, read_checkpoint
    from repsim.errors import CheckpointError

    run, dst = Path(run), Path(dst)
    part = dst.with_name(dst.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    finished = (run / "final.safetensors").exists()
    names = ["final.safetensors"] if finished else ["last.safetensors"]
    if not finished and optim_path(run / "last.safetensors").exists():
        names.append(optim_path(run / "last.safetensors").name)
    for _ in range(tries):
        for name in names:
            shutil.copyfile(run / name, part / name)
        iteration = int(read_checkpoint(part / names[0])[1]["iteration"])
        if len(names) == 1 or optimizer_extra(part / names[0]).get("iteration") == iteration:
            break
        time.sleep(0.5)  # the optimiser state of the save in progress is not written yet
    else:
        raise CheckpointError(f"{run}: its last checkpoint and optimiser state never agreed")
    shutil.copyfile(run / "config.json", part / "config.json")
    if (run / "metrics.jsonl").exists():
        shutil.copyfile(run / "metrics.jsonl", part / "metrics.jsonl")
        restart_metrics(part / "metrics.jsonl", iteration)
    for along in run.glob("iter_*.safetensors"):
        if int(along.stem.split("_")[1]) <= iteration:
            shutil.copyfile(along, part / along.name)
    shutil.rmtree(dst, ignore_errors=True)
    part.rename(dst)
    return iteration


class Stopped(KeyboardInterrupt):
    """A trainer stopped on a signal after saving ``checkpoint`` at ``iteration``; ``--resume``
    continues from there. ``signum`` is the signal's number (the command exits with
    ``128 + signum``, as a process killed by it would)."""

    def __init__(self, checkpoint: Path, iteration: int, signum: int):
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} after iteration {iteration}: {checkpoint} holds it; "
            "continue with --resume"
        )
        self.checkpoint, self.iteration, self.signum = Path(checkpoint), iteration, signum


@dataclass
class StopRequest:
    """What :func:`graceful_stop` yields: ``signum`` is the first signal received, or
    ``None``."""

    signum: int | None = None


@contextmanager
def graceful_stop(enabled: bool = True) -> Iterator[StopRequest]:
    """While the block runs, the first SIGINT or SIGTERM only sets ``request.signum``: the
    trainer checks it after each iteration, saves and raises :class:`Stopped`. A second signal
    raises :class:`KeyboardInterrupt` at once. Off (the default handlers stay) when
    ``enabled`` is false, as for a data-parallel run whose ranks could stop at different
    iterations, or outside the main thread, where Python cannot install handlers."""
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum

    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in before.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
