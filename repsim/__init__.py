"""repsim: rapid learning or feature reuse? Layer similarity before and after MAML's inner loop.

The data flows one way (see ``STYLE.md``)::

    checkpoint -> model + config
    Omniglot / MiniImageNet -> tasks (support, query)
    model, support -> adapt (inner loop) -> fast weights
    model, params, inputs -> capture -> {layer: activations} before / after
    activations -> similarity -> numbers -> results (JSON/CSV) -> figures

The front door::

    import repsim
    learner = repsim.load()                         # the checkpoint shipped with the package
    learner = repsim.load("model.pt")               # any supported format, sniffed
    change = repsim.representation.representation_change(learner, tasks)

:func:`repsim.load` (the same function as :func:`repsim.adapters.load`) reads a repsim
checkpoint or another library's and returns a :class:`repsim.protocol.MetaLearner`. Submodules
(``repsim.similarity``, ``repsim.capture``, ``repsim.representation``, ...) and ``load`` are
imported lazily so that ``import repsim`` stays cheap.
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
    "representation",
    "adapters",
    "protocol",
    "results",
}
# Functions re-exported from a submodule: name -> module.
_FUNCTIONS = {"load": "adapters"}
__all__ = sorted(_SUBMODULES | set(_FUNCTIONS))


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"repsim.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"repsim.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'repsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
