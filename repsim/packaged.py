"""Files shipped inside the package (``repsim/assets``): the default checkpoint, the probe set.

They are found with :mod:`importlib.resources`, so they are there after any install (a wheel,
``pip install .``, an editable checkout), wherever the working directory is. The repository's
``checkpoints/`` folder holds the full set of trained checkpoints; only the default one ships
with the package.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

DEFAULT_CHECKPOINT_NAME = "maml_omniglot_5w1s_seed0.safetensors"
PROBE_SET_NAME = "omniglot_probe.npz"

_open_files = contextlib.ExitStack()  # keeps an extracted copy alive (zip installs) until exit
atexit.register(_open_files.close)


def packaged_file(name: str) -> Path:
    """The path of ``repsim/assets/<name>`` as installed."""
    return _open_files.enter_context(resources.as_file(resources.files("repsim") / "assets" / name))
