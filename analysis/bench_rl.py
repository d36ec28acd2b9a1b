"""Time one meta-RL iteration: sampling and optimisation separately, MAML vs ANIL, and 1 vs 2
sampling processes on HalfCheetah (gymnasium ``SyncVectorEnv`` vs ``AsyncVectorEnv``).

Usage::

    python analysis/bench_rl.py                  # the -cpu presets, 3 timed iterations each
    python analysis/bench_rl.py --repeats 5 --json results/bench_rl.json

Each configuration runs ``repsim.rl.train.meta_iteration`` (the trainer's iteration: sample
the meta-batch before and after the inner step, then one TRPO step) once to warm up and then
``--repeats`` times from the same initial policy; the table gives the median wall-clock seconds
(wall, not CPU time, because the sampling processes of ``AsyncVectorEnv`` are children) with 1
torch thread. 2D-Navigation samples with numpy in one process, so only HalfCheetah has a 2
process row. The returned episodes are identical for 1 and 2 processes
(tests/test_rl_envs.py), so only the time differs.
"""

from __future__ import annotations

import argparse
import statistics
import sys


def time_config(preset: str, algorithm: str, workers: int, repeats: int) -> dict:
    import torch

    from repsim.inner_loop import InnerLoop
    from repsim.rl.envs import env_for
    from repsim.rl.train import config_from_preset, make_policy, meta_iteration

    cfg = config_from_preset(preset, algorithm=algorithm, workers=workers)
    env = env_for(cfg.to_dict(), workers)
    rows = []
    try:
        model = make_policy(cfg, env)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        loop = InnerLoop.from_record(model, {"train": cfg.to_dict()}, phase="train")
        for it in range(repeats + 1):
            model.load_state_dict(start)
            rows.append(meta_iteration(model, loop, env, cfg, 1 + it))
    finally:
        env.close()
    timed = rows[1:]
    return {
        "preset": preset,
        "algorithm": algorithm,
        "workers": workers,
        "tasks": cfg.meta_batch,
        "trajectories": cfg.trajectories,
        "sample_s": statistics.median(r["sample_seconds"] for r in timed),
        "optimise_s": statistics.median(r["optimise_seconds"] for r in timed),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    configs = [("rl-2dnav-cpu", a, 1) for a in ("maml", "anil")]
    configs += [("rl-cheetah-dir-cpu", a, w) for a in ("maml", "anil") for w in (1, 2)]
    rows = []
    print(
        "| preset | algorithm | sampling processes | tasks x trajectories | sampling s | "
        "optimisation s | total s |"
    )
    print("|---|---|---|---|---|---|---|")
    for preset, algorithm, workers in configs:
        r = time_config(preset, algorithm, workers, args.repeats)
        rows.append(r)
        print(
            f"| {preset} | {algorithm.upper()} | {workers} | {r['tasks']} x {r['trajectories']} "
            f"| {r['sample_s']:.2f} | {r['optimise_s']:.2f} | "
            f"{r['sample_s'] + r['optimise_s']:.2f} |",
            flush=True,
        )
    if args.json:
        from repsim.results import provenance, write_json

        write_json(args.json, {"meta": provenance(command="bench_rl"), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
