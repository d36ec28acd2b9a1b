"""Progress bars of long stages: named, with a count and time left, on a terminal only."""

import io
import sys

from repsim import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(monkeypatch, stderr, **kw) -> str:
    monkeypatch.setattr(sys, "stderr", stderr)
    for _ in progress.bar(range(3), "Figure 2: maml seed 0", unit="task", **kw):
        pass
    return stderr.getvalue()


def test_a_long_stage_shows_its_name_its_count_and_the_time_left_on_a_terminal(monkeypatch):
    out = _run(monkeypatch, _Terminal())
    assert "Figure 2: maml seed 0" in out and "0/3" in out and "?" in out  # ETA: unknown yet
    assert progress.shown()


def test_no_bar_with_no_progress_or_off_a_terminal(monkeypatch):
    assert _run(monkeypatch, _Terminal(), enabled=False) == ""  # --no-progress
    assert _run(monkeypatch, io.StringIO()) == ""  # a CI log, a redirect
    assert not progress.shown()
