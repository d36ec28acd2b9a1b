"""GPU benchmark: meta-step time (loop vs vmap paths) and similarity time at analysis scale.

Usage::

    python analysis/bench_gpu.py            # on a CUDA machine: a few minutes
    python analysis/bench_gpu.py --smoke    # tiny shapes on CPU, seconds (tested in CI)

Prints, with the card's name:

1. seconds per meta-training step (5 inner steps, Adam) for MAML, first-order MAML and ANIL,
   on the loop path and the vmap path, at the paper's Omniglot 20-way 1-shot (meta-batch 16)
   and MiniImageNet 5-way 1-shot 15-query (meta-batch 4) shapes (synthetic data of that shape),
   plus the peak CUDA memory, host synchronisations counted in one step (the step must have
   none), and which path is faster (the evidence for ``repsim.train.use_vmap``'s choice on
   CUDA);
2. seconds for CCA and linear CKA between two (n, d) activation matrices at (10000, 512) and
   (50000, 2048), float64 (the library default) and float32.

Times are medians after warm-up, with ``torch.cuda.synchronize()`` around each timed call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import build, repsim_meta_backward, table  # noqa: E402

FULL = {
    "steps": [("omniglot-20w1s", 16), ("miniimagenet-5w1s", 4)],
    "sim": [(10000, 512), (50000, 2048)],
    "warmup": 2,
    "repeats": 5,
}
SMOKE = {"steps": [("omniglot-5w1s", 2)], "sim": [(300, 16)], "warmup": 1, "repeats": 1}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_host_syncs(fn, device) -> int | str:
    """Synchronising CUDA calls made by ``fn()`` (``torch.cuda.set_sync_debug_mode``)."""
    if device.type != "cuda":
        return "n/a (cpu)"
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
            _sync(device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def meta_step_rows(device, plan) -> tuple[list, list]:
    rows, verdict = [], []
    for shape, mb in plan["steps"]:
        for algorithm in ("maml", "fomaml", "anil"):
            secs = {}
            for path in ("loop", "vmap"):
                model, cfg, names, batch = build(shape, algorithm, mb, "auto")
                model = model.to(device)
                batch = batch.to(device)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)

                def step(model=model, cfg=cfg, names=names, batch=batch, opt=opt, path=path):
                    opt.zero_grad(set_to_none=True)
                    repsim_meta_backward(model, cfg, names, batch, path == "vmap")
                    opt.step()

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                secs[path] = timed(step, device, plan["warmup"], plan["repeats"])
                mem = (
                    f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
                    if device.type == "cuda"
                    else "-"
                )
                rows.append(
                    [
                        shape,
                        mb,
                        algorithm,
                        path,
                        f"{secs[path]:.4f}",
                        mem,
                        count_host_syncs(step, device),
                    ]
                )
                del model, batch, opt
            faster = "vmap" if secs["vmap"] < secs["loop"] else "loop"
            verdict.append([shape, algorithm, f"{secs['loop'] / secs['vmap']:.2f}x", faster])
    return rows, verdict


def similarity_rows(device, plan) -> list:
    from repsim import similarity

    rows = []
    g = torch.Generator(device=device).manual_seed(0)
    for n, d in plan["sim"]:
        for dtype in (torch.float64, torch.float32):
            x = torch.randn(n, d, generator=g, device=device, dtype=dtype)
            y = x @ torch.randn(d, d, generator=g, device=device, dtype=dtype) / d**0.5
            y += 0.5 * torch.randn(n, d, generator=g, device=device, dtype=dtype)
            for name, fn in (("cca", similarity.cca), ("linear cka", similarity.linear_cka)):
                value = None

                def run(fn=fn, x=x, y=y, dtype=dtype):
                    nonlocal value
                    value = fn(x, y, dtype=dtype)

                secs = timed(run, device, 1, max(1, plan["repeats"] // 2))
                rows.append(
                    [
                        f"({n}, {d})",
                        str(dtype).replace("torch.", ""),
                        name,
                        f"{secs:.4f}",
                        f"{value:.4f}",
                    ]
                )
            del x, y
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any device (CI)")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not args.smoke:
        parser.error("no CUDA device: this benchmark is for GPUs (use --smoke to test it on CPU)")
    if device.type == "cpu":
        torch.set_num_threads(1)
    plan = SMOKE if args.smoke else FULL
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {card}; torch {torch.__version__}; smoke={args.smoke}", flush=True)
    t0 = time.perf_counter()
    rows, verdict = meta_step_rows(device, plan)
    print(
        table(
            "Seconds per meta-training step (5 inner steps, Adam)",
            [
                "shape",
                "meta-batch",
                "algorithm",
                "path",
                "s / step",
                "peak MiB",
                "host syncs in a step",
            ],
            rows,
        ),
        flush=True,
    )
    print(
        table("Loop vs vmap", ["shape", "algorithm", "loop / vmap time", "faster"], verdict),
        flush=True,
    )
    print(
        table(
            "Similarity of two (n, d) activation matrices, seconds",
            ["(n, d)", "dtype", "measure", "seconds", "value"],
            similarity_rows(device, plan),
        ),
        flush=True,
    )
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
