"""Strip machine paths from the shipped checkpoints' records and from ``results/``.

Usage: ``python analysis/portable_records.py [CHECKPOINT_DIR] [RESULTS_DIR]`` (defaults
``checkpoints`` and ``results``, plus the packaged default checkpoint in ``repsim/assets``).

A record keeps what identifies its data (dataset, split, content digest under ``"data"``), never
the folder it was read from: ``train.data_dir`` is dropped. A result file's absolute paths become
portable (``repsim.provenance.portable``: ``/home/me/repsim/checkpoints`` -> ``checkpoints``).

Checkpoints are rewritten header-only: the safetensors header's ``__metadata__`` changes, the
tensor offsets and the payload bytes are copied as they are, and the script checks afterwards
that every tensor is bit-for-bit the same.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from repsim.checkpoint import atomic_write
from repsim.provenance import machine_paths, portable

REPO = Path(__file__).resolve().parent.parent


def split_safetensors(path: Path) -> tuple[dict, bytes]:
    """The parsed header and the raw payload of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join_safetensors(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the header is padded to 8 bytes, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + payload


def portable_record(record: dict) -> dict:
    train = {k: v for k, v in record.get("train", {}).items() if k != "data_dir"}
    return {**record, "train": train} if "train" in record else dict(record)


def rewrite_checkpoint(path: Path) -> bool:
    """Drop machine paths from the repsim record of ``path``; True when the file changed."""
    import torch
    from safetensors.torch import load_file

    header, payload = split_safetensors(path)
    meta = header.get("__metadata__") or {}
    if "repsim" not in meta:
        return False
    record = json.loads(meta["repsim"])
    new = portable_record(record)
    if new == record:
        return False
    before = load_file(str(path))
    header["__metadata__"] = {**meta, "repsim": json.dumps(new, sort_keys=True)}
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(join_safetensors(header, payload)))
    after = load_file(str(path))
    assert split_safetensors(path)[1] == payload
    assert before.keys() == after.keys()
    assert all(v.dtype == after[k].dtype and torch.equal(v, after[k]) for k, v in before.items())
    leftover = machine_paths(json.loads(split_safetensors(path)[0]["__metadata__"]["repsim"]))
    if leftover:
        raise SystemExit(f"{path}: the record still holds machine paths {leftover}")
    return True


def rewrite_result(path: Path) -> bool:
    data = json.loads(path.read_text())
    new = portable(data)
    if new == data:
        return False
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(new, indent=2) + "\n"))
    return True


def main() -> int:
    ckpt_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "checkpoints"
    results_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "results"
    files = sorted(ckpt_dir.rglob("*.safetensors")) + sorted(
        (REPO / "repsim" / "assets").glob("*.safetensors")
    )
    for path in files:
        if rewrite_checkpoint(path):
            print(f"rewrote the record of {path}")
    for path in sorted(results_dir.glob("*.json")):
        if rewrite_result(path):
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
