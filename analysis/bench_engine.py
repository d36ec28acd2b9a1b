"""Benchmark the meta-learning engine on CPU, 1 thread: seconds per meta-training step and peak
memory for MAML, first-order MAML and ANIL; ANIL / MAML speed ratios for training and for
test-time adaptation; and repsim against the same computation written with ``higher``.

Usage::

    python analysis/bench_engine.py            # the full tables (about 15 minutes on 2 cores)
    python analysis/bench_engine.py --quick    # fewer repeats, no MiniImageNet meta-batch 16
    python analysis/bench_engine.py --only parity   # float64 meta-gradient check vs higher
    python analysis/bench_engine.py --only higher,profile --json OUT.json   # as quiet_engine.sh
    python analysis/bench_engine.py --only threads  # 1 vs 2 torch threads (idle machine only)

Shapes (synthetic data of that shape; the cost does not depend on pixel values): Omniglot
5-way 1-shot and 20-way 1-shot (28x28x1, 1 query per class, the paper's presets) and
MiniImageNet 5-way 1-shot with 15 queries (84x84x3). Training uses the paper's 5 inner steps and
test-time adaptation 10, with each preset's inner learning rate.

A meta-training step is exactly the trainer's: ``repsim.train.episodic_loss`` (loop or vmap
path as ``--vmap auto`` picks on CPU, or as named), backward, Adam step. Times are CPU seconds
of this process (``time.process_time``: with 1 thread equal to wall time on an idle machine, and
robust to the other processes of a shared one), the median of the timed steps after one warm-up
step. **Step RSS** is the peak resident memory a configuration added over the memory before it:
before each configuration the script returns freed memory to the OS (``malloc_trim``) and resets
the kernel's peak-RSS mark (``/proc/self/clear_refs``), then reads ``VmHWM - VmRSS`` from
``/proc/self/status`` (torch's CPU allocator is invisible to tracemalloc; Linux only). All
configurations run in one process, which saves a torch import per configuration on a busy
machine.

The ``higher`` version (pip install higher) is the common peer formulation: per task an
``innerloop_ctx`` with a differentiable SGD whose parameter groups adapt the same tensors as
MAML (norm affine parameters at lr 0), the query loss divided by the meta-batch and
back-propagated per task, then Adam. Its meta-gradient equals repsim's (checked in float64 first,
``--only parity``).

The profile (``--only profile``, and the convolution share in the ``higher`` table) runs one
more step under ``torch.profiler`` and sums every op's self CPU time by category
(:func:`op_category`): convolution (forward, backward and double backward, with the copies and
element-wise ops they run inside), batch norm (likewise: its double backward is a composition of
element-wise ops and reductions), other element-wise ops, copies, and the rest. The profiler
adds a few microseconds per op, so categories made of many small ops (batch norm's double
backward) read somewhat high.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

SHAPES = {  # name: (dataset, ways, shots, queries, inner_lr)
    "omniglot-5w1s": ("omniglot", 5, 1, 1, 2.0),
    "omniglot-20w1s": ("omniglot", 20, 1, 1, 2.0),
    "miniimagenet-5w1s": ("miniimagenet", 5, 1, 15, 0.05),
}
TRAIN_STEPS, TEST_STEPS = 5, 10
PROFILE_CASES = [("omniglot-5w1s", 32), ("omniglot-20w1s", 16)]  # the paper's meta-batches


def _status_mib(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def reset_peak_rss() -> float:
    """Return freed heap to the OS, reset the peak-RSS mark; the current RSS in MiB."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def synthetic_batch(
    dataset: str, ways: int, shots: int, queries: int, tasks: int, seed: int = 0, dtype=None
):
    """A batch of tasks ``[T, N*K, C, H, W]`` / ``[T, N*Q, C, H, W]`` of uniform noise."""
    import torch

    from repsim.data.tasks import Task
    from repsim.models import Conv4Config

    cfg = Conv4Config.for_dataset(dataset, ways)
    g = torch.Generator().manual_seed(seed)
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    dtype = dtype or torch.float32
    sx = torch.rand(tasks, ways * shots, *shape, generator=g, dtype=dtype)
    qx = torch.rand(tasks, ways * queries, *shape, generator=g, dtype=dtype)
    sy = torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1)
    qy = torch.arange(ways).repeat_interleave(queries).repeat(tasks, 1)
    return Task(sx, sy, qx, qy)


def build(shape: str, algorithm: str, meta_batch: int, vmap: str, dtype=None):
    """Model, training config, adapted names and a synthetic batch for one configuration."""
    import torch

    from repsim.models import Conv4, Conv4Config, adapted_parameter_names
    from repsim.train import TrainConfig

    dataset, ways, shots, queries, lr = SHAPES[shape]
    cfg = TrainConfig(
        algorithm=algorithm,
        dataset=dataset,
        ways=ways,
        shots=shots,
        queries=queries,
        inner_lr=lr,
        inner_steps=TRAIN_STEPS,
        test_inner_steps=TEST_STEPS,
        meta_batch=meta_batch,
        vmap=vmap,
        device="cpu",
    )
    torch.manual_seed(0)
    model = Conv4(Conv4Config.for_dataset(dataset, ways))
    if dtype is not None:
        model = model.to(dtype)
    names = adapted_parameter_names(model, algorithm)
    batch = synthetic_batch(dataset, ways, shots, queries, meta_batch, dtype=dtype)
    return model, cfg, names, batch


def repsim_meta_backward(model, cfg, names, batch, path: bool | None = None) -> None:
    """The trainer's meta-gradient into ``.grad`` (``path``: True = vmap, False = loop, None =
    as training); the loop back-propagates task by task, as the trainer does."""
    from repsim.inner_loop import InnerLoop
    from repsim.train import episodic_loss, use_vmap

    vmap = use_vmap(cfg) if path is None else path
    params = dict(model.named_parameters())
    loop = InnerLoop(tuple(names), cfg.inner_lr, cfg.inner_steps, cfg.first_order)
    episodic_loss(model, params, batch, loop, vmap, backward=True)


def higher_meta_backward(model, cfg, names, batch) -> None:
    """MAML / FOMAML written with ``higher``: accumulates the meta-gradient in ``.grad``."""
    import higher
    import torch
    import torch.nn.functional as F

    adapted = [p for n, p in model.named_parameters() if n in names]
    others = [p for n, p in model.named_parameters() if n not in names]
    groups = [{"params": adapted, "lr": cfg.inner_lr}]
    if others:
        groups.append({"params": others, "lr": 0.0})
    inner_opt = torch.optim.SGD(groups, lr=cfg.inner_lr)
    tasks = len(batch)
    for t in range(tasks):
        with higher.innerloop_ctx(
            model, inner_opt, copy_initial_weights=False, track_higher_grads=not cfg.first_order
        ) as (fmodel, diffopt):
            for _ in range(cfg.inner_steps):
                diffopt.step(F.cross_entropy(fmodel(batch.support_x[t]), batch.support_y[t]))
            loss = F.cross_entropy(fmodel(batch.query_x[t]), batch.query_y[t]) / tasks
            if not cfg.first_order:
                loss.backward()
                continue
            # higher detaches the fast weights without higher-order tracking: the first-order
            # meta-gradient is the query gradient at the fast weights, added to the meta-init's.
            for p, g in zip(model.parameters(), torch.autograd.grad(loss, fmodel.parameters())):
                p.grad = g if p.grad is None else p.grad + g


def worker(spec: dict) -> dict:
    """Time one configuration in this (fresh) process; returns the measurements."""
    import torch

    from repsim import inner_loop

    torch.set_num_threads(spec.get("threads", 1))
    clock = time.perf_counter if spec.get("threads", 1) > 1 else time.process_time
    kind = spec["kind"]
    model, cfg, names, batch = build(
        spec["shape"], spec["algorithm"], spec["meta_batch"], spec.get("vmap", "auto")
    )
    before = reset_peak_rss()
    times = []
    if kind == "test":  # test-time adaptation of one task, as repsim evaluate does it
        params = {n: p.detach() for n, p in model.named_parameters()}
        task = batch
        for i in range(spec["repeats"] + 1):
            t0 = time.process_time()
            loop = inner_loop.InnerLoop(tuple(names), cfg.inner_lr, TEST_STEPS)
            fast = loop.adapt(
                model, params, task.support_x[i % len(task)], task.support_y[i % len(task)]
            )
            with torch.no_grad():
                inner_loop.forward(model, fast, task.query_x[i % len(task)]).argmax(-1)
            times.append(time.process_time() - t0)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        path = {"repsim": None, "repsim-loop": False, "repsim-vmap": True}.get(spec["engine"])

        def step():
            optimizer.zero_grad(set_to_none=True)
            if spec["engine"] == "higher":
                higher_meta_backward(model, cfg, names, batch)
            else:
                repsim_meta_backward(model, cfg, names, batch, path)
            optimizer.step()

        for _ in range(spec["repeats"] + 1):
            t0 = clock()
            step()
            times.append(clock() - t0)
        if spec.get("profile"):  # one more step, under the profiler (after the timed ones)
            profiled = profile_step(step)
    from repsim.train import use_vmap

    vmap = spec["engine"] == "repsim-vmap" or (spec["engine"] == "repsim" and use_vmap(cfg))
    result = {
        **spec,
        "seconds": statistics.median(times[1:]),
        "step_mib": _status_mib("VmHWM") - before,
        "path": "vmap" if vmap else "loop",
    }
    if spec.get("profile") and kind != "test":
        result["profile"] = profiled
    torch.set_num_threads(1)
    return result


def parity(shape: str = "omniglot-5w1s", meta_batch: int = 2) -> list[tuple[str, float]]:
    """Max |meta-gradient difference| between repsim (loop, vmap) and higher, in float64."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for algorithm in ("maml", "fomaml"):
        model, cfg, names, batch = build(shape, algorithm, meta_batch, "off", torch.float64)
        grads = {}
        for engine in ("higher", "repsim-loop", "repsim-vmap"):
            model.zero_grad(set_to_none=True)
            if engine == "higher":
                higher_meta_backward(model, cfg, names, batch)
            else:
                repsim_meta_backward(model, cfg, names, batch, engine == "repsim-vmap")
            grads[engine] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        scale = float(grads["higher"].abs().max())
        for engine in ("repsim-loop", "repsim-vmap"):
            rows.append(
                (
                    f"{algorithm} {engine} vs higher",
                    float((grads[engine] - grads["higher"]).abs().max()),
                    scale,
                )
            )
    return rows


CATEGORIES = ("convolution", "batch norm", "element-wise", "copies", "other")
ELEMENTWISE = {
    *("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "reciprocal", "pow"),
    *("sqrt", "sqrt_", "rsqrt", "exp", "log", "lerp_", "addcmul_", "addcdiv_", "maximum"),
    *("relu", "relu_", "clamp_min", "threshold_backward", "where", "fill_", "zero_", "sign"),
}
COPIES = {"copy_", "clone", "contiguous", "_to_copy", "to", "cat", "stack"}
ENGINE_NODE = "autograd::engine::evaluate_function: "


def op_category(event) -> str:
    """The category of a profiled event's own (self) time.

    An op inside a convolution (its forward, backward or double backward, including the
    element-wise ops and copies those run) is convolution; likewise batch norm, whose double
    backward is a composition of element-wise ops and reductions. Any other op falls in by its
    own name; reductions, matrix products, the loss, allocation and the autograd engine's own
    bookkeeping are "other".
    """
    e = event
    while e is not None:
        name = e.name.removeprefix(ENGINE_NODE).removeprefix("aten::")
        if "conv" in name.lower():
            return "convolution"
        if "batch_norm" in name or "BatchNorm" in name:
            return "batch norm"
        e = e.cpu_parent
    op = event.name.removeprefix("aten::")
    if op in COPIES:
        return "copies"
    if op in ELEMENTWISE or op.startswith("_foreach_"):
        return "element-wise"
    return "other"


def profile_step(step) -> dict:
    """Profile one call of ``step()`` with torch.profiler: the op time (sum of every event's
    self CPU time, in seconds) and each category's share of it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    seconds = {c: 0.0 for c in CATEGORIES}
    for event in prof.events():
        seconds[op_category(event)] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    return {"op_seconds": total, "share": {c: s / total for c, s in seconds.items()}}


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"\n{title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in cells[1:]])


def _with_conv(r: dict) -> str:
    return f"{r['seconds']:.3f} ({100 * r['profile']['share']['convolution']:.0f} %)"


def peer_table(quick: bool) -> str:
    """repsim (loop and vmap paths) vs higher, MAML and first-order MAML; beside each time the
    share of the step's op time spent in convolutions (one more step, profiled). "ceiling" is
    the ratio repsim would reach if it spent nothing outside the convolution and batch-norm
    kernels (forward, backward, double backward), which higher runs identically: higher's time
    over the best repsim path's time times its convolution + batch-norm share."""
    rows = []
    cases = [("omniglot-5w1s", 4), ("omniglot-20w1s", 4)]
    if not quick:
        cases += [("omniglot-5w1s", 32), ("omniglot-20w1s", 16), ("miniimagenet-5w1s", 4)]
    for shape, mb in cases:
        for algorithm in ("maml", "fomaml"):
            engines = ("higher", "repsim-loop", "repsim-vmap")
            if shape.startswith("mini"):  # vmap: 1.4-1.9x slower there, never the trainer's
                engines = engines[:2]
            res = {
                e: measure("train", shape, algorithm, mb, e, 1 if quick else 2, profile=True)
                for e in engines
            }
            best = min((r for e, r in res.items() if e != "higher"), key=lambda r: r["seconds"])
            share = best["profile"]["share"]
            kernels = best["seconds"] * (share["convolution"] + share["batch norm"])
            cells = [res.get(e) for e in ("higher", "repsim-loop", "repsim-vmap")]
            rows.append(
                [
                    shape,
                    mb,
                    algorithm,
                    *(_with_conv(r) if r else "-" for r in cells),
                    f"{res['higher']['seconds'] / best['seconds']:.2f}x",
                    f"{res['higher']['seconds'] / kernels:.2f}x",
                    *(f"{r['step_mib']:.0f}" if r else "-" for r in cells),
                ]
            )
    return table(
        "repsim vs higher: CPU seconds per meta-training step (5 inner steps), the share of "
        "its op time in convolutions (forward, backward, double backward), and step RSS (MiB). "
        "ceiling: the ratio if repsim spent no time outside the convolution and batch-norm "
        "kernels, which both run alike (higher / (best repsim x its conv + norm share))",
        [
            "shape",
            "meta-batch",
            "algorithm",
            "higher s (conv)",
            "repsim loop s (conv)",
            "repsim vmap s (conv)",
            "higher / best repsim",
            "ceiling",
            "higher MiB",
            "loop MiB",
            "vmap MiB",
        ],
        rows,
    )


def profile_table(quick: bool) -> str:
    """Where a second-order MAML step's op time goes, by category, for higher and both of
    repsim's paths (the trainer takes vmap on Omniglot)."""
    cases = [("omniglot-5w1s", 8), ("omniglot-20w1s", 4)] if quick else PROFILE_CASES
    rows = []
    for shape, mb in cases:
        engines = ("higher",) * _has_higher() + ("repsim-loop", "repsim-vmap")
        for engine in engines:
            r = measure("train", shape, "maml", mb, engine, 1, profile=True)
            share = r["profile"]["share"]
            rows.append(
                [
                    shape,
                    mb,
                    engine,
                    f"{r['seconds']:.3f}",
                    f"{r['profile']['op_seconds']:.3f}",
                    *(f"{100 * share[c]:.1f}" for c in CATEGORIES),
                ]
            )
    return table(
        "Profile of a second-order MAML step (5 inner steps, Adam), torch.profiler: share of "
        "the op time (sum of self CPU times) per category, %",
        ["shape", "meta-batch", "engine", "s / step", "op s (profiled)", *CATEGORIES],
        rows,
    )


def thread_table(quick: bool) -> str:
    """Wall seconds per second-order MAML step (the trainer's path) with 1 and 2 torch threads:
    whether a second core helps one process (run it on an otherwise idle machine)."""
    rows = []
    for shape, mb in [("omniglot-20w1s", 4 if quick else 16)]:
        res = {
            t: measure("train", shape, "maml", mb, "repsim", 1 if quick else 2, threads=t)
            for t in (1, 2)
        }
        rows.append(
            [
                shape,
                mb,
                res[1]["path"],
                *(f"{r['seconds']:.3f}" for r in res.values()),
                f"{res[1]['seconds'] / res[2]['seconds']:.2f}x",
            ]
        )
    return table(
        "Threads: wall seconds per MAML step (5 inner steps, Adam), 1 vs 2 torch threads",
        ["shape", "meta-batch", "path", "1 thread s", "2 threads s", "speed-up"],
        rows,
    )


def engine_tables(quick: bool) -> str:
    """MAML / FOMAML / ANIL per shape and meta-batch, and the ANIL speed-up ratios."""
    rows, ratios = [], []
    for shape in SHAPES:
        mini = shape.startswith("mini")
        for mb in (4, 16):
            secs = {}
            for algorithm in ("maml", "fomaml", "anil"):
                if quick and mini and mb == 16 and algorithm != "anil":
                    rows.append([shape, mb, algorithm, "-", "skipped (--quick)", "-"])
                    continue
                r = measure("train", shape, algorithm, mb, "repsim", 1 if quick or mini else 2)
                secs[algorithm] = r["seconds"]
                rows.append(
                    [shape, mb, algorithm, r["path"], f"{r['seconds']:.3f}", f"{r['step_mib']:.0f}"]
                )
            if "maml" in secs:
                ratios.append(
                    [
                        shape,
                        f"training step, meta-batch {mb}",
                        f"{secs['maml'] / secs['anil']:.1f}x",
                    ]
                )
        test = {
            a: measure("test", shape, a, 4, "repsim", 3 if quick else 6) for a in ("maml", "anil")
        }
        m, a = test["maml"]["seconds"], test["anil"]["seconds"]
        ratios.append(
            [
                shape,
                f"test-time adaptation, {TEST_STEPS} steps, per task",
                f"{m / a:.1f}x ({m * 1e3:.1f} ms vs {a * 1e3:.1f} ms)",
            ]
        )
    return (
        table(
            f"CPU seconds per meta-training step ({TRAIN_STEPS} inner steps, Adam), "
            "1 thread, and step RSS",
            ["shape", "meta-batch", "algorithm", "path", "s / step", "step RSS MiB"],
            rows,
        )
        + "\n"
        + table(
            "ANIL speed-up over MAML (paper: 1.7x training, 4.1x test)",
            ["shape", "phase", "MAML time / ANIL time"],
            ratios,
        )
    )


RESULTS: list[dict] = []  # every measurement of this run, for --json


def measure(
    kind: str,
    shape: str,
    algorithm: str,
    meta_batch: int,
    engine: str,
    repeats: int,
    profile: bool = False,
    threads: int = 1,
) -> dict:
    """One configuration; its result also goes to stderr at once (partial runs keep data). A
    profiled configuration already measured in this run (the higher table's) is reused."""
    spec = dict(
        kind=kind,
        shape=shape,
        algorithm=algorithm,
        meta_batch=meta_batch,
        engine=engine,
        repeats=repeats,
        profile=profile,
        threads=threads,
    )
    same = ("kind", "shape", "algorithm", "meta_batch", "engine", "threads")
    for done in RESULTS:
        if profile and "profile" in done and all(done[k] == spec[k] for k in same):
            return done
    result = worker(spec)
    print(json.dumps(result), file=sys.stderr, flush=True)
    RESULTS.append(result)
    return result


def _has_higher() -> bool:
    try:
        import higher  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 timed step per configuration; skip MiniImageNet meta-batch 16 "
        "for MAML / FOMAML; only meta-batch 4 Omniglot in the higher comparison",
    )
    parser.add_argument(
        "--only",
        default="all",
        help="comma-separated sections: parity, higher (with parity), profile, engine, threads "
        "(wall time, idle machine only); all = parity, higher, profile and engine",
    )
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="also write every measurement to PATH"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "all" in only:
        only |= {"parity", "higher", "profile", "engine"}
    if "higher" in only:
        only.add("parity")
    unknown = only - {"all", "parity", "higher", "profile", "engine", "threads"}
    if unknown:
        parser.error(f"unknown --only sections {sorted(unknown)}")
    import torch

    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, CPU, 1 thread; median CPU seconds per step "
        "(time.process_time); step RSS = peak RSS added by the configuration (MiB)"
    )
    t_start = time.perf_counter()
    parity_rows = []
    if "parity" in only:
        if not _has_higher():
            print("\nhigher is not installed (pip install higher): no peer comparison")
        else:
            parity_rows = parity()
            rows = [[name, f"{d:.2e}", f"{s:.2e}"] for name, d, s in parity_rows]
            print(
                table(
                    "Meta-gradient parity with higher, float64, Omniglot 5-way 1-shot, "
                    "meta-batch 2, 5 inner steps",
                    ["comparison", "max |diff|", "max |grad|"],
                    rows,
                ),
                flush=True,
            )
            if "higher" in only:
                print(peer_table(args.quick), flush=True)
    if "profile" in only:
        print(profile_table(args.quick), flush=True)
    if "threads" in only:  # wall time: meaningful on an idle machine only
        print(thread_table(args.quick), flush=True)
    if "engine" in only:
        print(engine_tables(args.quick), flush=True)
    wall = time.perf_counter() - t_start
    print(f"\ntotal wall time {wall:.0f} s")
    if args.json:
        from pathlib import Path

        out = {
            "torch": torch.__version__,
            "only": sorted(only),
            "quick": args.quick,
            "parity": [{"comparison": n, "max_diff": d, "max_grad": g} for n, d, g in parity_rows],
            "measurements": RESULTS,
            "wall_seconds": wall,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
