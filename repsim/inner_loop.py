"""The inner loop: adapt a set of parameters to a task's support set, functionally.

One object, :class:`InnerLoop` (which parameters adapt, the rate, the steps, the order and the
loss), serves MAML, first-order MAML, ANIL, BOIL-style body-only adaptation, test-time freezing
and the policy-gradient inner step of meta-RL: they differ only in *which* parameters adapt
(``repsim.models.adapted_parameter_names``) and in the loss. Parameters are plain dicts
``{name: tensor}`` used with ``torch.func.functional_call``, so the model stays an ordinary
``nn.Module``. :meth:`InnerLoop.from_record` builds it once from a checkpoint's record.

Example::

    loop = InnerLoop.from_record(model, record)          # the recorded test-time setting
    fast = loop.adapt(model, params, support_x, support_y)
    loss, logits = loop.query_loss(model, params, support_x, support_y, query_x, query_y)

Loss scale. The inner loss is the *mean* cross-entropy over the support set. The original MAML
code (Finn et al. 2017) differentiates the *sum* over the N*K support examples of the
cross-entropy divided by K, i.e. N times the gradient of the mean. The paper's inner learning rate
alpha therefore maps to ``inner_lr = N * alpha`` here: Omniglot 5-way alpha=0.4 -> 2.0,
Omniglot 20-way alpha=0.1 -> 2.0, MiniImageNet 5-way alpha=0.01 -> 0.05.

ANIL. When only head parameters adapt and the model can run its body and head separately
(``forward(x, stage="body"|"head")``, as ``Conv4`` does), the body runs once per task and the
inner loop touches only the head: this is why ANIL is much cheaper than MAML.

Two paths compute the same meta-gradient:

- :meth:`InnerLoop.adapt` / :meth:`InnerLoop.query_loss` (a Python loop over tasks,
  ``torch.autograd.grad``): the default on CPU;
- :meth:`InnerLoop.batched_query_losses` (``torch.func.vmap`` over tasks with
  ``torch.func.grad`` in the inner loop). Exact only with a norm that has no running-statistics
  buffers (``BatchStatNorm``), never with ``nn.BatchNorm2d`` (pytorch/functorch#534).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from repsim.errors import InputError
from repsim.params import Params


def _supports_stages(model: nn.Module) -> bool:
    return bool(getattr(model, "supports_stages", False))


def _head_only(names: Iterable[str]) -> bool:
    names = list(names)
    return bool(names) and all(n.split(".", 1)[0] == "head" for n in names)


def body_features(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features ``(N, feature_dim)`` of a model that runs its body separately."""
    return functional_call(model, params, (x,), {"stage": "body"})


def forward(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, ways)`` of ``model`` with parameters ``params``."""
    return functional_call(model, params, (x,))


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The classification inner loss: mean cross-entropy of logits ``(N, ways)``."""
    return F.cross_entropy(output, target)


@dataclass(frozen=True)
class InnerLoop:
    """How a meta-learner adapts: ``steps`` of gradient descent with rate ``lr`` on ``loss``,
    changing only the parameters ``names``.

    One frozen object for MAML, FOMAML, ANIL, BOIL and test-time freezing (they differ in
    ``names``) and for meta-RL's policy-gradient step (it differs in ``loss``). Frozen layers
    and every parameter outside ``names`` pass through as the very same tensor objects.

    Attributes:
        names: the parameters that adapt, e.g. ``("head.weight", "head.bias")`` for ANIL
            (``repsim.models.adapted_parameter_names`` gives them per algorithm).
        lr: the inner learning rate, on the mean loss (``N x`` the paper's alpha for the
            classification loss: Omniglot 5-way alpha 0.4 is ``lr=2.0``).
        steps: gradient steps (>= 0; 0 returns the parameters unchanged).
        first_order: treat the inner gradients as constants in the meta-gradient (FOMAML).
        loss: ``loss(output, target)``: the model's output on the support inputs (logits for a
            classifier, the policy's output for RL) and the targets; default the mean
            cross-entropy.

    Raises:
        InputError: ``steps < 0``, or ``lr`` negative or not finite.

    Example::

        loop = InnerLoop(names=("head.weight", "head.bias"), lr=0.4, steps=5)   # ANIL-style
        fast = loop.adapt(model, dict(model.named_parameters()), support_x, support_y)
    """

    names: tuple[str, ...]
    lr: float
    steps: int
    first_order: bool = False
    loss: Callable[[Any, Any], torch.Tensor] = cross_entropy

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        if self.steps < 0:
            raise InputError(f"inner steps must be >= 0, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr >= 0):  # a negative rate ascends the loss
            raise InputError(f"the inner learning rate must be finite and >= 0, got {self.lr}")

    @classmethod
    def from_record(
        cls,
        model: nn.Module,
        record: dict,
        phase: str = "test",
        freeze: int = 0,
        steps: int | None = None,
        lr: float | None = None,
    ) -> InnerLoop:
        """The inner loop a checkpoint record describes, built once.

        ``record["train"]`` (repsim's records) or an adapter's ``"adapt"`` section gives the
        algorithm, the rate and the steps. The loss is the model's ``inner_loss`` when it
        declares one (a policy's REINFORCE loss), else cross-entropy.

        Args:
            model: the model the record belongs to (its parameter names are read).
            record: a checkpoint's metadata record (``learner.config``).
            phase: ``"test"`` takes the test-time steps (10 in the paper), ``"train"`` the
                training steps.
            freeze: keep the first ``k`` body layers fixed (test-time freezing, Table 1).
            steps: override the recorded steps.
            lr: override the recorded rate.

        Returns:
            The :class:`InnerLoop`.

        Raises:
            InputError: ``phase`` is not ``"train"`` or ``"test"``.

        Example::

            loop = InnerLoop.from_record(learner.module, learner.config, freeze=4)
        """
        from repsim.models import adapted_parameter_names

        if phase not in ("train", "test"):
            raise InputError(f"phase must be 'train' or 'test', got {phase!r}")
        train = dict(DEFAULTS)
        train.update({k: v for k, v in (record.get("train") or {}).items() if v is not None})
        adapt = record.get("adapt") or {}
        if "adapted" in adapt and "train" not in record:  # an adapter's learner
            names = list(adapt["adapted"])
            if freeze:
                from repsim.models import layer_of

                frozen = {f"conv{i}" for i in range(1, freeze + 1)}
                names = [n for n in names if layer_of(n) not in frozen]
            rate = adapt.get("inner_lr", train["inner_lr"])
            recorded = adapt.get("inner_steps", train["test_inner_steps"])
        else:
            names = adapted_parameter_names(model, train["algorithm"], freeze)
            rate = train["inner_lr"]
            recorded = train["test_inner_steps" if phase == "test" else "inner_steps"]
        return cls(
            names=tuple(names),
            lr=float(rate if lr is None else lr),
            steps=int(recorded if steps is None else steps),
            first_order=train["algorithm"] == "fomaml",
            loss=getattr(model, "inner_loss", cross_entropy),
        )

    def replace(self, **changes) -> InnerLoop:
        """A copy with some settings changed (``steps=``, ``names=``, ``lr=`` ...).

        Example: ``loop.replace(steps=1)``.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON-able settings: ``{adapted, inner_lr, inner_steps, first_order, loss}``
        (the loss by name)."""
        return {
            "adapted": list(self.names),
            "inner_lr": self.lr,
            "inner_steps": self.steps,
            "first_order": self.first_order,
            "loss": getattr(self.loss, "__name__", type(self.loss).__name__),
        }

    @property
    def head_only(self) -> bool:
        """Only ``head.*`` parameters adapt (ANIL): the body can run once per task."""
        return _head_only(self.names)

    def adapt(
        self,
        model: nn.Module,
        params: Params,
        support_x: torch.Tensor,
        support_y: Any,
        create_graph: bool = False,
    ) -> Params:
        """Fast weights after the inner loop on the support set.

        When only head parameters adapt and the model runs its body and head separately
        (``Conv4``), the body runs once and the steps touch only the head (ANIL's saving).

        Args:
            model: an ordinary ``nn.Module``, called with ``torch.func.functional_call``.
            params: every parameter of ``model`` (the meta-init, or any starting point),
                ``{name: tensor}``.
            support_x: the support inputs, e.g. ``(N*K, C, H, W)`` images.
            support_y: the targets the loss takes, e.g. ``(N*K,)`` labels in ``0..N-1``.
            create_graph: keep the graph of the inner loop for a second-order meta-gradient
                (MAML). With ``first_order=True`` the inner gradients are treated as constants.

        Returns:
            A dict with the same keys as ``params``: the adapted tensors for ``names``, and
                the very same tensor objects for every other parameter. Detached when nothing
                requires a gradient (at test time).

        Raises:
            InputError: ``names`` holds parameters that ``params`` lacks.
        """
        names = list(self.names)
        missing = [n for n in names if n not in params]
        if missing:
            raise InputError(
                f"cannot adapt unknown parameters {missing}; the model has {sorted(params)}"
            )
        fast = dict(params)
        if self.steps == 0 or not names:
            return fast
        keep_graph = create_graph and not self.first_order
        for n in names:  # at test time the meta-init does not require grad: make it a leaf
            if not fast[n].requires_grad:
                fast[n] = fast[n].detach().requires_grad_(True)

        with torch.enable_grad():
            if self.head_only and _supports_stages(model):  # ANIL: the body runs once
                inputs, kwargs = body_features(model, params, support_x), {"stage": "head"}
                if not keep_graph:
                    inputs = inputs.detach()
            else:
                inputs, kwargs = support_x, {}
            for _ in range(self.steps):
                loss = self.loss(functional_call(model, fast, (inputs,), kwargs), support_y)
                grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=keep_graph)
                for n, g in zip(names, grads):
                    fast[n] = fast[n] - self.lr * g
        if not keep_graph and not any(p.requires_grad for p in params.values()):
            fast = {n: t.detach() for n, t in fast.items()}
        return fast

    def query_loss(
        self,
        model: nn.Module,
        params: Params,
        support_x: torch.Tensor,
        support_y: Any,
        query_x: torch.Tensor,
        query_y: Any,
    ) -> tuple[torch.Tensor, Any]:
        """MAML's outer objective for one task: (query loss after adaptation, query output).

        The loss keeps the graph through the inner loop (second order unless ``first_order``),
        so ``loss.backward()`` gives the meta-gradient with respect to ``params``.

        Args:
            model: the model.
            params: the meta-parameters, ``{name: tensor}`` (requiring grad in training).
            support_x: support inputs, e.g. ``(N*K, C, H, W)``.
            support_y: support targets, e.g. ``(N*K,)``.
            query_x: query inputs, e.g. ``(N*Q, C, H, W)``.
            query_y: query targets, e.g. ``(N*Q,)``.

        Returns:
            loss: the scalar query loss after adaptation.
            output: the model's query output (logits ``(N*Q, ways)`` for a classifier).
        """
        fast = self.adapt(model, params, support_x, support_y, create_graph=True)
        output = forward(model, fast, query_x)
        return self.loss(output, query_y), output

    def _adapt_functional(self, model: nn.Module, params: Params, support_x, support_y) -> Params:
        """The inner loop with ``torch.func.grad`` (composable with vmap)."""
        names = list(self.names)
        fixed = {n: t for n, t in params.items() if n not in names}
        fast = {n: params[n] for n in names}
        if self.head_only and _supports_stages(model):
            inputs, kwargs = body_features(model, params, support_x), {"stage": "head"}
        else:
            inputs, kwargs = support_x, {}

        def support_loss(adapted: Params) -> torch.Tensor:
            output = functional_call(model, {**fixed, **adapted}, (inputs,), kwargs)
            return self.loss(output, support_y)

        for _ in range(self.steps):
            grads = torch.func.grad(support_loss)(fast)
            if self.first_order:
                grads = {n: g.detach() for n, g in grads.items()}
            fast = {n: fast[n] - self.lr * grads[n] for n in names}
        return {**fixed, **fast}

    def batched_query_losses(
        self,
        model: nn.Module,
        params: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        query_y: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The vmap path: every task of a meta-batch at once, with ``torch.func.vmap``.

        The same meta-gradient as :meth:`query_loss` task by task (tested to ~1e-14 in
        float64), exact only with a norm that has no running-statistics buffers.

        Args:
            model: the model.
            params: the meta-parameters, ``{name: tensor}``.
            support_x: ``[T, N*K, C, H, W]``: a leading task dimension.
            support_y: ``[T, N*K]``.
            query_x: ``[T, N*Q, C, H, W]``.
            query_y: ``[T, N*Q]``.

        Returns:
            losses: the query losses ``(T,)``, differentiable with respect to ``params``
                (second order unless ``first_order``).
            outputs: the query outputs ``[T, ...]``.
        """

        def one_task(sx, sy, qx, qy):
            fast = self._adapt_functional(model, params, sx, sy)
            output = forward(model, fast, qx)
            return self.loss(output, qy), output

        return torch.func.vmap(one_task)(support_x, support_y, query_x, query_y)


# What a record that lacks a setting was trained with (repsim's defaults; see TrainConfig).
DEFAULTS = {"algorithm": "maml", "inner_lr": 2.0, "inner_steps": 5, "test_inner_steps": 10}
