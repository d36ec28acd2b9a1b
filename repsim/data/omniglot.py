"""Omniglot (Lake et al., 2015): read the official zips or folders, decode once, split.

Source layout (the official ``python/`` zips of https://github.com/brendenlake/omniglot)::

    <data_dir>/images_background.zip   or  <data_dir>/images_background/<Alphabet>/characterNN/*.png
    <data_dir>/images_evaluation.zip   or  <data_dir>/images_evaluation/<Alphabet>/characterNN/*.png

Each character ("class") has 20 drawings, 105x105 PNGs in mode "1" with white (1) background
and black (0) strokes. 964 background + 659 evaluation characters = 1,623 in 50 alphabets.

Decoding (once per image mode, then cached), chosen by ``image_mode``:

- ``"grey"`` (the default): each drawing is converted to 8-bit grey, resized to 28x28 with
  Pillow's Lanczos filter and inverted, so strokes are high (255) and background 0 -- the
  orientation MAML's data loader produces (it computes ``1 - image/255``).
- ``"binary"``: the original code's images. Finn et al.'s ``data/omniglot_resized/
  resize_images.py`` calls ``resize((28, 28), resample=Image.LANCZOS)`` on the mode-"1" image
  itself; Pillow resamples mode "1" with nearest-neighbour whatever filter is asked for, so
  their 28x28 images are binary strokes (0 or 255 here). We make the same call on the same
  mode-"1" image.

``meta["preprocessing"]`` says which was used.

Cache: one uint8 ``.npz`` of all 1,623 characters (``[1623, 20, 28, 28]``, 25 MB) under
``<cache>/omniglot/``, named by a *content key*. For zips the key hashes every member's path,
size and CRC-32 from the zip's central directory (a checksum of the member's bytes, so the key
changes when any image changes, yet reading it takes ~0.2 s and decompresses nothing); for
extracted folders it hashes every file's path, size and modification time. A cache whose key
differs is never used (a new one is built), and caches are written atomically. Within one
process, a zip's listing is reused while its path, size, modification time and inode are
unchanged, and the decoded arrays of the last key are kept in memory.

Verification: the build checks the counts above and computes the *members digest* of each set
(sha256 of the sorted ``"<sha256 of file>  <path>\n"`` lines, as the data README defines it)
against the official values; a mismatch is a warning and is recorded (``meta["verified"]``).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repsim.data.classes import ClassImages, with_rotations
from repsim.data.locations import DATA_ENV, cache_root, data_root, dataset_folder
from repsim.errors import CorruptDataError, DataNotFoundError, InputError
from repsim.results import atomic_write

SETS = ("images_background", "images_evaluation")
IMAGE_SIZE = 28
DRAWINGS_PER_CHARACTER = 20
EXPECTED = {  # set -> (alphabets, characters, members digest)
    "images_background": (
        30,
        964,
        "deaa02f758afda524b3a045c7af40311f2d9ded3e2a39f715ece8470d474bc6a",
    ),
    "images_evaluation": (
        20,
        659,
        "3d5e035f27423c362bf9a181af649b43cda64c1008f842177ddc5203269c901e",
    ),
}
DOWNLOAD_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{name}.zip"
IMAGE_MODES = ("grey", "binary")
PREPROCESSING = {
    "grey": "L -> Lanczos 105->28 (Pillow) -> 255 - x (strokes high)",
    "binary": "mode 1 -> resize(LANCZOS) 105->28 (Pillow: nearest for mode 1, as Finn et al.'s "
    "resize_images.py) -> L -> 255 - x (binary strokes high)",
}
CACHE_FORMAT = 1

# split -> parts; see omniglot_split_indices for how each is made.
SPLITS = {
    "maml": ("train", "val", "test"),
    "vinyals": ("train", "test"),
    "background": ("background", "evaluation"),
}
MAML_SHUFFLE_SEED = 1  # Finn et al.'s data_generator.py: random.seed(1); random.shuffle(...)
MAML_N_TRAIN, MAML_N_VAL = 1100, 100
VINYALS_N_TRAIN = 1200

MISSING_HELP = (
    "Put the official Omniglot zips images_background.zip and images_evaluation.zip (or their "
    "extracted folders images_background/ and images_evaluation/) in one folder and pass it "
    f"with --data-dir DIR (Python: data_dir=DIR) or set {DATA_ENV}=DIR. To fetch them: "
    "`repsim data download --data-dir DIR` (from "
    "https://github.com/brendenlake/omniglot/tree/master/python)."
)


# ---------------------------------------------------------------------------------------------
# Reading the source (zip or folder)


@dataclass
class OmniglotSource:
    """One set (background or evaluation) of Omniglot: a zip or an extracted folder."""

    name: str  # "images_background" / "images_evaluation"
    path: Path  # the .zip or the folder
    members: list[str]  # "<set>/<Alphabet>/characterNN/<id>_<kk>.png", sorted
    key_lines: list[str]  # cheap content fingerprint, one line per member

    @property
    def kind(self) -> str:
        return "zip" if self.path.suffix == ".zip" else "folder"

    def reader(self):
        """A ``member -> bytes`` function (keeps the zip open while it lives)."""
        if self.kind == "folder":
            base = self.path.parent
            return lambda m: (base / m).read_bytes()
        zf = _open_zip(self.path)

        def read(member: str) -> bytes:
            try:
                return zf.read(member)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise CorruptDataError(
                    f"{self.path}: member {member} cannot be read ({exc}); the zip is damaged "
                    "-- download it again (repsim data download)"
                ) from exc

        return read


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorruptDataError(
            f"{path} is not a readable zip ({exc}); it is probably truncated or damaged -- "
            "delete it and download it again (repsim data download)"
        ) from exc


_ZIP_LISTINGS: dict[tuple, OmniglotSource] = {}  # (path, size, mtime, inode) -> listing


def _source_for(folder: Path, name: str) -> OmniglotSource | None:
    """The zip ``<folder>/<name>.zip`` (preferred) or the folder ``<folder>/<name>/``."""
    zpath = folder / f"{name}.zip"
    if zpath.is_file():
        st = zpath.stat()
        stamp = (str(zpath.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp in _ZIP_LISTINGS:  # same file, unchanged since it was listed in this process
            return _ZIP_LISTINGS[stamp]
        zf = _open_zip(zpath)
        infos = sorted(
            (i for i in zf.infolist() if not i.is_dir() and i.filename.endswith(".png")),
            key=lambda i: i.filename,
        )
        zf.close()
        src = OmniglotSource(
            name,
            zpath,
            [i.filename for i in infos],
            [f"{i.filename} {i.file_size} {i.CRC:08x}" for i in infos],
        )
        if len(_ZIP_LISTINGS) > 8:
            _ZIP_LISTINGS.clear()
        _ZIP_LISTINGS[stamp] = src
        return src
    dpath = folder / name
    if dpath.is_dir():
        files = sorted(dpath.rglob("*.png"))
        members, lines = [], []
        for f in files:
            st = f.stat()
            m = f.relative_to(folder).as_posix()
            members.append(m)
            lines.append(f"{m} {st.st_size} {st.st_mtime_ns}")
        return OmniglotSource(name, dpath, members, lines)
    return None


def _looks_like_omniglot(folder: Path) -> bool:
    return all((folder / f"{s}.zip").is_file() or (folder / s).is_dir() for s in SETS)


def find_sources(data_dir: str | Path | None = None) -> list[OmniglotSource]:
    """Locate both Omniglot sets; DataNotFoundError says exactly what to put where."""
    root, how = data_root("omniglot", data_dir)
    folder = dataset_folder(root, "omniglot", _looks_like_omniglot)
    sources = []
    for name in SETS:
        src = _source_for(folder, name)
        if src is None:
            raise DataNotFoundError(
                f"Omniglot not found: {folder / (name + '.zip')} (or the folder "
                f"{folder / name}/) does not exist (data folder from {how}). {MISSING_HELP}"
            )
        if not src.members:
            raise CorruptDataError(
                f"{src.path} holds no PNG images; expected {name}/<Alphabet>/characterNN/*.png. "
                + MISSING_HELP
            )
        sources.append(src)
    return sources


def check_image_mode(image_mode: str) -> None:
    if image_mode not in IMAGE_MODES:
        raise InputError(
            f"unknown Omniglot image mode {image_mode!r}; use one of {', '.join(IMAGE_MODES)} "
            "(grey: Lanczos grey levels; binary: the original code's nearest-neighbour strokes)"
        )


def content_key(sources: list[OmniglotSource], image_mode: str = "grey") -> str:
    """The cache key: a hash of the cheap fingerprint of every member plus the preprocessing."""
    check_image_mode(image_mode)
    prep = PREPROCESSING[image_mode]
    h = hashlib.sha256(f"omniglot-cache-v{CACHE_FORMAT} {prep} {IMAGE_SIZE}\n".encode())
    for src in sources:
        for line in src.key_lines:
            h.update(line.encode() + b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_drawing(
    data: bytes, where: str, size: int = IMAGE_SIZE, image_mode: str = "grey"
) -> np.ndarray:
    """PNG bytes -> uint8 ``[size, size]``, strokes high on background 0: Lanczos grey levels
    (``image_mode="grey"``), or the original code's resize of the mode-"1" image, binary
    strokes 0/255 (``"binary"``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if image_mode == "binary":  # Finn et al.'s call, on the image as it is stored
                grey = im.resize((size, size), resample=Image.Resampling.LANCZOS).convert("L")
            else:
                grey = im.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, zlib.error) as exc:
        raise CorruptDataError(
            f"{where}: cannot decode the image ({exc}); the file is damaged -- download the "
            "data again (repsim data download)"
        ) from exc
    return 255 - np.asarray(grey, dtype=np.uint8)


def members_digest(lines: list[str]) -> str:
    """The README's members digest from ``"<sha256>  <path>"`` lines (sorted by path here)."""
    text = "".join(f"{line}\n" for line in sorted(lines, key=lambda s: s.split("  ", 1)[1]))
    return hashlib.sha256(text.encode()).hexdigest()


def _group_by_character(src: OmniglotSource) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for m in src.members:
        parts = m.split("/")
        if len(parts) != 4:
            raise CorruptDataError(
                f"{src.path}: unexpected member {m}; expected "
                f"{src.name}/<Alphabet>/characterNN/<id>_<kk>.png"
            )
        groups.setdefault("/".join(parts[:3]), []).append(m)
    return groups


def check_counts(src: OmniglotSource, groups: dict[str, list[str]]) -> None:
    """Raise CorruptDataError unless the set has the official alphabet/character/drawing counts."""
    n_alpha, n_char, _ = EXPECTED[src.name]
    alphabets = {c.split("/")[1] for c in groups}
    short = {c: len(v) for c, v in groups.items() if len(v) != DRAWINGS_PER_CHARACTER}
    if short:
        c, n = next(iter(sorted(short.items())))
        raise CorruptDataError(
            f"{src.path}: {len(short)} characters do not have {DRAWINGS_PER_CHARACTER} drawings "
            f"(e.g. {c} has {n}); the data is incomplete -- download it again"
        )
    if len(alphabets) != n_alpha or len(groups) != n_char:
        raise CorruptDataError(
            f"{src.path}: found {len(alphabets)} alphabets and {len(groups)} characters, "
            f"expected {n_alpha} and {n_char}; the data is incomplete -- download it again"
        )


def build_all(sources: list[OmniglotSource], image_mode: str = "grey") -> dict:
    """Decode every drawing of both sets: images uint8 [1623, 20, 28, 28], names, digests."""
    names: list[str] = []
    blocks: list[np.ndarray] = []
    digests: dict[str, str] = {}
    for src in sources:
        groups = _group_by_character(src)
        check_counts(src, groups)
        read = src.reader()
        lines = []
        out = np.empty((len(groups), DRAWINGS_PER_CHARACTER, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        for ci, cname in enumerate(sorted(groups)):
            for di, member in enumerate(sorted(groups[cname])):
                data = read(member)
                lines.append(f"{hashlib.sha256(data).hexdigest()}  {member}")
                out[ci, di] = decode_drawing(data, f"{src.path}: {member}", image_mode=image_mode)
        names.extend(sorted(groups))
        blocks.append(out)
        digests[src.name] = members_digest(lines)
    verified = all(digests[s] == EXPECTED[s][2] for s in digests)
    if not verified:
        warnings.warn(
            "Omniglot images differ from the official release (members digest mismatch: "
            f"{digests}); results made from them may not be comparable",
            stacklevel=3,
        )
    return {
        "images": np.concatenate(blocks),
        "class_names": names,
        "members_digest": digests,
        "verified": verified,
    }


def verify_source(src: OmniglotSource) -> str:
    """Check counts (CorruptDataError) and return the members digest, without decoding images."""
    groups = _group_by_character(src)
    check_counts(src, groups)
    read = src.reader()
    return members_digest(
        [f"{hashlib.sha256(read(m)).hexdigest()}  {m}" for m in sorted(src.members)]
    )


def source_digest(digests: dict[str, str]) -> str:
    """One digest for the whole source: sha256 of the per-set members digests."""
    text = "".join(f"{digests[s]}  {s}\n" for s in sorted(digests))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Cache


def cache_path(key: str, cache_dir: str | Path | None = None) -> Path:
    """The cache file of a content key (the key covers the image mode)."""
    return cache_root(cache_dir) / "omniglot" / f"omniglot{IMAGE_SIZE}-{key[:24]}.npz"


def _save_cache(path: Path, built: dict, key: str, image_mode: str) -> None:
    info = {
        "cache_key": key,
        "members_digest": built["members_digest"],
        "verified": built["verified"],
        "preprocessing": PREPROCESSING[image_mode],
    }

    def write(fh) -> None:
        np.savez(
            fh,
            images=built["images"],
            class_names=np.array(built["class_names"]),
            info=np.array(json.dumps(info)),
        )

    atomic_write(path, write)


def _load_cache(path: Path, key: str) -> dict | None:
    """The cached arrays, or None when the file is missing, unreadable or for another key."""
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            if info.get("cache_key") != key:
                return None
            return {
                "images": z["images"],
                "class_names": [str(s) for s in z["class_names"]],
                "members_digest": info["members_digest"],
                "verified": info["verified"],
            }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None  # a damaged cache is rebuilt


_MEMO: dict[str, dict] = {}  # content key -> decoded arrays of the last load in this process


def load_all(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    image_mode: str = "grey",
) -> tuple[dict, dict]:
    """All 1,623 characters, decoded (from the cache when it is fresh), and their provenance."""
    check_image_mode(image_mode)
    sources = find_sources(data_dir)
    key = content_key(sources, image_mode)
    path = cache_path(key, cache_dir)
    built = _MEMO.get(key) or _load_cache(path, key)
    build_seconds = None
    if built is None:
        t0 = time.perf_counter()
        built = build_all(sources, image_mode)
        build_seconds = time.perf_counter() - t0
        _save_cache(path, built, key, image_mode)
    built["images"].setflags(write=False)  # shared by every split drawn from it
    _MEMO.clear()
    _MEMO[key] = built
    prov = {
        "source": {s.name: str(s.path) for s in sources},
        "source_kind": sources[0].kind,
        "members_digest": built["members_digest"],
        "source_digest": source_digest(built["members_digest"]),
        "verified": built["verified"],
        "cache_key": key,
        "cache_file": str(path),
        "image_mode": image_mode,
        "preprocessing": PREPROCESSING[image_mode],
    }
    if build_seconds is not None:
        prov["cache_build_seconds"] = round(build_seconds, 2)
    return built, prov


# ---------------------------------------------------------------------------------------------
# Splits


def check_split(split: str, part: str) -> None:
    """InputError for an unknown split or part, listing the valid ones."""
    if split not in SPLITS:
        parts = "; ".join(f"{s}: {'/'.join(p)}" for s, p in SPLITS.items())
        raise InputError(
            f"unknown Omniglot split {split!r}; valid splits: {', '.join(SPLITS)} (parts: {parts})"
        )
    if part not in SPLITS[split]:
        raise InputError(
            f"unknown part {part!r} of Omniglot split {split!r}; valid parts: "
            f"{', '.join(SPLITS[split])}"
        )


def maml_order(class_names: list[str]) -> list[int]:
    """Indices of the 1,623 characters (sorted by path) in the fixed shuffled MAML order.

    Finn et al.'s ``data_generator.py`` pools all characters, ``random.seed(1)``,
    ``random.shuffle``\\ s them and takes 1,100 train / 100 val / the rest (423) test. Their
    list came from ``os.listdir`` (file-system order), so their exact permutation cannot be
    rebuilt; we shuffle the *sorted* list with ``random.Random(1)`` -- a fixed-seed
    equivalent with the same sizes, not their identical split.
    """
    order = sorted(range(len(class_names)), key=lambda i: class_names[i])
    random.Random(MAML_SHUFFLE_SEED).shuffle(order)
    return order


def split_indices(class_names: list[str], split: str, part: str) -> list[int]:
    """Indices into ``class_names`` (all 1,623 characters) of one split part.

    - ``maml``: train / val / test = 1,100 / 100 / 423 of the shuffled pool (:func:`maml_order`).
    - ``vinyals``: train = the first 1,200 of the same shuffled pool (MAML's train + val), test =
      the remaining 423 (the same characters as MAML's test), as in Vinyals et al. (2016)'s
      1,200 / 423 character split (whose exact list was not published).
    - ``background``: Lake et al.'s background (964 characters, 30 alphabets) / evaluation
      (659 characters, 20 alphabets) sets as they are.
    """
    check_split(split, part)
    if split == "background":
        prefix = f"images_{part}/"
        return [i for i, n in enumerate(class_names) if n.startswith(prefix)]
    order = maml_order(class_names)
    if split == "maml":
        bounds = {
            "train": (0, MAML_N_TRAIN),
            "val": (MAML_N_TRAIN, MAML_N_TRAIN + MAML_N_VAL),
            "test": (MAML_N_TRAIN + MAML_N_VAL, len(order)),
        }
    else:
        bounds = {"train": (0, VINYALS_N_TRAIN), "test": (VINYALS_N_TRAIN, len(order))}
    lo, hi = bounds[part]
    return order[lo:hi]


def load_omniglot(
    split: str = "maml",
    part: str = "train",
    data_dir: str | Path | None = None,
    rotations: bool = False,
    cache_dir: str | Path | None = None,
    image_mode: str = "grey",
) -> ClassImages:
    """One Omniglot split part as uint8 ``[n_classes, 20, 1, 28, 28]`` (strokes 255), decoded
    as ``image_mode`` says (``"grey"`` or the original code's ``"binary"``)."""
    check_split(split, part)
    built, prov = load_all(data_dir, cache_dir, image_mode)
    idx = split_indices(built["class_names"], split, part)
    images = built["images"][idx][:, :, None]  # [n, 20, 1, 28, 28]
    names = [built["class_names"][i] for i in idx]
    if rotations:
        images, names = with_rotations(images, names)
    meta = {
        "dataset": "omniglot",
        "split": split,
        "part": part,
        "rotations": bool(rotations),
        "n_classes": len(names),
        "n_per_class": DRAWINGS_PER_CHARACTER,
        "image_shape": [1, IMAGE_SIZE, IMAGE_SIZE],
        **prov,
    }
    return ClassImages(np.ascontiguousarray(images), names, meta)
