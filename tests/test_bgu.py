"""Bilateral Guided Upsampling baseline (model/bgu.py): exactness, coordinate mapping, the
least-squares system against a dense transcription, the end-to-end pipeline and input checks."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import operators
from model import bgu as bgu_module
from model.bgu import bgu, default_grid_size, fit, luminance, slice_apply

M = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [-0.1, 0.25, 0.9]])
T = np.array([0.05, -0.02, 0.1])


def psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def smooth_image(h, w, seed=0, sigma=4.0) -> np.ndarray:
    """Blurred colour noise rescaled to [0.05, 0.95] (float64 HxWx3)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), sigma)
    img -= img.min()
    return 0.05 + 0.9 * img / img.max()


def affine_op(img):
    return img @ M.T + T


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return cv2.resize(skdata.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- exactness
def test_global_affine_recovered():
    img = smooth_image(128, 128)
    lo = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    grid = fit(lo, affine_op(lo))
    assert grid.shape == default_grid_size(32, 32) + (3, 4) == (2, 2, 8, 3, 4)
    out = slice_apply(grid, img)
    assert out.dtype == np.float64 and out.shape == img.shape
    assert psnr(out, affine_op(img)) >= 50.0
    # no luminance is clamped here, so the fit has a null space (linear in z); the ridge keeps
    # the grid at the small solution instead of an arbitrary one
    assert np.abs(grid).max() < 1.5


def test_identity_grid_slices_to_input():
    rng = np.random.default_rng(1)
    grid = np.zeros((3, 5, 4, 3, 4))
    grid[..., :3] = np.eye(3)
    img = rng.random((37, 23, 3))
    np.testing.assert_allclose(slice_apply(grid, img), img, rtol=0, atol=1e-12)


def test_z_only_grid_depends_on_luminance_only():
    rng = np.random.default_rng(2)
    gd = 6
    per_z = rng.normal(size=(gd, 3, 4))
    grid = np.broadcast_to(per_z, (4, 3, gd, 3, 4)).copy()
    img = rng.random((30, 41, 3))
    img[25, 37] = img[2, 3]  # same colour, far apart
    out = slice_apply(grid, img)
    np.testing.assert_allclose(out[25, 37], out[2, 3], rtol=0, atol=1e-12)
    # and it equals the 1-D (luminance) interpolation of the affine, applied to [r, g, b, 1]
    gz = np.clip(luminance(img) * gd - 0.5, 0, gd - 1)
    z0 = np.minimum(np.floor(gz).astype(int), gd - 1)
    z1 = np.minimum(z0 + 1, gd - 1)
    t = (gz - z0)[..., None, None]
    aff = (1 - t) * per_z[z0] + t * per_z[z1]
    feat = np.concatenate([img, np.ones(img.shape[:2] + (1,))], axis=2)
    np.testing.assert_allclose(out, np.einsum("hwij,hwj->hwi", aff, feat), atol=1e-12)
    # an offset-only z grid: equal luminance, different colours -> equal output
    off = np.zeros((2, 2, gd, 3, 4))
    off[..., 3] = np.linspace(0, 1, gd)[None, None, :, None]
    pair = np.array([[[0.5, 0.5, 0.5], [0.5 + 0.587 * 0.2, 0.5 - 0.299 * 0.2, 0.5]]])
    assert luminance(pair)[0, 0] == pytest.approx(luminance(pair)[0, 1], abs=1e-15)
    res = slice_apply(off, np.repeat(pair, 2, axis=0))
    np.testing.assert_allclose(res[0, 0], res[0, 1], atol=1e-12)


def test_coordinate_mapping_pixel_centres():
    """Offsets equal to the cell index reproduce the clamped continuous coordinates."""
    h, w, gh, gw, gd = 10, 24, 3, 4, 5
    img = np.random.default_rng(3).random((h, w, 3))
    cy, cx, cz = np.meshgrid(np.arange(gh), np.arange(gw), np.arange(gd), indexing="ij")
    grid = np.zeros((gh, gw, gd, 3, 4))
    grid[..., 0, 3], grid[..., 1, 3], grid[..., 2, 3] = cy, cx, cz
    out = slice_apply(grid, img)
    ys = np.clip((np.arange(h) + 0.5) * gh / h - 0.5, 0, gh - 1)
    xs = np.clip((np.arange(w) + 0.5) * gw / w - 0.5, 0, gw - 1)
    zs = np.clip(luminance(img) * gd - 0.5, 0, gd - 1)
    np.testing.assert_allclose(out[..., 0], np.broadcast_to(ys[:, None], (h, w)), atol=1e-12)
    np.testing.assert_allclose(out[..., 1], np.broadcast_to(xs[None, :], (h, w)), atol=1e-12)
    np.testing.assert_allclose(out[..., 2], zs, atol=1e-12)


# --------------------------------------------------------------------------- the fit itself
def dense_reference_fit(lo_in, lo_out, size, lam_s, lam_i):
    """Plain-loop transcription: rectangular least-squares system, solved by lstsq."""
    h, w, _ = lo_in.shape
    gh, gw, gd = size
    by, bx, bz = h / gh, w / gw, 1.0 / gd
    n = gh * gw * gd * 4

    def idx(y, x, z, j):
        return ((y * gw + x) * gd + z) * 4 + j

    def corners(g, size_):
        g = min(max(g, 0.0), size_ - 1.0)
        i0 = int(np.floor(g))
        i1 = min(i0 + 1, size_ - 1)
        return ((i0, 1 - (g - i0)), (i1, g - i0))

    rows = []
    for y in range(h):
        for x in range(w):
            r, g, b = lo_in[y, x]
            f = (r, g, b, 1.0)
            row = np.zeros(n)
            for yi, wy in corners((y + 0.5) / by - 0.5, gh):
                for xi, wx in corners((x + 0.5) / bx - 0.5, gw):
                    for zi, wz in corners((0.299 * r + 0.587 * g + 0.114 * b) * gd - 0.5, gd):
                        for j in range(4):
                            row[idx(yi, xi, zi, j)] += wy * wx * wz * f[j]
            rows.append(row)
    data = np.array(rows)
    smooth = []
    for y in range(gh):
        for x in range(gw):
            for z in range(gd):
                for j in range(4):
                    if y + 1 < gh:
                        row = np.zeros(n)
                        row[idx(y + 1, x, z, j)], row[idx(y, x, z, j)] = 1, -1
                        smooth.append(row * bx * bz / by * lam_s)
                    if x + 1 < gw:
                        row = np.zeros(n)
                        row[idx(y, x + 1, z, j)], row[idx(y, x, z, j)] = 1, -1
                        smooth.append(row * by * bz / bx * lam_s)
                    if 0 < z < gd - 1:
                        row = np.zeros(n)
                        row[idx(y, x, z - 1, j)] += 1
                        row[idx(y, x, z, j)] -= 2
                        row[idx(y, x, z + 1, j)] += 1
                        smooth.append(row * bx * by / bz ** 2 * lam_i)
    a = np.vstack([data, np.array(smooth)])
    out = np.empty((n, 3))
    for i in range(3):
        rhs = np.concatenate([lo_out[..., i].ravel(), np.zeros(len(smooth))])
        out[:, i] = np.linalg.lstsq(a, rhs, rcond=None)[0]
    return out.reshape(gh, gw, gd, 4, 3).transpose(0, 1, 2, 4, 3)


@pytest.mark.parametrize("size, lam_s, lam_i", [((2, 3, 4), 1.0, 4e-7), ((3, 2, 5), 3.0, 2e-3)])
def test_fit_matches_dense_least_squares(size, lam_s, lam_i, monkeypatch):
    rng = np.random.default_rng(4)
    lo_in = rng.random((14, 11, 3))
    lo_out = np.sqrt(lo_in) * 0.7 + 0.2 * lo_in[..., ::-1] ** 2 + 0.05 * rng.random((14, 11, 3))
    ref = dense_reference_fit(lo_in, lo_out, size, lam_s, lam_i)
    # the default tiny ridge (a safeguard for degenerate data) barely moves this ill-posed fit...
    got = fit(lo_in, lo_out, grid=size, lambda_spatial=lam_s, lambda_intensity=lam_i)
    assert got.shape == size + (3, 4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    # ...and without it the sparse normal equations give the rectangular system's exact solution
    monkeypatch.setattr(bgu_module, "RIDGE", 0.0)
    got = fit(lo_in, lo_out, grid=size, lambda_spatial=lam_s, lambda_intensity=lam_i)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)


def test_fit_degenerate_flat_image_is_finite():
    lo = np.full((32, 32, 3), 0.4)
    grid = fit(lo, lo * 0.5 + 0.1)
    assert np.isfinite(grid).all()
    np.testing.assert_allclose(slice_apply(grid, np.full((64, 64, 3), 0.4)), 0.3, atol=1e-6)


def _pardiso_or_skip():
    if not bgu_module._sparse_solve.pardiso_available():
        pytest.skip("MKL PARDISO (pypardiso) is not available here: only SuperLU runs")


def test_fit_uses_the_operators_pardiso_handle():
    """One PARDISO wrapper (issue 27): the fit's cached handle is the operators' SPD handle
    (``operators._sparse_solve.PardisoSPD``) with METIS ordering, one per grid shape."""
    _pardiso_or_skip()
    from operators import _sparse_solve

    bgu_module._HANDLES.clear()
    lo_in = smooth_image(24, 20, seed=3, sigma=2.0)
    fit(lo_in, lo_in ** 2, grid=(3, 3, 4), backend="pardiso")
    fit(lo_in * 0.5, lo_in, grid=(3, 3, 4), backend="pardiso")
    [(shape, handle)] = bgu_module._HANDLES.handles.items()
    assert shape == (3, 3, 4) and type(handle) is _sparse_solve.PardisoSPD
    assert handle.iparm[1] == 2 and handle.alive


@pytest.mark.parametrize("size", [(14, 11, None), (64, 80, None), (40, 40, (3, 2, 5))])
def test_pardiso_cholesky_matches_superlu(size):
    """The sparse Cholesky (MKL PARDISO, as WLS) and SuperLU give the same upsampling.

    On these smooth images no luminance is clamped, so the fit has the null space described in
    the module docstring: the ridge picks the solution there only up to rounding (grids may
    differ by ~1e-4 in those directions, as between any two solvers), the output does not.
    """
    _pardiso_or_skip()
    h, w, grid = size
    lo_in = smooth_image(h, w, seed=7, sigma=2.0)
    lo_out = operators.apply("l0", lo_in, 0.02)
    chol = fit(lo_in, lo_out, grid=grid, backend="pardiso")
    lu = fit(lo_in, lo_out, grid=grid, backend="scipy")
    assert chol.shape == lu.shape
    big = cv2.resize(lo_in, (3 * w, 3 * h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(slice_apply(chol, big), slice_apply(lu, big), rtol=0, atol=1e-10)
    assert psnr(slice_apply(lu, lo_in), lo_out) > psnr(lo_in, lo_out)  # a real fit
    # a second fit of the same grid shape reuses the cached analysis: same answer
    np.testing.assert_allclose(fit(lo_in, lo_out, grid=grid, backend="pardiso"), chol,
                               rtol=0, atol=1e-9)


def test_pardiso_cholesky_matches_superlu_grid(astronaut):
    """On a natural image (dark and bright pixels clamp the guide: no null space) the two
    solvers give the same grid to rounding, not only the same output."""
    _pardiso_or_skip()
    lo_in = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA) / 255.0
    lo_out = operators.apply("wls", lo_in, 1.0)
    chol = fit(lo_in, lo_out, backend="pardiso")
    lu = fit(lo_in, lo_out, backend="scipy")
    np.testing.assert_allclose(chol, lu, rtol=0, atol=1e-9 * np.abs(lu).max())
    np.testing.assert_allclose(fit(lo_in, lo_out), chol, rtol=0, atol=1e-9)  # auto = pardiso


def test_fit_backends_agree_on_degenerate_data():
    lo = np.full((32, 32, 3), 0.4)
    for backend in ("auto", "scipy"):
        grid = fit(lo, lo * 0.5 + 0.1, backend=backend)
        np.testing.assert_allclose(slice_apply(grid, lo), 0.3, atol=1e-6)


def test_fit_bad_backend():
    lo = np.full((20, 20, 3), 0.5)
    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'pardiso', 'scipy'"):
        fit(lo, lo, backend="cholmod")


# --------------------------------------------------------------------------- pipeline
def test_bgu_l0_closer_than_identity(astronaut):
    timings = {}
    out = bgu(astronaut, "l0", 0.02, timings=timings)
    assert out.shape == astronaut.shape and out.dtype == np.float64
    assert np.isfinite(out).all()
    assert set(timings) == {"downsample", "operator", "fit", "slice"}
    assert all(v >= 0 for v in timings.values())
    truth = operators.apply("l0", astronaut, 0.02)
    inp = astronaut / 255.0
    assert psnr(out, truth) > psnr(inp, truth) + 1.0
    # float input in [0, 1] gives the same result as uint8
    np.testing.assert_allclose(bgu(inp, "l0", 0.02), out, atol=1e-12)


def test_bgu_factor_one_and_explicit_grid(astronaut):
    img = astronaut[:48, :64]
    out = bgu(img, "l0", 0.02, factor=1, grid=(2, 3, 4))
    assert out.shape == (48, 64, 3) and np.isfinite(out).all()


def test_bgu_odd_size_and_gray():
    rng = np.random.default_rng(5)
    img = (smooth_image(131, 97, seed=6) * 255).astype(np.uint8)
    out = bgu(img, "l0", 0.02)
    assert out.shape == (131, 97, 3) and np.isfinite(out).all()
    gray = rng.integers(0, 256, (70, 66), dtype=np.uint8)
    g = bgu(gray, "l0", 0.02)
    assert g.shape == (70, 66, 3) and g.dtype == np.float64
    np.testing.assert_allclose(g[..., 0], g[..., 1], atol=1e-9)  # gray stays gray


# --------------------------------------------------------------------------- bad inputs
def test_bgu_too_small():
    img = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"too small.*factor 4.*40x40.*16x16"):
        bgu(img, "l0", 0.02)
    bgu(np.zeros((62, 62, 3), np.uint8), "l0", 0.02)  # the stated minimum works


def test_bgu_bad_inputs():
    img = np.full((64, 64, 3), 0.5)
    bad = img.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bgu(bad, "l0", 0.02)
    with pytest.raises(ValueError, match="empty"):
        bgu(np.zeros((0, 64, 3)), "l0", 0.02)
    with pytest.raises(ValueError, match="range"):
        bgu(img, "l0", 5.0)
    with pytest.raises(ValueError, match="unknown operator"):
        bgu(img, "nope", 0.02)
    for f in (2.5, 0, -4):
        with pytest.raises(ValueError, match="factor"):
            bgu(img, "l0", 0.02, factor=f)
    with pytest.raises(TypeError, match="factor"):
        bgu(img, "l0", 0.02, factor="4")
    with pytest.raises(ValueError, match="grid"):
        bgu(img, "l0", 0.02, grid=(2, 0, 8))


def test_fit_and_slice_bad_inputs():
    lo = np.full((20, 20, 3), 0.5)
    with pytest.raises(ValueError, match="shape"):
        fit(lo, lo[:10])
    out = lo.copy()
    out[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit(lo, out)
    with pytest.raises(ValueError, match=r"\(gh, gw, gd, 3, 4\)"):
        slice_apply(np.zeros((2, 2, 2, 3, 3)), lo)
