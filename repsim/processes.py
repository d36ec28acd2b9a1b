"""Independent pieces of work in spawned processes, each with this process's torch thread count.

``repsim reproduce --jobs 2`` runs a setting's analyses (:mod:`repsim.reproduce.analyses`) and
the meta-RL policies' evaluations (:mod:`repsim.rl.report`) two at a time through here. The
processes are spawned, never forked: a fork of a process that holds torch's thread pool can
hang. A spawned process re-imports ``__main__``, which a script read from stdin cannot give:
:func:`spawn_blocker` says so, and the callers then stay in one process.

    >>> from repsim.processes import map_jobs
    >>> map_jobs(pow, [(2, 3), (3, 2)], jobs=1, desc="powers", unit="pair")
    [8, 9]
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

__all__ = ["map_jobs", "process_pool", "spawn_blocker"]


def spawn_blocker() -> str | None:
    """Why a spawned process could not start here (``None`` when it can): ``__main__`` is a
    file that does not exist, such as ``<stdin>``."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        return f"__main__ is {main_file!r}, which a second process cannot import"
    return None


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each set to this process's torch thread count
    (a spawned process starts with torch's default: every core)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=torch.set_num_threads,
        initargs=(torch.get_num_threads(),),
    )


def map_jobs(
    fn: Callable, args: Sequence[tuple], jobs: int = 1, desc: str = "", unit: str = "it"
) -> list:
    """``[fn(*a) for a in args]``, with a progress bar: in this process when ``jobs < 2`` (or a
    process cannot be spawned, :func:`spawn_blocker`), otherwise in ``min(jobs, len(args))``
    spawned processes. ``fn`` must be importable by name (a module-level function). The
    results come back in the order of ``args``; the first error is raised here."""
    from repsim.progress import bar

    args = list(args)
    if jobs < 2 or len(args) < 2 or spawn_blocker() is not None:
        return [fn(*a) for a in bar(args, desc, unit=unit)]
    out: list = [None] * len(args)
    with process_pool(min(jobs, len(args))) as pool:
        index = {pool.submit(fn, *a): i for i, a in enumerate(args)}
        for future in bar(as_completed(index), desc, unit=unit, total=len(args)):
            out[index[future]] = future.result()
    return out
