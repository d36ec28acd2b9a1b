"""What every analysis needs from a meta-learner, whoever trained it.

A :class:`MetaLearner` bundles

- ``module``: an ordinary ``torch.nn.Module`` (hooks and ``state_dict`` work on it);
- ``analysis_layers``: the module paths whose outputs are compared (e.g. conv1..conv4, head);
- ``adapt``: the inner loop, ``(params, support_x, support_y) -> fast_weights``, where both
  dicts map parameter names of ``module`` to tensors (``torch.func.functional_call`` style).
  A learner with no inner loop (ProtoNet-style) returns ``params`` unchanged;
- ``input_shape``: ``(C, H, W)`` of the images it takes;
- ``config``: a JSON-able record of where it came from (checkpoint, algorithm, hyper-parameters).

repsim's own checkpoints load into one (``repsim.checkpoint.load_meta_learner``), and so do the
checkpoints of other libraries (``repsim.adapters``). Capture and similarity know nothing of
checkpoints: they take the module, the params and the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from repsim.inner_loop import InnerLoop
from repsim.params import Params  # importable from here too, as it always was

AdaptFn = Callable[[Params, torch.Tensor, torch.Tensor], Params]


def no_adaptation(params: Params, support_x: torch.Tensor, support_y: torch.Tensor) -> Params:
    """The inner loop of a learner that does not adapt (e.g. ProtoNet): the params as they are."""
    return dict(params)


@dataclass
class MetaLearner:
    module: nn.Module
    analysis_layers: list[str]
    adapt: AdaptFn = no_adaptation
    input_shape: tuple[int, int, int] = (1, 28, 28)
    config: dict = field(default_factory=dict)
    inner_loop: InnerLoop | None = None  # the settings behind ``adapt``, when it is one

    def meta_params(self) -> Params:
        """The meta-initialisation: every parameter of ``module``, detached."""
        return {n: p.detach() for n, p in self.module.named_parameters()}
