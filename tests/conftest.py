"""Shared fixtures: the real Omniglot data (skipped with a reason when absent), tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "omniglot"


def omniglot_dir() -> Path | None:
    env = os.environ.get("REPSIM_DATA")
    for cand in ([Path(env)] if env else []) + [DEFAULT_DATA]:
        if (cand / "images_background.zip").exists() or (cand / "images_background").is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def omniglot_data_dir() -> Path:
    d = omniglot_dir()
    if d is None:
        pytest.skip(
            "real Omniglot not found: set REPSIM_DATA to a folder with images_background.zip "
            "and images_evaluation.zip (CI uses ../shared/data/omniglot)"
        )
    return d


@pytest.fixture(autouse=True)
def _one_thread():
    """Deterministic, contention-safe numerics on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
