"""The HDF5 layout of a dataset (documented in the README), and reading helpers.

::

    /                         attrs: format, version, code, command, created, seed, size,
                                     per_image, test_fraction, max_crops, scales, images,
                                     options (JSON), digest, skipped (JSON)
    /images/file    (F,)      str      source image files, in the order the options list them
    /images/split   (F,)      uint8    0 = train, 1 = test (the split is by source image)
    /sources/pixels (N,S,S,3) uint8    the crops every operator was applied to (stored once)
    /sources/image  (N,)      int32    index into /images
    /sources/box    (N,4)     int32    y, x, height, width of the crop in the scaled image
    /sources/scale  (N,)      float32  the image was resized by this factor before cropping
    /sources/split  (N,)      uint8
    /ops/<name>/              attrs: operator, title, paper, gamma_name, gamma_meaning, law,
                                     gamma_range, test_gammas, fixed (JSON), effective_note
    /ops/<name>/output          (M,S,S,3) uint8   operator output, MATLAB rounding
    /ops/<name>/gamma           (M,)      float64 sampled γ
    /ops/<name>/gamma_effective (M,)      float64 the γ the operator used (WMF: integer radius)
    /ops/<name>/source          (M,)      int32   index into /sources
    /ops/<name>/split           (M,)      uint8   0 train, 1 test, 2 single (train crops at test γ)

Image datasets are chunked one sample per chunk and gzip-compressed.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

FORMAT = "decouple-ops dataset"
FORMAT_VERSION = 1
#: Pair splits: continuous-γ training pairs, test pairs at the paper's test γ (on held-out source
#: images), and training crops at the test γ for the one-network-per-γ ("single") baseline.
SPLITS = {"train": 0, "test": 1, "single": 2}


def open_file(path) -> h5py.File:
    """Open a dataset read-only with a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        partial = path.with_name(path.name + ".partial")
        hint = (f"; an interrupted build is in {partial}: run `python -m datagen build --resume "
                f"--out {path}` with the same options") if partial.exists() else ""
        raise FileNotFoundError(f"no dataset at {path}{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise ValueError(f"{path} is not a {FORMAT} file (no 'format' attribute)")
    return f


def op_names(f: h5py.File) -> list[str]:
    """The operators in a file, in the paper's order (HDF5 lists groups alphabetically)."""
    import operators

    names = list(f["ops"].keys()) if "ops" in f else []
    order = {n: i for i, n in enumerate(operators.NAMES)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


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
            rows.append({"operator": name, "split": sname, "pairs": int(sel.sum()),
                         "gamma_min": float(gamma[sel].min()) if sel.any() else np.nan,
                         "gamma_max": float(gamma[sel].max()) if sel.any() else np.nan,
                         "law": g.attrs["law"]})
    return rows
