"""Read a TensorFlow checkpoint bundle (``PREFIX.index`` + ``PREFIX.data-00000-of-00001``)
without TensorFlow: only the standard library and numpy.

Format (tensorflow/core/util/tensor_bundle): the ``.index`` file is a LevelDB-format SSTable,
written uncompressed (``options.compression = kNoCompression`` in ``BundleWriter``). It ends
with a 48-byte footer (metaindex and index block handles as varints, padding, the 8-byte magic
``0xdb4775248b80fb57``). Each block is a run of prefix-compressed entries (varint ``shared``,
``non_shared``, ``value_length``, key suffix, value) followed by ``uint32`` restart offsets and
their count, then a 5-byte trailer (compression type, masked CRC32C). The index block maps the
last key of each data block to its handle. In the data blocks, key ``""`` holds a
``BundleHeaderProto`` (``num_shards`` = 1, ``endianness`` = 2) and every other key is a
variable name whose value is a ``BundleEntryProto`` (``dtype`` = 1, ``shape`` = 2,
``shard_id`` = 3, ``offset`` = 4, ``size`` = 5, ``crc32c`` = 6 fixed32, ``slices`` = 7). The
tensor's bytes are ``size`` bytes at ``offset`` in shard ``PREFIX.data-{shard:05d}-of-{n:05d}``,
little-endian, C order.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from repsim.errors import CheckpointError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as LevelDB and TensorFlow compute it."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB's masked CRC: rotate right by 15 and add a constant (mod 2**32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A protobuf/LevelDB base-128 varint at ``pos``: ``(value, next position)``."""
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise CheckpointError(
                "TF checkpoint: a varint runs past the end of its block "
                "(truncated or corrupt .index)"
            )
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("TF checkpoint: malformed varint in the .index file")


def parse_proto(buf: bytes) -> dict[int, list]:
    """A protobuf message as ``{field number: [values]}`` (varints as int, fixed32/64 as int,
    length-delimited as bytes)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"TF checkpoint: unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _block(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size + 5 > len(data):
        raise CheckpointError(
            f"TF checkpoint: the {what} block runs past the end of the "
            ".index file: it is truncated. Copy it again."
        )
    contents = data[offset : offset + size]
    kind = data[offset + size]
    if kind != 0:
        raise CheckpointError(
            f"TF checkpoint: the {what} block is compressed (type {kind}); "
            "TensorFlow writes bundle indexes uncompressed, so this file was "
            "written by something else"
        )
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if stored != masked_crc32c(data[offset : offset + size + 1]):
        raise CheckpointError(
            f"TF checkpoint: checksum mismatch in the {what} block of the "
            ".index file: it is corrupt. Copy it again."
        )
    return contents


def block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` entries of one SSTable block, undoing prefix compression."""
    if len(block) < 4:
        raise CheckpointError("TF checkpoint: an .index block is too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise CheckpointError("TF checkpoint: bad restart array in an .index block")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def read_index(path: Path) -> dict[str, bytes]:
    """Every ``{key: value}`` entry of an SSTable ``.index`` file."""
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(
            f"{path} is {len(data)} bytes, shorter than an SSTable footer: "
            "it is truncated. Copy it again."
        )
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != MAGIC:
        raise CheckpointError(
            f"{path} does not end with the SSTable magic number: it is "
            "truncated or not a TensorFlow checkpoint index"
        )
    pos = 0
    _meta_off, pos = read_varint(footer, pos)
    _meta_size, pos = read_varint(footer, pos)
    index_off, pos = read_varint(footer, pos)
    index_size, pos = read_varint(footer, pos)
    out = {}
    for _last_key, handle in block_entries(_block(data, index_off, index_size, "index")):
        off, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        for key, value in block_entries(_block(data, off, size, "data")):
            out[key.decode("utf-8")] = value
    return out


def bundle_prefix(path: str | Path) -> Path:
    """``model1000`` from ``model1000``, ``model1000.index`` or ``model1000.data-00000-of-...``."""
    p = Path(path)
    name = p.name
    if name.endswith(".index"):
        return p.with_name(name[: -len(".index")])
    if ".data-" in name:
        return p.with_name(name.split(".data-")[0])
    return p


def is_bundle(path: str | Path) -> bool:
    prefix = bundle_prefix(path)
    return prefix.with_name(prefix.name + ".index").is_file()


def read_bundle(path: str | Path) -> dict[str, np.ndarray]:
    """``{variable name: array}`` of a TF checkpoint bundle (``path``: prefix or a file of it).

    Damaged files (truncated, flipped bytes, not a bundle at all) raise
    :class:`CheckpointError` naming the bundle's files, never another exception.
    """
    prefix = bundle_prefix(path)
    where = f"{prefix.name}.index / {prefix.name}.data-*"
    try:
        return _read_bundle(prefix)
    except CheckpointError as exc:
        if prefix.name in str(exc):
            raise
        raise CheckpointError(f"{where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes surface as any error in the parser
        raise CheckpointError(
            f"{where} cannot be read as a TensorFlow checkpoint: it is truncated or corrupt "
            f"({type(exc).__name__}: {str(exc)[:160]}). Copy it again."
        ) from None


def _read_bundle(prefix: Path) -> dict[str, np.ndarray]:
    index_path = prefix.with_name(prefix.name + ".index")
    if not index_path.is_file():
        raise CheckpointError(
            f"TF checkpoint index {index_path} does not exist: give the "
            "checkpoint prefix (e.g. model60000) or its .index file"
        )
    entries = read_index(index_path)
    header = parse_proto(entries.pop("", b""))
    num_shards = header.get(1, [1])[0]
    if header.get(2, [0])[0] != 0:
        raise CheckpointError(f"{index_path}: big-endian bundles are not supported")
    shards: dict[int, bytes] = {}
    arrays = {}
    for name, value in sorted(entries.items()):
        entry = parse_proto(value)
        if entry.get(7):
            raise CheckpointError(
                f"{index_path}: variable {name!r} is saved in slices "
                "(partitioned variables are not supported)"
            )
        dtype_code = entry.get(1, [0])[0]
        if dtype_code not in DTYPES:
            raise CheckpointError(
                f"{index_path}: variable {name!r} has TF dtype {dtype_code}, "
                "which repsim does not read"
            )
        shape = []
        for shape_msg in entry.get(2, []):
            for dim in parse_proto(shape_msg).get(2, []):
                shape.append(parse_proto(dim).get(1, [0])[0])
        shard = entry.get(3, [0])[0]
        offset = entry.get(4, [0])[0]
        size = entry.get(5, [0])[0]
        if shard not in shards:
            shard_path = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")
            if not shard_path.is_file():
                raise CheckpointError(
                    f"TF checkpoint data file {shard_path} is missing: copy "
                    "it next to the .index file"
                )
            shards[shard] = shard_path.read_bytes()
        data = shards[shard]
        if offset + size > len(data):
            raise CheckpointError(
                f"TF checkpoint data for {name!r} ends at byte {offset + size}, but the data "
                f"file has {len(data)} bytes: it is truncated. Copy it again."
            )
        raw = data[offset : offset + size]
        if 6 in entry and entry[6][0] != masked_crc32c(raw):
            raise CheckpointError(
                f"TF checkpoint: checksum mismatch for {name!r}: the data "
                "file is corrupt. Copy it again."
            )
        dtype = np.dtype(DTYPES[dtype_code]).newbyteorder("<")
        arr = np.frombuffer(raw, dtype=dtype)
        expected = int(np.prod(shape)) if shape else 1
        if arr.size != expected:
            raise CheckpointError(
                f"TF checkpoint: {name!r} has {arr.size} values for shape {shape}"
            )
        arrays[name] = arr.reshape(shape).astype(dtype.newbyteorder("="))
    return arrays
