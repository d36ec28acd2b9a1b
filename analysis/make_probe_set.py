"""Rebuild repsim/assets/omniglot_probe.npz (+ OMNIGLOT_LICENSE) from the real Omniglot data.

Usage: python analysis/make_probe_set.py [--data-dir DIR]   (default: $REPSIM_DATA)
Takes the first 20 characters of the MAML split's test part, all 20 drawings each, 28x28 uint8.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

import numpy as np

from repsim.data import load_classes
from repsim.data.probe import N_PROBE_CHARACTERS, PROBE_PATH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="Omniglot folder (default $REPSIM_DATA)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    c = load_classes("omniglot", "maml", "test", data_dir=args.data_dir, cache_dir=args.cache_dir)
    images = np.ascontiguousarray(c.images[:N_PROBE_CHARACTERS, :, 0])  # [20, 20, 28, 28]
    info = {
        "dataset": "omniglot",
        "split": "maml",
        "part": "test",
        "rotations": False,
        "subset": f"first {N_PROBE_CHARACTERS} characters of the MAML test part, all drawings",
        "image_shape": [1, 28, 28],
        "source_digest": c.meta["source_digest"],
        "members_digest": c.meta["members_digest"],
        "preprocessing": c.meta["preprocessing"],
        "license": "MIT, Copyright (c) 2015 Brenden Lake (see OMNIGLOT_LICENSE)",
    }
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=images,
        class_names=np.array(c.class_names[:N_PROBE_CHARACTERS]),
        info=np.array(json.dumps(info)),
    )
    PROBE_PATH.parent.mkdir(parents=True, exist_ok=True)
    PROBE_PATH.write_bytes(buf.getvalue())
    src_license = Path(c.meta["source"]["images_background"]).parent / "LICENSE"
    if src_license.is_file():
        shutil.copyfile(src_license, PROBE_PATH.parent / "OMNIGLOT_LICENSE")
    else:
        print(f"warning: {src_license} not found; copy the Omniglot LICENSE by hand")
    print(f"wrote {PROBE_PATH} ({PROBE_PATH.stat().st_size:,} bytes): {images.shape}")


if __name__ == "__main__":
    main()
