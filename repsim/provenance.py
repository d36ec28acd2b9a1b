"""Where a result came from: library version, git commit, time, and machine."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
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
