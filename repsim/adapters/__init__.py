"""Load other meta-learners' checkpoints as :class:`repsim.protocol.MetaLearner` s.

Each adapter rebuilds the *source's* network (``repsim.adapters.convnet``: conv/norm order,
padding, strides, pooling, norm epsilon and scale, activation, readout order) and maps the
file's tensors onto it, so that repsim's forward pass equals the source's. Then it attaches the
source's inner loop (which parameters adapt, learning rate, steps).

Example::

    from repsim import adapters
    learner = adapters.load("maml_omniglot.pt")            # format sniffed from the keys
    learner = adapters.load("model60000.index", format="tf-maml", inner_steps=5)
    adapters.sniff("model.ckpt")                           # -> "learn2learn"

Formats (:data:`FORMATS`; aliases in :data:`ALIASES`): ``learn2learn``, ``torchmeta``
(pytorch-maml), ``boil``, ``mamlpp``, ``higher`` (torch.func), ``dragen1860``, ``tf-maml``
(Finn et al.), and ``repsim`` (repsim's own). Any other ``nn.Module`` plugs in directly as a
``MetaLearner(module, analysis_layers, adapt, input_shape)``: see ``docs/checkpoints.md``,
"Any nn.Module".

Files are read safely (``repsim.adapters.safe_load``): safetensors, or ``torch.load`` with
``weights_only=True``; a pickled module is refused with an explanation.
"""

from __future__ import annotations

from pathlib import Path

from repsim.errors import CheckpointError
from repsim.protocol import MetaLearner

FORMATS = (
    "learn2learn",
    "torchmeta",
    "boil",
    "mamlpp",
    "higher",
    "dragen1860",
    "tf-maml",
    "repsim",
)
"""The checkpoint formats :func:`load` reads (``format=``), besides ``"auto"``."""
ALIASES = {
    "l2l": "learn2learn",
    "pytorch-maml": "torchmeta",
    "maml++": "mamlpp",
    "how-to-train-your-maml": "mamlpp",
    "torch.func": "higher",
    "torchfunc": "higher",
    "functorch": "higher",
    "maml-pytorch": "dragen1860",
    "tf": "tf-maml",
    "finn": "tf-maml",
    "cbfinn": "tf-maml",
}
"""Other names :func:`load` accepts for a format: alias -> one of :data:`FORMATS`."""
# Sniffing order: the most specific key patterns first.
_SNIFF_ORDER = ("mamlpp", "dragen1860", "learn2learn", "torchmeta", "higher")


def _family(name: str):
    from repsim.adapters import dragen1860, higher_seq, learn2learn, mamlpp, torchmeta

    return {
        "learn2learn": learn2learn,
        "torchmeta": torchmeta,
        "boil": torchmeta,
        "mamlpp": mamlpp,
        "higher": higher_seq,
        "dragen1860": dragen1860,
    }[name]


def canonical_format(fmt: str) -> str:
    name = ALIASES.get(fmt.lower(), fmt.lower())
    if name != "auto" and name not in FORMATS:
        raise CheckpointError(
            f"unknown checkpoint format {fmt!r}: use auto or one of {', '.join(FORMATS)} "
            f"(aliases: {', '.join(sorted(ALIASES))})"
        )
    return name


def _is_repsim(path: Path) -> bool:
    if path.suffix != ".safetensors":
        return False
    from repsim.adapters.safe_load import load_safetensors

    return "repsim" in load_safetensors(path)[1]


def sniff(path: str | Path) -> str:
    """The format of the checkpoint at ``path``, from its container and tensor names.

    What ``format="auto"`` uses: a TensorFlow bundle is ``tf-maml``, a safetensors file with
    repsim metadata is ``repsim``, and otherwise the tensor names are matched against each
    adapter's layout, the most specific first.

    Args:
        path: the checkpoint file (a TF bundle's prefix or ``.index``).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        CheckpointError: no adapter recognises the file, or it cannot be read safely.
    """
    from repsim.adapters import tf_checkpoint
    from repsim.adapters.safe_load import read_state

    path = Path(path)
    if tf_checkpoint.is_bundle(path):
        return "tf-maml"
    if _is_repsim(path):
        return "repsim"
    state, _ = read_state(path)
    return _sniff_keys(list(state), str(path))


def _sniff_keys(keys: list[str], source: str) -> str:
    for name in _SNIFF_ORDER:
        if _family(name).matches(keys):
            return name
    raise CheckpointError(
        f"{source}: no adapter recognises these tensor names ({', '.join(keys[:8])}...). "
        f"Pass --format (one of {', '.join(FORMATS)}), or build a MetaLearner yourself "
        "(docs/checkpoints.md, 'Any nn.Module')"
    )


def load(
    path: str | Path | None = None,
    format: str = "auto",
    *,
    inner_lr: float | None = None,
    inner_steps: int | None = None,
    image_size: int | None = None,
    **options,
) -> MetaLearner:
    """A :class:`MetaLearner` from a checkpoint: repsim's own or another library's.

    This is ``repsim.load``. Example::

        import repsim
        learner = repsim.load()                                   # the shipped MAML checkpoint
        learner = repsim.load("maml_omniglot.pt")                 # sniffed: learn2learn, ...
        learner = repsim.load("model60000.index", format="tf-maml", inner_steps=5)

    The file is read without running code from it (safetensors, or ``torch.load`` with
    ``weights_only=True``); each foreign adapter rebuilds the source's network so that repsim's
    forward pass equals the source's, and attaches the source's inner loop.

    Args:
        path: the checkpoint file (a TF bundle's prefix or ``.index``); ``None`` is the default
            checkpoint shipped inside the package (MAML, Omniglot 5-way 1-shot).
        format: ``"auto"`` (sniff, :func:`sniff`) or one of :data:`FORMATS` / :data:`ALIASES`.
        inner_lr: override the inner-loop learning rate (the checkpoint's, or the source
            library's documented default). It is the rate on repsim's loss, the **mean**
            cross-entropy over the support set.
        inner_steps: override the test-time inner-loop steps.
        image_size: the side of the square images the model was trained on, when the head's
            size does not determine it (foreign formats).
        **options (Any): per-format settings, e.g. ``bn_step`` (mamlpp), ``config`` (dragen1860's
            config list), ``max_pool`` (learn2learn, tf-maml), ``max_pooling`` and
            ``conv_padding`` (mamlpp), ``adapted`` (``all``, ``no-norm``, ``head``,
            ``body``).

    Returns:
        A :class:`MetaLearner`: ``module`` (an ordinary ``nn.Module`` with the analysis layers
            ``conv1 .. convK`` and ``head``), ``adapt`` (the inner loop), ``inner_loop`` (its
            settings), ``input_shape`` ``(C, H, W)`` and ``config`` (the record: where it came
            from, the algorithm, the hyper-parameters).

    Raises:
        CheckpointError: the file does not exist; it is truncated or corrupt; it names Python
            objects (a pickled ``nn.Module``, any callable), which is refused, never
            imported; tensors are missing or unexpected, or a shape does not match the
            rebuilt layer; no adapter recognises it; or ``format`` is unknown. The message
            names the file and says what to do.
    """
    from repsim.adapters import finn_tf, tf_checkpoint
    from repsim.adapters.safe_load import read_state

    if path is None:
        from repsim.packaged import DEFAULT_CHECKPOINT_NAME, packaged_file

        path = packaged_file(DEFAULT_CHECKPOINT_NAME)
    path = Path(path)
    if not path.exists() and not tf_checkpoint.is_bundle(path):
        raise CheckpointError(
            f"checkpoint {path} does not exist: give the path of a checkpoint file (for a "
            "TensorFlow bundle, its prefix or .index file)"
        )
    fmt = canonical_format(format)
    if fmt == "auto":
        fmt = sniff(path)
    if fmt == "repsim":
        from repsim import checkpoint

        return checkpoint.load_meta_learner(path, inner_steps=inner_steps, inner_lr=inner_lr)
    kw = {"inner_lr": inner_lr, "inner_steps": inner_steps, "image_size": image_size, **options}
    if fmt == "tf-maml":
        if not tf_checkpoint.is_bundle(path):
            raise CheckpointError(
                f"{path} is not a TensorFlow checkpoint bundle: give the prefix (model60000) or "
                "its .index file, with the .data-00000-of-00001 file beside it"
            )
        return finn_tf.load_arrays(tf_checkpoint.read_bundle(path), str(path), **kw)
    state, extras = read_state(path)
    if fmt == "boil":
        kw.setdefault("algorithm", "boil")
    learner = _family(fmt).load(state, str(path), **kw)
    if extras:
        learner.config["file_extras"] = extras
    return learner
