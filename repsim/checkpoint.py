"""repsim checkpoints: safetensors weights with JSON metadata, written atomically.

A checkpoint ``NAME.safetensors`` holds the model's tensors; its safetensors header metadata
holds one key, ``"repsim"``, whose value is a JSON record:

``{"format": "repsim-checkpoint", "format_version": 1, "model": {"arch": "conv4", ...Conv4Config},
"train": {algorithm, dataset, split, ways, shots, queries, inner_lr, inner_steps,
test_inner_steps, meta_batch, outer_lr, iterations, seed, ...}, "iteration": int,
"val_accuracy": float | None, "code_version": {...}, "created": iso-time}``

Resuming needs the optimiser too: ``NAME.optim.safetensors`` beside it holds Adam's state
(never shipped). Both files are written to a temporary name, flushed and renamed, so a killed
run never leaves a half-written checkpoint. Loading never unpickles anything: safetensors is a
plain header + raw buffers format.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

from repsim.errors import CheckpointError
from repsim.inner_loop import InnerLoop
from repsim.models import Conv4, Conv4Config
from repsim.packaged import DEFAULT_CHECKPOINT_NAME, packaged_file
from repsim.protocol import MetaLearner
from repsim.results import atomic_write

FORMAT = "repsim-checkpoint"
FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
# The default checkpoint ships inside the package: a copy of checkpoints/<the same name>.
DEFAULT_CHECKPOINT = packaged_file(DEFAULT_CHECKPOINT_NAME)


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict) -> Path:
    """Write ``model``'s state and ``metadata`` (JSON-able) to ``path`` atomically."""
    from safetensors.torch import save

    path = Path(path)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    if "model" not in record and isinstance(model, Conv4):
        record["model"] = {"arch": "conv4", **model.config.to_dict()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(record, sort_keys=True)
    atomic_write(path, lambda fh: fh.write(save(tensors, metadata={"repsim": text})))
    return path


def read_record(path: str | Path) -> dict:
    """The validated metadata record of a repsim checkpoint, from its header (the tensors are
    not loaded; a file cut short is still reported as corrupt)."""
    return _read(path, tensors=False)[1]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the metadata record of a repsim checkpoint, validated."""
    return _read(path, tensors=True)


def _read(path: str | Path, tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist. Shipped checkpoints are in {CHECKPOINT_DIR}; "
            "train one with `repsim train --out DIR`."
        )
    if path.suffix in (".pt", ".pth", ".ckpt", ".pkl", ".tar") or path.is_dir():
        raise CheckpointError(
            f"{path} is not a repsim checkpoint (.safetensors). For checkpoints written by other "
            "libraries use `repsim similarity --format auto` / `repsim.adapters.load`."
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        loaded = load_file(str(path)) if tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated or "
            "corrupt. Re-download or re-train it."
        ) from None
    if "repsim" not in header:
        raise CheckpointError(
            f"{path} is a safetensors file without repsim metadata; if another library wrote "
            "it, load it with `repsim.adapters.load(path)` or `--format`."
        )
    try:
        record = json.loads(header["repsim"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the repsim metadata is not valid JSON ({exc})") from None
    if record.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: metadata format is {record.get('format')!r}, expected {FORMAT!r}"
        )
    if record.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer repsim (format {record['format_version']}); "
            "upgrade repsim to read it."
        )
    return loaded, record


def build_model(record: dict) -> Conv4:
    """A fresh model with the architecture a checkpoint record describes."""
    model_cfg = dict(record.get("model") or {})
    arch = model_cfg.pop("arch", "conv4")
    if arch != "conv4":
        raise CheckpointError(f"unknown architecture {arch!r} in checkpoint; repsim builds 'conv4'")
    try:
        return Conv4(Conv4Config.from_dict(model_cfg))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"bad model config in checkpoint: {exc}") from None


def load_state_strict(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model``; missing/unexpected keys and shape mismatches are errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the model: missing keys {missing}, unexpected keys "
            f"{unexpected}."
        )
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: layer {k.split('.')[0]!r} tensor {k} has shape "
                f"{tuple(tensors[k].shape)}, the model expects {tuple(v.shape)}."
            )
        if not torch.isfinite(tensors[k]).all():
            raise CheckpointError(
                f"{source}: tensor {k} holds NaN or inf values; the run that "
                "wrote it diverged. Use an earlier checkpoint."
            )
    model.load_state_dict(tensors)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Conv4, dict]:
    """``(model, metadata)`` from a repsim checkpoint; the model is in eval mode on ``device``."""
    tensors, record = read_checkpoint(path)
    model = build_model(record)
    load_state_strict(model, tensors, str(path))
    return model.to(device).eval(), record


def learner_from_model(
    model: Conv4,
    record: dict,
    inner_steps: int | None = None,
    freeze: int = 0,
    inner_lr: float | None = None,
    path: str | None = None,
) -> MetaLearner:
    """A :class:`MetaLearner` whose inner loop uses the checkpoint's recorded settings.

    Inner steps default to the recorded test-time steps (10 in the paper); ``freeze=k`` keeps
    conv1..convk fixed during adaptation (test-time freezing).
    """
    loop = InnerLoop.from_record(model, record, freeze=freeze, steps=inner_steps, lr=inner_lr)
    cfg = model.config
    config = {**record, "checkpoint": path, "adapt": {**loop.to_dict(), "freeze": freeze}}
    return MetaLearner(
        module=model,
        analysis_layers=list(model.analysis_layers),
        adapt=partial(loop.adapt, model),
        input_shape=(cfg.in_channels, cfg.image_size, cfg.image_size),
        config=config,
        inner_loop=loop,
    )


def load_meta_learner(
    path: str | Path | None = None,
    inner_steps: int | None = None,
    freeze: int = 0,
    inner_lr: float | None = None,
    device: str | torch.device = "cpu",
) -> MetaLearner:
    """Load a repsim checkpoint (default: the shipped one) as a :class:`MetaLearner`."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    try:
        model, record = load_checkpoint(path, device)
        return learner_from_model(model, record, inner_steps, freeze, inner_lr, str(path))
    except CheckpointError as exc:
        if str(path) in str(exc):
            raise
        raise CheckpointError(f"{path}: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a damaged record
        raise CheckpointError(
            f"{path}: the repsim record does not describe a model and its inner loop "
            f"({type(exc).__name__}: {exc}); the file is damaged. Copy or re-train it."
        ) from None


# --- optimiser state, for --resume -----------------------------------------------------------


def optim_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name.replace(".safetensors", "") + ".optim.safetensors")


def save_optimizer(path: str | Path, optimizer: torch.optim.Optimizer, extra: dict) -> Path:
    """Adam's state as safetensors (``state.<idx>.<key>``) with param groups in the metadata."""
    from safetensors.torch import save

    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"state.{idx}.{key}"] = t.detach().to("cpu").contiguous()
    meta = {"param_groups": json.dumps(sd["param_groups"]), "extra": json.dumps(extra)}
    target = optim_path(path)
    atomic_write(target, lambda fh: fh.write(save(tensors, metadata=meta)))
    return target


def optimizer_extra(path: str | Path) -> dict:
    """The ``extra`` saved with the optimiser state beside checkpoint ``path`` (its
    ``iteration``), read from the header alone."""
    from safetensors import safe_open

    with safe_open(str(optim_path(path)), framework="pt") as fh:
        return json.loads(fh.metadata()["extra"])


def load_optimizer(path: str | Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore the optimiser saved beside checkpoint ``path``; returns the saved ``extra``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    target = optim_path(path)
    if not target.exists():
        raise CheckpointError(f"cannot resume: optimiser state {target} is missing")
    with safe_open(str(target), framework="pt") as fh:
        meta = fh.metadata()
    flat = load_file(str(target))
    state: dict[int, dict] = {}
    for key, val in flat.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return json.loads(meta["extra"])
