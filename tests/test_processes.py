"""Work in spawned processes: the same answers, in order, as in one process."""

from __future__ import annotations

import math
import operator
import sys

import pytest

from repsim.processes import map_jobs, spawn_blocker


def test_two_processes_give_the_results_in_the_order_of_the_arguments():
    args = [(b, 3) for b in range(7)]
    assert map_jobs(operator.pow, args, jobs=2) == [b**3 for b in range(7)]


def test_an_error_in_a_process_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="math domain error"):
        map_jobs(math.sqrt, [(4.0,), (-1.0,)], jobs=2)


def test_a_script_read_from_stdin_stays_in_one_process(monkeypatch):
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "<stdin>", raising=False)
    assert "cannot import" in spawn_blocker()
    # a lambda cannot be sent to another process: this only works in this one
    assert map_jobs(lambda x: x + 1, [(1,), (2,)], jobs=2) == [2, 3]
