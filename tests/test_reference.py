"""Fidelity: every output of the authors' own code, reproduced within the reference README's bar.

After MATLAB's uint8 conversion, at least 99.9 % of pixels equal and none more than one level
apart; on the float output (clipped to [0, 1]), PSNR >= 60 dB.
"""
from __future__ import annotations

import numpy as np
import pytest

import operators
from conftest import REFERENCE, read_rgb, reference_manifest
from operators.fidelity import MAX_LEVELS, MIN_EQUAL, MIN_PSNR_DB, agreement, unregistered

ENTRIES = reference_manifest()


def _id(e: dict) -> str:
    return e["output"].split("/")[-1].removesuffix(".npz")


def _param(e: dict):
    why = unregistered(e)
    marks = [pytest.mark.skip(reason=why)] if why else []
    return pytest.param(e, id=_id(e), marks=marks)


@pytest.mark.skipif(not ENTRIES, reason=f"no reference manifest at {REFERENCE}")
@pytest.mark.parametrize("entry", [_param(e) for e in ENTRIES])
def test_matches_reference(entry):
    image = read_rgb(REFERENCE / entry["input"])
    ref = np.load(REFERENCE / entry["output"])["output"]
    overrides = {"solver": "direct"} if entry.get("solver") == "direct" else {}
    out = operators.apply(entry["operator"], image, entry["gamma"], **overrides)
    assert out.shape == ref.shape and out.dtype == np.float64
    a = agreement(out, ref)
    assert a.equal >= MIN_EQUAL, f"only {a.equal:.4%} of uint8 pixels equal"
    assert a.max_levels <= MAX_LEVELS, f"a pixel is {a.max_levels} levels off"
    assert a.psnr_db >= MIN_PSNR_DB, f"float PSNR {a.psnr_db:.1f} dB < {MIN_PSNR_DB} dB"


def test_agreement_detects_differences():
    ref = np.full((10, 10, 3), 0.5)
    assert agreement(ref, ref).ok and agreement(ref, ref).psnr_db == np.inf
    off = ref.copy()
    off[0, 0, 0] += 2.0 / 255  # one sample two levels off
    a = agreement(off, ref)
    assert a.max_levels == 2 and not a.ok
    assert agreement(ref + 1e-4, ref).psnr_db == pytest.approx(80.0)
    with pytest.raises(ValueError, match="shape"):
        agreement(ref[:5], ref)
