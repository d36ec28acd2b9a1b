"""Benchmark repsim.data: cold cache build, warm load, and task sampling on real Omniglot.

Usage: python analysis/bench_data.py [--data-dir DIR]   (default: $REPSIM_DATA, else
<repo>/../shared/data/omniglot). The cold build uses a fresh temporary cache folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from repsim.data import TaskSampler, load_classes
from repsim.data import omniglot as og

REPO = Path(__file__).resolve().parent.parent


def median_ms(fn, n: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("REPSIM_DATA") or str(REPO.parent / "shared" / "data" / "omniglot")
    parser.add_argument("--data-dir", default=default)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        og._MEMO.clear()
        t0 = time.perf_counter()
        _, prov = og.load_all(args.data_dir, cache)
        rows.append(("cold cache build, 1,623 x 20 drawings (s)", time.perf_counter() - t0))
        og._MEMO.clear()
        t0 = time.perf_counter()
        train = load_classes("omniglot", "maml", "train", data_dir=args.data_dir, cache_dir=cache)
        rows.append(("warm load of maml/train from the cache file (s)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        rot = load_classes(
            "omniglot", "maml", "train", data_dir=args.data_dir, cache_dir=cache, rotations=True
        )
        rows.append(("maml/train with rotations, same process (s)", time.perf_counter() - t0))
    for label, classes, (n, k, q) in (
        ("20-way 5-shot 15-query task, maml/train (ms, median)", train, (20, 5, 15)),
        ("20-way 5-shot 15-query task, maml/train+rot (ms, median)", rot, (20, 5, 15)),
        ("5-way 1-shot 15-query task, maml/train (ms, median)", train, (5, 1, 15)),
    ):
        s = TaskSampler(classes, n, k, q, seed=0)
        it = iter(range(10**9))
        rows.append((label, median_ms(lambda s=s, it=it: s.task(next(it)), args.repeats)))
    s = TaskSampler(train, 5, 1, 15, seed=0)
    rows.append(
        (
            "batch of 32 5-way 1-shot 15-query tasks (ms, median)",
            median_ms(lambda: s.batch(range(32)), 50),
        )
    )
    print(f"data: {args.data_dir} ({prov['source_kind']}, verified={prov['verified']})")
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':{width}} |    value |")
    print(f"|{'-' * (width + 2)}|---------:|")
    for label, value in rows:
        print(f"| {label:{width}} | {value:8.3f} |")


if __name__ == "__main__":
    main()
