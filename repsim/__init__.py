"""repsim: rapid learning or feature reuse? Layer similarity before and after MAML's inner loop.

The data flows one way (see ``STYLE.md``)::

    checkpoint -> model + config
    Omniglot / MiniImageNet -> tasks (support, query)
    model, support -> adapt (inner loop) -> fast weights
    model, params, inputs -> capture -> {layer: activations} before / after
    activations -> similarity -> numbers -> results (JSON/CSV) -> figures

Submodules are imported lazily so that ``import repsim`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "similarity",
    "data",
    "models",
    "inner_loop",
    "checkpoint",
    "train",
    "evaluate",
    "capture",
    "adapters",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"repsim.{name}")
    raise AttributeError(f"module 'repsim' has no attribute {name!r}")
