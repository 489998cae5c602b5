"""The HDF5 layout of a dataset (documented in the README), and reading helpers.

::

    /                         attrs: format, version, code, command, created, seed, size,
                                     per_image, test_fraction, max_crops, scales, images,
                                     options (JSON), digest, skipped (JSON)
    /images/file    (F,)      str      source image files relative to their folder, in option order
    /images/split   (F,)      uint8    0 = train, 1 = test (the split is by source image)
    /sources/pixels (N,S,S,3) uint8    the crops every operator was applied to (stored once)
    /sources/image  (N,)      int32    index into /images
    /sources/box    (N,4)     int32    y, x, height, width of the crop in the scaled image
    /sources/scale  (N,)      float32  the image was resized by this factor before cropping
    /sources/split  (N,)      uint8
    /ops/<name>/              attrs: operator, title, paper, kind, channels, gamma_name,
                                     gamma_meaning, law, law_description, gamma_range,
                                     test_gammas, fixed (JSON; auxiliary images by name and
                                     hash), effective_note, pair_input, pair_target, pair_size,
                                     pair_region, pair_layout, pair_rule, seed, seeds
    /ops/<name>/gamma           (M,)      float64 sampled γ (NaN: a fixed-effect operator)
    /ops/<name>/gamma_effective (M,)      float64 the γ the operator used (WMF: integer radius)
    /ops/<name>/source          (M,)      int32   index into /sources
    /ops/<name>/split           (M,)      uint8   0 train, 1 test, 2 single (train crops at test γ)
    /ops/<name>/seed            (M,)      int64   random degradations only: each pair's seed
  a filter (kind "filter", pair = (source crop, f(crop))):
    /ops/<name>/output          (M,S,S,3) uint8   operator output, MATLAB rounding
  a degradation (kind "degradation", pair = (d(crop), clean)), P = pair_size (S but for sr):
    /ops/<name>/input           (M,P,P[,3]) uint8 the degraded image (operators.apply's output)
    /ops/<name>/target          (M,P,P[,3]) uint8 the clean image in the operator's channels
                                (no channel axis for channels "y" and "gray")

Image datasets are chunked one sample per chunk and gzip-compressed. Format version 2 adds HDF5's
Fletcher-32 checksum filter to every dataset (``verify`` reads every chunk, so a flipped byte is
found) and stores image names relative to their folder (the digest is the same on every machine).
Format version 3 adds every registered operator: the ``kind``/``channels``/``pair_*``
attributes, degradations' ``input``/``target``, fixed-effect operators (NaN γ) and per-pair
seeds. A file without ``kind`` attributes (versions 1, 2) holds filters only and reads as before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # build workers import this module and need no h5py
    import h5py

FORMAT = "decouple-ops dataset"
FORMAT_VERSION = 3
#: Pair splits: continuous-γ training pairs, test pairs at the paper's test γ (on held-out source
#: images), and training crops at the test γ for the one-network-per-γ ("single") baseline.
SPLITS = {"train": 0, "test": 1, "single": 2}


def open_file(path) -> h5py.File:
    """Open a dataset read-only with a clear error for a missing or foreign file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset at {path}{build_state(path)}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise ValueError(f"{path} is not a {FORMAT} file (no 'format' attribute)")
    return f


def build_state(path) -> str:
    """'' or a hint about a build of ``path``: running now (named), or interrupted (resumable)."""
    from .lock import describe, holder

    path = Path(path)
    running = holder(path)
    if running is not None:
        return (f"; a build is writing it now ({describe(running)}): wait for it to finish")
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        return (f"; an interrupted build is in {partial}: run `python -m datagen build --resume "
                f"--out {path}` with the same options")
    return ""


#: Root attribute holding :func:`attributes_digest`: HDF5 keeps string attributes in heaps that
#: carry no checksum of their own, so the file checksums its attributes itself (format 2).
ATTRIBUTES_DIGEST = "attributes_sha256"


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def attributes_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute of every object in the file (except this digest itself)."""
    import hashlib

    items = []

    def collect(name, obj):
        for key in sorted(obj.attrs):
            if not (name == "/" and key == ATTRIBUTES_DIGEST):
                items.append([name, key, _plain(obj.attrs[key])])

    collect("/", f)
    f.visititems(collect)
    items.sort(key=lambda it: (it[0], it[1]))
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def op_names(f: h5py.File) -> list[str]:
    """The operators in a file, in the registry's order (HDF5 lists groups alphabetically)."""
    import operators

    names = list(f["ops"].keys()) if "ops" in f else []
    order = {n: i for i, n in enumerate(operators.ALL)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def store_keys(kind: str) -> tuple[str, ...]:
    """The image datasets of an operator group: ``output`` (filter) or ``input``, ``target``."""
    return ("output",) if kind == "filter" else ("input", "target")


def pair_shape(spec, size: int) -> tuple[int, ...]:
    """The shape of one stored image of operator ``spec``'s pairs of side ``size``: (S, S, 3),
    or (S, S) for the single-channel (y/gray) degradations."""
    if spec.kind == "degradation" and spec.channels in ("y", "gray"):
        return (size, size)
    return (size, size, 3)


def op_kind(f: h5py.File, name: str) -> str:
    """``"filter"`` or ``"degradation"`` (files before format 3 hold filters only)."""
    kind = f["ops"][name].attrs.get("kind", "filter")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def pair_datasets(f: h5py.File, name: str) -> tuple[str | None, str]:
    """Where the pairs of operator ``name`` are: (input dataset, target dataset) inside
    ``/ops/<name>``; input None means ``/sources/pixels[source]`` (a filter)."""
    return (None, "output") if op_kind(f, name) == "filter" else ("input", "target")


def op_attrs(f: h5py.File, name: str) -> dict:
    a = dict(f["ops"][name].attrs)
    a["fixed"] = json.loads(a["fixed"])
    return a


def summary(f: h5py.File) -> list[dict]:
    """One row per operator and split: pairs and the γ they span."""
    rows = []
    for name in op_names(f):
        g = f["ops"][name]
        split, gamma = g["split"][:], g["gamma"][:]
        for sname, code in SPLITS.items():
            sel = split == code
            known = sel & ~np.isnan(gamma)
            rows.append({"operator": name, "split": sname, "pairs": int(sel.sum()),
                         "gamma_min": float(gamma[known].min()) if known.any() else np.nan,
                         "gamma_max": float(gamma[known].max()) if known.any() else np.nan,
                         "law": g.attrs["law"], "kind": op_kind(f, name),
                         "channels": g.attrs.get("channels", "rgb")})
    return rows
