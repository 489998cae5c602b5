"""Weighted least squares (WLS) edge-preserving smoothing, Farbman et al. 2008.

Faithful to the authors' ``wlsFilter.m`` as the paper's data generator calls it: each channel is
smoothed on its own, guided by its own log intensity, by solving one sparse SPD system exactly.
"""
from __future__ import annotations

import numpy as np
from ._jit import njit, prange

from ._memory import available_bytes, check_memory, tune_malloc
from ._sparse_solve import grid_pattern, pardiso_threads, solve_grid_spd_many
from ._validate import MATLAB_EPS, as_float_image, as_gamma, restore_shape

__all__ = ["wls_filter"]

#: Largest accepted 8·lam/small_num, a bound on the condition number (minus 1) of I + lam·L (every weight
#: is at most 1/small_num, so Gershgorin bounds the largest eigenvalue by it; the smallest is
#: >= 1). Beyond ~1e16 the 1 of the diagonal is lost in rounding and the factorisation fails;
#: at 1e12 the solution still has a relative error below ~2e-4.
MAX_CONDITION = 1e12
#: Peak memory of one call with its systems solved one after the other, bytes per pixel (hardly
#: depends on the channel count): the sparse Cholesky factor dominates. Measured 927 MB per RGB
#: megapixel (``ru_maxrss`` slope between 1000x1000 and 2000x1000, PARDISO).
BYTES_PER_PIXEL = 1000
#: What each further system solved at the same time adds (its own factor and work space).
BYTES_PER_PIXEL_WORKER = 600


@njit(cache=True, parallel=True)
def _log_guide_denominators(ch, alpha, small_num):  # pragma: no cover - numba
    """Column-major ``|diff(log(ch + eps))|^alpha + small_num`` down (dy) and right (dx).

    ``ch`` is one HxW channel (the guide of ``wlsFilter.m`` is its own log). ``dy[x, y]`` couples
    pixel (y, x) with (y+1, x) (0 on the last row, where it is unused); ``dx[x, y]`` couples
    (y, x) with (y, x+1) (0 on the last column). They do not depend on lambda, so one call
    serves every system built on this guide.
    """
    h, w = ch.shape
    logi = np.empty((w, h))  # column-major copy of L = log(ch + eps)
    for x in prange(w):
        for y in range(h):
            logi[x, y] = np.log(ch[y, x] + MATLAB_EPS)
    dy = np.zeros((w, h))
    dx = np.zeros((w, h))
    for x in prange(w):
        for y in range(h - 1):
            dy[x, y] = np.abs(logi[x, y + 1] - logi[x, y]) ** alpha + small_num
        if x < w - 1:
            for y in range(h):
                dx[x, y] = np.abs(logi[x + 1, y] - logi[x, y]) ** alpha + small_num
    return dy, dx


@njit(cache=True, parallel=True)
def _fill_system(ch, lam, dyden, dxden, indptr, data, rhs):  # pragma: no cover - numba
    """Upper-CSR values of ``A = I + lam * weighted Laplacian`` (wlsFilter.m) and the RHS ch(:).

    Pixel i = x*H + y (MATLAB's ``A(:)``); ``data`` follows ``grid_pattern(H, W)``: diagonal,
    coupling with i+1 (below), coupling with i+H (right). A weight is ``-lam / denominator``
    (one division, as MATLAB's ``-lambda ./ (abs(dy).^alpha + smallNum)``).
    """
    h, w = ch.shape
    for x in prange(w):
        for y in range(h):
            i = x * h + y
            s = -lam / dyden[x, y] if y < h - 1 else 0.0
            nth = -lam / dyden[x, y - 1] if y > 0 else 0.0
            e = -lam / dxden[x, y] if x < w - 1 else 0.0
            wst = -lam / dxden[x - 1, y] if x > 0 else 0.0
            k = indptr[i]
            data[k] = 1.0 - (e + wst + s + nth)  # MATLAB: D = 1 - (e+w+s+n), left to right
            k += 1
            if y < h - 1:
                data[k] = s
                k += 1
            if x < w - 1:
                data[k] = e
            rhs[i] = ch[y, x]


def wls_solves(ch: np.ndarray, lams, alpha: float, small_num: float,
               backend: str = "auto") -> list[np.ndarray]:
    """``wlsFilter(ch, lam, alpha)`` of one HxW channel for each ``lam`` in ``lams``.

    ``wls_enhance`` calls it with its two lambdas on L: the guide's weights are computed once
    (:func:`_systems`) and the systems, which differ only in lambda, are solved together
    (:func:`_solve_all`). Returns HxW float64 arrays (column-major views of the solutions), in
    the order of ``lams``.
    """
    return _solve_all(ch.shape, _systems(ch, lams, alpha, small_num), backend)


def _systems(ch: np.ndarray, lams, alpha: float, small_num: float) -> list[tuple]:
    """The one builder of WLS systems: ``(data, rhs)`` of ``wlsFilter(ch, lam, alpha)`` for
    each ``lam``, the guide's weights computed once (they do not depend on lambda)."""
    h, w = ch.shape
    ch = np.ascontiguousarray(ch, dtype=np.float64)
    dyden, dxden = _log_guide_denominators(ch, alpha, small_num)
    indptr, indices = grid_pattern(h, w)
    out = []
    for lam in lams:
        data = np.empty(indices.shape[0])
        rhs = np.empty(h * w)
        _fill_system(ch, float(lam), dyden, dxden, indptr, data, rhs)
        out.append((data, rhs))
    return out


def _solve_all(shape, systems, backend: str = "auto") -> list[np.ndarray]:
    """Solve WLS systems of one HxW shape exactly (:func:`operators._sparse_solve.
    solve_grid_spd_many`, whose ordering and symbolic analysis are shared by every system of a
    shape), several at once where MKL has two threads or more and the memory available holds
    their factors (:func:`_workers`); HxW float64 results, in order: the solutions' column-major
    pixel order seen as HxW (Fortran-ordered views, no copy: wls stacks its channels, which
    copies anyway, and wls_enhance's tone maps read them as they are, 14 ms less at 1024x1024
    than a row-major copy of each first)."""
    h, w = shape
    xs = solve_grid_spd_many(h, w, systems, backend=backend,
                             workers=_workers(len(systems), h * w))
    return [x.reshape(w, h).T for x in xs]


def _workers(n_systems: int, pixels: int) -> int:
    """How many systems to solve at the same time: one per system, up to MKL's thread count
    plus one (three channels on two cores share them), when the threads allow it (a datagen
    worker limited to one thread solves one after the other) and their factors fit in the
    memory available; else 1."""
    threads = pardiso_threads()
    if threads < 2 or n_systems < 2:
        return 1
    k = min(n_systems, threads + 1)
    avail = available_bytes()
    while k > 1 and avail is not None and (
            (BYTES_PER_PIXEL + (k - 1) * BYTES_PER_PIXEL_WORKER) * pixels > avail):
        k -= 1
    return k


def _wls(img: np.ndarray, lam: float, alpha: float, small_num: float,
         backend: str = "auto") -> np.ndarray:
    """WLS on float64 HxWxC ``img`` (already validated); ``backend`` as in ``solve_grid_spd``."""
    systems = [s for c in range(img.shape[2])
               for s in _systems(img[:, :, c], (lam,), alpha, small_num)]
    # one copy of the column-major solutions into a row-major HxWxC result (np.stack alone
    # would keep their layout: a result that is not C-contiguous)
    out = np.empty(img.shape, np.float64)
    return np.stack(_solve_all(img.shape[:2], systems, backend), axis=2, out=out)


def wls_filter(image, lam=1.0, *, alpha=1.2, small_num=1e-4) -> np.ndarray:
    """Weighted least squares edge-preserving smoothing (Farbman et al. 2008), per channel.

    Each channel ``g`` of the image is replaced by the ``u`` minimising
    ``sum (u - g)^2 + lam * sum_neighbours a_pq (u_p - u_q)^2`` over 4-connected pixel pairs, with
    smoothness weights ``a_pq = 1 / (|L_p - L_q|^alpha + small_num)`` computed from the channel's
    own log intensity ``L = log(g + eps)``: strong smoothing in flat regions, little across edges.
    The minimiser solves the sparse SPD system ``(I + lam * weighted Laplacian) u = g`` exactly.

    Parameters
    ----------
    image : ndarray
        HxW, HxWx1 or HxWx3, uint8 (read as x/255) or float in [0, 1]; at least 2x2.
    lam : float, default 1.0
        Smoothness weight lambda > 0. The paper's data use lambda log-uniform in [0.1, 10].
    alpha : float, default 1.2
        Exponent of the log-gradient in the weights (> 0); larger keeps edges sharper.
    small_num : float, default 1e-4
        Positive constant keeping weights finite where the guide is flat.

    Returns
    -------
    ndarray
        float64, same layout as ``image``, unclipped (as MATLAB's ``wlsFilter`` output).

    Notes
    -----
    Follows the reference ``wlsFilter.m`` as ``training_data_generation.m`` calls it, per RGB
    channel: guide ``log(channel + eps)`` with MATLAB ``eps = 2^-52`` (pure-black pixels give
    ``log(eps) = -36``, i.e. near-zero weights across their borders), forward differences with
    zero coupling past the last row/column (Neumann borders), column-major pixel order, and an
    exact solve where MATLAB uses CHOLMOD through backslash.

    The system is solved by a sparse Cholesky factorisation: Intel MKL PARDISO (shipped by the
    ``pypardiso`` wheel) with a minimum-degree ordering whose analysis is cached per image shape,
    or SciPy's SuperLU when MKL is unavailable. At the usual lambdas (lam/small_num up to ~1e5)
    the factor is computed in float32 and the solution refined in float64 to the float64 solve's
    accuracy (~1e-13); a system float32 cannot hold is factored in float64. Cost per channel:
    O(N^1.5) flops for N pixels,
    about 0.5-1 s per megapixel channel on 2 cores with PARDISO (plus about 0.6 s of analysis the
    first time a shape is seen); SuperLU is several times slower. Residuals are ~1e-12 relative,
    so results agree with the reference to rounding (max abs difference ~1e-12 in float64 before
    the reference's float32 storage). With two or more MKL threads the channels are solved at
    the same time, each on its own thread and PARDISO handle (one factorisation does not keep two
    threads busy), where the memory available holds their factors; with one thread (a datagen
    worker) one after the other. The factor of a 1024x1024 channel takes ~0.3 GB; analyses of
    recent shapes stay cached, up to ~3.3 MP in all (``operators._sparse_solve.clear_cache``
    frees them).

    Memory: about 1 GB per megapixel at the peak with the channels solved one after the other
    (927 MB measured with PARDISO between 1 and 2 MP; a 4000x3000 image needs ~11 GB), and
    about 0.6 GB per megapixel more for each channel solved at the same time (only when
    available). An image whose estimate exceeds the memory available
    (``MemAvailable``) is refused with a ``MemoryError`` before any work; filter large images
    in overlapping tiles. ``lam / small_num > 1.25e11`` (lam > 1.25e7 at the default
    small_num) makes the system numerically singular and raises ``ValueError``.

    Unlike the paper's general formulation (arbitrary guide), the guide here is always the
    channel's own log, as the authors' generator did; colour is not coupled across channels.

    References
    ----------
    Z. Farbman, R. Fattal, D. Lischinski, R. Szeliski. "Edge-Preserving Decompositions for
    Multi-Scale Tone and Detail Manipulation". ACM TOG 27(3) (SIGGRAPH 2008).
    doi:10.1145/1360612.1360666

    Examples
    --------
    >>> import numpy as np
    >>> from operators.wls import wls_filter
    >>> rng = np.random.default_rng(0)
    >>> img = np.full((16, 16), 0.2)
    >>> img[:, 8:] = 0.8                                  # a vertical step edge ...
    >>> img = img + 0.02 * rng.standard_normal(img.shape)  # ... under fine texture
    >>> out = wls_filter(img, 1.0)
    >>> out.shape, out.dtype
    ((16, 16), dtype('float64'))
    >>> bool(out[:, 9:].mean() - out[:, :7].mean() > 0.5)     # the edge survives
    True
    >>> bool(out[:, :7].std() < 0.7 * img[:, :7].std())       # the texture is smoothed
    True
    """
    img, was_2d = as_float_image(image)
    lam = as_gamma(lam, name="wls lam")
    alpha = as_gamma(alpha, name="wls alpha")
    small_num = as_gamma(small_num, name="wls small_num")
    if lam <= 0:
        raise ValueError(f"wls: lam must be > 0, got {lam:g}")
    if alpha <= 0:
        raise ValueError(f"wls: alpha must be > 0, got {alpha:g}")
    if small_num <= 0:
        raise ValueError(f"wls: small_num must be > 0, got {small_num:g}")
    if not 8.0 * (lam / small_num) <= MAX_CONDITION:
        raise ValueError(
            f"wls: lam={lam:g} with small_num={small_num:g} makes the system numerically "
            f"singular (condition number up to 1 + 8*lam/small_num = "
            f"{1.0 + 8.0 * (lam / small_num):.3g} > {MAX_CONDITION:g} + 1); lam must be <= "
            f"{MAX_CONDITION / 8.0 * small_num:.4g} for this small_num")
    h, w = img.shape[:2]
    check_memory("wls", img.shape, BYTES_PER_PIXEL * h * w,
                 f"about {BYTES_PER_PIXEL * 1e6 / 2**30:.2f} GiB per megapixel")
    tune_malloc()
    return restore_shape(_wls(img, lam, alpha, small_num), was_2d)
