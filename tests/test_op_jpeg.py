"""JPEG deblocking input (operator ``jpeg``)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
import io

import operators
from operators._color import rgb2y
from operators.jpeg import check_quality, jpeg_roundtrip

from contextlib import nullcontext as _nothing

from conftest import REFERENCE, read_rgb, reference_manifest

JPEG_ENTRIES = [e for e in reference_manifest() if e["operator"] == "jpeg"]


@pytest.mark.skipif(not JPEG_ENTRIES, reason=f"no jpeg reference entries at {REFERENCE}")
@pytest.mark.parametrize("entry", JPEG_ENTRIES, ids=lambda e: e["output"].split("/")[-1])
def test_matches_the_reference(entry):
    img = read_rgb(REFERENCE / entry["input"])
    ref = np.load(REFERENCE / entry["output"])
    out = operators.apply("jpeg", img, entry["gamma"])
    inp, target = operators.pair("jpeg", img, entry["gamma"])
    # every decoded pixel identical (float32 storage of k/255)
    np.testing.assert_array_equal(np.round(out * 255),
                                  np.round(ref["output"].astype(np.float64) * 255))
    np.testing.assert_allclose(target, ref["target"], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(inp, out)


def test_pillow_decodes_the_same_pixels():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8), (5, 5), 0)
    for q in (10, 20, 75):
        y8 = operators.to_uint8(rgb2y(img / 255.0))
        buf = io.BytesIO()
        Image.fromarray(y8).save(buf, "JPEG", quality=q)
        pil = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        np.testing.assert_array_equal(jpeg_roundtrip(y8, q), pil)
        with pytest.warns(operators.ExtrapolationWarning) if q > 20 else _nothing():
            out = operators.apply("jpeg", img, q, strict=False)
        np.testing.assert_array_equal(out * 255, pil)


def test_quality_changes_the_error_and_odd_gray_input():
    rng = np.random.default_rng(1)
    g = cv2.GaussianBlur(rng.random((29, 41)), (7, 7), 0)
    errs = []
    for q in (10, 15, 20):
        inp, tgt = operators.pair("jpeg", g, q)
        assert inp.shape == tgt.shape == (29, 41)
        np.testing.assert_array_equal(tgt, g)  # a gray image is taken as the luma
        errs.append(np.abs(inp - tgt).mean())
    assert errs[0] > errs[2] > 0  # lower quality, larger error
    assert errs[0] < 0.1


def test_deterministic():
    img = np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(operators.pair("jpeg", img, 12, seed=0)[0],
                                  operators.pair("jpeg", img, 12, seed=9)[0])


def test_bad_quality():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="integer"):
        operators.apply("jpeg", img, 12.5)
    with pytest.raises(ValueError, match="integer"):
        operators.apply("jpeg", img, 12.5, strict=False)
    with pytest.raises(ValueError, match=r"domain \[1, 100\]"):
        operators.apply("jpeg", img, 0, strict=False)
    with pytest.raises(ValueError, match=r"trained range \[10, 20\].*strict=False"):
        operators.apply("jpeg", img, 50)
    with pytest.warns(operators.ExtrapolationWarning):
        operators.apply("jpeg", img, 50, strict=False)
    assert check_quality(np.int64(15)) == 15 and check_quality(15.0) == 15
    for bad in (True, "10", None):
        with pytest.raises(TypeError):
            check_quality(bad)
    with pytest.raises(ValueError):
        check_quality(101)
