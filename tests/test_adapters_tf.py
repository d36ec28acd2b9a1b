"""Finn et al.'s TensorFlow MAML checkpoints, without TensorFlow.

A minimal TF bundle writer (LevelDB SSTable ``.index`` of BundleEntryProto + raw
``.data-00000-of-00001``) writes Finn's variables; a numpy NHWC forward pass written from
``forward_conv`` (SAME padding, beta-only batch norm with epsilon 0.001, mean or NHWC flatten)
is the reference the loaded model must match to 1e-5.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from repsim import adapters
from repsim.adapters import tf_checkpoint
from repsim.capture import capture_raw
from repsim.errors import CheckpointError

# --- a minimal writer ------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def block(entries: list[tuple[bytes, bytes]], restart_interval: int = 4) -> bytes:
    """An SSTable block with prefix-compressed keys and a restart every few entries."""
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        last = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def write_bundle(prefix, variables: dict[str, np.ndarray], per_block: int = 3) -> None:
    data = bytearray()
    entries = [(b"", field_varint(1, 1) + field_bytes(3, field_varint(1, 1)))]  # header
    for name in sorted(variables):
        arr = np.ascontiguousarray(variables[name], dtype="<f4")
        raw = arr.tobytes()
        shape = b"".join(field_bytes(2, field_varint(1, d)) for d in arr.shape)
        entry = (
            field_varint(1, 1)
            + field_bytes(2, shape)
            + field_varint(4, len(data))
            + field_varint(5, len(raw))
            + varint(6 << 3 | 5)
            + struct.pack("<I", tf_checkpoint.masked_crc32c(raw))
        )
        entries.append((name.encode(), entry))
        data += raw
    index = bytearray()
    handles = []

    def put(contents: bytes) -> bytes:
        off = len(index)
        index.extend(contents + b"\x00")
        index.extend(struct.pack("<I", tf_checkpoint.masked_crc32c(contents + b"\x00")))
        return varint(off) + varint(len(contents))

    for i in range(0, len(entries), per_block):
        chunk = entries[i : i + per_block]
        handles.append((chunk[-1][0], put(block(chunk))))
    meta_handle = put(block([]))
    index_handle = put(block(handles, restart_interval=1))
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", tf_checkpoint.MAGIC)
    index += footer
    (prefix.parent / (prefix.name + ".index")).write_bytes(bytes(index))
    (prefix.parent / (prefix.name + ".data-00000-of-00001")).write_bytes(bytes(data))


# --- Finn et al.'s model in numpy ------------------------------------------------------------


def finn_variables(channels: int, hidden: int, ways: int, feat: int, seed: int) -> dict:
    """The trainable variables Finn's code creates, with their checkpoint names."""
    rng = np.random.default_rng(seed)
    v = {}
    for i in range(4):
        cin = channels if i == 0 else hidden
        v[f"model/conv{i + 1}"] = rng.normal(0, 0.3, (3, 3, cin, hidden))  # HWIO
        v["model/Variable" + (f"_{i}" if i else "")] = rng.normal(0, 0.3, hidden)  # b1..b4
        v[f"model/{i}/beta"] = rng.normal(0, 0.3, hidden)
    v["model/w5"] = rng.normal(0, 0.3, (feat, ways))
    v["model/b5"] = rng.normal(0, 0.3, ways)
    return {k: x.astype(np.float32) for k, x in v.items()}


def same_conv(x, w, stride):
    """tf.nn.conv2d(x, w, stride, 'SAME') on NHWC x and HWIO w."""
    k, size = w.shape[0], x.shape[1]
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    lo, hi = total // 2, total - total // 2
    x = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ijco->nhwo", win, w)


def finn_forward(v, x_nhwc, max_pool: bool):
    acts, h = [], x_nhwc.astype(np.float64)
    for i in range(4):
        h = same_conv(h, v[f"model/conv{i + 1}"], 1 if max_pool else 2)
        h = h + v["model/Variable" + (f"_{i}" if i else "")]
        mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
        h = np.maximum((h - mean) / np.sqrt(var + 1e-3) + v[f"model/{i}/beta"], 0)
        if max_pool:
            n, hh, ww, c = h.shape
            h = h[:, : hh // 2 * 2, : ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c)
            h = h.max(axis=(2, 4))
        acts.append(h)
    feats = h.reshape(h.shape[0], -1) if max_pool else h.mean(axis=(1, 2))
    return acts, feats @ v["model/w5"] + v["model/b5"]


@pytest.mark.parametrize(
    "channels,size,hidden,max_pool,feat",
    [(1, 28, 16, False, 16), (3, 84, 8, True, 8 * 5 * 5)],
    ids=["omniglot", "miniimagenet"],
)
def test_finn_tf_checkpoint_matches_the_tf_forward(
    tmp_path, channels, size, hidden, max_pool, feat
):
    v = finn_variables(channels, hidden, 5, feat, seed=channels)
    prefix = tmp_path / "model60000"
    write_bundle(prefix, v)
    read = tf_checkpoint.read_bundle(prefix)
    assert sorted(read) == sorted(v)
    for k in v:
        np.testing.assert_array_equal(read[k], v[k])

    learner = adapters.load(str(prefix) + ".index")  # sniffed: a bundle
    assert learner.config["format"] == "tf-maml"
    assert learner.config["adapt"]["inner_lr"] == pytest.approx(5 * (0.01 if max_pool else 0.4))
    x = torch.rand(6, channels, size, size, generator=torch.Generator().manual_seed(0))
    acts, logits = finn_forward(v, x.permute(0, 2, 3, 1).numpy(), max_pool)
    ours = capture_raw(learner.module, x, list(learner.analysis_layers))
    for i, act in enumerate(acts):
        got = ours[f"conv{i + 1}"].permute(0, 2, 3, 1).double().numpy()
        np.testing.assert_allclose(got, act, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(ours["head"].double().numpy(), logits, atol=1e-5, rtol=1e-4)
    norm_params = [n for n in learner.config["adapt"]["adapted"] if ".norm." in n]
    assert norm_params == []  # beta is not in Finn's weights dict: never adapted


def test_crc32c_known_value():
    assert tf_checkpoint.crc32c(b"123456789") == 0xE3069283


def test_truncated_tf_files_say_so(tmp_path):
    v = finn_variables(1, 8, 5, 8, seed=3)
    prefix = tmp_path / "model"
    write_bundle(prefix, v)
    data_path = tmp_path / "model.data-00000-of-00001"
    full = data_path.read_bytes()
    data_path.write_bytes(full[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        adapters.load(prefix, format="tf")
    data_path.write_bytes(full)
    index_path = tmp_path / "model.index"
    index_path.write_bytes(index_path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="truncated"):
        adapters.load(prefix, format="tf")


def test_extra_tf_variable_is_listed(tmp_path):
    v = finn_variables(1, 8, 5, 8, seed=4)
    v["model/mystery"] = np.ones(3, np.float32)
    write_bundle(tmp_path / "model", v)
    with pytest.raises(CheckpointError, match="model/mystery"):
        adapters.load(tmp_path / "model", format="tf-maml")
