"""Shock filter: the reference outputs, a plain NumPy transcription of the description
(operators_extra.md §1), and properties of the operator."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from conftest import REFERENCE, read_rgb, reference_manifest
from operators._color import rgb2y, rgb2ycbcr, ycbcr2rgb
from operators._shock_kernels import _step_parallel, _step_serial, shock_steps
from operators.fidelity import agreement
from operators.shock import shock_filter

# ----------------------------------------------------------------------------- slow reference
# Whole-image NumPy arrays, replicate borders by index clamping, as the description reads.


def _shift(u, di, dj):
    h, w = u.shape
    ii = np.clip(np.arange(h) + di, 0, h - 1)
    jj = np.clip(np.arange(w) + dj, 0, w - 1)
    return u[ii][:, jj]


def slow_step(u, dt=0.1, h=1.0):
    dxm = u - _shift(u, 0, -1)
    dxp = _shift(u, 0, 1) - u
    dym = u - _shift(u, -1, 0)
    dyp = _shift(u, 1, 0) - u
    ux = (dxm + dxp) / 2
    uy = (dym + dyp) / 2
    dx = np.minimum(np.abs(dxm), np.abs(dxp))
    dx[dxm * dxp < 0] = 0
    dy = np.minimum(np.abs(dym), np.abs(dyp))
    dy[dym * dyp < 0] = 0
    uxx = _shift(u, 0, 1) + _shift(u, 0, -1) - 2 * u
    uyy = _shift(u, 1, 0) + _shift(u, -1, 0) - 2 * u
    uxy = (_shift(ux, 1, 0) - _shift(ux, -1, 0)) / 2
    unn = (uxx * ux**2 + 2 * uxy * ux * uy + uyy * uy**2) / (ux**2 + uy**2 + 1e-8)
    flat = (np.abs(ux) + np.abs(uy)) == 0
    unn[flat] = uxx[flat]
    return u + dt * (-np.sign(unn) * np.sqrt(dx**2 + dy**2) / h)


def slow_shock(rgb, iterations=15):
    """MATLAB: Y = rgb2ycbcr(D)(:,:,1); 15 steps; Y put back; ycbcr2rgb (clipped)."""
    ycc = rgb2ycbcr(rgb)
    u = rgb2y(rgb)
    for _ in range(iterations):
        u = slow_step(u)
    ycc[:, :, 0] = u
    return ycbcr2rgb(ycc)


# ----------------------------------------------------------------------------- reference data
ENTRIES = [e for e in reference_manifest() if e["operator"] == "shock"]


@pytest.mark.parametrize("entry", ENTRIES or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"no shock entries in the reference manifest at {REFERENCE}"))],
    ids=[e["input"].split("/")[-1] for e in ENTRIES] or None)
def test_matches_reference(entry, reference_dir):
    image = read_rgb(reference_dir / entry["input"])
    ref = np.load(reference_dir / entry["output"])["output"]
    out = shock_filter(image)
    assert out.shape == ref.shape and out.dtype == np.float64
    # float64 agreement to ~1e-12: rounded to float32 as stored, the result *is* the reference
    assert np.abs(out.astype(np.float32).astype(np.float64) - ref).max() <= 1e-12
    a = agreement(out, ref)
    assert a.equal >= 0.999 and a.max_levels <= 1


# ----------------------------------------------------------------------------- tests
SHAPES = [(2, 2), (2, 9), (9, 2), (3, 3), (5, 7), (17, 4), (31, 37), (48, 64)]


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_slow_reference(shape, rng):
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    out = shock_filter(img)
    np.testing.assert_allclose(out, slow_shock(img / 255.0), rtol=0, atol=1e-13)


def test_smooth_image_matches_slow_reference(rng):
    """Smooth data exercise the minmod and sign branches differently from noise."""
    y, x = np.mgrid[0:40, 0:50] / 40.0
    img = np.stack([0.5 + 0.4 * np.sin(3 * x + y), 0.5 + 0.3 * np.cos(2 * y),
                    0.2 + 0.6 * x * y / 1.25], axis=2).clip(0, 1)
    img[10:20, 5:15] = 0.25  # flat block: u_x = u_y = 0, u_nn = u_xx
    np.testing.assert_allclose(shock_filter(img), slow_shock(img), rtol=0, atol=1e-13)
    np.testing.assert_allclose(shock_filter(img, iterations=4), slow_shock(img, 4), rtol=0,
                               atol=1e-13)


def test_colour_conversions_are_matlabs_formulas_written_out(rng):
    """rgb2gray, rgb2ycbcr and ycbcr2rgb pinned to MATLAB's documented formulas, typed here
    from its documentation (not the module's constants): the slow references of llf,
    llf_remap and shock use these functions too, so a wrong constant would pass them."""
    from operators._color import rgb2gray

    rgb = rng.random((7, 9, 3))
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    np.testing.assert_array_equal(
        rgb2gray(rgb), r * 0.298936021293775 + g * 0.587043074451121 + b * 0.114020904255103)
    want = np.stack([r * (65.481 / 255) + g * (128.553 / 255) + b * (24.966 / 255) + 16 / 255,
                     r * (-37.797 / 255) + g * (-74.203 / 255) + b * (112.0 / 255) + 128 / 255,
                     r * (112.0 / 255) + g * (-93.786 / 255) + b * (-18.214 / 255) + 128 / 255],
                    axis=-1)
    np.testing.assert_array_equal(rgb2ycbcr(rgb), want)
    np.testing.assert_allclose(ycbcr2rgb(rgb2ycbcr(rgb)), rgb, rtol=0, atol=1e-13)
    # studio swing: black at Y 16, white at Y 235, neutral chroma at 128 (of 255)
    ends = np.array([[[16, 128, 128], [235, 128, 128]]]) / 255.0
    np.testing.assert_allclose(ycbcr2rgb(ends), [[[0, 0, 0], [1, 1, 1]]], rtol=0, atol=1e-12)


def test_rgb2y_rounds_as_matlab_imlincomb(rng):
    """Coefficients T/255, offset added last: bit-equal, and not the (16 + T·rgb)/255 form."""
    img = rng.random((40, 50, 3))
    matlab = (65.481 / 255 * img[..., 0] + 128.553 / 255 * img[..., 1] + 24.966 / 255 * img[..., 2]
              + 16 / 255)
    np.testing.assert_array_equal(rgb2y(img), matlab)
    other = (16 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255
    assert (other != matlab).any()


def test_colour_restoration_equals_ycbcr_round_trip(rng):
    """The luma replacement is computed as rgb + k·ΔY; it must equal ycbcr2rgb of the modified
    rgb2ycbcr to rounding, including the clipping."""
    img = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    out = shock_filter(img, iterations=5)
    ycc = rgb2ycbcr(img / 255.0)
    u = rgb2y(img / 255.0)
    for _ in range(5):
        u = slow_step(u)
    ycc[:, :, 0] = u
    np.testing.assert_allclose(out, ycbcr2rgb(ycc), rtol=0, atol=1e-14)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_zero_iterations_is_identity(rng):
    img = rng.random((13, 17, 3))
    np.testing.assert_array_equal(shock_filter(img, iterations=0), img)


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_constant_image_stays_constant(value):
    img = np.full((9, 12, 3), value)
    img[..., 1] *= 0.5
    np.testing.assert_allclose(shock_filter(img), img, rtol=0, atol=1e-15)


def test_blurred_edge_becomes_sharp():
    x = np.linspace(-1, 1, 64)
    ramp = 0.5 + 0.35 * np.tanh(3 * x)          # a soft step
    img = np.repeat(np.tile(ramp, (16, 1))[:, :, None], 3, axis=2)
    out = shock_filter(img, iterations=60)
    row = out[8, :, 0]
    # a much steeper maximum step than the input, the plateaus kept
    assert np.abs(np.diff(row)).max() > 3 * np.abs(np.diff(img[8, :, 0])).max()
    assert abs(row[0] - img[8, 0, 0]) < 0.02 and abs(row[-1] - img[8, -1, 0]) < 0.02
    np.testing.assert_array_equal(out[3], out[11])  # rows stay identical


def test_deterministic_and_layout_independent(rng):
    img = rng.random((23, 29, 3))
    a = shock_filter(img)
    np.testing.assert_array_equal(a, shock_filter(img))
    np.testing.assert_array_equal(a, shock_filter(np.asfortranarray(img)))
    np.testing.assert_array_equal(a, shock_filter(img.astype(np.float64)[::1, ::1]))


@pytest.mark.parametrize("nchunks", [1, 2, 3, 7, 40])
def test_block_split_does_not_change_the_result(nchunks, rng):
    u = rng.random((40, 33))
    want = np.empty_like(u)
    _step_serial(u, want, 0.1, 1.0, np.empty((3, 33)))
    got = np.empty_like(u)
    _step_parallel(u, got, 0.1, 1.0, nchunks)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(shock_steps(u, 3, 0.1, 1.0, nchunks),
                                  shock_steps(u, 3, 0.1, 1.0, 1))


def test_thread_count_does_not_change_the_result(rng):
    img = rng.integers(0, 256, (300, 230, 3), dtype=np.uint8)  # above the serial threshold
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = shock_filter(img)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = shock_filter(img)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a, b)


def test_gray_input_is_refused():
    for gray in (np.zeros((8, 8)), np.zeros((8, 8, 1)), np.zeros((8, 8), np.uint8)):
        with pytest.raises(ValueError, match="needs an RGB image"):
            shock_filter(gray)


def test_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        shock_filter(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(ValueError, match="NaN"):
        shock_filter(np.full((8, 8, 3), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        shock_filter(np.full((8, 8, 3), 2.0))
    with pytest.raises(ValueError, match="HxW"):
        shock_filter(np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="at least 2x2"):
        shock_filter(np.zeros((1, 8, 3)))
    img = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="iterations"):
        shock_filter(img, iterations=-1)
    with pytest.raises(TypeError, match="iterations"):
        shock_filter(img, iterations=2.0)
    with pytest.raises(ValueError, match="dt"):
        shock_filter(img, dt=0.0)
    with pytest.raises(ValueError, match="h must"):
        shock_filter(img, h=-1.0)
    with pytest.raises(TypeError):
        shock_filter(img, 15)  # parameters are keyword-only
