"""Super-resolution input (operator ``sr``) and MATLAB's imresize (operators/_imresize.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import operators
from operators._color import rgb2y
from operators._imresize import contributions, cubic, imresize
from operators.sr import modcrop, sr_pair

from conftest import REFERENCE, read_rgb, reference_manifest

SR_ENTRIES = [e for e in reference_manifest() if e["operator"] == "sr"]


def _dense_imresize_1d(x: np.ndarray, m: int, s: float, antialias: bool = True) -> np.ndarray:
    """Independent straight transcription of §0.2 for one axis: loops, no tables, no caching."""
    n = len(x)
    out = np.empty(m)
    width = 4.0 / s if (s < 1 and antialias) else 4.0
    for i in range(1, m + 1):
        u = i / s + 0.5 * (1 - 1 / s)
        left = math.floor(u - width / 2)
        taps = range(left, left + math.ceil(width) + 2)
        w = np.array([(s * cubic(s * (u - j)) if (s < 1 and antialias) else cubic(u - j))
                      for j in taps], dtype=float)
        w /= w.sum()
        vals = []
        for j in taps:
            k = (j - 1) % (2 * n)
            vals.append(x[k] if k < n else x[2 * n - 1 - k])
        out[i - 1] = float(np.dot(w, vals))
    return out


def test_cubic_kernel_values():
    np.testing.assert_allclose(cubic([0, 0.5, 1, 1.5, 2, 2.5, -0.5]),
                               [1, 0.5625, 0, -0.0625, 0, 0, 0.5625], atol=1e-15)


@pytest.mark.parametrize("n,m", [(10, 5), (9, 3), (7, 17), (12, 12), (13, 7), (5, 11)])
def test_imresize_matches_a_loop_transcription(n, m):
    rng = np.random.default_rng(n * 100 + m)
    x = rng.random((n, 6))
    got = imresize(x, shape=(m, 6))
    want = np.stack([_dense_imresize_1d(x[:, c], m, m / n) for c in range(6)], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


def test_imresize_scalar_scale_sizes_and_order():
    rng = np.random.default_rng(0)
    x = rng.random((9, 13, 3))
    y = imresize(x, 1 / 3)
    assert y.shape == (3, 5, 3)
    # channels independent, same as the 2-D call
    np.testing.assert_array_equal(y[:, :, 1], imresize(x[:, :, 1], 1 / 3))
    # a 2-tuple given positionally is a target size (MATLAB's imresize(A, [h w]))
    np.testing.assert_array_equal(imresize(x, (4, 7)), imresize(x, shape=(4, 7)))
    # weights sum to one: constants are reproduced exactly at any size
    np.testing.assert_allclose(imresize(np.full((7, 9), 0.3), shape=(5, 23)), 0.3, atol=1e-15)
    idx, wt = contributions(10, 4, 0.4)
    np.testing.assert_allclose(wt.sum(axis=1), 1.0, atol=1e-15)
    assert idx.min() >= 0 and idx.max() <= 9


def test_imresize_bad_input():
    x = np.zeros((4, 4))
    with pytest.raises(TypeError, match="exactly one"):
        imresize(x)
    with pytest.raises(TypeError, match="exactly one"):
        imresize(x, 0.5, shape=(2, 2))
    with pytest.raises(ValueError, match="scale"):
        imresize(x, -1.0)
    with pytest.raises(ValueError, match="scale"):
        imresize(x, float("nan"))
    with pytest.raises(TypeError, match="shape"):
        imresize(x, shape=(2.5, 3))
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros(4), 0.5)
    with pytest.raises(TypeError, match="numpy array"):
        imresize("img", 0.5)


@pytest.mark.skipif(not SR_ENTRIES, reason=f"no sr reference entries at {REFERENCE}")
@pytest.mark.parametrize("entry", SR_ENTRIES, ids=lambda e: e["output"].split("/")[-1])
def test_matches_the_reference(entry):
    img = read_rgb(REFERENCE / entry["input"])
    ref = np.load(REFERENCE / entry["output"])
    out = operators.apply("sr", img, entry["gamma"])
    inp, target = operators.pair("sr", img, entry["gamma"])
    assert out.shape == ref["output"].shape and target.shape == ref["target"].shape
    np.testing.assert_allclose(out, ref["output"], rtol=0, atol=1e-7)  # float32 storage
    np.testing.assert_allclose(target, ref["target"], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(inp, out)


def test_pair_is_modcropped_luma_and_odd_sizes():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for s, m in ((2, 2), (3, 6), (4, 4)):
        inp, tgt = operators.pair("sr", img, s)
        assert tgt.shape == (37 - 37 % m, 53 - 53 % m) == inp.shape
        np.testing.assert_array_equal(tgt, modcrop(rgb2y(img / 255.0), m))
        assert 0.0 < np.abs(inp - tgt).mean() < 0.2  # blurred, not identical, not garbage
    # a constant image survives the round trip exactly (weights sum to 1)
    flat = np.full((12, 18, 3), 77, np.uint8)
    inp, tgt = sr_pair(flat, 3)
    np.testing.assert_allclose(inp, tgt, atol=1e-14)


def test_fast_colour_conversions_are_bit_identical_to_color_module():
    from operators._color import rgb2gray
    from operators._degrade_kernels import gray, im2uint8, luma, luma_and_bytes
    rng = np.random.default_rng(7)
    u8 = rng.integers(0, 256, (19, 23, 3), dtype=np.uint8)
    f = rng.random((19, 23, 3))
    np.testing.assert_array_equal(luma(u8), rgb2y(u8 / 255.0))
    np.testing.assert_array_equal(luma(f), rgb2y(f))
    for x in (u8, f, u8[:, :, 0]):
        y, b = luma_and_bytes(x)
        np.testing.assert_array_equal(y, luma(x))
        np.testing.assert_array_equal(b, operators.to_uint8(luma(x)))
    np.testing.assert_array_equal(luma(f.astype(np.float32)), rgb2y(f.astype(np.float32)))
    np.testing.assert_array_equal(gray(u8), rgb2gray(u8 / 255.0))
    np.testing.assert_array_equal(gray(f), rgb2gray(f))
    y = np.concatenate([rng.random(500) * 1.2 - 0.1, (np.arange(256) + 0.5) / 255])
    np.testing.assert_array_equal(im2uint8(y[None]), operators.to_uint8(y[None]))


def test_gray_input_is_taken_as_luma():
    rng = np.random.default_rng(4)
    g = rng.random((20, 24))
    inp, tgt = operators.pair("sr", g, 2)
    np.testing.assert_array_equal(tgt, g)
    np.testing.assert_array_equal(operators.apply("sr", g[:, :, None], 2), inp)


def test_deterministic_and_seed_is_ignored():
    img = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = operators.apply("sr", img, 4, seed=1)
    b = operators.apply("sr", img, 4, seed=2)
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    img = np.zeros((16, 16, 3), np.uint8)
    for bad in (1, 5, 2.5, 0, -2):
        with pytest.raises(ValueError, match="2, 3, 4"):
            operators.apply("sr", img, bad)
    with pytest.raises(ValueError, match="2, 3, 4"):
        operators.apply("sr", img, 5, strict=False)  # outside the domain, strict or not
    with pytest.raises(ValueError, match="finite"):
        operators.apply("sr", img, float("nan"))
    with pytest.raises(TypeError):
        operators.apply("sr", img, "2")
    with pytest.raises(ValueError, match="smaller than the 6x6"):
        operators.apply("sr", np.zeros((5, 9, 3), np.uint8), 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        operators.apply("sr", np.full((8, 8), 2.0), 2)
