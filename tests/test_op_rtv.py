"""RTV (relative total variation): Numba kernels against straightforward NumPy/SciPy versions of
the same maths, Octave's ``ichol``/``pcg`` semantics, and properties of the operator."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from scipy.ndimage import correlate1d

from operators import _rtv_kernels as K
from operators.rtv import (_solve_direct, _solve_pcg, gaussian_taps, rtv_smooth,
                           system_matrix)

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------ slow reference versions
def weights_numpy(x, sigma, sharpness):
    """computeTextureWeights of tsmooth.m on an HxWxC array, written plainly."""
    C = x.shape[2]
    fx = np.zeros_like(x)
    fx[:, :-1] = np.diff(x, axis=1)
    fy = np.zeros_like(x)
    fy[:-1] = np.diff(x, axis=0)
    wto = 1.0 / np.maximum(np.sqrt(fx**2 + fy**2).sum(2) / C, sharpness)
    g = gaussian_taps(sigma)
    fb = correlate1d(correlate1d(x, g, axis=1, mode="constant"), g, axis=0, mode="constant")
    gx = np.zeros_like(x)
    gx[:, :-1] = np.diff(fb, axis=1)
    gy = np.zeros_like(x)
    gy[:-1] = np.diff(fb, axis=0)
    wx = 1.0 / np.maximum(np.abs(gx).sum(2) / C, 0.001) * wto
    wy = 1.0 / np.maximum(np.abs(gy).sum(2) / C, 0.001) * wto
    wx[:, -1] = 0
    wy[-1, :] = 0
    return wx, wy


def matrix_numpy(wx, wy, lam):
    """solveLinearEquation's matrix: spdiags([dx dy], [-r -1]) + transpose + diagonal."""
    r, c = wx.shape
    n = r * c
    dx = -lam * wx.ravel(order="F")
    dy = -lam * wy.ravel(order="F")
    west = np.concatenate([np.zeros(r), dx[:-r]])
    north = np.concatenate([[0.0], dy[:-1]])
    D = 1 - (dx + west + dy + north)
    low = sp.spdiags(np.vstack([dx, dy]), [-r, -1], n, n)  # MATLAB's column indexing
    A = (low + low.T + sp.diags(D)).tocsc()
    A.eliminate_zeros()
    return A


def michol_dense(A):
    """Zero-fill incomplete Cholesky with modified (row-sum) compensation, on a dense copy: the
    definition, for any pattern. Fill-in outside the pattern of A is dropped and subtracted from
    both diagonals it touches."""
    A = A.toarray()
    n = len(A)
    pattern = A != 0
    L = np.tril(A)
    for k in range(n):
        for j in range(k):  # left-looking: columns j < k with L[k, j] in the pattern
            if not pattern[k, j]:
                continue
            for i in range(k, n):
                if not pattern[i, j]:
                    continue
                t = L[i, j] * L[k, j]
                if pattern[i, k]:
                    L[i, k] -= t
                else:
                    L[i, i] -= t
                    L[k, k] -= t
        L[k, k] = np.sqrt(L[k, k])
        L[k + 1:, k] /= L[k, k]
    return L


def pcg_octave(A, b, L, tol=0.1, maxit=100):
    """Octave 7 pcg(A, b, tol, maxit, L, L') from x0 = 0, written plainly."""
    Ls = sp.csr_matrix(L)
    Us = sp.csr_matrix(L.T)
    b_norm = np.linalg.norm(b)
    if b_norm == 0:
        return b.copy()
    x = np.zeros_like(b)
    x_min = x.copy()
    r = b.copy()
    res = [np.linalg.norm(r)]
    i_min = 0
    p = np.zeros_like(b)
    old_tau = 1.0
    while res[-1] > tol * b_norm and len(res) - 1 < maxit:
        z = spl.spsolve_triangular(Us, spl.spsolve_triangular(Ls, r, lower=True), lower=False)
        tau = z @ r
        p = z + (tau / old_tau) * p
        old_tau = tau
        w = A @ p
        den = p @ w
        if tau <= 0 or den <= 0:
            break
        x_new = x + (tau / den) * p
        r = r - (tau / den) * w
        res.append(np.linalg.norm(r))
        if res[-1] <= res[i_min]:
            x_min, i_min = x_new.copy(), len(res) - 1
        if np.linalg.norm(x_new - x) <= EPS * np.linalg.norm(x_new):
            break
        x = x_new
    return x_min


def tsmooth_numpy(img, lam, sigma=3.0, sharpness=0.02, max_iter=4, solver="pcg"):
    """The whole reference algorithm from the slow pieces above (tiny images only)."""
    I = img.astype(np.float64) / 255.0
    x = I
    for _ in range(max_iter):
        A = matrix_numpy(*weights_numpy(x, sigma, sharpness), lam / 2)
        L = michol_dense(A) if solver == "pcg" else None
        out = np.empty_like(I)
        for c in range(I.shape[2]):
            b = I[:, :, c].ravel(order="F")
            xc = pcg_octave(A, b, L) if solver == "pcg" else spl.spsolve(A, b)
            out[:, :, c] = xc.reshape(I.shape[:2], order="F")
        x = out
        sigma = max(sigma / 2, 0.5)
    return x


# ------------------------------------------------------------------ helpers
def fast_system(x, sigma, sharpness, lam):
    """The kernel's (D, dx, dy) for an HxWxC image."""
    X = np.ascontiguousarray(x.transpose(2, 1, 0))
    n = x.shape[0] * x.shape[1]
    D, dx, dy = np.empty(n), np.empty(n), np.empty(n)
    K.texture_system(X, gaussian_taps(sigma), sharpness, 0.001, lam, D, dx, dy,
                     np.empty_like(X), np.empty_like(X))
    return D, dx, dy


def random_system(rng, h, w, c=3, lam=0.02, sigma=1.5):
    x = rng.random((h, w, c))
    return fast_system(x, sigma, 0.02, lam)


SHAPES = [(2, 2), (2, 7), (3, 2), (3, 5), (7, 3), (6, 9), (17, 2)]


# ------------------------------------------------------------------ the pieces
def test_gaussian_taps_match_fspecial():
    assert [gaussian_taps(s).size for s in (3, 1.5, 0.75, 0.5)] == [15, 9, 5, 3]
    assert gaussian_taps(0.7).size == 5  # round(3.5) = 4 (half away from zero) -> bitor 5
    for s in (3.0, 1.5, 0.5, 2.3):
        g = gaussian_taps(s)
        x = np.arange(g.size) - g.size // 2
        want = np.exp(-x**2 / (2 * s * s))
        np.testing.assert_allclose(g, want / want.sum(), rtol=1e-15)
        np.testing.assert_array_equal(g, g[::-1])


@pytest.mark.parametrize("shape", SHAPES + [(20, 24)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [3.0, 0.5])
def test_texture_system_matches_numpy(shape, channels, sigma, rng):
    x = rng.random(shape + (channels,))
    lam = 0.01
    D, dx, dy = fast_system(x, sigma, 0.02, lam)
    A = matrix_numpy(*weights_numpy(x, sigma, 0.02), lam)
    got = system_matrix(D, dx, dy, shape[0])
    np.testing.assert_allclose(got.toarray(), A.toarray(), rtol=1e-11, atol=1e-14)
    assert got.nnz == A.nnz  # same pattern: the zeroed last row/column are not stored


@pytest.mark.parametrize("shape", SHAPES + [(5, 6), (4, 4)])
def test_mic0_matches_dense_definition(shape, rng):
    h, w = shape
    D, dx, dy = random_system(rng, h, w, lam=0.05)
    n = h * w
    lb, lc, s = np.empty(n), np.empty(n), np.empty(n)
    assert K.mic0(D, dx, dy, h, lb, lc, s)
    L = michol_dense(system_matrix(D, dx, dy, h))
    np.testing.assert_allclose(s, np.diag(L), rtol=1e-13)
    np.testing.assert_allclose(lb[1:], np.diag(L, -1), rtol=1e-13, atol=1e-15)
    if n > h:
        np.testing.assert_allclose(lc[h:], np.diag(L, -h), rtol=1e-13, atol=1e-15)
    # no other entries: the factor keeps the pattern of tril(A)
    Lf = np.diag(s) + np.diag(lb[1:], -1) + (np.diag(lc[h:], -h) if n > h else 0)
    np.testing.assert_allclose(Lf, L, rtol=1e-13, atol=1e-15)
    # the modified factorisation preserves row sums: (L Lᵀ) 1 = A 1 = 1
    np.testing.assert_allclose(Lf @ (Lf.T @ np.ones(n)), np.ones(n), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 6), (9, 7), (16, 12)])
@pytest.mark.parametrize("tol,maxit", [(0.1, 100), (1e-9, 4), (1e-14, 60)])
def test_pcg_matches_octave_semantics(shape, tol, maxit, rng):
    h, w = shape
    D, dx, dy = random_system(rng, h, w, lam=0.2)
    A = system_matrix(D, dx, dy, h)
    L = michol_dense(A)
    B = rng.random((3, h * w))
    B[1] = 0.0  # an all-zero channel returns zeros without iterating
    got = _solve_pcg(D, dx, dy, h, B, tol=tol, maxit=maxit)
    for c in range(3):
        np.testing.assert_allclose(got[c], pcg_octave(A, B[c], L, tol, maxit),
                                   rtol=1e-10, atol=1e-12)
    assert not got[1].any()


def test_pcg_returns_minimum_residual_iterate():
    """Octave returns the iterate of smallest residual: here the first step raises ‖r‖ above
    ‖b‖, so after one iteration the answer is still x0 = 0."""
    rng = np.random.default_rng(4)
    h, w = 8, 9
    D, dx, dy = random_system(rng, h, w, lam=2.0)
    b = rng.random(h * w)
    A = system_matrix(D, dx, dy, h)
    L = michol_dense(A)
    B = np.stack([b, b[::-1].copy()])
    for maxit in (1, 2, 5):
        got = _solve_pcg(D, dx, dy, h, B, tol=1e-9, maxit=maxit)
        for c in range(2):
            np.testing.assert_allclose(got[c], pcg_octave(A, B[c], L, 1e-9, maxit),
                                       rtol=1e-10, atol=1e-12)
        if maxit == 1:
            assert not got[0].any()


def test_pcg_channels_are_independent_of_lockstep(rng):
    """Three channels in lock-step (3-, 2- and 1-channel sweeps as they finish) give the same
    bytes as each channel alone."""
    h, w = 12, 10
    D, dx, dy = random_system(rng, h, w, lam=0.5)
    B = rng.random((3, h * w))
    B[2] *= np.linspace(0, 1, h * w) ** 3  # converge at different iterations
    together = _solve_pcg(D, dx, dy, h, B)
    for c in range(3):
        alone = _solve_pcg(D, dx, dy, h, B[c:c + 1].copy())
        np.testing.assert_array_equal(together[c], alone[0])
    pair = _solve_pcg(D, dx, dy, h, B[:2].copy())
    np.testing.assert_array_equal(pair, together[:2])


def test_pcg_stops_at_tolerance_and_direct_is_exact(rng):
    h, w = 15, 11
    D, dx, dy = random_system(rng, h, w, lam=0.3)
    A = system_matrix(D, dx, dy, h)
    B = rng.random((3, h * w))
    X = _solve_pcg(D, dx, dy, h, B)
    for c in range(3):
        rel = np.linalg.norm(B[c] - A @ X[c]) / np.linalg.norm(B[c])
        assert rel <= 0.1 * (1 + 1e-9)
    Xd = _solve_direct(D, dx, dy, h, B)
    for c in range(3):
        assert np.linalg.norm(B[c] - A @ Xd[c]) <= 1e-12 * np.linalg.norm(B[c])


# ------------------------------------------------------------------ the operator
@pytest.mark.parametrize("solver", ["pcg", "direct"])
@pytest.mark.parametrize("shape,lam", [((9, 11, 3), 0.01), ((6, 5, 1), 0.05), ((2, 3, 3), 0.03),
                                       ((13, 2, 3), 0.002)])
def test_operator_matches_slow_version(shape, lam, solver, rng):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    got = rtv_smooth(img, lam, solver=solver)
    want = tsmooth_numpy(img, lam, solver=solver)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("value", [0, 77, 255])
def test_constant_image_stays_constant(value):
    img = np.full((9, 14, 3), value, np.uint8)
    for solver in ("pcg", "direct"):
        out = rtv_smooth(img, 0.05, solver=solver)
        np.testing.assert_allclose(out, value / 255.0, rtol=0, atol=1e-12)


def test_smooths_texture_keeps_edge():
    yy, xx = np.mgrid[0:40, 0:40]
    img = np.where(xx < 20, 60.0, 190.0) + 25.0 * ((xx + yy) % 4 < 2)  # edge + fine texture
    img = np.repeat(img[:, :, None], 3, axis=2).astype(np.uint8)
    out = rtv_smooth(img, 0.02)
    left, right = out[5:-5, 3:15], out[5:-5, 25:37]
    assert left.std() < 0.25 * (img[5:-5, 3:15] / 255.0).std()
    assert right.std() < 0.25 * (img[5:-5, 25:37] / 255.0).std()
    assert right.mean() - left.mean() > 0.35  # the structure edge survives


def test_direct_solver_is_transpose_equivariant(rng):
    """The exact solve does not depend on the pixel order (the MIC(0)-PCG one does)."""
    img = rng.integers(0, 256, (11, 8, 3), dtype=np.uint8)
    a = rtv_smooth(img, 0.02, solver="direct")
    b = rtv_smooth(np.ascontiguousarray(img.transpose(1, 0, 2)), 0.02, solver="direct")
    np.testing.assert_allclose(a, b.transpose(1, 0, 2), rtol=0, atol=1e-12)


def test_gray_equals_identical_rgb_channels(rng):
    g = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    out_g = rtv_smooth(g, 0.01)
    out_c = rtv_smooth(np.repeat(g[:, :, None], 3, axis=2), 0.01)
    assert out_g.shape == (10, 12)
    for c in range(3):
        np.testing.assert_allclose(out_c[:, :, c], out_g, rtol=0, atol=1e-12)


def test_max_iter_and_parameters(rng):
    img = rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rtv_smooth(img, 0.01, max_iter=0), img / 255.0)
    one = rtv_smooth(img, 0.01, max_iter=1)
    assert not np.array_equal(one, rtv_smooth(img, 0.01, max_iter=2))
    with pytest.raises(ValueError, match="unknown solver"):
        rtv_smooth(img, 0.01, solver="cg")
    for kw, match in ((dict(lam=0.0), "lambda"), (dict(lam=-1.0), "lambda"),
                      (dict(sigma=0.0), "sigma"), (dict(sharpness=-0.1), "sharpness"),
                      (dict(max_iter=-1), "max_iter")):
        lam = kw.pop("lam", 0.01)
        with pytest.raises(ValueError, match=match):
            rtv_smooth(img, lam, **kw)
    with pytest.raises(TypeError, match="max_iter"):
        rtv_smooth(img, 0.01, max_iter=2.5)


# ------------------------------------------------------------- limits (issue 13, items 9, 10)
def test_absurd_parameters_are_refused_up_front(rng):
    img = rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)
    assert np.isfinite(rtv_smooth(img, 5e6)).all()  # the bound itself still solves
    for kw, match in ((dict(lam=5.01e6), r"numerically singular.*lambda must be <= 5e\+06"),
                      (dict(lam=1e300), "numerically singular"),
                      (dict(lam=0.01, sharpness=1e-300), "numerically singular"),
                      (dict(lam=0.01, max_iter=1001), "at most 1000"),
                      (dict(lam=0.01, sigma=2e5), "at most 100000 pixels")):
        lam = kw.pop("lam")
        with pytest.raises(ValueError, match=match):
            rtv_smooth(img, lam, **kw)


def test_tiny_sigma_is_one_tap(rng):
    img = rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gaussian_taps(1e-300), [1.0])
    np.testing.assert_array_equal(rtv_smooth(img, 0.01, sigma=1e-300, max_iter=1),
                                  rtv_smooth(img, 0.01, sigma=0.05, max_iter=1))


def test_image_too_large_for_memory_is_refused(monkeypatch):
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(MemoryError, match=r"rtv: a 100x100 image .*400 MB per RGB megapixel"):
        rtv_smooth(np.zeros((100, 100, 3)), 0.01)
