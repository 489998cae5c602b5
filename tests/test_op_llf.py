"""Fast local Laplacian filter: the fused Numba kernels against a plain NumPy/SciPy transcription
of the reference algorithm, plus properties of the operator."""
from __future__ import annotations

import math

import numpy as np
import pytest

from operators import MATLAB_EPS
from operators._llf_kernels import RECURRENCE_MAX_C, _remap_pixel, remap_tables
from operators.llf import RGB2GRAY, local_laplacian, pyramid_depth
from llf_pyramids import gaussian as _gaussian
from llf_pyramids import laplacian as _laplacian
from llf_pyramids import up as _up

# ----------------------------------------------------------------------------- slow reference
# N + 1 complete Laplacian pyramids of the literal machinery (tests/llf_pyramids.py), explicit collapse.


def slow_llf(gray, fact, sigma=0.1, n_samples=10):
    h, w = gray.shape
    n = math.ceil(math.log(min(h, w)) - math.log(2)) + 2
    refs = np.linspace(0, 1, n_samples)
    step = refs[1]
    g = _gaussian(gray, n)
    out = _laplacian(gray, n)
    out[-1] = g[-1]
    for ref in refs:
        d = fact * (gray - ref) * np.exp(-(gray - ref) ** 2 / (2 * sigma * sigma))
        lap = _laplacian(d, n)
        for k in range(n - 1):
            dist = np.abs(g[k] - ref)
            out[k] = out[k] + (dist < step) * (1 - dist / step) * lap[k]
    res = out[-1]
    for k in range(n - 2, -1, -1):
        res = out[k] + _up(res, out[k].shape)
    return res


def slow_llf_rgb(rgb, fact, **kw):
    gray = rgb @ RGB2GRAY
    return slow_llf(gray, fact, **kw)[:, :, None] * (rgb / (gray[:, :, None] + MATLAB_EPS))


# ----------------------------------------------------------------------------- tests
SHAPES = [(2, 2), (17, 2), (2, 17), (3, 3), (5, 7), (13, 11), (31, 37), (40, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fact,sigma", [(5.0, 0.1), (2.0, 0.3), (8.0, 0.05), (-0.7, 0.1),
                                        (3.0, 0.01)])  # σ=0.01: the direct-exp path
def test_gray_matches_slow_reference(shape, fact, sigma, rng):
    img = rng.random(shape)
    out = local_laplacian(img, fact, sigma=sigma)
    assert out.shape == shape and out.dtype == np.float64
    np.testing.assert_allclose(out, slow_llf(img, fact, sigma=sigma), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_samples", [2, 3, 7, 17])
def test_other_sample_counts_match_slow_reference(n_samples, rng):
    img = rng.random((23, 19))
    out = local_laplacian(img, 4.0, n_samples=n_samples)
    np.testing.assert_allclose(out, slow_llf(img, 4.0, n_samples=n_samples), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2, 3), (9, 14, 3), (33, 20, 3)])
def test_rgb_matches_slow_reference(shape, rng):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    out = local_laplacian(img, 7.0)
    ref = slow_llf_rgb(img / 255.0, 7.0)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_black_pixels_use_eps_ratio(rng):
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    img[3:6, 2:5] = 0  # gray 0: ratio 0/eps = 0, so the output is 0 there
    out = local_laplacian(img, 5.0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[3:6, 2:5], 0.0)
    np.testing.assert_allclose(out, slow_llf_rgb(img / 255.0, 5.0), rtol=1e-12, atol=1e-12)


def test_gray_layouts_agree(rng):
    img = rng.random((15, 21))
    a = local_laplacian(img, 3.0)
    b = local_laplacian(img[:, :, None], 3.0)
    assert b.shape == (15, 21, 1)
    np.testing.assert_array_equal(a, b[:, :, 0])
    # non-contiguous input gives the same result
    c = local_laplacian(np.asfortranarray(img), 3.0)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("value", [0.0, 0.23, 0.5, 1.0])
def test_constant_image_stays_constant(value):
    out = local_laplacian(np.full((19, 26), value), 8.0)
    np.testing.assert_allclose(out, value, rtol=0, atol=1e-13)
    rgb = np.empty((11, 9, 3))
    rgb[:] = [value, value * 0.5, value * 0.25]
    np.testing.assert_allclose(local_laplacian(rgb, 8.0), rgb, rtol=1e-12, atol=1e-13)


def test_zero_fact_is_identity(rng):
    img = rng.random((27, 18, 3))
    np.testing.assert_allclose(local_laplacian(img, 0.0), img, rtol=1e-12, atol=1e-13)


def test_small_detail_is_amplified_large_edges_kept(rng):
    img = np.full((64, 64), 0.3)
    img[:, 32:] = 0.8                                  # a strong edge ...
    img += 0.005 * rng.standard_normal(img.shape)      # ... under faint texture
    out = local_laplacian(np.clip(img, 0, 1), 5.0)
    left, right = out[8:-8, 4:24], out[8:-8, 40:60]
    assert left.std() > 3 * img[8:-8, 4:24].std()      # texture amplified ~(1 + fact) ...
    assert abs(right.mean() - left.mean() - 0.5) < 0.1  # ... the edge by far less


def test_remap_recurrence_matches_direct_exp():
    refs = np.linspace(0, 1, 10)
    xs = np.linspace(0, 1, 1001)
    for c in (0.5, 50.0, RECURRENCE_MAX_C):
        use, up = remap_tables(refs, c)
        assert use
        fast = np.empty(10)
        for x in xs:
            _remap_pixel(x, refs, 3.0, c, True, up, fast)
            want = 3.0 * (x - refs) * np.exp(-c * (x - refs) ** 2)
            np.testing.assert_allclose(fast, want, rtol=1e-11, atol=1e-300)
    assert not remap_tables(refs, RECURRENCE_MAX_C * 1.01)[0]


def test_pyramid_depth_natural_log():
    assert pyramid_depth(2, 2) == 2
    assert pyramid_depth(17, 2) == 2
    assert pyramid_depth(3, 3) == 3
    assert pyramid_depth(375, 500) == 8
    assert pyramid_depth(1000, 1000) == 9
    assert pyramid_depth(1024, 1024) == 9


def test_parameter_checks():
    img = np.full((6, 6), 0.5)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        local_laplacian(img, 5.0, sigma=0.0)
    for bad, exc in ((1, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="n_samples"):
            local_laplacian(img, 5.0, n_samples=bad)
    with pytest.raises(ValueError, match="finite"):
        local_laplacian(img, float("inf"))


# ------------------------------------------------------------- limits (issue 13, items 9, 10)
def test_absurd_parameters_and_too_large_images_are_refused(monkeypatch):
    img = np.full((8, 8), 0.3)
    with pytest.raises(ValueError, match="n_samples=1025 is too many; at most 1024"):
        local_laplacian(img, 5.0, n_samples=1025)
    with pytest.raises(ValueError, match=r"sigma=1e-300 is too small"):
        local_laplacian(img, 5.0, sigma=1e-300)
    np.testing.assert_allclose(local_laplacian(img, 5.0, sigma=1e-150), 0.3, atol=1e-12)
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(MemoryError, match=r"llf: a 100x100 image .* at n_samples=10"):
        local_laplacian(np.zeros((100, 100, 3)), 5.0)
