"""Rolling guidance filter: the streamed Numba grid against a plain dense NumPy grid, and properties."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from operators import _rgf_kernels as kernels
from operators.rgf import rolling_guidance


# ----------------------------------------------------------------------------- dense reference
def _round_half_away(x):
    f = np.floor(x)
    return np.where(x - f >= 0.5, f + 1, f)


def dense_bilateral_grid(data, edge, emin, emax, ss, sr):
    """Chen/Paris/Durand grid as in ``bilateralFilter2.m``, the whole grid in memory."""
    h, w = data.shape
    shape = (int(np.floor((h - 1) / ss)) + 7, int(np.floor((w - 1) / ss)) + 7,
             int(np.floor((emax - emin) / sr)) + 7)
    ii, jj = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    x, y, z = ii / ss, jj / ss, (edge - emin) / sr
    cell = tuple(_round_half_away(t).astype(int) + 3 for t in (x, y, z))
    gd, gw = np.zeros(shape), np.zeros(shape)
    np.add.at(gd, cell, data)
    np.add.at(gw, cell, 1.0)
    k = np.array([np.exp(-0.5), 1.0, np.exp(-0.5)])
    for ax in range(3):
        gd = ndimage.correlate1d(gd, k, axis=ax, mode="constant")
        gw = ndimage.correlate1d(gw, k, axis=ax, mode="constant")
    norm = np.divide(gd, gw, out=np.zeros(shape), where=gw != 0)
    out = ndimage.map_coordinates(norm, [x + 3, y + 3, z + 3], order=1)  # interpn, 0-based
    return np.where(np.isnan(out), data, out)


def dense_rgf(img, ss, sr=0.05, iters=4):
    res = np.zeros_like(img)
    for _ in range(iters):
        for c in range(img.shape[2]):
            g = res[:, :, c].copy()
            res[:, :, c] = dense_bilateral_grid(img[:, :, c], g, g.min(), g.max(), ss, sr)
    return res


def _pass(data, guide, ss, sr=0.05, chunk=None):
    """One grid pass through the Numba kernel, CxHxW in and out."""
    out = np.empty_like(data)
    flat = guide.reshape(guide.shape[0], -1)
    kernels.bilateral_grid_pass(data, guide, flat.min(1), flat.max(1), ss, sr,
                                chunk or data.shape[1], out)
    return out


# ----------------------------------------------------------------------------- fidelity
@pytest.mark.parametrize("ss", [1.0, 1.5, 2.0, 3.25, 3.7, 5.5, 10.0, 0.6])
@pytest.mark.parametrize("shape", [(23, 31), (2, 2), (17, 2), (2, 13)])
def test_single_pass_matches_dense_grid(ss, shape, rng):
    data = rng.random((1, *shape))
    guide = np.clip(data + 0.2 * rng.standard_normal(data.shape), 0, 1)  # a guide unlike data
    got = _pass(data, guide, ss)
    want = dense_bilateral_grid(data[0], guide[0], guide.min(), guide.max(), ss, 0.05)
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("ss,sr", [(1.0, 0.05), (3.25, 0.05), (7.75, 0.05), (2.4, 0.2), (1.2, 0.01)])
def test_filter_matches_dense_reference(ss, sr, rng):
    img = rng.integers(0, 256, (29, 26, 3), dtype=np.uint8)
    img[:, 13:] //= 3  # an edge, so later passes use a real guide
    got = rolling_guidance(img, ss, sigma_r=sr)
    want = dense_rgf(img / 255.0, ss, sr)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_row_blocks_do_not_change_the_result(rng):
    data = rng.random((2, 67, 40))
    guide = rng.random((2, 67, 40))
    whole = _pass(data, guide, 1.3)
    for chunk in (1, 5, 32):
        assert _pass(data, guide, 1.3, chunk=chunk).tobytes() == whole.tobytes()


@pytest.mark.parametrize("shape", [(37, 53), (1, 9), (9, 1), (2, 2)])
@pytest.mark.parametrize("sr", [0.05, 0.01, 0.5])
def test_unit_sigma_path_has_the_streamed_grid_s_bits(shape, sr, rng):
    """At σs = 1 the pass evaluates each pixel's blurred cells directly (``_unit_rows``); it must
    give the streamed grid's result (``_grid_rows``, its own σs = 1 shortcut) bit for bit, in
    every row block, including the image's first and last rows and columns."""
    data = rng.random(shape)
    guide = np.clip(data + 0.2 * rng.standard_normal(shape), 0, 1)
    emin, emax = guide.min(), guide.max()
    h, w = shape
    cell, low, frac = kernels._axis_maps(h, 1.0)
    ccell, clow, cfrac = kernels._axis_maps(w, 1.0)
    depth = int(np.floor((emax - emin) / sr)) + 1 + 2 * kernels.PAD
    want = np.full(shape, -1.0)
    got = np.full(shape, -2.0)
    for i0, i1 in ((0, h), (0, (h + 1) // 2), ((h + 1) // 2, h)):
        if i1 <= i0:
            continue
        kernels._grid_rows(data, guide, emin, sr, depth, w + 2 * kernels.PAD, cell, low, frac,
                           ccell, clow, cfrac, i0, i1, want, True)
        kernels._unit_rows(data, guide, emin, sr, i0, i1, got)
        assert got[i0:i1].tobytes() == want[i0:i1].tobytes()


def test_matlab_rounding_of_cells():
    r = kernels._round_half_away
    assert [r(v) for v in (0.0, 0.49999999999999994, 0.5, 1.4999999, 2.5, 3.0)] == [0, 0, 1, 1, 3, 3]


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("ss", [1.0, 3.7, 10.0])
def test_constant_image_stays_constant(ss):
    img = np.full((19, 23, 3), 0.3)
    np.testing.assert_allclose(rolling_guidance(img, ss), 0.3, rtol=0, atol=1e-15)


def test_output_is_a_weighted_average_of_the_input(rng):
    img = 0.25 + 0.5 * rng.random((40, 33, 3))
    out = rolling_guidance(img, 2.3)
    assert out.min() >= img.min() - 1e-12 and out.max() <= img.max() + 1e-12


def test_channels_are_filtered_separately(rng):
    img = rng.integers(0, 256, (21, 18, 3), dtype=np.uint8)
    rgb = rolling_guidance(img, 2.0)
    for c in range(3):
        assert rolling_guidance(img[:, :, c], 2.0).tobytes() == rgb[:, :, c].copy().tobytes()
    assert rolling_guidance(img[:, :, :1], 2.0).shape == (21, 18, 1)


def test_removes_small_structures_keeps_large_edges():
    img = np.zeros((40, 40))
    img[:, 20:] = 0.8
    img[6:8, 6:8] = 1.0  # 2x2 speck, well below sigma_s
    out = rolling_guidance(img, 4.0)
    assert out[7, 7] < 0.1  # from 1.0
    assert abs(out[30, 3]) < 0.01 and abs(out[30, 36] - 0.8) < 0.01
    assert out[30, 19] < 0.05 and out[30, 20] > 0.75  # the edge stays sharp


def test_more_iterations_recover_edges():
    img = np.zeros((30, 30))
    img[:, 15:] = 1.0
    one = rolling_guidance(img, 3.0, iterations=1)  # the Gaussian pass: a soft edge
    four = rolling_guidance(img, 3.0)
    assert four[15, 17] - four[15, 12] > one[15, 17] - one[15, 12] + 0.2


@pytest.mark.parametrize("kw,exc,match", [
    ({"sigma_s": 0.0}, ValueError, "sigma_s"),
    ({"sigma_s": -1.0}, ValueError, "sigma_s"),
    ({"sigma_r": 0.0}, ValueError, "sigma_r"),
    ({"sigma_r": float("inf")}, ValueError, "sigma_r"),
    ({"sigma_r": 1e-9}, ValueError, "GiB"),
    ({"sigma_s": 1e-300}, ValueError, "GiB"),
    ({"iterations": 0}, ValueError, "iterations"),
    ({"iterations": 2.0}, TypeError, "iterations"),
    ({"iterations": True}, TypeError, "iterations"),
])
def test_parameter_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        rolling_guidance(np.zeros((4, 4)), **{"sigma_s": 3.0, **kw})


# ------------------------------------------------------------- limits (issue 13, items 9, 10)
def test_too_many_iterations_and_too_large_images_are_refused(monkeypatch):
    img = np.zeros((6, 6))
    with pytest.raises(ValueError, match="iterations=1001 is too many; at most 1000"):
        rolling_guidance(img, 3.0, iterations=1001)
    with pytest.raises(ValueError, match=r"GiB per thread"):
        rolling_guidance(img, 3.0, sigma_r=1e-300)
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(MemoryError, match=r"rgf: a 100x100 image"):
        rolling_guidance(np.zeros((100, 100, 3)), 3.0)
