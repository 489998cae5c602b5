"""L0 gradient smoothing (Xu, Lu, Xu & Jia 2011), as the authors' ``L0Smoothing.m`` computes it."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from ._memory import check_memory, tune_malloc
from ._validate import as_float_image, as_positive, restore_shape

__all__ = ["l0_smooth"]

#: β stops growing once it reaches this value (``betamax`` of the reference).
BETA_MAX = 1e5
#: Refuse (λ, κ) whose β continuation would run more iterations than this (κ too close to 1):
#: 10 000 iterations are already about 4 minutes at 1 MP.
MAX_ITERATIONS = 10_000
#: Peak memory per pixel and channel (bytes): input, S, div (float64), N1, F (complex128 on the
#: rfft grid), the FFT's work buffers and the output; measured 177 MB per RGB megapixel
#: (``ru_maxrss`` slope between 1 and 2 MP).
BYTES_PER_PIXEL_CHANNEL = 60


@lru_cache(maxsize=8)
def _denominator(h: int, w: int) -> np.ndarray:
    """|F(∂x)|² + |F(∂y)|² on the rfft grid (h, w//2+1): (2 - 2cos 2πu/h) + (2 - 2cos 2πv/w)."""
    u = np.arange(h, dtype=np.float64)[:, None]
    v = np.arange(w // 2 + 1, dtype=np.float64)[None, :]
    den = (2.0 - 2.0 * np.cos(2.0 * np.pi * u / h)) + (2.0 - 2.0 * np.cos(2.0 * np.pi * v / w))
    den.setflags(write=False)
    return den


def n_iterations(lam: float, kappa: float = 2.0) -> int:
    """How many iterations the β continuation runs: β = 2λ·κ^k while β < 1e5.

    Raises ``ValueError`` when that is more than :data:`MAX_ITERATIONS` (κ too close to 1, or
    an extremely small λ), without running the loop.
    """
    beta = 2.0 * lam
    if beta < BETA_MAX:
        span = math.log(BETA_MAX) - math.log(beta)  # log(1e5 / 2λ) without overflow
        estimate = span / math.log(kappa) if kappa > 1.0 else math.inf
        if not estimate <= MAX_ITERATIONS - 1:
            lo = math.exp(span / (MAX_ITERATIONS - 1))
            raise ValueError(
                f"l0: lambda={lam:g}, kappa={kappa!r} would run about {estimate:.3g} iterations "
                f"(beta grows from 2*lambda to {BETA_MAX:g} by a factor kappa each); at most "
                f"{MAX_ITERATIONS} are allowed: use kappa >= {lo:.6g} for this lambda")
    n = 0
    while beta < BETA_MAX:
        beta *= kappa
        n += 1
    return n


def l0_smooth(image, lam: float = 0.02, *, kappa: float = 2.0) -> np.ndarray:
    """Smooth an image by minimising the number of non-zero gradients (L0 gradient smoothing).

    Flattens low-contrast detail into piecewise-constant regions while keeping strong edges sharp.
    The solver alternates between a hard threshold of the image gradients (a gradient is zeroed in
    all colour channels together when its squared magnitude, summed over channels, is below λ/β)
    and a screened-Poisson solve in the Fourier domain, with β growing from 2λ by a factor κ per
    iteration until it reaches 1e5. This reproduces the authors' MATLAB ``L0Smoothing.m`` exactly,
    including its circular image boundary.

    Parameters
    ----------
    image : ndarray
        HxW (gray), HxWx1 or HxWx3 image, uint8 (read as x/255) or float in [0, 1].
    lam : float, default 0.02
        Weight λ > 0 of the L0 gradient penalty. Larger values give flatter results. The paper's
        training range is [0.002, 0.2] (log-uniform).
    kappa : float, default 2.0
        Growth factor κ > 1 of the penalty weight β per iteration. Smaller values run more
        iterations.

    Returns
    -------
    ndarray
        float64 array of the input's shape, **not clipped** (values may leave [0, 1] slightly).

    Notes
    -----
    Each iteration costs one real forward and one real inverse 2-D FFT per channel plus two fused
    linear passes (Numba), i.e. O(HW log(HW)); there are ceil(log_κ(1e5 / 2λ)) iterations (22 at
    λ = 0.02, κ = 2; 25 at λ = 0.002; 18 at λ = 0.2), so κ close to 1 or a tiny λ is slow; more
    than 10 000 iterations (e.g. κ < 1.0015 at λ = 0.02) are refused with a ``ValueError``; with
    2λ >= 1e5 no iteration runs and the input is returned. Memory: about 60 bytes per pixel and
    channel at the peak (~0.18 GB per RGB megapixel); an image that cannot fit in the available
    memory is refused with a ``MemoryError`` before any work. The image is treated as periodic, as
    in the reference code: circular differences, no padding (padding to FFT-friendly sizes would
    change the result at the borders), and the input's spectrum is the data term at every
    iteration.

    Differences from the reference, none of which changes the result beyond float64 rounding
    (agreement with the MATLAB outputs is at the float32 storage precision of the fixtures):
    real-to-complex FFTs (pocketfft ``r2c``/``c2r``) instead of MATLAB's complex
    ``fft2``/``ifft2`` + ``real`` (the denominator is real and even, so the spectrum stays
    Hermitian); the denominator in closed form instead of through ``psf2otf``; the division by
    1 + β·den done as a multiplication by its reciprocal. Working in float32 was tried and
    rejected: it flips near-threshold mask decisions, which moved 0.2-1.5 % of the uint8 pixels
    of the reference images by one level. OpenCV's ``cv2.ximgproc.l0Smooth`` solves the same
    model in float32 with replicated/reflected borders and differs by several grey levels.

    References
    ----------
    L. Xu, C. Lu, Y. Xu, J. Jia. Image Smoothing via L0 Gradient Minimization. ACM TOG 30(6)
    (SIGGRAPH Asia 2011). doi:10.1145/2070781.2024208

    Examples
    --------
    >>> import numpy as np
    >>> from operators.l0 import l0_smooth
    >>> img = np.zeros((16, 16, 3), np.uint8)
    >>> img[:, 8:] = 200                      # a step edge plus faint noise
    >>> img[::3, ::5] += 2
    >>> out = l0_smooth(img, 0.02)
    >>> out.shape, out.dtype
    ((16, 16, 3), dtype('float64'))
    >>> bool(np.ptp(out[:, :8]) < np.ptp(img[:, :8] / 255.0))  # the noise is flattened
    True
    """
    img, was_2d = as_float_image(image)
    lam = as_positive(lam, name="l0 lambda")
    kappa = as_positive(kappa, name="l0 kappa", minimum=1.0,
                        why=" (the beta loop would never end)")
    n_iterations(lam, kappa)  # refuses a continuation longer than MAX_ITERATIONS
    h, w, c = img.shape
    check_memory("l0", img.shape, BYTES_PER_PIXEL_CHANNEL * h * w * c,
                 f"{BYTES_PER_PIXEL_CHANNEL * 3:.0f} MB per RGB megapixel")
    tune_malloc()

    out = _l0_core(img, lam, kappa)
    return restore_shape(out, was_2d)


def _l0_core(img: np.ndarray, lam: float, kappa: float) -> np.ndarray:
    """The β-continuation on a validated float64 HxWxC image; returns float64 HxWxC."""
    from ._l0_kernels import masked_divergence, spectral_update

    h, w, _ = img.shape
    S = np.array(img.transpose(2, 0, 1), order="C")  # (C, H, W) copy: FFTs over contiguous axes
    den = _denominator(h, w)
    N1 = sfft.rfft2(S, workers=_num_threads())
    div = np.empty_like(S)
    F = np.empty_like(N1)
    fwd, inv = _fft_pair()
    nchunks = 4 * max(1, _num_threads())  # a few blocks per thread: balance under load
    beta = 2.0 * lam
    while beta < BETA_MAX:
        masked_divergence(S, lam / beta, div, nchunks)
        F = fwd(div, F)
        spectral_update(F, N1, den, beta)
        S = inv(F, S)
        beta *= kappa
    return np.ascontiguousarray(S.transpose(1, 2, 0))


# ----------------------------------------------------------------------------- FFT plumbing
# Each iteration needs one real forward and one real inverse 2-D FFT of a (C, H, W) stack.
# scipy.fft allocates a fresh 25 MB output per call at 1 MP (plus a temporary copy inside
# irfft2); the pocketfft binding under it accepts output buffers, which saves the allocations
# and page faults. That binding is private, so it is checked once against the public API and
# the public calls are used if it is missing or disagrees.

def _fwd_public(x, out):
    return sfft.rfft2(x, workers=_num_threads())


def _inv_public(F, out):
    G = sfft.ifft(F, axis=1, workers=_num_threads(), overwrite_x=True)
    return sfft.irfft(G, n=out.shape[2], axis=2, workers=_num_threads(), overwrite_x=True)


def _fwd_private(x, out):
    return _pfft.r2c(x, (1, 2), True, 0, out, _num_threads())


def _inv_private(F, out):  # in place along H, then complex-to-real along W into ``out``
    _pfft.c2c(F, (1,), False, 2, F, _num_threads())
    return _pfft.c2r(F, (2,), out.shape[2], False, 2, out, _num_threads())


try:
    from scipy.fft._pocketfft import pypocketfft as _pfft
except Exception:  # pragma: no cover - depends on the SciPy build
    _pfft = None

_FFT_PAIR = None


def _fft_pair():
    """(forward, inverse) FFT callables, the buffer-reusing ones when they check out."""
    global _FFT_PAIR
    if _FFT_PAIR is None:
        pair = (_fwd_public, _inv_public)
        if _pfft is not None:
            try:
                x = np.random.default_rng(0).random((2, 6, 5))
                ok = True
                for xx in (x, x[:, :, :4].copy()):
                    want_f = sfft.rfft2(xx)
                    got_f = _fwd_private(xx, np.empty_like(want_f))
                    got_x = _inv_private(got_f.copy(), np.empty_like(xx))
                    ok &= bool(np.allclose(got_f, want_f, rtol=0, atol=1e-12)
                               and np.allclose(got_x, xx, rtol=0, atol=1e-12))
                if ok:
                    pair = (_fwd_private, _inv_private)
            except Exception:  # pragma: no cover - private API changed
                pass
        _FFT_PAIR = pair
    return _FFT_PAIR


def _num_threads() -> int:
    import numba

    return numba.get_num_threads()
