"""LLF with the general remapping (``llf_general.m`` + ``remapping_function.m``): the reference
outputs, a plain NumPy/SciPy transcription of the description (operators_extra.md §2, which
starts the output pyramid from zeros, unlike the fused kernels), and properties."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from conftest import REFERENCE, read_rgb, reference_manifest
from operators._color import rgb2gray
from operators._llf_general_kernels import MODE_ENHANCE, _enhance_detail, run_llf
from operators._validate import MATLAB_EPS
from operators.fidelity import agreement
from operators.llf_remap import llf_remap, remapping_function
from llf_pyramids import gaussian as _gaussian
from llf_pyramids import laplacian as _laplacian
from llf_pyramids import up as _up

# ----------------------------------------------------------------------------- slow reference


def slow_r(y):
    """remapping_function.m, one branch per strict inequality (the boundary falls into none)."""
    out = np.zeros_like(y)
    small = np.abs(y) < 0.1
    out[small] = 3 * y[small]
    out[y > 0.1] = y[y > 0.1] + 0.2
    out[y < -0.1] = y[y < -0.1] - 0.2
    return out


def slow_llf_general(gray, n_samples=20):
    h, w = gray.shape
    n = math.ceil(math.log(min(h, w)) - math.log(2)) + 2
    refs = np.linspace(0, 1, n_samples)
    step = refs[1]
    g = _gaussian(gray, n)
    out = [np.zeros_like(x) for x in g]  # llf_general starts from zeros ...
    out[-1] = g[-1]                        # ... with the Gaussian top
    for ref in refs:
        lap = _laplacian(slow_r(gray - ref), n)
        for k in range(n - 1):
            dist = np.abs(g[k] - ref)
            out[k] = out[k] + (dist < step) * (1 - dist / step) * lap[k]
    res = out[-1]
    for k in range(n - 2, -1, -1):
        res = out[k] + _up(res, out[k].shape)
    return res


def slow_llf_remap_rgb(rgb, **kw):
    gray = rgb2gray(rgb)
    return slow_llf_general(gray, **kw)[:, :, None] * (rgb / (gray[:, :, None] + MATLAB_EPS))


# ----------------------------------------------------------------------------- reference data
ENTRIES = [e for e in reference_manifest() if e["operator"] == "llf_remap"]


@pytest.mark.parametrize("entry", ENTRIES or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"no llf_remap entries in the reference manifest at {REFERENCE}"))],
    ids=[e["input"].split("/")[-1] for e in ENTRIES] or None)
def test_matches_reference(entry, reference_dir):
    image = read_rgb(reference_dir / entry["input"])
    ref = np.load(reference_dir / entry["output"])["output"]
    out = llf_remap(image)
    assert out.shape == ref.shape and out.dtype == np.float64
    # float64 agreement to ~1e-12: rounded to float32 as stored, the result *is* the reference
    assert np.abs(out.astype(np.float32).astype(np.float64) - ref).max() <= 1e-12
    a = agreement(out, ref)
    assert a.equal >= 0.999 and a.max_levels <= 1


# ----------------------------------------------------------------------------- tests
def test_remapping_function_branches():
    y = np.array([-0.5, -0.1, -0.0999, -0.05, 0.0, 0.05, 0.0999, 0.1, 0.3])
    want = [-0.7, 0.0, -0.2997, -0.15, 0.0, 0.15, 0.2997, 0.0, 0.5]
    np.testing.assert_allclose(remapping_function(y), want, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(remapping_function(y), slow_r(y))
    # the kernel's detail r(y) − y, including the exact ±0.1 boundary
    det = np.array([_enhance_detail(v) for v in y])
    np.testing.assert_allclose(det, slow_r(y) - y, rtol=0, atol=1e-16)
    assert _enhance_detail(0.1) == -0.1 and _enhance_detail(-0.1) == 0.1


SHAPES = [(2, 2), (17, 2), (2, 17), (3, 3), (5, 7), (13, 11), (31, 37), (40, 64)]


@pytest.mark.parametrize("shape", SHAPES)
def test_gray_matches_slow_reference(shape, rng):
    img = rng.random(shape)
    out = llf_remap(img)
    assert out.shape == shape and out.dtype == np.float64
    np.testing.assert_allclose(out, slow_llf_general(img), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_samples", [2, 3, 7, 20, 33])
def test_other_sample_counts_match_slow_reference(n_samples, rng):
    img = rng.random((23, 19))
    np.testing.assert_allclose(llf_remap(img, n_samples=n_samples),
                               slow_llf_general(img, n_samples=n_samples), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2, 3), (9, 14, 3), (33, 20, 3)])
def test_rgb_matches_slow_reference(shape, rng):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_allclose(llf_remap(img), slow_llf_remap_rgb(img / 255.0), rtol=1e-12,
                               atol=1e-12)


def test_exact_boundary_of_the_remapping(rng):
    """Pixels with I − r_k == ±0.1 exactly in float64 remap to 0 (no branch takes them)."""
    refs = np.linspace(0, 1, 20)
    vals = [refs[k] + 0.1 for k in range(19) if (refs[k] + 0.1) - refs[k] == 0.1]
    vals += [refs[k] - 0.1 for k in range(2, 20) if (refs[k] - 0.1) - refs[k] == -0.1]
    assert len(vals) >= 4 and min(vals) >= 0 and max(vals) <= 1
    img = rng.random((24, 24))
    img.flat[rng.choice(img.size, 200, replace=False)] = rng.choice(vals, 200)
    np.testing.assert_allclose(llf_remap(img), slow_llf_general(img), rtol=0, atol=1e-12)


def test_strong_detail_boost_weak_edges_kept(rng):
    img = np.full((64, 64), 0.3)
    img[:, 32:] = 0.8                                   # a strong edge ...
    img += 0.005 * rng.standard_normal(img.shape)       # ... under faint texture
    img = np.clip(img, 0, 1)
    out = llf_remap(img)
    left = out[8:-8, 4:24]
    assert left.std() > 2.5 * img[8:-8, 4:24].std()     # texture roughly tripled
    step = out[8:-8, 40:60].mean() - left.mean()
    assert 0.5 < step < 1.0                              # the edge kept (plus the 0.2 jumps)


def test_black_pixels_use_eps_ratio(rng):
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    img[3:6, 2:5] = 0
    out = llf_remap(img)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[3:6, 2:5], 0.0)
    np.testing.assert_allclose(out, slow_llf_remap_rgb(img / 255.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [0.0, 0.25, 0.6, 1.0])
def test_constant_image_stays_constant(value):
    np.testing.assert_allclose(llf_remap(np.full((19, 26), value)), value, rtol=0, atol=1e-13)


def test_unclipped_output(rng):
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = llf_remap(img)
    assert out.min() < 0.0 or out.max() > 1.0


def test_gray_layouts_agree(rng):
    img = rng.random((15, 21))
    a = llf_remap(img)
    b = llf_remap(img[:, :, None])
    assert b.shape == (15, 21, 1)
    np.testing.assert_array_equal(a, b[:, :, 0])
    np.testing.assert_array_equal(a, llf_remap(np.asfortranarray(img)))
    # uint8 gray is x/255
    u8 = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    np.testing.assert_array_equal(llf_remap(u8), llf_remap(u8 / 255.0))


@pytest.mark.parametrize("nchunks", [1, 2, 5, 64])
def test_block_split_does_not_change_the_result(nchunks, rng):
    gray = rng.random((37, 29))
    refs = np.linspace(0, 1, 20)
    col = gray.reshape(37, 29, 1)
    want = run_llf(gray, col, refs, MODE_ENHANCE, np.zeros(2), 3)
    np.testing.assert_array_equal(run_llf(gray, col, refs, MODE_ENHANCE, np.zeros(2), nchunks),
                                  want)


def test_thread_count_does_not_change_the_result(rng):
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = llf_remap(img)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = llf_remap(img)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, llf_remap(img))  # and repeated calls agree


def test_bad_input():
    img = np.full((6, 6), 0.5)
    for bad, exc in ((1, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="n_samples"):
            llf_remap(img, n_samples=bad)
    with pytest.raises(TypeError, match="dtype"):
        llf_remap(np.zeros((8, 8), np.int64))
    with pytest.raises(ValueError, match="NaN"):
        llf_remap(np.full((8, 8, 3), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        llf_remap(np.full((8, 8), -0.5))
    with pytest.raises(ValueError, match="HxW"):
        llf_remap(np.zeros((8, 8, 2)))
    with pytest.raises(TypeError):
        llf_remap(img, 20)  # parameters are keyword-only
