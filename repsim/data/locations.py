"""Where the datasets and the decoded caches live.

Data: the ``data_dir`` argument (CLI ``--data-dir``), else the ``REPSIM_DATA`` environment
variable, else ``<cache>/data/<dataset>`` (where ``repsim data download`` puts files by default).
A folder that holds a ``<dataset>/`` sub-folder (e.g. ``shared/data`` holding ``omniglot/``)
works as well as the dataset folder itself.

Cache: the ``cache_dir`` argument, else ``REPSIM_CACHE``, else ``~/.cache/repsim``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

DATA_ENV = "REPSIM_DATA"
CACHE_ENV = "REPSIM_CACHE"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: argument, else ``$REPSIM_CACHE``, else ``~/.cache/repsim``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/repsim").expanduser()


def data_root(dataset: str, data_dir: str | Path | None = None) -> tuple[Path, str]:
    """The folder to read ``dataset`` from, and how it was chosen (for error messages)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir argument (--data-dir)"
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser(), f"${DATA_ENV}"
    return cache_root() / "data" / dataset, f"the default (no --data-dir, no ${DATA_ENV})"


def dataset_folder(root: Path, dataset: str, looks_right: Callable[[Path], bool]) -> Path:
    """``root`` itself, or ``root/<dataset>`` when only the sub-folder holds the data."""
    if looks_right(root):
        return root
    sub = root / dataset
    if looks_right(sub):
        return sub
    return root
