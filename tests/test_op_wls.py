"""WLS smoothing (Farbman et al. 2008): the fast path against a dense, literal version."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from operators import MATLAB_EPS
from operators import _sparse_solve as ss
from operators.wls import _wls, wls_filter, wls_solves

BACKENDS = ["scipy"] + (["pardiso"] if ss.pardiso_available() else [])


def dense_wls(ch: np.ndarray, lam: float, alpha: float = 1.2, small: float = 1e-4) -> np.ndarray:
    """wlsFilter.m written out literally with dense matrices (MATLAB's spdiags/A(:) semantics)."""
    r, c = ch.shape
    k = r * c
    L = np.log(ch + MATLAB_EPS)
    dy = -lam / (np.abs(np.diff(L, axis=0)) ** alpha + small)
    dy = np.vstack([dy, np.zeros((1, c))]).ravel(order="F")  # padarray(..., 'post'), then (:)
    dx = -lam / (np.abs(np.diff(L, axis=1)) ** alpha + small)
    dx = np.hstack([dx, np.zeros((r, 1))]).ravel(order="F")
    A = np.zeros((k, k))
    for j in range(k - r):  # spdiags(B, -r): A(j+r, j) = dx(j)
        A[j + r, j] = dx[j]
    for j in range(k - 1):  # spdiags(B, -1): A(j+1, j) = dy(j)
        A[j + 1, j] = dy[j]
    e, s = dx, dy
    w = np.concatenate([np.zeros(r), dx[:-r]])
    n = np.concatenate([[0.0], dy[:-1]])
    A = A + A.T + np.diag(1 - (e + w + s + n))
    return np.linalg.solve(A, ch.ravel(order="F")).reshape((r, c), order="F")


def dense_wls_image(img: np.ndarray, lam: float) -> np.ndarray:
    f = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img
    if f.ndim == 2:
        return dense_wls(f, lam)
    return np.stack([dense_wls(f[:, :, i], lam) for i in range(f.shape[2])], axis=2)


def natural_ish(rng, shape, black=True) -> np.ndarray:
    """Smooth blobs + noise + a step, uint8, with some pure-black pixels (log(eps) guides)."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 3.0 + rng.uniform(0, 6)) * np.cos(yy / 4.0)
    base = base + 0.25 * (xx > w // 2)
    chans = shape[2] if len(shape) == 3 else 1
    out = np.stack([base + 0.05 * rng.standard_normal((h, w)) for _ in range(chans)], axis=2)
    img = np.clip(np.round(out * 220), 0, 255).astype(np.uint8)
    if black:
        img[rng.random(img.shape) < 0.05] = 0
        img[: max(1, h // 4), : max(1, w // 4)] = 0
    return img if len(shape) == 3 else img[:, :, 0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("shape", [(2, 2, 3), (17, 2, 3), (2, 13), (9, 11, 3), (23, 19, 1)])
def test_matches_dense_literal_version(rng, backend, lam, shape):
    img = natural_ish(rng, shape)
    f = img.astype(np.float64) / 255.0
    f3 = f[:, :, None] if f.ndim == 2 else f
    out = _wls(f3, lam, 1.2, 1e-4, backend)
    ref = dense_wls_image(img, lam)
    ref3 = ref[:, :, None] if ref.ndim == 2 else ref
    np.testing.assert_allclose(out, ref3, rtol=0, atol=1e-10)


def test_public_function_layout_and_values(rng):
    img = natural_ish(rng, (12, 15, 3))
    out = wls_filter(img, 2.0)
    assert out.shape == img.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, dense_wls_image(img, 2.0), atol=1e-10)
    gray = img[:, :, 1]
    g = wls_filter(gray, 2.0)
    assert g.shape == gray.shape
    np.testing.assert_allclose(g, out[:, :, 1], atol=1e-12)  # channels are independent
    np.testing.assert_allclose(wls_filter(gray[:, :, None], 2.0)[:, :, 0], g, atol=1e-12)


def test_non_default_alpha_and_small_num(rng):
    img = natural_ish(rng, (10, 8))
    f = img / 255.0
    out = wls_filter(img, 0.7, alpha=2.0, small_num=1e-3)
    np.testing.assert_allclose(out, dense_wls(f, 0.7, 2.0, 1e-3), atol=1e-10)


def test_constant_image_unchanged_and_mean_preserved(rng):
    for v in (0.0, 0.3, 1.0):
        c = np.full((7, 9, 3), v)
        np.testing.assert_allclose(wls_filter(c, 10.0), c, atol=1e-12)
    img = natural_ish(rng, (20, 17, 3))
    out = wls_filter(img, 5.0)
    # the Laplacian's columns sum to zero, so 1'u = 1'g: the channel means are preserved
    np.testing.assert_allclose(out.mean(axis=(0, 1)), (img / 255.0).mean(axis=(0, 1)), atol=1e-12)


def test_maximum_principle_and_smoothing(rng):
    """A is an M-matrix with unit row sums of its inverse: outputs are convex mixes of inputs."""
    img = natural_ish(rng, (21, 18, 3))
    f = img / 255.0
    prev = None
    for lam in (0.1, 1.0, 10.0):
        out = wls_filter(img, lam)
        for ch in range(3):
            assert out[:, :, ch].min() >= f[:, :, ch].min() - 1e-12
            assert out[:, :, ch].max() <= f[:, :, ch].max() + 1e-12
        tv = np.abs(np.diff(out, axis=0)).sum() + np.abs(np.diff(out, axis=1)).sum()
        assert prev is None or tv < prev  # more lambda, smoother result
        prev = tv


def test_transpose_equivariance(rng):
    img = natural_ish(rng, (13, 21, 3))
    a = wls_filter(img, 3.0)
    b = wls_filter(np.ascontiguousarray(img.transpose(1, 0, 2)), 3.0)
    np.testing.assert_allclose(b.transpose(1, 0, 2), a, atol=1e-11)


def test_edges_preserved_better_than_flat_regions():
    img = np.full((16, 16), 0.2)
    img[:, 8:] = 0.8
    img = img + 0.02 * np.cos(np.arange(16))[None, :] * np.cos(np.arange(16))[:, None]
    out = wls_filter(img, 1.0)
    assert out[:, 9:].mean() - out[:, :7].mean() > 0.5  # the step survives
    assert np.std(out[:, 1:6]) < 0.5 * np.std(img[:, 1:6])  # texture inside is smoothed


def test_grid_pattern_matches_matlab_layout():
    h, w = 4, 3
    indptr, indices = ss.grid_pattern(h, w)
    n = h * w
    dy = np.ones(n)
    dy[h - 1::h] = 0  # no coupling across a column end
    ref = sp.diags([np.ones(n), dy[:-1], np.ones(n - h)], [0, 1, h]).tocsr()
    ref.eliminate_zeros()
    ref.sort_indices()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_backends_agree_and_auto_uses_pardiso(rng):
    img = natural_ish(rng, (40, 33, 3)) / 255.0
    for lam in (0.1, 10.0):
        a = _wls(img, lam, 1.2, 1e-4, "pardiso")
        b = _wls(img, lam, 1.2, 1e-4, "scipy")
        np.testing.assert_allclose(a, b, atol=1e-11)
        assert _wls(img, lam, 1.2, 1e-4).tobytes() == a.tobytes()


def test_falls_back_to_scipy_without_mkl(monkeypatch, rng):
    img = natural_ish(rng, (9, 12, 3))
    monkeypatch.setattr(ss, "_MKL", False)
    assert not ss.pardiso_available()
    out = wls_filter(img, 1.0)
    np.testing.assert_allclose(out, dense_wls_image(img, 1.0), atol=1e-10)
    with pytest.raises(RuntimeError, match="unavailable"):
        _wls(img / 255.0, 1.0, 1.2, 1e-4, "pardiso")
    with pytest.raises(ValueError, match="backend"):
        ss.solve_grid_spd(2, 2, np.ones(8), np.ones(4), backend="cholmod")


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_mkl_is_found_without_pypardisos_search(tmp_path):
    """A new process finds mkl_rt by a direct glob and hands it to pypardiso (whose own search
    walks the whole prefix); a path that does not load falls back to pypardiso's search."""
    import subprocess
    import sys

    code = ("import os, operators._sparse_solve as s; ok = bool(s._load_mkl()); "
            "print(ok, os.environ.get('PYPARDISO_MKL_RT'))")
    env = {k: v for k, v in os.environ.items() if k != "PYPARDISO_MKL_RT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", ss._mkl_rt_path()], out
    assert "mkl_rt" in os.path.basename(out[1])
    # an mkl_rt that is not a library: refused by ctypes, pypardiso's own search takes over
    fake = tmp_path / "lib" / "libmkl_rt.so.9"
    fake.parent.mkdir()
    fake.write_bytes(b"not a library")
    code = ("import os, sys; import operators._sparse_solve as s; "
            "s._mkl_rt_path = lambda: sys.argv[1]; "
            "print(bool(s._load_mkl()), 'PYPARDISO_MKL_RT' in os.environ)")
    out = subprocess.run([sys.executable, "-c", code, str(fake)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"], out


def test_results_independent_of_cache_history(rng):
    a_img = natural_ish(rng, (30, 26, 3))
    b_img = natural_ish(rng, (30, 26, 3), black=False)
    ss.clear_cache()
    fresh = wls_filter(a_img, 1.0)
    wls_filter(b_img, 7.0)  # same shape: reuses the cached analysis
    wls_filter(natural_ish(rng, (11, 5, 3)), 1.0)  # another shape in between
    assert wls_filter(a_img, 1.0).tobytes() == fresh.tobytes()
    ss.clear_cache()
    assert wls_filter(a_img, 1.0).tobytes() == fresh.tobytes()


def test_cache_eviction_keeps_results(monkeypatch, rng):
    monkeypatch.setattr(ss, "CACHE_ENTRIES", 2)
    imgs = [natural_ish(rng, (8 + i, 9, 3)) for i in range(4)]
    first = [wls_filter(im, 1.0) for im in imgs]
    assert len(ss._HANDLES) <= 2
    again = [wls_filter(im, 1.0) for im in imgs]
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first, again))


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_float32_factor_is_refined_and_falls_back_to_float64(monkeypatch, rng):
    """At the paper's lambdas the factor is float32 (issue 28) and the refined solution agrees
    with SciPy's float64 solve; a system float32 cannot hold (refinement not converging) is
    solved with a float64 handle, as accurately as before (handles by grid shape and precision;
    the channels may be solved at once, each worker with a handle of its own)."""
    def kinds():
        return {k[:3] for k in ss._HANDLES}

    img = natural_ish(rng, (40, 33, 3)) / 255.0
    ss.clear_cache()
    for lam in (0.1, 10.0):
        np.testing.assert_allclose(_wls(img, lam, 1.2, 1e-4, "pardiso"),
                                   _wls(img, lam, 1.2, 1e-4, "scipy"), atol=1e-11)
    assert kinds() == {(40, 33, True)}
    monkeypatch.setattr(ss, "SINGLE_MAX_DIAGONAL", np.inf)  # force float32 first, even here
    ss.clear_cache()
    a = _wls(img, 1e3, 1.2, 1e-4, "pardiso")
    assert kinds() == {(40, 33, True), (40, 33, False)}  # tried, then fell back
    np.testing.assert_allclose(a, _wls(img, 1e3, 1.2, 1e-4, "scipy"), atol=1e-9)
    monkeypatch.undo()
    ss.clear_cache()
    _wls(img, 1e3, 1.2, 1e-4, "pardiso")
    assert kinds() == {(40, 33, False)}  # large diagonal: float64 directly


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_refinement_stops_once_the_predicted_error_meets_the_tolerance(monkeypatch, rng):
    """Issue 28: the float32 factor's corrections shrink geometrically, so the error left after
    a correction is about its size times the last ratio; the refinement stops at the first
    correction where that is <= REFINE_TOL of the solution (one triangular solve fewer than
    waiting for a correction itself that small), never on the first, and stays as accurate."""
    seen = []
    add = ss._add_correction

    def recording(x, dx):
        step, size = add(x, dx)
        seen.append((step, size))
        return step, size

    monkeypatch.setattr(ss, "_add_correction", recording)
    img = natural_ish(rng, (40, 33, 1)) / 255.0
    ss.clear_cache()
    np.testing.assert_allclose(_wls(img, 1.0, 1.2, 1e-4, "pardiso"),
                               _wls(img, 1.0, 1.2, 1e-4, "scipy"), rtol=0, atol=1e-11)
    tol = ss._PardisoGrid.REFINE_TOL
    met = [k for k in range(1, len(seen))
           if seen[k][0] ** 2 <= tol * seen[k][1] * seen[k - 1][0]]
    assert len(seen) >= 2 and met == [len(seen) - 1], seen


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
@pytest.mark.parametrize("ordering", ["min-degree", "metis"])
def test_pardiso_spd_handle_solves_several_right_hand_sides(ordering, rng):
    """The one PARDISO wrapper (WLS and BGU's fit): an SPD matrix given by its upper CSR,
    analysed once on another matrix of the pattern, solves k right-hand sides in one call and
    agrees with SciPy; an evicted (released) handle answers None, and the cache fetches anew."""
    h, w = 6, 7
    indptr, indices = ss.grid_pattern(h, w)
    data = -rng.random(len(indices))
    data[indptr[:-1]] = 4.5  # diagonally dominant: SPD
    n = h * w
    upper = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    full = (upper + sp.triu(upper, k=1).T).toarray()
    b = rng.random((3, n))
    analysis = np.where(np.isin(np.arange(len(indices)), indptr[:-1]), 5.0, -1.0)
    hd = ss.PardisoSPD(indptr, indices, analysis, ordering=ordering)
    np.testing.assert_allclose(hd.solve(data, b), np.linalg.solve(full, b.T).T, atol=1e-12)
    np.testing.assert_allclose(hd.solve(data, b[1]), np.linalg.solve(full, b[1]), atol=1e-12)
    cache = ss.HandleCache(lambda hs: len(hs) > 1)
    def make():
        return ss.PardisoSPD(indptr, indices, analysis, ordering=ordering)
    first = cache.get("a", make)
    cache.get("b", make)  # evicts and releases "a"
    assert first.solve(data, b[0]) is None and list(cache.handles) == ["b"]
    np.testing.assert_allclose(cache.solve("a", make, data, b[0]), np.linalg.solve(full, b[0]),
                               atol=1e-12)
    cache.clear()
    hd.release()
    with pytest.raises(ValueError, match="ordering must be one of"):
        ss.PardisoSPD(indptr, indices, analysis, ordering="amd")


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_systems_solved_at_once_match_one_after_the_other(monkeypatch, rng):
    """Issue 28: the channels' systems are solved at the same time (a worker and a handle per
    system, one MKL thread each on two), with the results of solving them in turn."""
    import operators.wls as wls_mod

    img = natural_ish(rng, (37, 29, 3)) / 255.0
    ss.clear_cache()
    monkeypatch.setattr(wls_mod, "_workers", lambda n, pixels: 1)
    one_by_one = _wls(img, 2.0, 1.2, 1e-4)
    assert all(len(k) == 3 for k in ss._HANDLES)  # the shared handle only
    monkeypatch.setattr(wls_mod, "_workers", lambda n, pixels: n)
    at_once = _wls(img, 2.0, 1.2, 1e-4)
    np.testing.assert_allclose(at_once, one_by_one, rtol=0, atol=1e-13)
    slots = sorted(k[3] for k in ss._HANDLES if len(k) == 4)
    assert slots == [1, 2, 3]
    assert all(ss._HANDLES[(37, 29, True, i)].nthreads == max(1, ss.pardiso_threads() // 3)
               for i in slots)


def test_solutions_come_back_as_views_without_a_copy(rng):
    """Issue 28: wls_solves gives each solution's column-major pixel order as an HxW
    (Fortran-ordered) view, not a row-major copy (wls stacks its channels, which copies anyway;
    wls_enhance's tone maps read them in place), with the filter's values."""
    img = natural_ish(rng, (13, 17, 1)) / 255.0
    xs = wls_solves(img[:, :, 0], (0.5, 2.0), 1.2, 1e-4)
    for x, lam in zip(xs, (0.5, 2.0)):
        assert x.shape == (13, 17) and x.flags.f_contiguous and not x.flags.c_contiguous
        np.testing.assert_allclose(x, _wls(img, lam, 1.2, 1e-4)[:, :, 0], rtol=0, atol=1e-13)


def test_wls_results_are_row_major(rng):
    """The solutions come back column-major (above), but ``wls_filter`` returns C-contiguous arrays,
    gray and RGB, as before that change: one copy into a row-major result."""
    from operators.wls import wls_filter

    gray = natural_ish(rng, (13, 17, 1))[:, :, 0]
    rgb = natural_ish(rng, (13, 17, 3))
    for img in (gray, rgb):
        out = wls_filter(img, lam=1.0)
        assert out.shape == img.shape and out.flags.c_contiguous, img.shape


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_workers_keep_the_caller_s_numba_threads(monkeypatch):
    """Numba's thread count is per thread: the solving workers take the caller's (a command's
    limit), not the whole pool."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: nothing to limit")
    seen = []

    def fake(h, w, data, b, slot=0, nthreads=None):
        seen.append(numba.get_num_threads())
        return b

    monkeypatch.setattr(ss, "_solve_pardiso", fake)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        ss.solve_grid_spd_many(2, 2, [(np.ones(8), np.ones(4))] * 3, workers=3)
    finally:
        numba.set_num_threads(before)
    assert seen == [1, 1, 1]


def test_workers_follow_threads_and_memory(monkeypatch):
    """Several systems at once only with two MKL threads or more, at most threads + 1 of them,
    and only as many as the memory available holds (a datagen worker on one thread, or a large
    image, solves one after the other)."""
    import operators.wls as wls_mod

    monkeypatch.setattr(wls_mod, "available_bytes", lambda: None)
    monkeypatch.setattr(wls_mod, "pardiso_threads", lambda: 1)
    assert wls_mod._workers(3, 10**6) == 1
    monkeypatch.setattr(wls_mod, "pardiso_threads", lambda: 2)
    assert [wls_mod._workers(n, 10**6) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    per = wls_mod.BYTES_PER_PIXEL_WORKER
    monkeypatch.setattr(wls_mod, "available_bytes",
                        lambda: (wls_mod.BYTES_PER_PIXEL + per) * 10**6)
    assert wls_mod._workers(3, 10**6) == 2
    monkeypatch.setattr(wls_mod, "available_bytes", lambda: wls_mod.BYTES_PER_PIXEL * 10**6)
    assert wls_mod._workers(3, 10**6) == 1


def test_thread_safe_concurrent_calls(rng):
    imgs = [natural_ish(rng, (25, 31, 3)) for _ in range(4)]
    expected = [wls_filter(im, 2.0) for im in imgs]
    got = [None] * 4

    def run(i):
        got[i] = wls_filter(imgs[i], 2.0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(g.tobytes() == e.tobytes() for g, e in zip(got, expected))


@pytest.mark.parametrize("kw,match", [
    ({"lam": 0.0}, "lam must be > 0"), ({"lam": -1.0}, "lam must be > 0"),
    ({"alpha": 0.0}, "alpha must be > 0"), ({"small_num": 0.0}, "small_num must be > 0"),
])
def test_parameter_validation(kw, match):
    args = {"lam": 1.0, **kw}
    lam = args.pop("lam")
    with pytest.raises(ValueError, match=match):
        wls_filter(np.zeros((4, 4)), lam, **args)
    with pytest.raises(TypeError):
        wls_filter(np.zeros((4, 4)), "1")


def test_pure_and_deterministic(rng):
    img = natural_ish(rng, (19, 23, 3)) / 255.0
    keep = img.copy()
    a = wls_filter(img, 4.0)
    b = wls_filter(img, 4.0)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(img, keep)


@pytest.mark.skipif("pardiso" not in BACKENDS, reason="MKL PARDISO unavailable")
def test_mkl_thread_count_changes_are_harmless(rng):
    """PARDISO gives wrong answers if the thread count differs between analysis and
    factorisation; each cached handle pins its own count."""
    mkl = ss._load_mkl()
    img = natural_ish(rng, (64, 48, 3))
    ref = dense_wls_image(img[:12, :10], 3.0)
    ss.clear_cache()
    a = wls_filter(img, 3.0)  # analysed with the default thread count
    prev = mkl.set_threads_local(1)
    try:
        assert wls_filter(img, 3.0).tobytes() == a.tobytes()
        ss.clear_cache()
        c = wls_filter(img, 3.0)  # analysed with one thread
        np.testing.assert_allclose(wls_filter(img[:12, :10], 3.0), ref, atol=1e-10)
    finally:
        mkl.set_threads_local(prev)
    assert wls_filter(img, 3.0).tobytes() == c.tobytes()
    np.testing.assert_allclose(c, a, atol=1e-11)
    ss.clear_cache()


# ------------------------------------------------------------- limits (issue 13, items 9, 10)
def test_numerically_singular_lambda_is_refused_up_front():
    img = np.random.default_rng(3).random((6, 7, 3))
    out = wls_filter(img, 1.25e7)  # the bound itself still factorises
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.mean(axis=(0, 1)), img.mean(axis=(0, 1)), atol=1e-6)
    for lam, small in ((1.26e7, 1e-4), (1e300, 1e-4), (1.0, 1e-300)):
        with pytest.raises(ValueError, match=r"numerically singular.*lam must be <="):
            wls_filter(img, lam, small_num=small)


def test_image_too_large_for_memory_is_refused(monkeypatch):
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 4 << 20)  # pretend 4 MiB is free
    with pytest.raises(MemoryError, match=r"wls: a 2000x1500 image needs about 2\.79 GiB "
                                          r"\(about 0\.93 GiB per megapixel\).*0\.00391 GiB"):
        wls_filter(np.zeros((2000, 1500), np.uint8), 1.0)
