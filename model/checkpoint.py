"""Checkpoints: everything needed to rebuild, resume or apply a model, written atomically.

Nothing in a checkpoint is executed when it is read: files are opened with
``torch.load(weights_only=True)``, whose unpickler only rebuilds tensors and plain data (dicts,
lists, tuples, strings, numbers, booleans, None); a file that asks for anything else (a pickle
that would call a function) is refused before anything runs. Checkpoints are written with plain
data only (:func:`plain`), and carry a SHA-256 checksum of their content (every tensor's dtype,
shape and bytes and every plain value, in a fixed order: :func:`checksum`) that :func:`load`
verifies, so flipped bytes in the weights are a clear refusal instead of garbage outputs.
Tensors with a NaN or an infinite value (a diverged training's) are neither saved nor loaded
(:func:`non_finite`).

Format ``v1`` (before the checksum) is still read, without verification.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import torch

from datagen.fs import atomic_open

FORMAT_V1 = "decouple-ops model v1"
CKPT_FORMAT = "decouple-ops model v2"
FORMATS = (FORMAT_V1, CKPT_FORMAT)

_SCALARS = (str, int, float, bool, type(None))


def plain(obj, where: str = "checkpoint"):
    """``obj`` with every mapping as a dict (OrderedDict included); anything that is not a tensor,
    dict, list, tuple, str, number, bool or None is a TypeError naming where it is."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, (dict, OrderedDict)):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not str or int")
            out[k] = plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, _SCALARS):
        return obj
    raise TypeError(f"{where} is a {type(obj).__name__}: checkpoints hold only tensors and plain "
                    "data (dict, list, tuple, str, int, float, bool, None)")


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            h.update(f"K{type(k).__name__}:{k!r}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{type(obj).__name__}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"S{type(obj).__name__}:{obj!r}".encode())


def non_finite(obj, where: str = "checkpoint") -> str | None:
    """Where the first floating-point tensor with a NaN or an infinite value is in ``obj``
    (e.g. ``"checkpoint['model']['weights.0']"``), or None: a diverged training's weights."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(torch.isfinite(obj.detach()).all()) else where
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = non_finite(v, f"{where}[{k!r}]")
        if found:
            return found
    return None


def checksum(state: dict) -> str:
    """SHA-256 (hex) of a checkpoint's content without its ``checksum`` entry: every tensor's
    dtype, shape and bytes and every plain value, dict keys in sorted order."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def save(path, state: dict) -> None:
    """Write ``state`` (plain data and tensors only) with its checksum, atomically: a uniquely
    named temporary file in the same folder, fsynced, then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = plain({**state, "format": CKPT_FORMAT})
    bad = non_finite(state)
    if bad:
        raise ValueError(f"not saving {path}: {bad} is not finite (NaN or inf; a diverged "
                         "training): the file on disk, if any, is kept as it was")
    state["checksum"] = checksum(state)
    with atomic_open(path) as fh:
        torch.save(state, fh)


def resolve(path) -> Path:
    """A checkpoint file, or ``last.pt`` in a run folder."""
    path = Path(path)
    return path / "last.pt" if path.is_dir() else path


def load(path, map_location="cpu") -> dict:
    """Read a checkpoint (file or run folder) without executing anything in it (weights only),
    and verify its checksum; a foreign, truncated, unsafe or corrupt file is a ValueError."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file, or a pickle asking to run code
        # the reason, without PyTorch's advice to load it with weights_only=False (which would
        # run the code) or its pointer to the documentation
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()
                 and "weights_only" not in ln and "documentation" not in ln]
        reason = lines[0][:300] if lines else type(exc).__name__
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError:
            head = b""
        if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
            # neither torch.save's ZIP archive nor its legacy pickle: the unpickler's own
            # reason ("Unsupported operand 123", a bare number) says nothing to a user
            reason = "not a file torch.save writes: no ZIP archive or pickle header"
        raise ValueError(f"{path} is not a readable checkpoint: only tensors and plain data are "
                         f"loaded, nothing is executed ({reason})") from None
    if not isinstance(state, dict) or state.get("format") not in FORMATS:
        raise ValueError(f"{path} is not a {CKPT_FORMAT} checkpoint")
    if state["format"] != FORMAT_V1:
        stored = state.get("checksum")
        if not isinstance(stored, str):
            raise ValueError(f"{path} has no checksum: it is damaged or was not written by "
                             "model.checkpoint.save")
        if checksum(state) != stored:
            raise ValueError(f"{path} is corrupt: the checksum of its content does not match "
                             "the one stored when it was written (damaged bytes); retrain or "
                             "restore it from a copy")
    bad = non_finite(state)
    if bad:
        raise ValueError(f"{path} is refused: {bad} is not finite (NaN or inf): the weights of "
                         "a diverged training give no image; retrain with a lower learning rate")
    return state


def __getattr__(name):
    # the first version defined these here; they now live in model.registry (this module
    # only saves and loads): kept importable for existing code
    if name in ("build_model", "ARCHS", "PER_GAMMA"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
