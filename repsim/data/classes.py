"""Images grouped by class: the common currency between dataset readers and task sampling."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from repsim.errors import InputError


@dataclass
class ClassImages:
    """Every image of one split part, grouped by class.

    ``images``: uint8 ``[n_classes, n_per_class, C, H, W]``; for Omniglot ``C=1, H=W=28`` with
    strokes high (255) on a 0 background. ``class_names[i]`` names ``images[i]``, e.g.
    ``"images_background/Latin/character03"`` (``+ "/rot90"`` for a rotated copy).
    ``meta`` records where the images came from (dataset, split, part, rotations, n_classes,
    source digest, cache key), so results can cite their data.
    """

    images: np.ndarray
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 5 or self.images.dtype != np.uint8:
            raise InputError(
                "ClassImages.images must be uint8 [n_classes, n_per_class, C, H, W], got "
                f"{self.images.dtype} with shape {tuple(self.images.shape)}"
            )
        if len(self.class_names) != self.images.shape[0]:
            raise InputError(
                f"ClassImages has {self.images.shape[0]} classes of images but "
                f"{len(self.class_names)} class names"
            )

    @property
    def n_classes(self) -> int:
        """Number of classes (rotated copies count as classes of their own)."""
        return int(self.images.shape[0])

    @property
    def n_per_class(self) -> int:
        """Images per class (the same for every class)."""
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.images.shape[2:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"ClassImages({self.meta.get('dataset', '?')}/{self.meta.get('split', '?')}/"
            f"{self.meta.get('part', '?')}: {self.n_classes} classes x {self.n_per_class} "
            f"images of {self.image_shape})"
        )


def stable_hash(*parts: object) -> int:
    """A 63-bit integer from ``parts`` that is the same in every process and Python version.

    (Python's ``hash`` of a str is salted per process, so it cannot seed task sampling.)
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def with_rotations(images: np.ndarray, class_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Add copies rotated by 90, 180 and 270 degrees (counter-clockwise) as new classes.

    ``images``: ``[n, m, C, H, W]`` -> ``[4n, m, C, H, W]``: the originals first, then all
    classes rotated by 90 degrees (named ``<name>/rot90``), then 180, then 270 -- the data
    augmentation of Santoro et al. (2016) and Finn et al. (2017) for Omniglot training.
    """
    if images.shape[-1] != images.shape[-2]:
        raise InputError(f"rotations need square images, got {images.shape[-2:]}")
    blocks = [images] + [np.rot90(images, k, axes=(-2, -1)) for k in (1, 2, 3)]
    names = list(class_names) + [f"{n}/rot{90 * k}" for k in (1, 2, 3) for n in class_names]
    return np.ascontiguousarray(np.concatenate(blocks, axis=0)), names
