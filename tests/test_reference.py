"""Fidelity: every output of the authors' own code, reproduced within the reference README's bar.

After MATLAB's uint8 conversion, at least 99.9 % of pixels equal and none more than one level
apart; on the float output (clipped to [0, 1]), PSNR >= 60 dB.
"""
from __future__ import annotations

import numpy as np
import pytest

import operators
from conftest import REFERENCE, read_rgb, reference_manifest

ENTRIES = reference_manifest()


def _id(e: dict) -> str:
    return e["output"].split("/")[-1].removesuffix(".npz")


def agreement(out: np.ndarray, ref: np.ndarray) -> tuple[float, int, float]:
    """(fraction of equal uint8 pixels, max uint8 difference, float PSNR in dB)."""
    a = operators.to_uint8(out).astype(int)
    b = operators.to_uint8(ref).astype(int)
    diff = np.abs(a - b)
    mse = np.mean((np.clip(out, 0, 1) - np.clip(ref.astype(np.float64), 0, 1)) ** 2)
    psnr = np.inf if mse == 0 else 10 * np.log10(1.0 / mse)
    return float(np.mean(diff == 0)), int(diff.max()), float(psnr)


@pytest.mark.skipif(not ENTRIES, reason=f"no reference manifest at {REFERENCE}")
@pytest.mark.parametrize("entry", ENTRIES, ids=[_id(e) for e in ENTRIES])
def test_matches_reference(entry):
    image = read_rgb(REFERENCE / entry["input"])
    ref = np.load(REFERENCE / entry["output"])["output"]
    overrides = {"solver": "direct"} if entry.get("solver") == "direct" else {}
    out = operators.apply(entry["operator"], image, entry["gamma"], **overrides)
    assert out.shape == ref.shape and out.dtype == np.float64
    equal, maxdiff, psnr = agreement(out, ref)
    assert equal >= 0.999, f"only {equal:.4%} of uint8 pixels equal"
    assert maxdiff <= 1, f"a pixel is {maxdiff} levels off"
    assert psnr >= 60.0, f"float PSNR {psnr:.1f} dB < 60 dB"
