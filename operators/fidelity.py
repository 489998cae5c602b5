"""Agreement of an operator's output with the authors' reference output.

The bar (``../shared/reference/README.md``): after MATLAB's uint8 conversion at least 99.9 % of
pixels equal and none more than one level apart, and PSNR >= 60 dB on the float output clipped to
[0, 1] (peak 1).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ._validate import to_uint8

MIN_EQUAL = 0.999
MAX_LEVELS = 1
MIN_PSNR_DB = 60.0


@dataclass(frozen=True)
class Agreement:
    equal: float  # fraction of uint8 samples that are identical
    max_levels: int  # largest uint8 difference
    psnr_db: float  # float PSNR after clipping to [0, 1], peak 1
    max_abs: float  # largest float difference, unclipped

    @property
    def ok(self) -> bool:
        return self.equal >= MIN_EQUAL and self.max_levels <= MAX_LEVELS and self.psnr_db >= MIN_PSNR_DB


def agreement(out, ref) -> Agreement:
    """Compare ``out`` with the reference ``ref`` (same shape, float)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"shape mismatch: {out.shape} vs reference {ref.shape}")
    diff = np.abs(to_uint8(out).astype(np.int16) - to_uint8(ref).astype(np.int16))
    mse = float(np.mean((np.clip(out, 0, 1) - np.clip(ref, 0, 1)) ** 2))
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
    return Agreement(float(np.mean(diff == 0)), int(diff.max()), psnr,
                     float(np.max(np.abs(out - ref))))


def unregistered(entry: dict) -> str | None:
    """Why a reference entry cannot be tested yet (its operator is not registered), or None.

    ``shared/reference`` holds entries for operators that ``operators/`` does not implement yet; they
    are reported as skipped with this reason, never as failures.
    """
    from . import ALL  # the registry imports this package's modules lazily; no cycle at call time

    if entry["operator"] not in ALL:
        return f"operator {entry['operator']!r} is not registered yet (known: {', '.join(ALL)})"
    return None


#: The authors' auxiliary images, read from the reference folder at run time (third-party files,
#: never shipped): the keyword each operator takes them by, and the file under ``inputs/``.
AUXILIARY = {"style": ("exemplar", "style_ruins.png"), "pencil": ("texture", "pencil0.jpg")}


def reference_overrides(entry: dict, reference_dir) -> dict:
    """The keyword arguments that reproduce ``entry``'s call: its solver, and the auxiliary image
    (style exemplar, pencil texture) the authors' code used, as a path in ``reference_dir``."""
    kw = {"solver": entry["solver"]} if entry.get("solver") else {}
    if entry["operator"] in AUXILIARY:
        key, name = AUXILIARY[entry["operator"]]
        kw[key] = str(Path(reference_dir) / "inputs" / name)
    return kw


def reference_entries(reference_dir) -> Iterator[dict]:
    """The entries of a reference folder's ``manifest.json`` with absolute ``input``/``output``."""
    root = Path(reference_dir)
    for entry in json.loads((root / "manifest.json").read_text()):
        yield {**entry, "input": root / entry["input"], "output": root / entry["output"]}
