"""Fidelity: every output of the authors' own code, reproduced within the reference README's bar.

After MATLAB's uint8 conversion, at least 99.9 % of pixels equal and none more than one level
apart; on the float output (clipped to [0, 1]), PSNR >= 60 dB. That bar lets a 1e-4 error through,
so each registered operator also has a bound on the largest float difference (``MAX_ABS``), set
about ten times above what the implementation achieves (measured on every reference entry; the
references are stored as float32, so ~3e-8 is the floor).

The references come from ``$DECOUPLE_REFERENCE``, ``../shared/reference/``, or else the packed
copy shipped in ``tests/reference/`` (``conftest.py``), so they run on every clone; only the
entries that need the authors' style exemplar or pencil texture (not shipped) skip, saying so.
Without any references the fidelity tests are skipped on a developer machine but FAIL when the
environment variable ``CI`` is set (``CI=true``): a CI run that silently tests no fidelity must
not pass (``tox.ini`` passes ``CI`` through).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import operators
from conftest import REFERENCE, missing_authors_image, read_rgb, reference_manifest
from operators.fidelity import MAX_LEVELS, MIN_EQUAL, MIN_PSNR_DB, agreement, reference_overrides, unregistered

ENTRIES = reference_manifest()

#: Largest |output - reference| allowed per operator (float64 output vs the float32 reference).
#: Achieved (all entries, float64 vs float32 storage): l0 5.9e-8, wls/rtv/rgf 3.0e-8 (rtv with the
#: authors' PCG and with the direct solve alike), llf 3.3e-6 (Octave's 6-decimal rgb2gray
#: coefficients), wmf 0 (bit-exact with OpenCV); shock, wls_enhance, style, pencil, sr, jpeg
#: 3.0e-8, llf_remap 1.2e-7. The bounds are about 10x that; style and pencil (histogram bins, a
#: PCG stopping rule) get a little more room. An operator not listed is held to the README's bar.
MAX_ABS = {"l0": 5e-7, "wls": 3e-7, "rtv": 3e-7, "rgf": 3e-7, "llf": 3e-5, "wmf": 0.0,
           "shock": 3e-7, "llf_remap": 1.2e-6, "wls_enhance": 3e-7, "style": 1e-6,
           "pencil": 1e-6, "sr": 3e-7, "jpeg": 3e-7}


def on_ci() -> bool:
    value = os.environ.get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def _id(e: dict) -> str:
    return e["output"].split("/")[-1].removesuffix(".npz")


def _param(e: dict):
    why = unregistered(e) or missing_authors_image(e)
    marks = [pytest.mark.skip(reason=why)] if why else []
    return pytest.param(e, id=_id(e), marks=marks)


def test_reference_outputs_are_present():
    """The fidelity tests ran: skipped without references on a developer machine, failed on CI."""
    if not ENTRIES:
        msg = f"no reference manifest at {REFERENCE} (set DECOUPLE_REFERENCE)"
        if on_ci():
            pytest.fail(msg + "; CI must run the fidelity tests against the authors' outputs")
        pytest.skip(msg)
    assert any(unregistered(e) is None for e in ENTRIES), "no reference entry of a registered operator"


@pytest.mark.skipif(not ENTRIES, reason=f"no reference manifest at {REFERENCE}")
@pytest.mark.parametrize("entry", [_param(e) for e in ENTRIES])
def test_matches_reference(entry):
    image = read_rgb(REFERENCE / entry["input"])
    ref = np.load(REFERENCE / entry["output"])["output"]
    out = operators.apply(entry["operator"], image, entry["gamma"],
                          **reference_overrides(entry, REFERENCE))
    assert out.shape == ref.shape and out.dtype == np.float64
    a = agreement(out, ref)
    assert a.equal >= MIN_EQUAL, f"only {a.equal:.4%} of uint8 pixels equal"
    assert a.max_levels <= MAX_LEVELS, f"a pixel is {a.max_levels} levels off"
    assert a.psnr_db >= MIN_PSNR_DB, f"float PSNR {a.psnr_db:.1f} dB < {MIN_PSNR_DB} dB"
    bound = MAX_ABS.get(entry["operator"])
    if bound is not None:  # operators without a measured bound: the README's bar only
        assert a.max_abs <= bound, f"max |out - ref| = {a.max_abs:.3g} > {bound:g}"


def test_max_abs_table_covers_the_registered_operators():
    assert set(MAX_ABS) <= set(operators.ALL)
    assert set(MAX_ABS) == set(operators.ALL) - {"denoise", "rain"}  # random: no reference entries


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
