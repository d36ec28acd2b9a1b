"""What a trainer keeps in its run folder beside the checkpoints, and when it writes.

Both trainers (:mod:`repsim.train`, :mod:`repsim.rl.train`) keep a run folder the same way:

- ``config.json``: the run's configuration (:func:`write_config`; config as artifact);
- ``metrics.jsonl``: the learning curve, one JSON object a line, each with its ``iteration``.
  :class:`MetricsLog` appends and flushes every row, so a killed run loses no line it wrote.
  A fresh run starts the log anew; a resumed one first drops the lines written after its
  checkpoint, which the resumed run writes again (:func:`restart_metrics`);
- :func:`due`: whether a periodic step (a log line, a checkpoint, an evaluation) falls on an
  iteration.

Example::

    rows = restart_metrics(out / "metrics.jsonl", resumed_at=4)  # the lines up to iteration 4
    with MetricsLog(out / "metrics.jsonl") as log:
        log.write({"iteration": 5, "loss": 0.7})
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MetricsLog", "due", "read_metrics", "restart_metrics", "write_config"]


def due(iteration: int, every: int, last: int | None = None) -> bool:
    """Whether a step taken every ``every`` iterations (and at the ``last``) falls on
    ``iteration``; ``every=0`` is never."""
    return every > 0 and (iteration % every == 0 or iteration == last)


def write_config(out: Path, cfg) -> None:
    """``out/config.json``: ``cfg.to_dict()``, indented, keys sorted."""
    (Path(out) / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))


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
