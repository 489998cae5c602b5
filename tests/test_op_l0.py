"""L0 gradient smoothing: the fast kernels against a plain NumPy transcription, and properties."""
from __future__ import annotations

import numpy as np
import pytest

import operators
from operators import l0 as l0mod
from operators._l0_kernels import masked_divergence, spectral_update
from operators.l0 import l0_smooth, n_iterations


def slow_l0(img: np.ndarray, lam: float, kappa: float = 2.0) -> np.ndarray:
    """Line-by-line NumPy version of the reference (complex fft2, np.roll, HxWxC float64)."""
    S = img.astype(np.float64).copy()
    H, W, _ = S.shape
    u = np.arange(H)[:, None]
    v = np.arange(W)[None, :]
    den = (2 - 2 * np.cos(2 * np.pi * u / H)) + (2 - 2 * np.cos(2 * np.pi * v / W))
    N1 = np.fft.fft2(S, axes=(0, 1))
    beta = 2 * lam
    while beta < 1e5:
        h = np.roll(S, -1, axis=1) - S
        vv = np.roll(S, -1, axis=0) - S
        m = (h ** 2 + vv ** 2).sum(axis=2) < lam / beta
        h[m] = 0
        vv[m] = 0
        N2 = (np.roll(h, 1, axis=1) - h) + (np.roll(vv, 1, axis=0) - vv)
        S = np.real(np.fft.ifft2((N1 + beta * np.fft.fft2(N2, axes=(0, 1)))
                                 / (1 + beta * den[:, :, None]), axes=(0, 1)))
        beta *= kappa
    return S


def slow_divergence(S_chw: np.ndarray, thr: float) -> np.ndarray:
    S = S_chw
    h = np.roll(S, -1, axis=2) - S
    v = np.roll(S, -1, axis=1) - S
    m = (h ** 2 + v ** 2).sum(axis=0) < thr
    h[:, m] = 0
    v[:, m] = 0
    return (np.roll(h, 1, axis=2) - h) + (np.roll(v, 1, axis=1) - v)


@pytest.mark.parametrize("shape", [(2, 2, 3), (5, 7, 3), (17, 2, 3), (2, 9, 1), (13, 11, 1),
                                   (31, 37, 3), (16, 24, 3)])
@pytest.mark.parametrize("lam", [0.002, 0.02, 0.2])
def test_matches_slow_numpy(shape, lam):
    rng = np.random.default_rng(hash((shape, lam)) % 2**32)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    fast = l0_smooth(img, lam)
    slow = slow_l0(img / 255.0, lam)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-11)


@pytest.mark.parametrize("shape", [(3, 2, 2), (3, 5, 7), (1, 9, 2), (3, 33, 20), (1, 4, 4)])
@pytest.mark.parametrize("nchunks", [1, 2, 3, 64])
def test_divergence_kernel(shape, nchunks):
    rng = np.random.default_rng(len(shape) + shape[1] * 7 + nchunks)
    S = rng.random(shape)
    for thr in (0.0, 0.05, 0.3, 1.0, 10.0):
        out = np.full_like(S, np.nan)
        masked_divergence(S, thr, out, nchunks)
        np.testing.assert_allclose(out, slow_divergence(S, thr), rtol=0, atol=1e-15)


def test_mask_is_strict_and_joint():
    # one pixel differs from its right and lower neighbours by 0.5 in channel 0 only
    S = np.zeros((3, 4, 4))
    S[0, 1, 1] = 0.5
    out = np.empty_like(S)
    # energies: 0.5 at (1,1) (h = v = -0.5), 0.25 at (1,0) (h = 0.5) and (0,1) (v = 0.5)
    expect = {0.25: 3, np.nextafter(0.25, 1.0): 1, 0.5: 1, np.nextafter(0.5, 1.0): 0}
    for thr, n_kept in expect.items():
        masked_divergence(S, thr, out, 2)
        np.testing.assert_array_equal(out, slow_divergence(S, thr))
        h = np.roll(S, -1, axis=2) - S
        v = np.roll(S, -1, axis=1) - S
        assert int(((h ** 2 + v ** 2).sum(axis=0) >= thr).sum()) == n_kept
        assert out.any() == (n_kept > 0)
    # joint: the same step split across channels has the same energy and the same fate
    T = np.zeros((3, 4, 4))
    T[:, 1, 1] = np.sqrt(0.5 ** 2 / 3)
    a, b = np.empty_like(T), np.empty_like(T)
    masked_divergence(T, 0.49, a, 1)
    masked_divergence(T, 0.51, b, 1)
    assert a.any() and not b.any()


def test_spectral_update_kernel():
    rng = np.random.default_rng(3)
    F = rng.random((3, 6, 4)) + 1j * rng.random((3, 6, 4))
    N1 = rng.random((3, 6, 4)) + 1j * rng.random((3, 6, 4))
    den = rng.random((6, 4)) * 8
    want = (N1 + 2.5 * F) / (1 + 2.5 * den)
    spectral_update(F, N1, den, 2.5)
    np.testing.assert_allclose(F, want, rtol=4e-16, atol=0)


def test_iteration_counts():
    assert [n_iterations(x) for x in (0.002, 0.00431, 0.02, 0.09283, 0.2)] == [25, 24, 22, 20, 18]
    assert n_iterations(0.02, 4.0) == 11


def test_constant_image_and_channel_means():
    flat = np.full((9, 12, 3), 0.3)
    np.testing.assert_allclose(l0_smooth(flat, 0.02), flat, rtol=0, atol=1e-14)
    # the DC term has denominator 1, so every channel mean is preserved exactly (to rounding)
    img = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = l0_smooth(img, 0.2)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), (img / 255.0).mean(axis=(0, 1)), atol=1e-13)


def test_circular_boundary_shift_equivariance():
    img = np.random.default_rng(6).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    out = l0_smooth(img, 0.02)
    shifted = l0_smooth(np.roll(img, (5, -7), axis=(0, 1)), 0.02)
    np.testing.assert_allclose(shifted, np.roll(out, (5, -7), axis=(0, 1)), rtol=0, atol=1e-10)


def test_smooths_noise_keeps_edge():
    rng = np.random.default_rng(7)
    img = np.where(np.arange(32)[None, :, None] < 16, 0.2, 0.8) * np.ones((32, 32, 3))
    noisy = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)
    out = l0_smooth(noisy, 0.02)
    assert np.abs(out - img).max() < 0.02  # noise gone, edge kept (a blur would leave ~0.3)
    assert np.ptp(out[:, 3:13], axis=(0, 1)).max() < 5e-3  # nearly flat (noise ptp ~ 0.06)


def test_gray_layouts_agree():
    g = np.random.default_rng(8).integers(0, 256, (11, 14), dtype=np.uint8)
    a = l0_smooth(g, 0.01)
    b = l0_smooth(g[:, :, None], 0.01)
    assert a.shape == (11, 14) and b.shape == (11, 14, 1)
    np.testing.assert_array_equal(a, b[:, :, 0])


def test_registry_and_kappa_override():
    img = np.random.default_rng(9).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(operators.apply("l0", img, 0.02), l0_smooth(img, 0.02))
    out = operators.apply("l0", img, 0.02, kappa=1.5)
    np.testing.assert_allclose(out, slow_l0(img / 255.0, 0.02, 1.5), rtol=0, atol=1e-11)


@pytest.mark.parametrize("lam,kappa,match", [(0.0, 2.0, "lambda"), (-0.1, 2.0, "lambda"),
                                             (0.02, 1.0, "kappa"), (0.02, 0.5, "kappa"),
                                             (0.02, float("nan"), "finite")])
def test_bad_parameters(lam, kappa, match):
    with pytest.raises(ValueError, match=match):
        l0_smooth(np.zeros((4, 4, 3)), lam, kappa=kappa)


def test_public_fft_fallback_agrees(monkeypatch):
    img = np.random.default_rng(10).integers(0, 256, (15, 22, 3), dtype=np.uint8)
    fast = l0_smooth(img, 0.02)
    monkeypatch.setattr(l0mod, "_FFT_PAIR", (l0mod._fwd_public, l0mod._inv_public))
    np.testing.assert_allclose(l0_smooth(img, 0.02), fast, rtol=0, atol=1e-13)


# ------------------------------------------------------------- bounded work (issue 13, item 9)
def test_kappa_too_close_to_one_is_refused_without_looping():
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"kappa=1\.000000000001 would run about 1\.47e\+13 "
                                         r"iterations.*at most 10000.*kappa >= 1\.00147"):
        l0_smooth(np.zeros((4, 4, 3)), 0.02, kappa=1.0 + 1e-12)
    assert time.perf_counter() - t0 < 5.0  # refused up front, not after 1e13 iterations
    assert n_iterations(0.02, 1.0015) <= 10_000          # just above the bound: runs
    assert n_iterations(5e-324, 2.0) == 1090              # smallest λ: no overflow, bounded
    with pytest.raises(ValueError, match="iterations"):
        n_iterations(5e-324, 1.0001)


def test_image_too_large_for_memory_is_refused(monkeypatch):
    from operators import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)  # pretend 1 MiB is free
    with pytest.raises(MemoryError, match=r"l0: a 100x100 image needs about .* GiB "
                                          r"\(180 MB per RGB megapixel\)"):
        l0_smooth(np.zeros((100, 100, 3)), 0.02)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 30)
    assert l0_smooth(np.zeros((100, 100, 3)), 0.02).shape == (100, 100, 3)


def test_tune_malloc_is_set_once_on_glibc():
    import sys

    from operators import _memory

    l0_smooth(np.zeros((4, 4)), 0.02)
    if sys.platform.startswith("linux") and _memory._TUNED is not False:
        assert _memory.tune_malloc() is True
    assert _memory.tune_malloc() is _memory.tune_malloc()
