"""Copy trained runs into ``checkpoints/`` with a ``manifest.json`` for ``repsim reproduce``.

Usage: ``python analysis/collect_checkpoints.py RUNS_DIR [CHECKPOINT_DIR]`` after
``bash analysis/train_checkpoints.sh RUNS_DIR``. Ships, per run: the final checkpoint
(``<algorithm>_omniglot_5w1s_seed<k>.safetensors``), its metrics log, and for seed 0 of MAML and
ANIL the checkpoints along training (``along_training/``). Optimiser states are not shipped.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from repsim.checkpoint import read_checkpoint
from repsim.packaged import DEFAULT_CHECKPOINT_NAME
from repsim.reproduce import Run, write_manifest


def collect(runs_dir: Path, out: Path) -> list[Run]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "along_training").mkdir(exist_ok=True)
    (out / "metrics").mkdir(exist_ok=True)
    runs = []
    for run_dir in sorted(p for p in runs_dir.iterdir() if (p / "final.safetensors").exists()):
        _, record = read_checkpoint(run_dir / "final.safetensors")
        tr = record["train"]
        algo, seed = tr["algorithm"], tr["seed"]
        shots = f"{tr['ways']}w{tr['shots']}s"
        name = f"{algo}_{tr['dataset']}_{shots}_seed{seed}"
        final = f"{name}.safetensors"
        shutil.copyfile(run_dir / "final.safetensors", out / final)
        metrics = f"metrics/{name}.jsonl"
        shutil.copyfile(run_dir / "metrics.jsonl", out / metrics)
        checkpoints = {}
        if seed == 0 and algo in ("maml", "anil"):
            for p in sorted(run_dir.glob("iter_*.safetensors")):
                it = int(p.stem.split("_")[1])
                rel = f"along_training/{name}_iter_{it:06d}.safetensors"
                shutil.copyfile(p, out / rel)
                checkpoints[it] = rel
        runs.append(Run(name, algo, seed, int(record["iteration"]), final, checkpoints, metrics))
    return runs


def main() -> int:
    runs_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "checkpoints")
    runs = collect(runs_dir, out)
    write_manifest(
        out,
        runs,
        note="Trained on 2 CPU cores with analysis/train_checkpoints.sh "
        "(repsim train --preset cpu); see README.",
    )
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
