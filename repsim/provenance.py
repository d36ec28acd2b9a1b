"""Where a result came from: library version, git commit, time, and machine."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import re
import subprocess
from pathlib import Path

import repsim


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The git commit of the repsim source tree, or None when it is not a checkout."""
    root = Path(repsim.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_version() -> dict:
    """The code version record stored in every result and checkpoint."""
    import torch

    return {
        "repsim": repsim.__version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def now_utc() -> str:
    """ISO-8601 UTC timestamp, seconds resolution."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# A path of the machine inside a string: ``/a/b``, ``~/a``, ``C:\\a``, up to the next blank or
# quote. Relative paths (``runs/a``), ratios (``it/s``) and URLs (``https://host/a``) are not.
_MACHINE_PATH = re.compile(r"(?<![\w.\-/:])(?:/|~/|\b[A-Za-z]:\\)[^\s\"',;()\[\]{}]+")


def machine_paths(obj) -> list[str]:
    """The strings in ``obj`` (nested dicts and lists) that hold a path of the machine that wrote
    them. Records and results keep what identifies data (dataset, split, digest), never this."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in machine_paths(k) + machine_paths(v)]
    if isinstance(obj, (list, tuple)):
        return [p for v in obj for p in machine_paths(v)]
    if isinstance(obj, str) and _MACHINE_PATH.search(obj):
        return [obj]
    return []


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as a result file should hold it: relative to the working directory when it lies
    inside it, else only its name (``/home/me/runs/a.safetensors`` -> ``a.safetensors``)."""
    path = Path(path).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def portable(obj):
    """``obj`` (nested dicts, lists, strings) with every machine path made portable
    (:func:`portable_path`); what result files store."""
    if isinstance(obj, dict):
        return {portable(k): portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return portable_path(obj)
    if isinstance(obj, str):
        return _MACHINE_PATH.sub(lambda m: portable_path(m.group(0)), obj)
    return obj
