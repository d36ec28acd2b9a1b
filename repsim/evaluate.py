"""Few-shot accuracy of a checkpoint on fixed test tasks: adapted head, NIL head, freezing.

``evaluate_checkpoint(path, tasks=600, freeze=k, head="adapt"|"nil")`` gives the mean query
accuracy and its 95 % confidence interval over the fixed tasks ``0..tasks-1`` of the test split
(seed 0 by default), so every algorithm and run is scored on identical tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from repsim.errors import InputError

HEADS = ("adapt", "nil")


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (see :func:`repsim.results.mean_ci`)."""
    from repsim.results import mean_ci

    r = mean_ci(values)
    if r["n"] == 0:
        raise InputError("no accuracies to average: evaluate at least one task")
    return r["mean"], r["half_width"]


def task_accuracy(model, params, task, loop, head: str = "adapt") -> float:
    """Query accuracy on one task after the inner loop ``loop`` (or with the NIL head)."""
    from repsim import inner_loop
    from repsim.nil import nil_probabilities

    if head == "nil":
        with torch.no_grad():
            fs = inner_loop.body_features(model, params, task.support_x)
            fq = inner_loop.body_features(model, params, task.query_x)
            ways = int(task.support_y.max()) + 1
            pred = nil_probabilities(fs, task.support_y, fq, ways).argmax(-1)
    elif head == "adapt":
        fast = loop.adapt(model, params, task.support_x, task.support_y)
        with torch.no_grad():
            pred = inner_loop.forward(model, fast, task.query_x).argmax(-1)
    else:
        raise InputError(f"head must be one of {HEADS}, got {head!r}")
    return float((pred == task.query_y).float().mean())


def evaluate_model(
    model,
    record: dict,
    sampler,
    tasks: int = 600,
    freeze: int = 0,
    head: str = "adapt",
    inner_steps: int | None = None,
    inner_lr: float | None = None,
    device="cpu",
    progress: bool = False,
) -> dict:
    """Accuracy over tasks ``0..tasks-1`` of ``sampler``; returns a JSON-able result dict."""
    from repsim.inner_loop import InnerLoop
    from repsim.progress import bar

    loop = InnerLoop.from_record(model, record, freeze=freeze, steps=inner_steps, lr=inner_lr)
    params = {n: p.detach() for n, p in model.named_parameters()}
    accs = [
        task_accuracy(model, params, sampler.task(i).to(device), loop, head)
        for i in bar(range(tasks), desc="evaluate", unit="task", enabled=progress)
    ]
    mean, ci = mean_ci95(accs)
    return {
        "accuracy": mean,
        "ci95": ci,
        "tasks": tasks,
        "head": head,
        "freeze": freeze,
        "inner_steps": loop.steps,
        "inner_lr": loop.lr,
        "adapted": list(loop.names),
        "algorithm": (record.get("train") or {}).get("algorithm", "maml"),
        "per_task": accs,
    }


def test_sampler_for(
    record: dict,
    data_dir=None,
    part: str = "test",
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    seed: int = 0,
):
    """The task sampler of a checkpoint's test split (its dataset, split, ways and shots);
    ``part="test"`` is the split's test part (:func:`repsim.data.held_out_part`)."""
    from repsim.data import TaskSampler, held_out_part, load_classes

    train = record.get("train", {})
    dataset, split = train.get("dataset", "omniglot"), train.get("split", "maml")
    if part == "test":
        part = held_out_part(dataset, split, "test")
    classes = load_classes(
        dataset,
        split,
        part,
        data_dir,
        image_mode=train.get("image_mode", "grey"),
    )
    return TaskSampler(
        classes,
        ways or int(train.get("ways", 5)),
        shots or int(train.get("shots", 1)),
        queries or int(train.get("test_queries", 15)),
        seed,
        rotate=bool(train.get("task_rotations", False)),
    )


def evaluate_checkpoint(
    path: str | Path,
    tasks: int = 600,
    freeze: int = 0,
    head: str = "adapt",
    inner_steps: int | None = None,
    data_dir=None,
    seed: int = 0,
    part: str = "test",
    shots: int | None = None,
    progress: bool = False,
    inner_lr: float | None = None,
) -> dict:
    """Load a checkpoint and score it on its test split; see :func:`evaluate_model`
    (``inner_steps`` / ``inner_lr``: override the recorded test-time steps and rate)."""
    from repsim.checkpoint import load_checkpoint

    model, record = load_checkpoint(path)
    sampler = test_sampler_for(record, data_dir, part, shots=shots, seed=seed)
    result = evaluate_model(
        model, record, sampler, tasks, freeze, head, inner_steps, inner_lr, progress=progress
    )
    result["checkpoint"] = str(path)
    result["sampler"] = {
        k: sampler.meta.get(k)
        for k in ("dataset", "split", "part", "ways", "shots", "queries", "seed")
    }
    return result


def freeze_sweep(
    path: str | Path,
    tasks: int = 600,
    data_dir=None,
    seed: int = 0,
    inner_steps: int | None = None,
    progress: bool = False,
    inner_lr: float | None = None,
) -> list[dict]:
    """Accuracy with test-time freezing of none, conv1, conv1-2, conv1-3 and conv1-4 (Table 1);
    ``inner_lr`` overrides the recorded rate for every row (e.g. to see whether a frozen
    body's head-only adaptation is limited by a rate that was tuned for the whole network)."""
    return [
        evaluate_checkpoint(
            path,
            tasks,
            k,
            "adapt",
            inner_steps,
            data_dir,
            seed,
            progress=progress,
            inner_lr=inner_lr,
        )
        for k in range(5)
    ]
