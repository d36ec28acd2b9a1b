"""The runs behind a reproduction: manifests, experimental settings and the tiny ``--quick`` runs.

A checkpoint folder holds ``manifest.json``, which lists each training run: its algorithm, seed,
final checkpoint, checkpoints along training and metrics log (paths relative to the folder).
All runs of one folder share one experimental *setting* (dataset, ways, shots and protocol),
named by :func:`setting_of` from the first run's record, e.g. ``omniglot-20w1s-paper``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from repsim.errors import CheckpointError


@dataclass
class Run:
    """One training run listed in a manifest (paths relative to the manifest's folder)."""

    name: str
    algorithm: str
    seed: int
    iterations: int
    final: str
    checkpoints: dict[int, str] = field(default_factory=dict)
    metrics: str | None = None

    def checkpoint_at(self, iteration: int, root: Path) -> Path:
        if iteration == self.iterations:
            return root / self.final
        if iteration in self.checkpoints:
            return root / self.checkpoints[iteration]
        raise CheckpointError(
            f"run {self.name} has no checkpoint at iteration {iteration}; it has "
            f"{sorted(self.checkpoints) + [self.iterations]}. Retrain it with "
            f"--checkpoint-at {iteration}."
        )


@dataclass
class Settings:
    """How many tasks each analysis uses (the full run's defaults; ``quick()`` for CI)."""

    accuracy_tasks: int = 600
    freeze_tasks: int = 200
    training_tasks: int = 200
    similarity_tasks: int = 20
    compare_tasks: int = 10
    chance_permutations: int = 3
    rl_tasks: int = 40
    speed_repeats: int = 5
    seed: int = 0
    data_dir: str | None = None

    @classmethod
    def along(cls, full: Settings) -> Settings:
        """The sizes of the along-training evaluation: the reduced scale that the claims'
        bands were set at (200 accuracy tasks, 20 similarity tasks), never above ``full``'s."""
        return dataclasses.replace(
            full,
            accuracy_tasks=min(full.accuracy_tasks, 200),
            freeze_tasks=min(full.freeze_tasks, 200),
            similarity_tasks=min(full.similarity_tasks, 20),
            compare_tasks=min(full.compare_tasks, 10),
        )

    @classmethod
    def quick(cls, data_dir: str | None = None) -> Settings:
        return cls(
            accuracy_tasks=6,
            freeze_tasks=4,
            training_tasks=4,
            similarity_tasks=2,
            compare_tasks=2,
            chance_permutations=1,
            rl_tasks=2,
            speed_repeats=1,
            data_dir=data_dir,
        )


def protocol_of(train: dict) -> str:
    """``"paper"`` for the original code's protocol (N(0, 1) head, shift-only norm, rotated
    tasks), else ``"cpu"`` (repsim's CPU protocol: Xavier head, full norm, no rotations)."""
    paper = (
        train.get("task_rotations")
        and train.get("head_init") == "normal"
        and train.get("norm_affine") == "beta"
    )
    return "paper" if paper else "cpu"


def setting_of(record: dict) -> str:
    """The experimental setting of a checkpoint record, e.g. ``omniglot-5w1s-cpu``."""
    tr = record.get("train", {})
    return (
        f"{tr.get('dataset', 'omniglot')}-{tr.get('ways', 5)}w{tr.get('shots', 1)}s-"
        f"{protocol_of(tr)}"
    )


def read_manifest(ckpt_dir: str | Path) -> list[Run]:
    """The runs listed in ``ckpt_dir/manifest.json``."""
    path = Path(ckpt_dir) / "manifest.json"
    if not path.exists():
        raise CheckpointError(
            f"{path} is missing: a checkpoint folder for `repsim reproduce` lists its runs in "
            "manifest.json (see analysis/collect_checkpoints.py), or use --quick to train tiny "
            "ones."
        )
    try:
        data = json.loads(path.read_text())
        runs = [
            Run(**{**r, "checkpoints": {int(k): v for k, v in r.get("checkpoints", {}).items()}})
            for r in data["runs"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid manifest ({exc})") from None
    for run in runs:
        for rel in [run.final, *run.checkpoints.values()]:
            if not (Path(ckpt_dir) / rel).exists():
                raise CheckpointError(f"{path} lists {rel} (run {run.name}), which is missing")
    return runs


def write_manifest(ckpt_dir: str | Path, runs: list[Run], note: str = "") -> Path:
    path = Path(ckpt_dir) / "manifest.json"
    path.write_text(
        json.dumps(
            {"note": note, "runs": [dataclasses.asdict(r) for r in runs]}, indent=2, sort_keys=True
        )
    )
    return path


def checkpoint_folders(root: str | Path) -> list[Path]:
    """``root`` and its direct sub-folders that hold a ``manifest.json``, in name order."""
    root = Path(root)
    found = [root] if (root / "manifest.json").exists() else []
    found += sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").exists())
    if not found:
        raise CheckpointError(
            f"no manifest.json in {root} or its sub-folders: give a checkpoint folder that lists "
            "its runs (see analysis/collect_checkpoints.py), or use --quick"
        )
    return found


QUICK_SPECS = [
    ("maml", 0),
    ("maml", 1),
    ("anil", 0),
    ("anil", 1),
    ("multiclass", 0),
    ("multitask", 0),
    ("nil", 0),
    ("random", 0),
]


def train_quick_checkpoints(
    ckpt_dir: str | Path, data_dir: str | None = None, iterations: int = 6, progress: bool = False
) -> list[Run]:
    """Tiny real runs (MAML and ANIL x 2 seeds, every baseline regime) for ``--quick``."""
    import shutil

    from repsim.train import TrainConfig, train

    root = Path(ckpt_dir)
    root.mkdir(parents=True, exist_ok=True)
    runs = []
    for algorithm, seed in QUICK_SPECS:
        name = f"{algorithm}_seed{seed}"
        cfg = TrainConfig(
            algorithm=algorithm,
            seed=seed,
            ways=5,
            shots=1,
            queries=2,
            meta_batch=2,
            inner_steps=1,
            test_inner_steps=3,
            iterations=iterations,
            val_every=iterations,
            val_tasks=2,
            save_every=iterations,
            log_every=1,
            multiclass_batch=16,
            checkpoint_at=[iterations // 3, iterations // 2],
            data_dir=data_dir,
        )
        run_dir = root / name
        final = train(cfg, run_dir, progress=progress)
        for extra in run_dir.glob("last*.safetensors"):
            extra.unlink()
        checkpoints = {
            int(p.stem.split("_")[1]): f"{name}/{p.name}"
            for p in sorted(run_dir.glob("iter_*.safetensors"))
        }
        runs.append(
            Run(
                name,
                algorithm,
                seed,
                iterations,
                f"{name}/{final.name}",
                checkpoints,
                f"{name}/metrics.jsonl",
            )
        )
        shutil.rmtree(run_dir / "__pycache__", ignore_errors=True)
    write_manifest(root, runs, note="tiny runs trained by `repsim reproduce --quick`")
    return runs
