"""Copy trained runs into a checkpoint folder with a ``manifest.json`` for ``repsim reproduce``.

Usage::

    python analysis/collect_checkpoints.py RUNS_DIR [CHECKPOINT_DIR] [--resumable] [--note TEXT]

Ships, per run (a folder of ``RUNS_DIR`` with ``final.safetensors``, or with
``last.safetensors`` when the run is still going): its latest checkpoint
(``<algorithm>_<dataset>_<N>w<K>s_seed<k>.safetensors``), its metrics log, and its checkpoints
along training (``along_training/``): every one for seed 0 of MAML (Figure 3 and the weight
movement follow it), for the other runs every iteration that all trained runs share (the
claims along training compare every run there, and runs still training compare at the latest
of them). A checkpoint equal to the run's latest is not copied twice.

``--resumable`` also keeps what ``repsim train --resume`` needs for runs that have not
finished (``resume/<name>/``, :func:`repsim.run_log.snapshot_run`: ``last.safetensors``, its
optimiser state of the same iteration, ``metrics.jsonl``, ``config.json`` and its checkpoints
along training); continue one with
``cp -r CHECKPOINT_DIR/resume/<name> runs/<name> && repsim train <same options> --out
runs/<name> --resume``. Optimiser states of finished runs are never shipped.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from repsim.checkpoint import read_checkpoint
from repsim.packaged import DEFAULT_CHECKPOINT_NAME
from repsim.reproduce import Run, write_manifest
from repsim.run_log import snapshot_run


def _latest(run_dir: Path) -> Path | None:
    for name in ("final.safetensors", "last.safetensors"):
        if (run_dir / name).exists():
            return run_dir / name
    return None


def collect(runs_dir: Path, out: Path, resumable: bool = False) -> list[Run]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "along_training").mkdir(exist_ok=True)
    (out / "metrics").mkdir(exist_ok=True)
    found = sorted((p, _latest(p)) for p in runs_dir.iterdir() if p.is_dir() and _latest(p))
    iters = {p: {int(q.stem.split("_")[1]) for q in p.glob("iter_*.safetensors")} for p, _ in found}
    trained = [have for have in iters.values() if have]  # an untrained (random) run has none
    shared = set.intersection(*trained) if trained else set()
    runs = []
    for run_dir, latest in found:
        _, record = read_checkpoint(latest)
        tr = record["train"]
        algo, seed = tr["algorithm"], tr["seed"]
        label = algo
        if algo == "nil" and float(tr.get("nil_train_scale", 1.0)) != 1.0:
            label = f"nil{float(tr['nil_train_scale']):g}"  # the temperature ablation
        name = f"{label}_{tr['dataset']}_{tr['ways']}w{tr['shots']}s_seed{seed}"
        final = f"{name}.safetensors"
        shutil.copyfile(latest, out / final)
        metrics = f"metrics/{name}.jsonl"
        shutil.copyfile(run_dir / "metrics.jsonl", out / metrics)
        checkpoints = {}
        keep = iters[run_dir] if (seed == 0 and algo == "maml") else shared
        for it in sorted(keep & iters[run_dir] - {int(record["iteration"])}):
            rel = f"along_training/{name}_iter_{it:06d}.safetensors"
            shutil.copyfile(run_dir / f"iter_{it:06d}.safetensors", out / rel)
            checkpoints[it] = rel
        if resumable and latest.name == "last.safetensors":
            snapshot_run(run_dir, out / "resume" / name)
        runs.append(Run(name, algo, seed, int(record["iteration"]), final, checkpoints, metrics))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", nargs="?", default="runs")
    parser.add_argument("out", nargs="?", default="checkpoints")
    parser.add_argument("--resumable", action="store_true")
    parser.add_argument(
        "--note",
        default="Trained on 2 CPU cores with analysis/train_checkpoints.sh "
        "(repsim train --preset cpu); see docs/reproducing/index.md.",
    )
    args = parser.parse_args()
    out = Path(args.out)
    runs = collect(Path(args.runs_dir), out, args.resumable)
    write_manifest(out, runs, note=args.note)
    default = out / DEFAULT_CHECKPOINT_NAME
    if default.is_file():  # the package carries a copy of the default checkpoint
        packaged = Path(__file__).resolve().parent.parent / "repsim" / "assets" / default.name
        shutil.copyfile(default, packaged)
        print(f"copied {default} to {packaged}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(runs)} runs, {size / 2**20:.1f} MiB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
