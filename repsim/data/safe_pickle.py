"""Load pickles of numpy arrays without executing arbitrary code.

A pickle can name any importable callable and make the loader call it (``os.system`` ...).
:class:`NumpyOnlyUnpickler` resolves only the few names that numpy's own array pickling uses
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, numpy scalars,
and ``_codecs.encode`` that protocol-2 pickles use for raw bytes) and the plain builtin
containers; every other global is refused with CorruptDataError. Dicts, lists, strings and
numbers need no globals at all. So loading never runs code beyond building arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from repsim.errors import CorruptDataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and builtin containers, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only numpy arrays and builtin "
            "containers are allowed"
        )


def load_numpy_pickle(path: str | Path) -> object:
    """Unpickle ``path`` allowing only numpy arrays and builtin containers (see module doc)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptDataError(
            f"{path}: cannot load this pickle safely ({exc}); it is damaged or holds more than "
            "numpy arrays -- use the standard mini-imagenet-cache-<part>.pkl files"
        ) from exc
