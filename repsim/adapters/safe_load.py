"""Read another library's checkpoint file into a flat ``{name: tensor}`` dict, never running code.

- ``.safetensors``: a JSON header and raw buffers (preferred: nothing to unpickle at all).
- torch files (``.pt``, ``.pth``, ``.ckpt``, ``.tar``): ``torch.load(..., weights_only=True)``,
  whose unpickler builds only tensors and plain containers. The only extra names allowed are
  numpy's scalar and array constructors (:data:`NUMPY_ALLOW_LIST`), which MAML++ files carry
  in their training statistics; they build numbers, never call user code.

A file that pickles a whole ``nn.Module`` (``torch.save(model)``) is refused with an
explanation: unpickling it would import and run that class's code.

Containers are unwrapped (:func:`find_state_dict`): Lightning's ``state_dict``, MAML++'s
``network``, the common ``model_state_dict`` / ``model`` / ``net`` keys. Wrapper prefixes are
stripped (:func:`strip_wrappers`): ``_orig_mod.`` (torch.compile), ``module.`` (DataParallel,
DDP, learn2learn's ``MAML``), ``model.`` (Lightning).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from repsim.errors import CheckpointError

State = dict[str, torch.Tensor]

# (module, name) pairs numpy uses to pickle scalars and arrays; numpy 1.x and 2.x spellings.
NUMPY_ALLOW_LIST = (
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
)
CONTAINER_KEYS = ("state_dict", "network", "model_state_dict", "model", "net", "params")
WRAPPER_PREFIXES = ("_orig_mod.", "module.", "model.")


def _numpy_safe_globals() -> list:
    """The numpy callables of :data:`NUMPY_ALLOW_LIST` that exist in this numpy, plus the
    dtype classes (``numpy.dtypes.Float64DType`` ...) that numpy 2 pickles dtypes with."""
    import importlib

    found = []
    for dotted in NUMPY_ALLOW_LIST:
        module, _, name = dotted.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - only used to word the error message
        return []


def load_torch_file(path: str | Path):
    """``torch.load(path, weights_only=True)`` with numpy scalars allowed; clear errors.

    Any failure is a :class:`CheckpointError` naming the file: a file that names Python
    callables or classes is refused with what it names (never imported, never called), and
    damaged bytes (truncated, flipped, random) are reported as such, never as a traceback.
    """
    import pickle

    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = [n for n in _unsafe_globals(path) if not n.startswith("numpy")]
        if not names:
            names = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if names:
            raise CheckpointError(_refusal(path, names)) from None
        raise _damaged(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes surface as any error in the reader
        raise _damaged(path, exc) from None


def _refusal(path: Path, names: list[str]) -> str:
    """Why a pickle that names Python objects is refused, saying what it names."""
    found = ", ".join(names[:5])
    modules = [n for n in names if n.startswith(("torch.nn.", "__main__.")) or "Module" in n]
    if modules:
        what = (
            f"it pickles a whole nn.Module ({', '.join(modules[:3])}), and loading it would "
            "import and run that class's code"
        )
    else:
        what = (
            f"unpickling it would import and call {found}, which is code, not tensors "
            "(a checkpoint needs none)"
        )
    return (
        f"{path} refused: it names Python objects ({found}), not only tensors: {what}. repsim "
        "never runs code from a checkpoint. Save the weights alone: "
        "torch.save(model.state_dict(), 'weights.pt') (or safetensors.torch.save_file)."
    )


def _damaged(path: Path, exc: BaseException) -> CheckpointError:
    size = path.stat().st_size if path.exists() else 0
    reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
    return CheckpointError(
        f"{path} ({size} bytes) cannot be read as a torch file: it is truncated or corrupt "
        f"({type(exc).__name__}: {reason}). Copy or download it again."
    )


def load_safetensors(path: str | Path) -> tuple[State, dict]:
    """Tensors and header metadata of a ``.safetensors`` file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}): it is truncated or corrupt. "
            "Copy or download it again."
        ) from None
    return tensors, meta


def is_state(obj) -> bool:
    """A non-empty mapping of names to tensors (a ``state_dict``)."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())
    )


def find_state_dict(obj, path: str = "checkpoint") -> tuple[State, dict]:
    """The tensors inside a loaded file and the non-tensor rest (``(state, extras)``).

    ``obj`` is a state dict, or a dict holding one under a :data:`CONTAINER_KEYS` key
    (Lightning ``.ckpt``: ``state_dict``; MAML++: ``network``), possibly beside numbers.
    """
    if is_state(obj):
        return dict(obj), {}
    if isinstance(obj, dict):
        for key in CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                inner, _ = find_state_dict(obj[key], path)
                extras = {k: v for k, v in obj.items() if k != key}
                return inner, {"container": key, **_plain(extras)}
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
        if tensors:
            return tensors, _plain({k: v for k, v in obj.items() if k not in tensors})
    raise CheckpointError(
        f"{path} holds no tensors repsim can find (top level: {_describe(obj)}): save the "
        "model's state_dict(), or a dict with it under 'state_dict'."
    )


def _plain(extras: dict) -> dict:
    """JSON-able numbers and strings from a checkpoint's non-tensor entries (for provenance)."""
    out = {}
    for k, v in extras.items():
        if isinstance(v, (bool, int, float, str)):
            out[str(k)] = v
        elif isinstance(v, np.generic):
            out[str(k)] = v.item()
    return out


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return "dict with keys " + ", ".join(map(str, list(obj)[:8]))
    return type(obj).__name__


def strip_wrappers(state: State) -> State:
    """Remove ``_orig_mod.``, ``module.`` and ``model.`` prefixes shared by every key,
    repeatedly (DDP around learn2learn's MAML gives ``module.module.``)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    # torch.compile inside a wrapper puts _orig_mod. in the middle of every key
    return {k.replace("._orig_mod.", ".").replace("_orig_mod.", ""): v for k, v in state.items()}


def read_state(path: str | Path) -> tuple[State, dict]:
    """The flat state dict of a checkpoint file (wrappers stripped) and its non-tensor extras."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist: check the path")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder: give the checkpoint file (for a TensorFlow checkpoint, the "
            "prefix or its .index file)"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): it was truncated; copy it again")
    with path.open("rb") as fh:
        head = fh.read(8)
    if path.suffix == ".safetensors" or (
        len(head) == 8 and head[:2] != b"PK" and _looks_like_safetensors(path, head)
    ):
        tensors, meta = load_safetensors(path)
        return strip_wrappers(tensors), {"safetensors_metadata": meta}
    state, extras = find_state_dict(load_torch_file(path), str(path))
    return strip_wrappers(state), extras


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    n = int.from_bytes(head, "little")
    if not 2 <= n <= 100_000_000:
        return False
    with path.open("rb") as fh:
        fh.seek(8)
        return fh.read(1) == b"{"
