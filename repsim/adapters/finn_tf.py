"""Finn et al.'s TensorFlow MAML (github.com/cbfinn/maml) checkpoints, read without TensorFlow.

The bundle (``model{itr}.index`` + ``.data-00000-of-00001``) holds the trainable variables:
``conv1..conv4`` (``tf.get_variable``, kernels HWIO ``(k, k, C_in, C_out)``), the conv biases
``b1..b4`` (unnamed ``tf.Variable``: ``Variable``, ``Variable_1``, ``Variable_2``,
``Variable_3`` in creation order), the head ``w5`` ``(features, ways)`` and ``b5``, and one
BatchNorm shift per block (``0/beta`` .. ``3/beta``; ``tf.contrib.layers.batch_norm`` has
``scale=False``, so no gamma), all possibly under a scope such as ``model/``.

Forward (``forward_conv``): conv with 'SAME' padding (TF pads the extra row/column at the
bottom/right), stride 2 without max-pooling (Omniglot) or 1 followed by a 2x2 'VALID' max-pool
(MiniImageNet) -> ``batch_norm`` with batch statistics (``is_training`` is never turned off) and
epsilon 0.001 -> ReLU; then the spatial mean (Omniglot) or a flatten of the NHWC map
(MiniImageNet: so ``w5``'s rows are in (h, w, c) order, which repsim keeps by flattening NHWC).

Inner loop: every entry of the ``weights`` dict (convs, biases, ``w5``, ``b5``; not the
BatchNorm shifts) adapts; Finn's loss is the per-example cross-entropy divided by K, summed, so
its ``update_lr`` alpha equals ``inner_lr = ways * alpha`` on repsim's mean loss. Defaults:
alpha 0.4 (Omniglot) / 0.01 (MiniImageNet), 10 test steps.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from repsim.adapters.common import KeyTracker, fit_image_size, make_learner
from repsim.adapters.convnet import BlockSpec, NetSpec
from repsim.errors import CheckpointError

CONV = re.compile(r"^(?:.*/)?conv(\d+)$")
BIAS = re.compile(r"^(?:.*/)?Variable(?:_(\d+))?$")
BETA = re.compile(r"^(?:.*/)?(\d+)/(?:BatchNorm/)?beta$")
HEAD = re.compile(r"^(?:.*/)?(w5|b5)$")
IGNORED = re.compile(r"(moving_mean|moving_variance|/Adam(_\d+)?$|beta\d_power|global_step)")


def load_arrays(
    arrays: dict[str, np.ndarray],
    source: str,
    *,
    inner_lr=None,
    inner_steps=None,
    image_size=None,
    max_pool=None,
    adapted=None,
    **_,
):
    tensors, origin = _take(arrays, source)
    net_spec = _net_spec(tensors, image_size, max_pool)
    alpha = 0.01 if net_spec.in_channels == 3 else 0.4
    return make_learner(
        net_spec,
        tensors,
        origin,
        source=source,
        family="tf-maml",
        adapted=adapted or "no-norm",
        inner_lr=net_spec.ways * alpha if inner_lr is None else inner_lr,
        inner_steps=10 if inner_steps is None else inner_steps,
        config={
            "algorithm": "maml",
            "update_lr_alpha": alpha if inner_lr is None else None,
            "tf_variables": sorted(arrays),
        },
    )


def _take(arrays: dict[str, np.ndarray], source: str) -> tuple[dict, dict]:
    """The TF variables under our names (kernels HWIO -> OIHW, ``w5`` transposed) and, for each,
    its variable in the file; a variable left over or missing is a :class:`CheckpointError`."""
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    keys = KeyTracker(state, source, "Finn et al. TensorFlow MAML")
    keys.ignore([k for k in state if IGNORED.search(k)])
    convs = {int(CONV.match(k).group(1)): k for k in state if CONV.match(k)}
    biases = sorted((int(BIAS.match(k).group(1) or 0), k) for k in state if BIAS.match(k))
    betas = {int(BETA.match(k).group(1)): k for k in state if BETA.match(k)}
    heads = {HEAD.match(k).group(1): k for k in state if HEAD.match(k)}
    n = len(convs)
    if (
        not n
        or sorted(convs) != list(range(1, n + 1))
        or len(biases) != n
        or sorted(betas) != list(range(n))
        or set(heads) != {"w5", "b5"}
    ):
        raise CheckpointError(
            f"{source}: expected conv1..convK, K unnamed bias Variables, K BatchNorm betas "
            f"(0/beta..) and w5, b5; found convs {sorted(convs)}, biases "
            f"{[k for _, k in biases]}, betas {sorted(betas)}, head {sorted(heads)}"
        )
    tensors, origin = {}, {}
    for i in range(n):
        kernel = keys.take(convs[i + 1])
        tensors[f"conv{i + 1}.conv.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # HWIO
        tensors[f"conv{i + 1}.conv.bias"] = keys.take(biases[i][1])
        tensors[f"conv{i + 1}.norm.bias"] = keys.take(betas[i])
        origin.update(
            {
                f"conv{i + 1}.conv.weight": convs[i + 1],
                f"conv{i + 1}.conv.bias": biases[i][1],
                f"conv{i + 1}.norm.bias": betas[i],
            }
        )
    tensors["head.weight"] = keys.take(heads["w5"]).t().contiguous()
    tensors["head.bias"] = keys.take(heads["b5"])
    origin.update({"head.weight": heads["w5"], "head.bias": heads["b5"]})
    keys.check_all_used()
    return tensors, origin


def _net_spec(tensors: dict, image_size, max_pool) -> NetSpec:
    """The original Conv4 as a :class:`NetSpec`: 'SAME' padding, shift-only BatchNorm with
    TF's eps 1e-3, max-pooled (flattened NHWC) or strided (spatial mean), its image size fitted
    to the head's width."""
    in_channels = tensors["conv1.conv.weight"].shape[1]
    ways, head_in = tensors["head.weight"].shape
    n = sum(1 for k in tensors if k.endswith(".conv.weight"))
    channels = [tensors[f"conv{i + 1}.conv.weight"].shape[0] for i in range(n)]
    pool = (head_in != channels[-1]) if max_pool is None else bool(max_pool)

    def spec(size: int) -> NetSpec:
        blocks = tuple(
            BlockSpec(
                c,
                tensors[f"conv{i + 1}.conv.weight"].shape[-1],
                1 if pool else 2,
                "same",
                (2, 2) if pool else None,
            )
            for i, c in enumerate(channels)
        )
        return NetSpec(
            in_channels,
            size,
            blocks,
            ways,
            norm_eps=1e-3,
            norm_scale=False,
            readout="flatten_nhwc" if pool else "mean",
        )

    return fit_image_size(spec, head_in, image_size, in_channels)
