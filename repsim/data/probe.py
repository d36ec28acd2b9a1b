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
from repsim.packaged import PROBE_SET_NAME, packaged_file

PROBE_PATH = packaged_file(PROBE_SET_NAME)
N_PROBE_CHARACTERS = 20


def load_probe_classes(path: str | Path | None = None) -> ClassImages:
    """The shipped probe set (uint8 ``[20, 20, 1, 28, 28]``, ``meta["probe_set"] = True``).

    ``path``: another ``.npz`` in the same format: ``images`` uint8 ``[n_classes, n_per_class,
    H, W]`` or ``[n_classes, n_per_class, C, H, W]``, and optionally ``class_names`` (str
    ``[n_classes]``) and ``info`` (a JSON string merged into ``meta``).
    """
    path = Path(path) if path is not None else PROBE_PATH
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            names = [str(s) for s in z["class_names"]] if "class_names" in z else None
            info = json.loads(str(z["info"])) if "info" in z else {}
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptDataError(
            f"the probe set {path} cannot be read ({exc}); it must be an .npz with a uint8 "
            "'images' array [classes, images, H, W]"
            + (
                " -- reinstall repsim or run analysis/make_probe_set.py"
                if path == PROBE_PATH
                else ""
            )
        ) from exc
    if images.dtype != np.uint8 or images.ndim not in (4, 5):
        raise CorruptDataError(
            f"{path}: 'images' must be uint8 [classes, images, H, W] or [classes, images, C, H, W],"
            f" got {images.dtype} with shape {images.shape}"
        )
    if images.ndim == 4:
        images = images[:, :, None]
    if names is None:
        names = [f"class{i:03d}" for i in range(images.shape[0])]
    meta = {
        "dataset": "probe",
        "split": "probe",
        "part": Path(path).stem,
        "rotations": False,
        **info,
        "probe_set": True,
        "probe_file": str(path),
        "n_classes": len(names),
        "n_per_class": int(images.shape[1]),
        "image_shape": [int(s) for s in images.shape[2:]],
    }
    return ClassImages(np.ascontiguousarray(images), names, meta)
