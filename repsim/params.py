"""``Params``: a model's parameters as a plain dict ``{name: tensor}``, the form
``torch.func.functional_call`` takes: the meta-initialisation, or one task's fast weights.

It has its own small module because several arrows pass it along (the inner loop returns it,
capture and :class:`repsim.protocol.MetaLearner` take it), and none of them should import
another just for the type. ``repsim.protocol.Params`` is the same object.
"""

from __future__ import annotations

import torch

Params = dict[str, torch.Tensor]
