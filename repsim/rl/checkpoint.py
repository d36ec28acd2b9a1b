"""Policy checkpoints: repsim's safetensors + JSON record, with ``model.arch = "gaussian-mlp"``.

The record holds ``model`` (the :class:`~repsim.rl.policy.PolicyConfig`), ``train`` (the
:class:`~repsim.rl.train.RLConfig`: environment, algorithm and every hyper-parameter),
``iteration`` and the returns at that iteration. Reading and writing go through
:mod:`repsim.checkpoint` (atomic, never unpickles).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from repsim.checkpoint import load_state_strict, read_checkpoint, read_record
from repsim.errors import CheckpointError
from repsim.inner_loop import InnerLoop
from repsim.protocol import MetaLearner
from repsim.rl.policy import ARCH, GaussianMLPPolicy, PolicyConfig


def metrics_path(checkpoint: str | Path) -> Path:
    """Where a shipped policy checkpoint's learning curve lies: ``metrics/<stem>.jsonl`` beside
    it (``analysis/collect_rl.py`` writes that layout)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / "metrics" / f"{checkpoint.stem}.jsonl"


def is_policy_record(record: dict) -> bool:
    """Whether a checkpoint record describes a policy (rather than a classifier)."""
    return (record.get("model") or {}).get("arch") == ARCH


def is_policy_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a repsim policy checkpoint (from its header, `read_record`)."""
    return is_policy_record(read_record(path))


def build_policy(record: dict) -> GaussianMLPPolicy:
    if not is_policy_record(record):
        raise CheckpointError(
            f"not a policy checkpoint (model arch {(record.get('model') or {}).get('arch')!r}); "
            "classifier checkpoints load with repsim.checkpoint.load_checkpoint"
        )
    try:
        return GaussianMLPPolicy(PolicyConfig.from_dict(record["model"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"bad policy config in checkpoint: {exc}") from None


def load_policy(path: str | Path) -> tuple[GaussianMLPPolicy, dict]:
    """``(policy, record)`` from a policy checkpoint, in eval mode on the CPU."""
    tensors, record = read_checkpoint(path)
    model = build_policy(record)
    load_state_strict(model, tensors, str(path))
    return model.eval(), record


def load_policy_learner(
    path: str | Path, freeze: int = 0, inner_steps: int | None = None
) -> MetaLearner:
    """A policy checkpoint as a :class:`MetaLearner` whose inner loop is the recorded one
    (REINFORCE loss); ``freeze=k`` keeps fc1..fck fixed in the inner loop."""
    model, record = load_policy(path)
    loop = InnerLoop.from_record(model, record, freeze=freeze, steps=inner_steps)
    return MetaLearner(
        module=model,
        analysis_layers=list(model.analysis_layers),
        adapt=partial(loop.adapt, model),
        input_shape=(model.config.observation_dim,),
        config={**record, "checkpoint": str(path), "adapt": {**loop.to_dict(), "freeze": freeze}},
        inner_loop=loop,
    )
