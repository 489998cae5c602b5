"""Weighted median filter (operators.wmf): OpenCV bit-exactness, brute-force oracle, properties."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import operators
from operators import wmf
from operators.wmf import effective_radius, weighted_median


def _guide(x):
    """jointWMF.m's guide: uint8((x - min) .* (255 / range)), MATLAB rounding."""
    lo = x.min()
    span = x.max() - lo
    f = (x - lo) * (255.0 / span)
    fl = np.floor(f)
    return np.clip(fl + (f - fl >= 0.5), 0, 255).astype(np.uint8), span


def _opencv(image, r, sigma=25.5):
    """The reference call: OpenCV's weightedMedianFilter (the authors' code), RNG seeded with 0."""
    x = image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    guide, span = _guide(x)
    cv2.setRNGSeed(wmf.KMEANS_SEED)
    out = cv2.ximgproc.weightedMedianFilter(
        guide, x.astype(np.float32), int(np.floor(r + 0.5)), sigma=sigma * 255.0 / span)
    return out.reshape(x.shape)


def _brute(image, r, sigma=25.5):
    """Straightforward NumPy weighted median with the same guide, clusters and weights (float64
    sums): per pixel and channel, the smallest value v with W(<= v) >= W(> v) over the clipped
    window. Also returns the relative balance margin, to recognise near-ties."""
    x, _ = operators.as_float_image(image)
    guide, span = _guide(x)
    feat, w = wmf._feature_index(guide, sigma * 255.0 / span, wmf.KMEANS_SEED)
    w = w.astype(np.float64)
    x32 = x.astype(np.float32)
    h, wd, c = x.shape
    rad = effective_radius(r)
    out = np.empty_like(x32)
    for y in range(h):
        for xx in range(wd):
            ys = slice(max(0, y - rad), y + rad + 1)
            xs = slice(max(0, xx - rad), xx + rad + 1)
            wq = w[feat[y, xx]][feat[ys, xs]].ravel()
            for ch in range(c):
                v = x32[ys, xs, ch].ravel()
                levels = np.unique(v)
                below = np.array([wq[v <= t].sum() for t in levels])
                out[y, xx, ch] = levels[np.argmax(below - (wq.sum() - below) >= 0)]
    return out


CASES = [  # (shape, kind)
    ((2, 2, 3), "u8"), ((17, 2, 3), "u8"), ((2, 17, 3), "float"), ((13, 11, 3), "u8"),
    ((23, 19, 3), "float"), ((31, 29), "u8"), ((11, 13, 1), "float"), ((19, 17, 3), "few"),
]


def _image(rng, shape, kind):
    if kind == "u8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "few":  # few values and colours: many exact ties, clusters = colours
        return (rng.integers(0, 3, shape) * 100).astype(np.uint8)
    return rng.random(shape)  # float with more than 256 values: adaptive quantisation


@pytest.mark.parametrize("shape,kind", CASES)
def test_bit_exact_with_opencv(rng, shape, kind):
    img = _image(rng, shape, kind)
    for r, sigma in ((1.0, 25.5), (2.6, 0.02), (7.4, 3.0)):
        out = weighted_median(img, r, sigma=sigma)
        assert out.shape == img.shape and out.dtype == np.float64
        ref = _opencv(img, r, sigma)
        np.testing.assert_array_equal(out.astype(np.float32).reshape(ref.shape), ref)


def test_bit_exact_with_opencv_photo(coffee):
    img = coffee[:64, :80]
    for r in (1.0, 5.5, 10.0):
        np.testing.assert_array_equal(weighted_median(img, r).astype(np.float32),
                                      _opencv(img, r))


@pytest.mark.parametrize("shape,kind", [((9, 11, 3), "u8"), ((12, 7), "u8"), ((8, 10, 3), "few")])
@pytest.mark.parametrize("r,sigma", [(1.0, 25.5), (3.0, 2.0)])
def test_matches_brute_force(rng, shape, kind, r, sigma):
    img = _image(rng, shape, kind)
    out = weighted_median(img, r, sigma=sigma).astype(np.float32)
    np.testing.assert_array_equal(out.reshape(-1), _brute(img, r, sigma).reshape(-1))


def test_constant_image_unchanged():
    for img in (np.full((5, 6, 3), 77, np.uint8), np.full((4, 3), 0.25), np.zeros((2, 2, 1))):
        out = weighted_median(img, 3.0)
        assert out.shape == img.shape
        x = operators.as_float_image(img)[0].reshape(img.shape)
        np.testing.assert_array_equal(out, x.astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(operators.to_uint8(out), operators.to_uint8(x))


def test_output_values_come_from_input(rng):
    img = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    out = weighted_median(img, 4.0)
    for c in range(3):
        assert set(np.unique(operators.to_uint8(out[:, :, c]))) <= set(np.unique(img[:, :, c]))


def test_removes_an_impulse():
    img = np.full((15, 15, 3), 40, np.uint8)
    img[7, 7] = 250
    out = weighted_median(img, 1.0)
    np.testing.assert_array_equal(operators.to_uint8(out), np.full_like(img, 40))


def test_gray_layouts_agree(rng):
    g = rng.integers(0, 256, (10, 9)).astype(np.uint8)
    a = weighted_median(g, 2.0)
    b = weighted_median(g[:, :, None], 2.0)
    assert a.shape == (10, 9) and b.shape == (10, 9, 1)
    np.testing.assert_array_equal(a, b[:, :, 0])


def test_deterministic_pure_and_leaves_opencv_rng_alone(rng):
    img = rng.integers(0, 256, (16, 18, 3)).astype(np.uint8)
    keep = img.copy()

    def draws():
        a = np.zeros(6)
        cv2.randu(a, 0.0, 1.0)
        return a

    cv2.setRNGSeed(123)
    expected = draws()
    cv2.setRNGSeed(123)
    first = weighted_median(img, 3.0)
    assert np.array_equal(draws(), expected), "the caller's OpenCV RNG state changed"
    second = weighted_median(img, 3.0)
    assert first.tobytes() == second.tobytes()
    np.testing.assert_array_equal(img, keep)


def test_radius_rounds_half_up(rng):
    img = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)
    assert [effective_radius(v) for v in (1.0, 1.49, 1.5, 5.5, 9.5, 10.0)] == [1, 1, 2, 6, 10, 10]
    np.testing.assert_array_equal(weighted_median(img, 1.49), weighted_median(img, 1.0))
    np.testing.assert_array_equal(weighted_median(img, 1.5), weighted_median(img, 2.0))
    assert operators.get("wmf").effective_gamma(5.5) == effective_radius(5.5)


def test_registry_call(rng):
    img = rng.integers(0, 256, (8, 9, 3)).astype(np.uint8)
    np.testing.assert_array_equal(operators.apply("wmf", img, 3.25), weighted_median(img, 3.25))


@pytest.mark.parametrize("kwargs", [{"r": 0.4}, {"r": -2.0}, {"sigma": 0.0}, {"sigma": -1.0},
                                    {"r": float("nan")}, {"sigma": 1e-60}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        weighted_median(np.zeros((4, 4, 3), np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None],
                        **kwargs)


# ------------------------------------------------------------- limits (issue 13, items 9, 10)
def test_huge_radius_equals_whole_image_window(rng):
    img = rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)
    whole = weighted_median(img, 11.0)  # max(H, W): every window is the whole image
    for r in (12.0, 1e6, 1e300):
        np.testing.assert_array_equal(weighted_median(img, r), whole)
    assert not np.array_equal(weighted_median(img, 2.0), whole)


def test_image_too_large_for_memory_is_refused(monkeypatch):
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(MemoryError, match=r"wmf: a 100x200 image"):
        weighted_median(np.zeros((100, 200, 3), np.uint8) + 3, 2.0)
