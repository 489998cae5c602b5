"""Denoising input (operator ``denoise``)."""
from __future__ import annotations

import numpy as np
import pytest

import operators
from operators._color import rgb2gray
from operators.denoise import denoise_pair


def test_pair_is_quantised_noisy_gray_and_gray():
    rng = np.random.default_rng(0)
    img = rng.integers(40, 216, (64, 48, 3), dtype=np.uint8)  # away from 0/255: no clipping
    noisy, clean = operators.pair("denoise", img, 25, seed=3)
    g = rgb2gray(img / 255.0)
    np.testing.assert_array_equal(clean, np.floor(g * 255 + 0.5) / 255)
    assert noisy.shape == clean.shape == (64, 48)
    np.testing.assert_array_equal(noisy * 255, np.round(noisy * 255))  # 8-bit levels
    # the noise is N(0, (25/255)^2) up to quantisation: std within a few percent
    z = (noisy - g) * 255
    assert abs(z.mean()) < 1.5 and z.std() == pytest.approx(25, rel=0.05)
    # what apply returns is the pair's input
    np.testing.assert_array_equal(operators.apply("denoise", img, 25, seed=3), noisy)


def test_same_seed_same_pair_other_seed_other_noise():
    img = np.random.default_rng(1).integers(0, 256, (31, 17, 3), dtype=np.uint8)  # odd size
    a = operators.pair("denoise", img, 50, seed=7)
    b = operators.pair("denoise", img, 50, seed=7)
    c = operators.pair("denoise", img, 50, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])


def test_clipping_and_float_option():
    black = np.zeros((40, 40, 3), np.uint8)
    noisy, clean = operators.pair("denoise", black, 70, seed=0)
    assert noisy.min() == 0.0 and (noisy == 0).mean() > 0.4  # half the noise clipped away
    raw, g = denoise_pair(black, 70, rng=np.random.default_rng(0), quantize=False)
    assert raw.min() < 0 and np.all(g == 0)


def test_gray_input():
    g = np.random.default_rng(2).random((12, 13))
    noisy, clean = operators.pair("denoise", g, 15, seed=1)
    np.testing.assert_array_equal(clean, np.floor(g * 255 + 0.5) / 255)


def test_bad_input():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"trained range \[10, 70\]"):
        operators.apply("denoise", img, 5)
    with pytest.raises(ValueError, match="domain"):
        operators.apply("denoise", img, -5, strict=False)
    with pytest.raises(ValueError, match="finite"):
        operators.apply("denoise", img, float("nan"), strict=False)
    with pytest.raises(TypeError, match="Generator"):
        denoise_pair(img, 20, rng=3)
    with pytest.raises(ValueError, match="HxW"):
        operators.apply("denoise", np.zeros((8, 8, 2), np.uint8), 20)
