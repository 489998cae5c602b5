"""Relative total variation smoothing (Xu, Yan, Xia & Jia 2012), as the authors' ``tsmooth.m``
computes it, including its MIC(0)-preconditioned conjugate-gradient solve."""
from __future__ import annotations

import math

import numpy as np

from ._memory import check_memory, tune_malloc
from ._validate import as_count, as_float_image, as_positive, restore_shape

__all__ = ["rtv_smooth", "gaussian_taps", "SOLVERS"]

#: The linear solvers: ``"pcg"`` reproduces the reference, ``"direct"`` solves exactly.
SOLVERS = ("pcg", "direct")

#: Texture floor ε of the windowed-gradient weights (``vareps`` of the reference).
TEXTURE_EPS = 0.001
#: PCG settings of the reference: relative tolerance and iteration cap.
PCG_TOL = 0.1
PCG_MAXIT = 100
#: σ is divided by this after every iteration, and never drops below SIGMA_MIN.
SIGMA_DECAY = 2.0
SIGMA_MIN = 0.5

_EPS = np.finfo(np.float64).eps

#: Largest accepted 8·(λ/2)/(ε·sharpness), a bound on the condition number (minus 1) of the system (every
#: weight is at most 1/(TEXTURE_EPS·sharpness)): beyond ~1e16 the 1 of the diagonal is lost in
#: rounding and MIC(0) meets non-positive pivots; at 1e12 the system is still well resolved.
MAX_CONDITION = 1e12
#: Refuse more re-weighting passes than this (each is ~0.4 s at 1 MP; the reference runs 4).
MAX_PASSES = 1000
#: Refuse σ above this (pixels): the filter would have over a million taps.
MAX_SIGMA = 1e5
#: Peak memory per pixel (bytes) of an RGB call: about 15 float64 values per pixel and channel
#: (image, estimate, Gaussian work arrays, the PCG vectors) plus the 3 system vectors; measured
#: 372 MB per RGB megapixel (``ru_maxrss`` slope between 1 and 2 MP).
BYTES_PER_PIXEL_RGB = 400


def gaussian_taps(sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', [1, k], sigma)`` with k = ``bitor(round(5σ), 1)``.

    ``round`` is MATLAB's (half away from zero); taps below eps·max are zeroed, then the taps are
    normalised to sum 1. σ = 3, 1.5, 0.75, 0.5 give 15, 9, 5 and 3 taps.
    """
    k = int(math.floor(5.0 * sigma + 0.5)) | 1
    if k == 1:  # one tap (σ < 0.1): exactly [1.0], also where 2σ² underflows to 0
        return np.ones(1)
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    g[g < _EPS * g.max()] = 0.0
    return g / g.sum()


def rtv_smooth(image, lam: float = 0.01, *, sigma: float = 3.0, sharpness: float = 0.02,
               max_iter: int = 4, solver: str = "pcg") -> np.ndarray:
    """Extract the structure of an image and remove its texture (relative total variation).

    Each of ``max_iter`` passes re-weights a screened-Poisson smoothing problem: a pixel's
    smoothness weight is large where the local gradients point in inconsistent directions
    (texture: the Gaussian-windowed gradient is small) and small across coherent edges, so the
    solve flattens texture but keeps structure edges. With the weights wx, wy of the current
    estimate, every pass solves ``(I + λ/2 · L(wx, wy)) x = input`` (L a weighted 5-point
    Laplacian with no-flux borders), one matrix for all colour channels, always with the
    *original* image as right-hand side. The Gaussian scale σ halves after every pass, down to
    0.5 (3, 1.5, 0.75, 0.5 by default). This reproduces the authors' MATLAB ``tsmooth.m`` as run
    under GNU Octave, including its inexact linear solve (see ``solver``).

    Parameters
    ----------
    image : ndarray
        HxW (gray), HxWx1 or HxWx3 image, uint8 (read as x/255) or float in [0, 1].
    lam : float, default 0.01
        Smoothness weight λ > 0 (halved internally, as the reference does). Larger values remove
        coarser texture. The paper's training range is [0.002, 0.05] (log-uniform).
    sigma : float, default 3.0
        Initial Gaussian scale σ > 0 (pixels) of the windowed gradients: roughly the texture
        scale. The filter has ``bitor(round(5σ), 1)`` taps.
    sharpness : float, default 0.02
        Floor ε_s > 0 of the gradient magnitude in the edge-aware weight; smaller values give
        sharper edges.
    max_iter : int, default 4
        Number of re-weighting passes (0 to 1000; 0 returns the input).
    solver : {"pcg", "direct"}, default "pcg"
        ``"pcg"``: the reference's branch, conjugate gradients from x = 0 preconditioned by the
        modified incomplete Cholesky factor MIC(0) of the matrix in column-major pixel order,
        stopped at relative residual 0.1 (at most 100 iterations). It is fast but far from the
        exact solution, and it is what the paper's data contain. ``"direct"``: the exact solve
        (sparse LU); it differs from ``"pcg"`` by up to tens of grey levels.

    Returns
    -------
    ndarray
        float64 array of the input's shape, **not clipped**.

    Notes
    -----
    Cost per pass: O(HW·k) for the Gaussian (k taps) and the weights, O(HW) for the MIC(0)
    factorisation, and per channel O(HW) per CG iteration (two sequential triangular sweeps and
    one 5-point product). CG takes 1–15 iterations per channel and pass, more at large λ. The
    colour channels are solved in lock-step, each with its own stopping test. Memory: about
    400 bytes per pixel of an RGB image at the peak (~0.4 GB per megapixel); an image that
    cannot fit in the available memory is refused with a ``MemoryError`` before any work. λ so
    large that the system is numerically singular (1 + 4λ/(0.001·sharpness) > 1e12, i.e.
    λ > 5e6 at the default sharpness), σ > 1e5 and more than 1000 passes raise ``ValueError``.

    Faithfulness to the reference run (Octave 7.3, which takes ``tsmooth.m``'s ``ichol``/``pcg``
    branch): Octave's ``ichol(A, struct('michol','on'))`` is reproduced in its own elimination
    order, including the 2-row case where fill-in is kept, and Octave's ``pcg`` semantics are
    kept: it stops when the *updated* residual ‖r‖ ≤ 0.1‖b‖ (no true-residual check, unlike
    MATLAB's ``pcg``), returns the iterate of smallest residual, stops on stagnation
    (‖Δx‖ ≤ eps‖x‖) or a non-positive curvature, and returns 0 for an all-zero channel.
    The factor, the substitutions and the sparse products are evaluated in Octave's operation
    order; only the dot products and norms are summed in another order, so the differences are
    float64 rounding: every reference output (stored as float32) is reproduced bit for bit. The
    paper describes the same energy but not this solver; the MIC(0) result depends on the pixel
    order, which is MATLAB's column-major ``A(:)`` here.

    References
    ----------
    L. Xu, Q. Yan, Y. Xia, J. Jia. Structure Extraction from Texture via Relative Total
    Variation. ACM TOG 31(6) (SIGGRAPH Asia 2012). doi:10.1145/2366145.2366158

    Examples
    --------
    >>> import numpy as np
    >>> from operators.rtv import rtv_smooth
    >>> img = np.zeros((24, 24, 3), np.uint8)
    >>> img[:, 12:] = 200                     # a structure edge ...
    >>> img[::2, :] += 40                     # ... under a fine stripe texture
    >>> out = rtv_smooth(img, 0.02)
    >>> out.shape, out.dtype
    ((24, 24, 3), dtype('float64'))
    >>> bool(np.ptp(out[:, :10]) < np.ptp(img[:, :10] / 255.0))  # texture flattened
    True
    """
    img, was_2d = as_float_image(image)
    lam = as_positive(lam, name="rtv lambda")
    sigma = as_positive(sigma, name="rtv sigma")
    sharpness = as_positive(sharpness, name="rtv sharpness")
    max_iter = as_count(max_iter, name="rtv max_iter", minimum=0)
    if solver not in SOLVERS:
        raise ValueError(f"rtv: unknown solver {solver!r}; use one of {SOLVERS}")
    if max_iter > MAX_PASSES:
        raise ValueError(f"rtv: max_iter={max_iter} passes is too many; at most {MAX_PASSES} "
                         "are allowed (the reference runs 4)")
    if sigma > MAX_SIGMA:
        raise ValueError(f"rtv: sigma={sigma:g} is too large; at most {MAX_SIGMA:g} pixels "
                         "are allowed (the filter has about 5*sigma taps)")
    cond = 1.0 + 8.0 * (lam / 2.0) / (TEXTURE_EPS * sharpness)
    if not 8.0 * (lam / 2.0) / (TEXTURE_EPS * sharpness) <= MAX_CONDITION:
        lam_max = 2.0 * MAX_CONDITION / 8.0 * TEXTURE_EPS * sharpness
        raise ValueError(
            f"rtv: lambda={lam:g} with sharpness={sharpness:g} makes the system numerically "
            f"singular (condition number up to 1 + 4*lambda/(0.001*sharpness) = {cond:.3g} > "
            f"{MAX_CONDITION:g} + 1); lambda must be <= {lam_max:.4g} for this sharpness")
    h, w, c = img.shape
    check_memory("rtv", img.shape, BYTES_PER_PIXEL_RGB / 3.0 * max(c, 1.5) * h * w,
                 f"about {BYTES_PER_PIXEL_RGB:.0f} MB per RGB megapixel")
    tune_malloc()

    out = _rtv_core(img, lam / 2.0, sigma, sharpness, int(max_iter), solver)
    return restore_shape(out, was_2d)


def _rtv_core(img, lam, sigma, sharpness, max_iter, solver):
    """The passes on a validated HxWxC float64 image; ``lam`` is already halved."""
    from . import _rtv_kernels as K

    h, w, c = img.shape
    n = h * w
    B = np.ascontiguousarray(img.transpose(2, 1, 0))  # (C, W, H): B[ch].ravel() is A(:)
    X = B
    D, dx, dy = np.empty(n), np.empty(n), np.empty(n)
    tmp, fb = np.empty_like(B), np.empty_like(B)
    for _ in range(max_iter):
        K.texture_system(X, gaussian_taps(sigma), sharpness, TEXTURE_EPS, lam, D, dx, dy,
                         tmp, fb)
        if solver == "pcg":
            X = _solve_pcg(D, dx, dy, h, B.reshape(c, n)).reshape(c, w, h)
        else:
            X = _solve_direct(D, dx, dy, h, B.reshape(c, n)).reshape(c, w, h)
        sigma = max(sigma / SIGMA_DECAY, SIGMA_MIN)
    return np.ascontiguousarray(X.transpose(2, 1, 0))


def system_matrix(D, dx, dy, h):
    """The system as a SciPy CSC matrix (pixels in column-major order), for the direct solver
    and for tests."""
    import scipy.sparse as sp

    n = D.shape[0]
    L = sp.diags([dx[: n - h], dy[: n - 1]], [-h, -1], shape=(n, n), format="csc")
    A = (L + L.T + sp.diags(D, format="csc")).tocsc()
    A.eliminate_zeros()
    return A


def _solve_direct(D, dx, dy, h, Bm):
    """Exact solve of A x = b for every channel: one sparse LU (SuperLU) shared by the channels."""
    import scipy.sparse.linalg as spl

    lu = spl.splu(system_matrix(D, dx, dy, h), permc_spec="MMD_AT_PLUS_A",
                  diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return np.ascontiguousarray(lu.solve(np.ascontiguousarray(Bm.T)).T)


def _solve_pcg(D, dx, dy, h, Bm, tol=PCG_TOL, maxit=PCG_MAXIT):
    """Octave's ``pcg(A, b, tol, maxit, L, L')`` from x0 = 0 for every channel of ``Bm`` (C, n),
    with L = ``ichol(A, struct('michol','on'))``; the channels advance in lock-step.

    Per channel, as Octave 7's ``pcg.m``: stop when the recursively updated residual satisfies
    ‖r‖ ≤ tol·‖b‖ or after ``maxit`` iterations, on stagnation (‖x_k - x_{k-1}‖ ≤ eps‖x_k‖) or on
    a non-positive τ = zᵀr or pᵀAp; return the iterate with the smallest residual (the latest one
    on ties); a zero right-hand side returns zeros.
    """
    from . import _rtv_kernels as K

    c, n = Bm.shape
    lb, lc, s = np.empty(n), np.empty(n), np.empty(n)
    if not K.mic0(D, dx, dy, h, lb, lc, s):  # pragma: no cover - A is a diagonally dominant
        raise FloatingPointError("rtv: non-positive pivot in the incomplete Cholesky factor")

    bb = np.empty(c)
    K.sumsq(Bm, bb)
    b_norm = np.sqrt(bb)
    out = np.zeros((c, n))              # a zero right-hand side gives x = b = 0
    R = Bm.copy()                       # r = b - A·0
    Wv = np.zeros((c, n))
    Z = np.empty((c, n))
    Ps = np.zeros((2, c, n))            # p of this and of the previous iteration
    Xs = np.zeros((2, c, n))            # x of this and of the previous iteration
    spare = None                        # fills the third slot of the sweep when two are swept
    Xmin = None                         # the minimum-residual iterate, once it is not the latest
    min_is_cur = np.ones(c, bool)
    res_min = b_norm.copy()
    rr, tau, dd, xx, den, rw, ww = (np.zeros(c) for _ in range(7))
    rr[:] = bb
    old_tau = np.ones(c)
    alpha = np.zeros(c)
    beta = np.zeros(c)
    active = (b_norm > 0) & (b_norm > tol * b_norm) & (maxit > 0)  # Octave's loop test at x0
    likely_done = np.zeros(c, bool)     # predicted to stop at the next residual test
    none = np.zeros(0, np.int64)
    pc = xc = 0                         # index of the current p and x buffers
    it = 0                              # iterations done by the channels still active

    def finish(ch):
        active[ch] = False
        out[ch] = Xs[xc, ch] if min_is_cur[ch] else Xmin[ch]

    def sweep(act_s, act_r, act_x, upd):
        nonlocal spare
        if act_s.size == 2 and spare is None:
            spare = np.zeros((3, n))
        K.sweep_and_x(lb, lc, s, h, R, Wv, Z, alpha, Xs[xc], Xs[1 - xc], Ps[pc],
                      act_s, act_s.size, act_r, act_r.size, act_x, act_x.size, upd,
                      Z if spare is None else spare, rr, tau, dd, xx)

    act = np.flatnonzero(active)
    sweep(act, none, none, False)       # z_0 = M⁻¹ b
    while act.size:
        beta[act] = tau[act] / old_tau[act]
        old_tau[act] = tau[act]
        K.p_matvec(Z, Ps[pc], Ps[1 - pc], beta, D, dx, dy, h, Wv, R, act, act.size,
                   den, rw, ww)
        pc ^= 1
        for ch in act:
            if not (tau[ch] > 0 and den[ch] > 0):  # not positive definite: stop, x unchanged
                finish(ch)
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        alpha[act] = tau[act] / den[act]
        pred = rr[act] - 2.0 * alpha[act] * rw[act] + alpha[act] ** 2 * ww[act]
        likely_done[act] = (pred < (1.0 - 1e-6) * (tol * b_norm[act]) ** 2) | (it + 1 >= maxit)
        # r_{i+1} = r_i - alpha·w and z_{i+1} = M⁻¹ r_{i+1}, beside x_{i+1} = x_i + alpha·p_i
        sweep(act[~likely_done[act]], act[likely_done[act]], act, True)
        xc ^= 1
        it += 1
        for ch in act:
            res = math.sqrt(rr[ch])
            if res <= res_min[ch]:
                res_min[ch] = res
                min_is_cur[ch] = True
            elif min_is_cur[ch]:  # the previous iterate was the best one: keep it
                if Xmin is None:
                    Xmin = np.empty((c, n))
                Xmin[ch] = Xs[1 - xc, ch]
                min_is_cur[ch] = False
            if (math.sqrt(dd[ch]) <= _EPS * math.sqrt(xx[ch])  # stagnation
                    or not res > tol * b_norm[ch] or it >= maxit):
                finish(ch)
        act = np.flatnonzero(active)
        late = act[likely_done[act]]    # predicted to stop but did not: substitute now
        if late.size:
            sweep(late, none, none, False)
    return out
