"""A small set of real Omniglot drawings shipped with repsim, for use without the dataset.

``repsim/assets/omniglot_probe.npz`` holds the first 20 characters of the MAML split's *test*
part (in :func:`repsim.data.omniglot.maml_order`), all 20 drawings of each, decoded exactly as
the cache is (uint8 28x28, strokes 255). Omniglot is MIT-licensed (Lake et al., 2015); the
licence text is ``repsim/assets/OMNIGLOT_LICENSE``. ``analysis/make_probe_set.py`` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from repsim.data.classes import ClassImages
from repsim.errors import CorruptDataError

PROBE_PATH = Path(__file__).resolve().parent.parent / "assets" / "omniglot_probe.npz"
N_PROBE_CHARACTERS = 20


def load_probe_classes(path: str | Path | None = None) -> ClassImages:
    """The shipped probe set: uint8 ``[20, 20, 1, 28, 28]``, ``meta["probe_set"] = True``."""
    path = Path(path) if path is not None else PROBE_PATH
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            names = [str(s) for s in z["class_names"]]
            info = json.loads(str(z["info"]))
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptDataError(
            f"the Omniglot probe set {path} cannot be read ({exc}); reinstall repsim or "
            "rebuild it with analysis/make_probe_set.py"
        ) from exc
    meta = {
        **info,
        "probe_set": True,
        "probe_file": str(path),
        "n_classes": len(names),
        "n_per_class": int(images.shape[1]),
    }
    return ClassImages(images[:, :, None], names, meta)
